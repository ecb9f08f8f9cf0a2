"""Discriminative vs generative classifiers: Gaussian naive Bayes against multiclass logistic regression.

Zheng, Wu, Bao, Cao, Li, Zhu, "Revisiting Discriminative vs. Generative Classifiers: Theory and
Implications", ICML 2023. Multiclass naive Bayes reaches its asymptotic error with O(log n) samples while
multiclass logistic regression needs O(n) (n = feature dimension). This module holds both learners (the
reference code's sklearn settings, re-derived in JAX, x64, vmappable with 0/1 sample weights so that a
prefix of a fixed buffer is a training set of size m) and the sample-complexity read-out m*.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rljax.theory.kernels.lbfgs import lbfgs_minimize


class NBParams(NamedTuple):
  log_prior: jax.Array  # [K]
  means: jax.Array  # [K, n]
  var: jax.Array  # [K, n]


class LRParams(NamedTuple):
  weight: jax.Array  # [n, K]
  bias: jax.Array  # [K]
  grad_norm: jax.Array  # ‖∇‖ of the normalised objective at the returned point
  iterations: jax.Array


def _check(x: jax.Array, y: jax.Array, weights: jax.Array | None) -> jax.Array:
  if x.ndim != 2 or y.shape != x.shape[:1]:
    raise ValueError(f"`x` must be [m, n] and `y` [m], got {x.shape} and {y.shape}.")
  if weights is None:
    return jnp.ones(x.shape[0], x.dtype)
  if weights.shape != y.shape:
    raise ValueError(f"`weights` must have shape {y.shape}, got {weights.shape}.")
  return weights.astype(x.dtype)


def gaussian_nb_fit(
    x: jax.Array, y: jax.Array, num_classes: int, *, weights: jax.Array | None = None, var_smoothing: float = 1e-9
) -> NBParams:
  """Gaussian naive Bayes MLE (sklearn `GaussianNB`): with w_i the sample weights and m_k = Σ_{y_i=k} w_i,

    π_k = m_k / Σ_i w_i,  μ_kj = Σ_{y_i=k} w_i x_ij / m_k,  σ²_kj = Σ_{y_i=k} w_i (x_ij − μ_kj)² / m_k + ε,
    ε = var_smoothing · max_j Var_w(x_·j).
  """
  if var_smoothing < 0:
    raise ValueError(f"`var_smoothing` must be >= 0, got {var_smoothing}.")
  w = _check(x, y, weights)
  onehot = jax.nn.one_hot(y, num_classes, dtype=x.dtype) * w[:, None]  # [m, K]
  counts = onehot.sum(0)
  safe = jnp.maximum(counts, 1e-300)[:, None]
  means = onehot.T @ x / safe
  var = onehot.T @ x**2 / safe - means**2
  mean_all = w @ x / w.sum()
  eps = var_smoothing * jnp.max(w @ (x - mean_all) ** 2 / w.sum())
  return NBParams(jnp.log(counts / counts.sum()), means, jnp.maximum(var, 0.0) + eps)


def gaussian_nb_scores(params: NBParams, x: jax.Array) -> jax.Array:
  """log π_k − ½Σ_j [log(2πσ²_kj) + (x_j − μ_kj)²/σ²_kj], shape [m, K] (joint log-likelihood)."""
  quad = jnp.sum((x[:, None, :] - params.means) ** 2 / params.var, -1)
  return params.log_prior - 0.5 * jnp.sum(jnp.log(2 * jnp.pi * params.var), -1) - 0.5 * quad


def logreg_objective(weight, bias, x, y, w, c):
  """½‖W‖²_F + C Σ_i w_i CE_i, CE_i = −log softmax(xᵢW + b)_{y_i} (sklearn's multinomial loss, b unpenalised)."""
  logp = jax.nn.log_softmax(x @ weight + bias, axis=-1)
  ce = -jnp.take_along_axis(logp, y[:, None], -1)[:, 0]
  return 0.5 * jnp.sum(weight**2) + c * jnp.sum(w * ce)


def logreg_fit(
    x: jax.Array, y: jax.Array, num_classes: int, *, weights: jax.Array | None = None, c: float = 1.0,
    max_iters: int = 500, tol: float = 1e-10,
) -> LRParams:
  """Multinomial logistic regression, argmin_{W,b} ½‖W‖²_F + C Σ_i w_i CE(softmax(xᵢW + b), y_i), by L-BFGS.

  L-BFGS runs on the objective divided by C·Σw in the Jacobi-preconditioned variables W = diag(s)V,
  s_j = (¼·mean_w(x_j²) + 1/(C Σw))^{-1/2} (the curvature scale of each row of W), which leaves the
  minimiser unchanged but makes the high-variance features as easy as the others. Stops at ‖∇‖ ≤ tol.
  (For K = 2 the multinomial penalty ½‖W‖² equals sklearn's binary penalty on w = W_1 − W_0 with 2C.)
  """
  if c <= 0:
    raise ValueError(f"`c` must be positive, got {c}.")
  w = _check(x, y, weights)
  total = c * w.sum()
  scale = jax.lax.rsqrt(0.25 * (w @ x**2) / w.sum() + 1.0 / total)
  dim = x.shape[1]

  def objective(v):
    return logreg_objective(scale[:, None] * v[:dim], v[dim], x, y, w, c) / total

  v0 = jnp.zeros((dim + 1, num_classes), x.dtype)
  v, _, _, iters = lbfgs_minimize(objective, v0, max_iters=max_iters, tol=tol)
  grad = jax.grad(lambda wb: logreg_objective(wb[0], wb[1], x, y, w, c))((scale[:, None] * v[:dim], v[dim]))
  grad_norm = optax.tree.norm(grad) / total
  return LRParams(scale[:, None] * v[:dim], v[dim], grad_norm, iters)


def logreg_scores(params: LRParams, x: jax.Array) -> jax.Array:
  """Logits xW + b, shape [m, K]."""
  return x @ params.weight + params.bias


def error_rate(scores: jax.Array, y: jax.Array) -> jax.Array:
  """Test error mean_i 1[argmax_k scores_ik ≠ y_i]."""
  return jnp.mean(jnp.argmax(scores, -1) != y)


def m_star(m_grid: np.ndarray, errors: np.ndarray, asymptote: float, tol: float = 0.01) -> float:
  """Sample complexity read-out: m* = min{m in the grid : mean_seeds err(m) ≤ asymptote + tol}.

  `errors` is [S, len(m_grid)] (or 1-D; NaN = not run); returns inf when no grid point gets there (censored).
  """
  m_grid = np.asarray(m_grid)
  errors = np.asarray(errors, np.float64)
  if errors.ndim == 1:
    errors = errors[None]
  if errors.shape[-1] != m_grid.size or m_grid.ndim != 1:
    raise ValueError(f"`errors` must be [S, {m_grid.size}], got {errors.shape}.")
  if np.any(np.diff(m_grid) < 0):
    raise ValueError("`m_grid` must be non-decreasing.")
  if tol <= 0:
    raise ValueError(f"`tol` must be positive, got {tol}.")
  hit = np.nonzero(np.nan_to_num(errors.mean(0), nan=np.inf) <= asymptote + tol)[0]
  return float(m_grid[hit[0]]) if hit.size else float("inf")
