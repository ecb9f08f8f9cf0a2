"""Ornstein–Uhlenbeck policy-evaluation testbed with a closed-form value function.

For Jia & Zhou, "Policy Evaluation and Temporal-Difference Learning in Continuous Time and Space: A
Martingale Approach" (JMLR 2022): dX = −κX dt + σ dW on [0, T], running reward r(t, x) = x², terminal
reward h = 0. Then J(t, x) = a(t)x² + b(t) with a(t) = (1 − e^{−2κ(T−t)})/(2κ) and
b(t) = σ²[(T−t)/(2κ) − (1 − e^{−2κ(T−t)})/(4κ²)], and the linear family J^θ = θ₁a(t)x² + θ₂b(t)/σ²
is realisable with θ* = (1, σ²). Both features vanish at t = T, so J^θ(T, ·) = h for every θ.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp


class OUParams(NamedTuple):
  kappa: float = 1.0
  sigma: float = 0.5
  horizon: float = 1.0
  x0_std: float = 1.0  # X_0 ~ N(0, x0_std²)


def check_params(params: OUParams) -> None:
  for name in ("kappa", "sigma", "horizon"):
    if not getattr(params, name) > 0:
      raise ValueError(f"`{name}` must be positive, got {getattr(params, name)}.")
  if params.x0_std < 0:
    raise ValueError(f"`x0_std` must be >= 0, got {params.x0_std}.")


def drift(params: OUParams):
  return lambda t, x: -params.kappa * x


def diffusion(params: OUParams):
  return lambda t, x: params.sigma * jnp.ones_like(x)


def reward(t, x):
  """r(t, x) = x²."""
  return x**2


def coefficients(params: OUParams, t):
  """(a(t), b(t)) of J(t, x) = a(t)x² + b(t)."""
  k, s, tau = params.kappa, params.sigma, params.horizon - t
  decay = 1 - jnp.exp(-2 * k * tau)
  return decay / (2 * k), s**2 * (tau / (2 * k) - decay / (4 * k**2))


def value(params: OUParams, t, x):
  """J(t, x) = E[∫_t^T X_s² ds | X_t = x] = a(t)x² + b(t)."""
  a, b = coefficients(params, t)
  return a * x**2 + b


def features(params: OUParams, t, x):
  """ψ(t, x) = (a(t)x², b(t)/σ²), shape [..., 2]; J = θ*·ψ with θ* = (1, σ²)."""
  a, b = coefficients(params, t)
  return jnp.stack([a * x**2, jnp.broadcast_to(b / params.sigma**2, jnp.shape(x))], axis=-1)


def theta_star(params: OUParams):
  return jnp.asarray([1.0, params.sigma**2])
