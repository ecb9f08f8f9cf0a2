"""N-PG-IGT: normalized policy gradient with implicit gradient transport, and vanilla stochastic PG.

Fatkhullin, Barakat, Kireeva & He, "Stochastic Policy Gradient Methods: Improved Sample Complexity for
Fisher-non-degenerate Policies", ICML 2023. N-PG-IGT uses one trajectory per iteration and reaches
J* − E J(θ_T) ≤ ε + O(√ε_bias) with Õ(ε^{-2.5}) trajectories; vanilla stochastic PG needs Õ(ε^{-3}).
Both are one kernel (`step`): vanilla PG is the configuration η_t ≡ 1 (no momentum, no transport),
not normalized, γ_t ∝ t^{-1/2}.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax.theory.pg import estimators as est
from rljax.theory.pg.estimators import gpomdp, hvp_estimate  # noqa: F401  (the paper's estimators)

TRAJECTORIES_PER_STEP = 1


class IGTConfig(NamedTuple):
  gamma0: float = 0.3  # γ_t = γ_0 (2/(t+2))^step_power
  step_power: float = 1.0
  eta_power: float = 0.8  # η_t = (2/(t+2))^eta_power; 0 gives η ≡ 1 (plain SGD)
  normalized: bool = True  # may be a traced bool
  theta_bounds: tuple[float, float] | None = None  # box projection of θ (keeps non-normalized steps stable)


VANILLA_PG = IGTConfig(gamma0=0.1, step_power=0.5, eta_power=0.0, normalized=False)


IGTState = est.MomentumState
# ValueError on a bad schedule (the config may be traced: one compile serves every schedule).
check_config = est.check_schedule
init = est.init_momentum  # θ_1 = θ_0, d_0 = g(τ_0, θ_0)


def step(state: IGTState, key, cfg: IGTConfig, problem: est.PGProblem) -> IGTState:
  """One N-PG-IGT iteration (one trajectory):

      θ̃_t = θ_t + ((1 − η_t)/η_t)(θ_t − θ_{t−1})           (implicit gradient transport)
      d_t = (1 − η_t) d_{t−1} + η_t g(τ_t, θ̃_t),  τ_t ~ π_{θ̃_t}
      θ_{t+1} = θ_t + γ_t d_t/‖d_t‖                      (d_t itself when not normalized)

  with η_t = (2/(t+2))^{eta_power}, γ_t = γ_0 (2/(t+2))^{step_power}.
  """
  eta = est.decay(state.t, cfg.eta_power)
  gamma = cfg.gamma0 * est.decay(state.t, cfg.step_power)
  theta_tilde = state.theta + (1 - eta) / eta * (state.theta - state.theta_prev)
  g = gpomdp(problem.sample(key, theta_tilde), problem.logp, theta_tilde)
  d = (1 - eta) * state.d + eta * g
  theta = est.project(state.theta + gamma * est.ascent_direction(d, cfg.normalized), cfg.theta_bounds)
  return IGTState(theta, state.theta, d, state.t + 1)


def run(key, cfg: IGTConfig, problem: est.PGProblem, theta0, n_iters: int) -> jax.Array:
  """θ_1..θ_{n+1} after 1..n+1 trajectories: `[n_iters + 1, dim]` (jit with problem, n static; cfg may be traced)."""
  k0, key = jax.random.split(key)
  state = init(k0, cfg, problem, theta0)
  return est.iterate(lambda s, k: step(s, k, cfg, problem), state, key, n_iters)
