"""Trend statistics of the reproductions: log–log slopes with a seed bootstrap, and autocorrelation.

A predicted rate is read off as the log–log slope of the median-over-seeds curve over its last 1.5
decades of x, with a 95% interval from resampling seeds; experiments report these numbers and the
tests (`tests/helpers.py`) assert them against the predicted bands.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class SlopeFit(NamedTuple):
  slope: float
  intercept: float
  ci_low: float
  ci_high: float


def loglog_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
  """OLS fit of log y = slope·log x + intercept; y must be positive."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if x.shape != y.shape or x.ndim != 1 or x.size < 2:
    raise ValueError(f"need two 1-D arrays of equal length >= 2, got {x.shape} and {y.shape}.")
  if np.any(x <= 0) or np.any(y <= 0):
    raise ValueError("log-log fit needs positive x and y.")
  slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
  return float(slope), float(intercept)


def seed_slope(
    x: np.ndarray, y_seeds: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> SlopeFit:
  """Slope of the median-over-seeds curve `y_seeds: [S, len(x)]`, with a seed-bootstrap CI.

  The median makes the fit robust to the rare seed whose estimator blows up at small n.
  """
  y_seeds = np.asarray(y_seeds, np.float64)
  if y_seeds.ndim != 2 or y_seeds.shape[1] != len(x):
    raise ValueError(f"`y_seeds` must be [seeds, {len(x)}], got {y_seeds.shape}.")
  slope, intercept = loglog_slope(x, np.median(y_seeds, axis=0))
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, y_seeds.shape[0], size=(n_boot, y_seeds.shape[0]))
  boot = [loglog_slope(x, np.median(y_seeds[i], axis=0))[0] for i in idx]
  lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
  return SlopeFit(slope, intercept, float(lo), float(hi))


def fit_slope(
    x: np.ndarray, y_seeds: np.ndarray, *, last_decades: float | None = 1.5, n_boot: int = 1000, seed: int = 0
) -> SlopeFit:
  """`seed_slope` restricted to x ≥ max(x)·10^(−last_decades) (at least two points kept).

  Rates are asymptotic: the fit ignores the pre-asymptotic start of the curve. `y_seeds` is
  `[S, len(x)]`, or 1-D for a single deterministic curve (its CI is then the point estimate).
  """
  x = np.asarray(x, np.float64)
  y_seeds = np.asarray(y_seeds, np.float64)
  if y_seeds.ndim == 1:
    y_seeds = y_seeds[None]
  if x.ndim != 1 or y_seeds.ndim != 2 or y_seeds.shape[1] != x.size:
    raise ValueError(f"`x` must be 1-D and `y_seeds` [seeds, {x.size}], got {x.shape} and {y_seeds.shape}.")
  keep = np.ones(x.size, bool) if last_decades is None else x >= x.max() * 10.0 ** (-last_decades)
  if keep.sum() < 2:
    keep = x >= np.sort(x)[-2]
  return seed_slope(x[keep], y_seeds[:, keep], n_boot=n_boot if y_seeds.shape[0] > 1 else 1, seed=seed)


def autocorrelation(x: np.ndarray, lag: int = 1) -> float:
  """Sample autocorrelation Σ(x_t − x̄)(x_{t+lag} − x̄) / Σ(x_t − x̄)² of a 1-D series."""
  x = np.asarray(x, np.float64)
  if x.ndim != 1 or not 0 < lag < x.size:
    raise ValueError(f"need a 1-D series longer than `lag`={lag}, got shape {x.shape}.")
  d = x - x.mean()
  denom = float(d @ d)
  if denom == 0.0:
    raise ValueError("autocorrelation of a constant series is undefined.")
  return float(d[:-lag] @ d[lag:] / denom)


def log_grid(t: np.ndarray, t_min: float, n: int = 40) -> np.ndarray:
  """Indices of ~n log-spaced checkpoints in [t_min, t_max] (the fits see every decade equally)."""
  targets = np.logspace(np.log10(t_min), np.log10(t[-1]), n)
  return np.unique(np.searchsorted(t, targets).clip(0, t.size - 1))


def regret_slopes(t: np.ndarray, regret: np.ndarray, t_min: float, n: int = 40) -> tuple[SlopeFit, SlopeFit]:
  """Log–log slopes of the median regret `[seeds, len(t)]` against t on `log_grid(t, t_min, n)`: over the
  last 1.5 decades and over the whole grid. (Pseudo-regret may dip below 0 early: floored at 1e-9.)"""
  idx = log_grid(t, t_min, n)
  reg = np.maximum(regret[:, idx], 1e-9)
  return fit_slope(t[idx], reg), fit_slope(t[idx], reg, last_decades=None)
