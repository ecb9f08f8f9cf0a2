"""N-PG-IGT and (N)-HARPG: momentum policy gradients without transport bias, and vanilla stochastic PG.

Fatkhullin, Barakat, Kireeva & He, "Stochastic Policy Gradient Methods: Improved Sample Complexity for
Fisher-non-degenerate Policies", ICML 2023.

* N-PG-IGT (`igt_step`, one trajectory per iteration): normalized PG with implicit gradient transport
  reaches J* − E J(θ_T) ≤ ε + O(√ε_bias) with Õ(ε^{-2.5}) trajectories. Vanilla stochastic PG, which
  needs Õ(ε^{-3}), is the configuration `VANILLA_PG` of the same step (η_t ≡ 1: no momentum, no
  transport; not normalized; γ_t ∝ t^{-1/2}).
* (N)-HARPG (`harpg_step`, two trajectories per iteration): a STORM-type momentum whose correction
  is an unbiased second-order estimate of ∇J(θ_t) − ∇J(θ_{t−1}) at a uniformly interpolated point,
  so the momentum carries no transport bias and η_t ∝ 1/t suffices: Õ(ε^{-2}) trajectories.

`run` dispatches on the config type; every config may be traced (one compile serves every schedule).
The estimators (GPOMDP, the Hessian–vector product B(τ, θ)v) are `rljax.theory.pg.estimators`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from rljax.theory.pg import estimators as est
from rljax.theory.pg.estimators import gpomdp, hvp_estimate

# ValueError on a bad schedule (the config may be traced: one compile serves every schedule).
check_config = est.check_schedule
init = est.init_momentum  # θ_1 = θ_0, d_0 = g(τ_0, θ_0)


class IGTConfig(NamedTuple):
  gamma0: float = 0.3  # γ_t = γ_0 (2/(t+2))^step_power
  step_power: float = 1.0
  eta_power: float = 0.8  # η_t = (2/(t+2))^eta_power; 0 gives η ≡ 1 (plain SGD)
  normalized: bool = True  # may be a traced bool
  theta_bounds: tuple[float, float] | None = None  # box projection of θ (keeps non-normalized steps stable)




VANILLA_PG = IGTConfig(gamma0=0.1, step_power=0.5, eta_power=0.0, normalized=False)


def igt_step(state: est.MomentumState, key, cfg: IGTConfig, problem: est.PGProblem) -> est.MomentumState:
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
  return est.MomentumState(theta, state.theta, d, state.t + 1)


class HARPGConfig(NamedTuple):
  gamma0: float = 0.3  # γ_t = γ_0 (2/(t+2))^step_power
  step_power: float = 1.0
  eta_power: float = 1.0  # η_t = (2/(t+2))^eta_power
  normalized: bool = True  # N-HARPG; False: HARPG (plain momentum step γ_t d_t)
  theta_bounds: tuple[float, float] | None = None  # box projection of θ (keeps non-normalized steps stable)


def harpg_step(state: est.MomentumState, key, cfg: HARPGConfig, problem: est.PGProblem) -> est.MomentumState:
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
  return est.MomentumState(theta, state.theta, d, state.t + 1)


def trajectories_per_step(cfg: IGTConfig | HARPGConfig) -> int:
  """Trajectories one iteration samples: 1 for N-PG-IGT (and vanilla PG), 2 for (N)-HARPG."""
  return 1 if isinstance(cfg, IGTConfig) else 2


def run(key, cfg: IGTConfig | HARPGConfig, problem: est.PGProblem, theta0, n_iters: int) -> jax.Array:
  """θ_1..θ_{n+1}, `[n_iters + 1, dim]`, after 1 + k·i trajectories with k = `trajectories_per_step`
  (jit with problem and n static; cfg may be traced)."""
  step = igt_step if isinstance(cfg, IGTConfig) else harpg_step
  k0, key = jax.random.split(key)
  state = init(k0, cfg, problem, theta0)
  return est.iterate(lambda s, k: step(s, k, cfg, problem), state, key, n_iters)
