"""Continuous-time policy evaluation by martingale conditions, discretised on a mesh Δt.

Jia & Zhou, "Policy Evaluation and Temporal-Difference Learning in Continuous Time and Space: A
Martingale Approach", JMLR 2022. For dX = b dt + σ dW on [0, T] the value J(t, x) = E[∫_t^T r ds + h(X_T)]
is characterised by M_t = J(t, X_t) + ∫_0^t r ds being a martingale. Two correct estimators follow:
minimising the martingale loss (ML, gradient Monte Carlo) and solving martingale orthogonality
conditions (MOC) with test functions ξ, which gives TD(0)/TD(λ) (stochastic approximation), LSTD (exact
linear solve) and GTD (two-time-scale minimisation of ‖E Σ ξδ‖²). The mean-square TD error (MSTDE)
fits the quadratic variation of M as well, so it stays biased as Δt → 0.

Everything here is for a linear family J^θ(t, x) = θ·φ(t, x) with J^θ(T, ·) = h for all θ; paths are a
batch [P, N+1] on the mesh t_i = iΔt.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from rljax.theory.kernels import sde


class PathData(NamedTuple):
  phi: jax.Array  # [P, N+1, d]: φ(t_i, X_i), i = 0..N
  reward: jax.Array  # [P, N]: r(t_i, X_i)Δt (left-point rule)
  terminal: jax.Array  # [P]: h(X_T)


def simulate_paths(x0: jax.Array, dw: jax.Array, dt: float, drift: Callable, diffusion: Callable) -> jax.Array:
  """Euler–Maruyama paths [P, N+1] on the increments `dw` [P, N] (see `kernels.sde`)."""
  return sde.euler_maruyama(x0, dw, dt, drift, diffusion)


def path_data(xs: jax.Array, dt: float, feature_fn: Callable, reward_fn: Callable, terminal_fn: Callable) -> PathData:
  """Features φ(t_i, X_i), rewards r(t_i, X_i)Δt and h(X_T) along paths `xs` [P, N+1]."""
  t = dt * jnp.arange(xs.shape[-1], dtype=xs.dtype)
  return PathData(feature_fn(t, xs), reward_fn(t[:-1], xs[:, :-1]) * dt, terminal_fn(xs[:, -1]))


def returns(data: PathData) -> jax.Array:
  """G_i = h(X_T) + Σ_{j≥i} r_jΔt, shape [P, N]."""
  tail = jnp.flip(jnp.cumsum(jnp.flip(data.reward, -1), -1), -1)
  return tail + data.terminal[:, None]


def _solve(a: jax.Array, b: jax.Array) -> jax.Array:
  return jnp.linalg.solve(a, b)


def ml_fit(data: PathData) -> jax.Array:
  """Martingale loss: argmin_θ ½ Σ_p Σ_{i<N} |G_i − θ·φ_i|²Δt, i.e. θ = (Σ φ_iφ_iᵀ)⁻¹ Σ φ_i G_i."""
  phi = data.phi[:, :-1]
  return _solve(jnp.einsum("pid,pie->de", phi, phi), jnp.einsum("pid,pi->d", phi, returns(data)))


def traces(phi: jax.Array, lam: float, dt: float) -> jax.Array:
  """Test functions ξ_i = Σ_{j≤i} λ^{(i−j)Δt} φ_j (eligibility trace, λ per unit time); λ = 0 gives ξ_i = φ_i (TD(0))."""
  if not 0.0 <= lam <= 1.0:
    raise ValueError(f"`lam` must be in [0, 1], got {lam}.")
  decay = jnp.asarray(lam, phi.dtype) ** dt

  def step(e, f):
    e = decay * e + f
    return e, e

  _, xi = jax.lax.scan(step, jnp.zeros_like(phi[:, 0]), jnp.moveaxis(phi[:, :-1], 1, 0))
  return jnp.moveaxis(xi, 0, 1)  # [P, N, d]


def td_moments(data: PathData, lam: float, dt: float):
  """A = Σ ξ_i(φ_{i+1} − φ_i)ᵀ, b = Σ ξ_i r_iΔt (summed over steps, averaged over paths): E Σ ξδ = Aθ + b."""
  xi = traces(data.phi, lam, dt)
  dphi = jnp.diff(data.phi, axis=1)
  p = data.phi.shape[0]
  return jnp.einsum("pid,pie->de", xi, dphi) / p, jnp.einsum("pid,pi->d", xi, data.reward) / p, xi, dphi


def moc_lstd(data: PathData, dt: float, lam: float = 0.0) -> jax.Array:
  """Martingale orthogonality solved exactly (LSTD(λ)): θ with Σ_p Σ_i ξ_i[θ·(φ_{i+1} − φ_i) + r_iΔt] = 0,
  θ = −A⁻¹b, ξ from `traces` (λ = 0: TD(0) test function ξ_i = ∇_θJ^θ(t_i, X_i) = φ_i)."""
  a, b, _, _ = td_moments(data, lam, dt)
  return -_solve(a, b)


def mstde_fit(data: PathData) -> jax.Array:
  """Mean-square TD error: argmin_θ Σ_p Σ_i |θ·(φ_{i+1} − φ_i) + r_iΔt|²; biased because
  E|ΔJ + rΔt|² also contains the quadratic variation ∫|σ∂_xJ|²dt, which depends on θ."""
  dphi = jnp.diff(data.phi, axis=1)
  return -_solve(jnp.einsum("pid,pie->de", dphi, dphi), jnp.einsum("pid,pi->d", dphi, data.reward))


def td_lambda_online(
    data: PathData, dt: float, lam: float = 0.0, *, step_size: float = 0.5, epochs: int = 100, decay: float = 0.5
) -> jax.Array:
  """Online TD(λ) by stochastic approximation along time (path-averaged at each step), from θ = 0:

    e_i = λ^{Δt} e_{i−1} + φ_i,  δ_i = θ·(φ_{i+1} − φ_i) + r_iΔt,  θ ← θ + α_k mean_p(e_i δ_i),

  α_k = step_size/(‖A‖(1 + k)^decay) in epoch k (one sweep over [0, T]), A = E Σ_i e_i(φ_{i+1} − φ_i)ᵀ the
  mean-ODE matrix (θ' = Aθ + b), so that one sweep contracts by about step_size whatever the scale of φ.
  Converges to the LSTD(λ) fixed point −A⁻¹b.
  """
  if step_size <= 0 or epochs < 1:
    raise ValueError(f"`step_size` must be positive and `epochs` >= 1, got {step_size}, {epochs}.")
  a, _, xi, dphi = td_moments(data, lam, dt)
  scale = step_size / jnp.linalg.norm(a, 2)
  seq = (jnp.moveaxis(xi, 1, 0), jnp.moveaxis(dphi, 1, 0), data.reward.T)

  def sweep(theta, k):
    alpha = scale / (1.0 + k) ** decay

    def step(theta, inp):
      e, d, r = inp
      delta = d @ theta + r
      return theta + alpha * jnp.mean(e * delta[:, None], 0), None

    return jax.lax.scan(step, theta, seq)[0], None

  theta0 = jnp.zeros(data.phi.shape[-1], data.phi.dtype)
  return jax.lax.scan(sweep, theta0, jnp.arange(epochs, dtype=data.phi.dtype))[0]


def gtd(
    data: PathData, dt: float, lam: float = 0.0, *, step_size: float = 1.0, ratio: float = 0.1, iters: int = 2000
) -> jax.Array:
  """GTD: minimise ½ gᵀM⁻¹g, g(θ) = E Σ_i ξ_iδ_i = Aθ + b, M = E Σ_i ξ_iξ_iᵀΔt, on two time scales:

    w ← w + β (g(θ) − M w)      (fast: w tracks M⁻¹g),
    θ ← θ − α Aᵀ w              (slow: the gradient Aᵀ M⁻¹ g),  α = ratio·β, β = step_size/‖M‖,

  with the path-averaged moments of `td_moments` (batch form of GTD2). Its minimiser is the LSTD point.
  """
  if step_size <= 0 or not 0 < ratio <= 1 or iters < 1:
    raise ValueError(f"need step_size > 0, ratio in (0, 1], iters >= 1; got {step_size}, {ratio}, {iters}.")
  a, b, xi, _ = td_moments(data, lam, dt)
  m = jnp.einsum("pid,pie->de", xi, xi) * dt / data.phi.shape[0]
  beta = step_size / jnp.linalg.norm(m, 2)
  # The slow scale must also resolve the curvature AᵀM⁻¹A of the outer problem.
  alpha = ratio * beta * jnp.linalg.norm(m, 2) ** 2 / jnp.linalg.norm(a, 2) ** 2

  def step(carry, _):
    theta, w = carry
    w = w + beta * (a @ theta + b - m @ w)
    return (theta - alpha * a.T @ w, w), None

  zero = jnp.zeros(a.shape[0], a.dtype)
  return jax.lax.scan(step, (zero, zero), None, length=iters)[0][0]
