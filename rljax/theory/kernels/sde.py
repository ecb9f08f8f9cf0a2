"""SDE simulation kernel: Euler–Maruyama on shared Brownian increments, and Ornstein–Uhlenbeck closed forms.

Used by the continuous-time policy-evaluation module (Jia & Zhou, "Policy Evaluation and Temporal-Difference
Learning in Continuous Time and Space: A Martingale Approach", JMLR 2022). Increments are drawn once on
the finest mesh; a coarser mesh sums blocks of them, so every mesh discretises the *same* Brownian path
and mesh-refinement studies see discretisation error, not fresh Monte-Carlo noise.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def brownian_increments(key: jax.Array, n_paths: int, n_steps: int, dt: float, dtype=None) -> jax.Array:
  """ΔW_{p,i} ~ N(0, dt) i.i.d., shape [n_paths, n_steps]."""
  if n_paths < 1 or n_steps < 1:
    raise ValueError(f"`n_paths` and `n_steps` must be >= 1, got {n_paths}, {n_steps}.")
  if dt <= 0:
    raise ValueError(f"`dt` must be positive, got {dt}.")
  return jnp.sqrt(dt) * jax.random.normal(key, (n_paths, n_steps), dtype or jnp.float_)


def coarsen(dw: jax.Array, factor: int) -> jax.Array:
  """Increments on a mesh `factor` times coarser: ΔW^{coarse}_i = Σ_{j<factor} ΔW_{i·factor+j}."""
  if factor < 1 or dw.shape[-1] % factor:
    raise ValueError(f"`factor` must be >= 1 and divide {dw.shape[-1]}, got {factor}.")
  return dw.reshape(*dw.shape[:-1], dw.shape[-1] // factor, factor).sum(-1)


def euler_maruyama(
    x0: jax.Array, dw: jax.Array, dt: float, drift: Callable, diffusion: Callable, t0: float = 0.0
) -> jax.Array:
  """X_{i+1} = X_i + b(t_i, X_i)Δt + σ(t_i, X_i)ΔW_i, t_i = t0 + iΔt; returns [..., n_steps + 1] (X_0 first).

  `x0` has the batch shape of `dw[..., 0]`; `drift` and `diffusion` are (t, x) -> array, elementwise in x.
  """
  if dt <= 0:
    raise ValueError(f"`dt` must be positive, got {dt}.")
  if jnp.shape(x0) != dw.shape[:-1]:
    raise ValueError(f"`x0` must have shape {dw.shape[:-1]}, got {jnp.shape(x0)}.")

  def step(carry, inc):
    x, t = carry
    x_next = x + drift(t, x) * dt + diffusion(t, x) * inc
    return (x_next, t + dt), x_next

  _, xs = jax.lax.scan(step, (x0, jnp.asarray(t0, dw.dtype)), jnp.moveaxis(dw, -1, 0))
  return jnp.concatenate([x0[..., None], jnp.moveaxis(xs, 0, -1)], axis=-1)


def ou_mean(m0, t, kappa):
  """E X_t = m0·e^{−κt} for dX = −κX dt + σ dW, X_0 with mean m0."""
  return m0 * jnp.exp(-kappa * t)


def ou_variance(v0, t, kappa, sigma):
  """Var X_t = v0·e^{−2κt} + σ²(1 − e^{−2κt})/(2κ) for dX = −κX dt + σ dW, Var X_0 = v0."""
  decay = jnp.exp(-2 * kappa * t)
  return v0 * decay + sigma**2 * (1 - decay) / (2 * kappa)
