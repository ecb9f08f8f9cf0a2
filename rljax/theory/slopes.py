"""Log–log slope fits with a bootstrap over seeds, for checking predicted rates (error ∝ n^slope)."""

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
