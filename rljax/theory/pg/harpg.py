"""(N)-HARPG: Hessian-aided recursive policy gradient, normalized or not.

Fatkhullin, Barakat, Kireeva & He, "Stochastic Policy Gradient Methods: Improved Sample Complexity for
Fisher-non-degenerate Policies", ICML 2023. A STORM-type momentum whose correction term is an
unbiased second-order estimate of ∇J(θ_t) − ∇J(θ_{t−1}) at a uniformly interpolated point, so the
momentum carries no transport bias and η_t ∝ 1/t suffices: Õ(ε^{-2}) trajectories (two per iteration).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax.theory.pg import estimators as est
from rljax.theory.pg.estimators import gpomdp, hvp_estimate

TRAJECTORIES_PER_STEP = 2


class HARPGConfig(NamedTuple):
  gamma0: float = 0.3  # γ_t = γ_0 (2/(t+2))^step_power
  step_power: float = 1.0
  eta_power: float = 1.0  # η_t = (2/(t+2))^eta_power
  normalized: bool = True  # N-HARPG; False: HARPG (plain momentum step γ_t d_t)
  theta_bounds: tuple[float, float] | None = None  # box projection of θ (keeps non-normalized steps stable)


HARPGState = est.MomentumState
# ValueError on a bad schedule (the config may be traced: one compile serves every schedule).
check_config = est.check_schedule
init = est.init_momentum  # θ_1 = θ_0, d_0 = g(τ_0, θ_0)


def step(state: HARPGState, key, cfg: HARPGConfig, problem: est.PGProblem) -> HARPGState:
  """One (N)-HARPG iteration (two trajectories):

      q_t ~ U[0, 1],  θ̂_t = q_t θ_t + (1 − q_t) θ_{t−1},  τ_t ~ π_{θ_t},  τ̂_t ~ π_{θ̂_t}
      v_t = B(τ̂_t, θ̂_t)(θ_t − θ_{t−1})                    (E_{q,τ̂} v_t = ∇J(θ_t) − ∇J(θ_{t−1}))
      d_t = (1 − η_t)(d_{t−1} + v_t) + η_t g(τ_t, θ_t)
      θ_{t+1} = θ_t + γ_t d_t/‖d_t‖  (N-HARPG)   or   θ_t + γ_t d_t  (HARPG)

  with η_t = (2/(t+2))^{eta_power}, γ_t = γ_0 (2/(t+2))^{step_power}.
  """
  kq, kt, kh = jax.random.split(key, 3)
  eta = est.decay(state.t, cfg.eta_power)
  gamma = cfg.gamma0 * est.decay(state.t, cfg.step_power)
  q = jax.random.uniform(kq, dtype=state.theta.dtype)
  theta_hat = q * state.theta + (1 - q) * state.theta_prev
  v = hvp_estimate(problem.sample(kh, theta_hat), problem.logp, theta_hat, state.theta - state.theta_prev)
  g = gpomdp(problem.sample(kt, state.theta), problem.logp, state.theta)
  d = (1 - eta) * (state.d + v) + eta * g
  theta = est.project(state.theta + gamma * est.ascent_direction(d, cfg.normalized), cfg.theta_bounds)
  return HARPGState(theta, state.theta, d, state.t + 1)


def run(key, cfg: HARPGConfig, problem: est.PGProblem, theta0, n_iters: int) -> jax.Array:
  """θ_1..θ_{n+1} after 1, 3, 5, ... trajectories: `[n_iters + 1, dim]` (jit with problem, n static; cfg may be traced)."""
  k0, key = jax.random.split(key)
  state = init(k0, cfg, problem, theta0)
  return est.iterate(lambda s, k: step(s, k, cfg, problem), state, key, n_iters)
