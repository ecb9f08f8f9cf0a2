"""Score-function policy-gradient estimators for pure environments.

Shared kernel of Fatkhullin, Barakat, Kireeva & He, "Stochastic Policy Gradient Methods: Improved Sample
Complexity for Fisher-non-degenerate Policies", ICML 2023 (N-PG-IGT, (N)-HARPG): a trajectory sampler
for `reset`/`step` environments, the GPOMDP and REINFORCE gradient estimators, and the unbiased
Hessian–vector product estimator B(τ, θ)v built from `jax.jvp` (no Hessian is formed). Policy
parameters θ are a flat array; a policy is a pair `sample(key, θ, obs) -> action`,
`logp(θ, obs, action) -> log π_θ(action|obs)`.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.theory.envs import lqr_scalar


class Trajectory(NamedTuple):
  obs: jax.Array  # [H, ...]
  actions: jax.Array  # [H, ...]
  rewards: jax.Array  # [H]
  discounts: jax.Array  # [H]: γ^t, times 0 after termination


class PGProblem(NamedTuple):
  """A sampler `sample(key, θ) -> Trajectory` and the per-step `logp(θ, obs, action)`."""
  sample: Callable
  logp: Callable


def sample_trajectory(key, theta, *, reset, step, env_params, policy_sample, horizon: int, gamma: float) -> Trajectory:
  """Rolls out π_θ for `horizon` steps with `lax.scan`; discounts γ^t are zeroed after `done`."""
  if horizon < 1:
    raise ValueError(f"`horizon` must be >= 1, got {horizon}.")
  if not 0 < gamma <= 1:
    raise ValueError(f"`gamma` must be in (0, 1], got {gamma}.")
  k0, key = jax.random.split(key)
  state, obs = reset(k0, env_params)

  def body(carry, k):
    state, obs, alive, disc = carry
    ka, ks = jax.random.split(k)
    action = policy_sample(ka, theta, obs)
    nxt, nobs, reward, done, _ = step(ks, env_params, state, action)
    out = (obs, action, reward, disc * alive)
    return (nxt, nobs, alive * (1 - done.astype(disc.dtype)), disc * gamma), out

  one = jnp.ones((), jnp.result_type(float))
  _, (o, a, r, d) = jax.lax.scan(body, (state, obs, one, one), jax.random.split(key, horizon))
  return Trajectory(o, a, r, d)


def lqr_problem(params: lqr_scalar.LQRParams) -> PGProblem:
  """The scalar LQR with its Gaussian linear policy as a `PGProblem` (horizon H_tr and γ from params)."""
  lqr_scalar.check_params(params)
  sample = functools.partial(
      sample_trajectory, reset=lqr_scalar.reset, step=lqr_scalar.step, env_params=params,
      policy_sample=functools.partial(lqr_scalar.policy_sample, params=params),
      horizon=params.horizon, gamma=params.gamma)
  return PGProblem(sample, functools.partial(lqr_scalar.policy_logp, params=params))


def _step_logps(traj: Trajectory, logp_fn, theta) -> jax.Array:
  return jax.vmap(lambda o, a: logp_fn(theta, o, a))(traj.obs, traj.actions)


def gpomdp_surrogate(traj: Trajectory, logp_fn, theta) -> jax.Array:
  """Φ(τ, θ) = Σ_t (Σ_{h≤t} log π_θ(a_h|s_h)) γ^t r_t = Σ_h log π_θ(a_h|s_h) · Σ_{t≥h} γ^t r_t."""
  returns_to_go = jnp.cumsum((traj.discounts * traj.rewards)[::-1])[::-1]
  return jnp.sum(_step_logps(traj, logp_fn, theta) * jax.lax.stop_gradient(returns_to_go))


def gpomdp(traj: Trajectory, logp_fn, theta) -> jax.Array:
  """GPOMDP: g(τ, θ) = ∇Φ = Σ_{t<H} (Σ_{h≤t} ∇ log π_θ(a_h|s_h)) γ^t r_t; E g = ∇J_H(θ)."""
  return jax.grad(gpomdp_surrogate, argnums=2)(traj, logp_fn, theta)


def reinforce(traj: Trajectory, logp_fn, theta) -> jax.Array:
  """REINFORCE: (Σ_t ∇ log π_θ(a_t|s_t)) · Σ_t γ^t r_t; unbiased for ∇J_H, larger variance than GPOMDP."""
  ret = jnp.sum(traj.discounts * traj.rewards)
  return jax.grad(lambda th: jnp.sum(_step_logps(traj, logp_fn, th)))(theta) * ret


def hvp_estimate(traj: Trajectory, logp_fn, theta, v) -> jax.Array:
  """B(τ, θ)v = g(τ, θ)⟨∇Ψ(τ, θ), v⟩ + ∇²Φ(τ, θ)v with Ψ = Σ_t log π_θ(a_t|s_t); E[B v] = ∇²J_H(θ)v.

  Unbiased because ∇²J = E[g ∇Ψᵀ + ∇g] (differentiate E_τ[g] through the trajectory density).
  The second term is `jax.jvp` of `jax.grad(Φ)` in direction v: one forward-over-reverse pass.
  """
  v = jnp.asarray(v, jnp.result_type(theta))
  if v.shape != jnp.shape(theta):
    raise ValueError(f"`v` {v.shape} must have the shape of `theta` {jnp.shape(theta)}.")
  grad_phi = jax.grad(gpomdp_surrogate, argnums=2)
  psi = lambda th: jnp.sum(_step_logps(traj, logp_fn, th))
  g, hv = jax.jvp(lambda th: grad_phi(traj, logp_fn, th), (theta,), (v,))
  _, dpsi_v = jax.jvp(psi, (theta,), (v,))
  return g * dpsi_v + hv



def decay(t, power: float) -> jax.Array:
  """(2/(t+2))^power: the anytime schedules of the paper (η_t, γ_t/γ_0); power 0 gives 1."""
  return (2.0 / (jnp.asarray(t, jnp.result_type(float)) + 2.0)) ** power


def ascent_direction(d, normalized) -> jax.Array:
  """d/‖d‖ for the normalized methods (0 stays 0), d itself otherwise (`normalized` may be traced)."""
  norm = jnp.linalg.norm(d)
  return jnp.where(normalized, d / jnp.where(norm > 0, norm, 1.0), d)


def project(theta, bounds) -> jax.Array:
  """Euclidean projection onto the box [lo, hi]^dim (identity when `bounds` is None; lo, hi may be traced)."""
  return theta if bounds is None else jnp.clip(theta, bounds[0], bounds[1])


def check_schedule(cfg) -> None:
  """ValueError for a non-positive γ_0, negative schedule powers or an empty box (concrete values only),
  for any config with fields gamma0, step_power, eta_power, theta_bounds."""
  checks.check_positive("cfg.gamma0", cfg.gamma0)
  checks.check_nonnegative("cfg.step_power", cfg.step_power)
  checks.check_nonnegative("cfg.eta_power", cfg.eta_power)
  if cfg.theta_bounds is not None:
    lo, hi = (checks.concrete_value(b) for b in cfg.theta_bounds)
    if lo is not None and hi is not None and not lo < hi:
      raise ValueError(f"`cfg.theta_bounds` must be (lo, hi) with lo < hi, got {cfg.theta_bounds}.")


def iterate(step_fn: Callable, state0, key, n_iters: int) -> jax.Array:
  """Runs `state = step_fn(state, key_t)` for `n_iters` steps under `lax.scan`; returns θ_0..θ_n
  ([n_iters + 1, dim]), reading θ from `state.theta`."""
  def body(state, k):
    new = step_fn(state, k)
    return new, new.theta

  _, thetas = jax.lax.scan(body, state0, jax.random.split(key, n_iters))
  return jnp.concatenate([state0.theta[None], thetas])


class MomentumState(NamedTuple):
  """State of a momentum policy-gradient method: θ_t, θ_{t−1}, the direction d_t and the 1-based t."""

  theta: jax.Array
  theta_prev: jax.Array
  d: jax.Array
  t: jax.Array


def init_momentum(key, cfg, problem: PGProblem, theta0) -> MomentumState:
  """θ_1 = θ_0, d_0 = g(τ_0, θ_0) with τ_0 ~ π_{θ_0} (one trajectory); ValueError on a bad schedule.

  The start shared by N-PG-IGT and (N)-HARPG.
  """
  check_schedule(cfg)
  theta0 = jnp.asarray(theta0, jnp.result_type(float))
  d0 = gpomdp(problem.sample(key, theta0), problem.logp, theta0)
  return MomentumState(theta0, theta0, d0, jnp.ones((), jnp.int32))
