"""Estimators of an inverse covariance Σ^{-1} = (E[φφᵀ])^{-1} from i.i.d. feature samples, with their
bias/variance diagnostics.

Adversarial linear-Q / linear-MDP learners build loss estimates θ̂ = Σ̂^{-1} φ_t L_t and need Σ̂^{-1}
for the current policy's feature distribution, which they only know through samples (simulator
rollouts). Two estimators are provided:

- matrix geometric resampling (Neu & Olkhovskaya, COLT 2020), the baseline estimator of Dai, Luo,
  Wei, Zimmert, "Refined Regret for Adversarial MDPs with Linear Function Approximation", ICML 2023;
- the empirical-ridge inverse (γI + (1/M) Σ_j φ_jφ_jᵀ)^{-1} from M fresh samples.

Both are pure functions of an `[M, d]` sample array, so callers vmap them over layers and seeds.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


def _check_samples(phis, name: str = "phis") -> jax.Array:
  phis = jnp.asarray(phis)
  if phis.ndim != 2 or phis.shape[0] < 1:
    raise ValueError(f"`{name}` must be [M, d] with M >= 1, got {phis.shape}.")
  return phis


def matrix_geometric_resampling(phis: jax.Array, beta) -> jax.Array:
  """Matrix geometric resampling from M i.i.d. samples φ_1..φ_M (rows of `phis`):

      Σ̂⁺ = βI + β Σ_{j=1}^{M} Π_{i=1}^{j} (I − β φ_iφ_iᵀ),

  a truncated Neumann series of Σ^{-1} = β Σ_{j≥0} (I − βΣ)^j. With independent factors its mean is
  exactly E[Σ̂⁺] = Σ^{-1}(I − (I − βΣ)^{M+1}), so the bias vanishes geometrically when
  β < 1/λ_max(Σ) (β ≤ 1/2 suffices for ‖φ‖ ≤ 1). One `lax.scan`, O(M d²): each step right-multiplies
  the running product by a rank-one update.
  """
  phis = _check_samples(phis)
  if isinstance(beta, (int, float)) and beta <= 0:
    raise ValueError(f"`beta` must be positive, got {beta}.")
  d = phis.shape[1]
  eye = jnp.eye(d, dtype=phis.dtype)

  def body(carry, phi):
    prod, total = carry
    prod = prod - beta * jnp.outer(prod @ phi, phi)
    return (prod, total + prod), None

  (_, total), _ = jax.lax.scan(body, (eye, jnp.zeros_like(eye)), phis)
  return beta * (eye + total)


def mgr_mean(cov: jax.Array, beta, n_samples: int) -> jax.Array:
  """Closed-form mean of `matrix_geometric_resampling`: Σ^{-1}(I − (I − βΣ)^{M+1}) = β Σ_{j=0}^{M} (I − βΣ)^j."""
  cov = jnp.asarray(cov)
  step = jnp.eye(cov.shape[-1], dtype=cov.dtype) - beta * cov
  return jnp.linalg.solve(cov, jnp.eye(cov.shape[-1], dtype=cov.dtype) - jnp.linalg.matrix_power(step, n_samples + 1))


def empirical_ridge_inverse(phis: jax.Array, gamma) -> jax.Array:
  """Plug-in inverse from M fresh samples: (γI + (1/M) Σ_j φ_jφ_jᵀ)^{-1} (γ > 0 keeps it defined when the
  samples do not span R^d; it biases the estimate towards smaller norms)."""
  phis = _check_samples(phis)
  if isinstance(gamma, (int, float)) and gamma <= 0:
    raise ValueError(f"`gamma` must be positive, got {gamma}.")
  d = phis.shape[1]
  cov = gamma * jnp.eye(d, dtype=phis.dtype) + phis.T @ phis / phis.shape[0]
  return jnp.linalg.inv(0.5 * (cov + cov.T))


def sample_features(key: jax.Array, probs: jax.Array, feats: jax.Array, n_samples: int) -> jax.Array:
  """M i.i.d. draws of φ from the discrete distribution Σ_i probs_i δ_{feats_i}: `probs: [n]`,
  `feats: [n, d]` (e.g. a layer's occupancy q_h(s,a) over flattened (s,a)). Returns [M, d]."""
  idx = jax.random.categorical(key, jnp.log(probs), shape=(n_samples,))
  return feats[idx]


class InverseDiagnostics(NamedTuple):
  bias: jax.Array  # ‖mean of the estimates − target‖_F
  variance: jax.Array  # E‖estimate − mean‖²_F
  mse: jax.Array  # E‖estimate − target‖²_F = bias² + variance


def inverse_diagnostics(estimates: jax.Array, target: jax.Array) -> InverseDiagnostics:
  """Bias/variance decomposition of independent draws `estimates: [N, d, d]` around `target: [d, d]`
  (normally the true Σ^{-1}): bias = ‖Ê − T‖_F, variance = mean ‖X − Ê‖²_F, mse = mean ‖X − T‖²_F."""
  estimates, target = jnp.asarray(estimates), jnp.asarray(target)
  if estimates.ndim != 3 or estimates.shape[1:] != target.shape:
    raise ValueError(f"`estimates` must be [N, d, d] matching `target` {target.shape}, got {estimates.shape}.")
  mean = jnp.mean(estimates, 0)
  var = jnp.mean(jnp.sum((estimates - mean) ** 2, (1, 2)))
  mse = jnp.mean(jnp.sum((estimates - target) ** 2, (1, 2)))
  return InverseDiagnostics(jnp.linalg.norm(mean - target), var, mse)
