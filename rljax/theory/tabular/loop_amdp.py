"""Tabular model-based LOOP for infinite-horizon average-reward MDPs.

He, Zhong & Yang, "Sample-efficient Learning of Infinite-horizon Average-reward MDPs with General
Function Approximation" (LOOP / AGEC), ICLR 2024. LOOP keeps an optimistic hypothesis from a
confidence set and switches policy only when the data gathered since the last switch make it locally
inconsistent; regret Õ(poly(d, sp(V*))·√(Tβ)) with O(d log T) switches.

Tabular instance (the hypothesis class is every transition kernel): the confidence set is a product
of L1 balls ‖P(·|s,a) − P̂(·|s,a)‖_1 ≤ √(2S log(2SAT/δ)/n(s,a)) and Hoeffding reward intervals, the
optimistic hypothesis is found by extended value iteration (`plan_evi`), and the discrepancy trigger
becomes "some visit count doubled since the last switch" (`should_switch`). Pure functions
`init / act / update / plan`; `run` simulates a batch of seeds and replans only on steps where some
seed switches.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.envs import amdp
from rljax.theory.kernels import average_reward as ar


@dataclasses.dataclass(frozen=True)
class LoopConfig:
  n_states: int
  n_actions: int
  horizon: int  # T, enters the confidence level log(2SAT/δ)
  delta: float = 0.05
  radius_scale: float = 1.0  # default multiplier of both confidence radii (1 = the theory's constants)
  evi_max_iters: int = 5_000
  aperiodic: float = 0.9

  def __post_init__(self):
    if self.n_states < 1 or self.n_actions < 1 or self.horizon < 1:
      raise ValueError(f"`n_states`, `n_actions`, `horizon` must be >= 1, got {self.n_states}, {self.n_actions}, "
                       f"{self.horizon}.")
    if not 0 < self.delta < 1:
      raise ValueError(f"`delta` must lie in (0, 1), got {self.delta}.")
    if self.radius_scale < 0:
      raise ValueError(f"`radius_scale` must be non-negative, got {self.radius_scale}.")


class LoopState(NamedTuple):
  counts: jax.Array  # n(s,a) f[S,A]
  transitions: jax.Array  # n(s,a,s') f[S,A,S]
  reward_sum: jax.Array  # Σ r over visits of (s,a), f[S,A]
  plan_counts: jax.Array  # n(s,a) at the last switch
  policy: jax.Array  # i[S], greedy policy of the optimistic hypothesis
  gain_plus: jax.Array  # optimistic gain J⁺ of the current hypothesis
  radius_scale: jax.Array  # c in the radii (traced, so learners with different c share one compile)
  switches: jax.Array  # number of plans so far (the initial plan counts as one)
  t: jax.Array  # steps taken


def confidence_radii(counts, cfg: LoopConfig, scale) -> tuple[jax.Array, jax.Array]:
  """L1 transition radius d(s,a) = c·√(2S log(2SAT/δ) / max(1,n)) and reward radius
  d_r(s,a) = c·√(log(2SAT/δ) / (2 max(1,n))), c = scale."""
  S, A, T = cfg.n_states, cfg.n_actions, cfg.horizon
  log_term = np.log(2 * S * A * T / cfg.delta)
  n = jnp.maximum(counts, 1.0)
  return scale * jnp.sqrt(2 * S * log_term / n), scale * jnp.sqrt(log_term / (2 * n))


def empirical_model(state: LoopState) -> tuple[jax.Array, jax.Array]:
  """P̂(s'|s,a) = n(s,a,s')/n(s,a) (uniform where n = 0) and r̂ = Σr/n (0 where n = 0)."""
  n = state.counts[..., None]
  S = state.transitions.shape[-1]
  P_hat = jnp.where(n > 0, state.transitions / jnp.maximum(n, 1.0), 1.0 / S)
  return P_hat, state.reward_sum / jnp.maximum(state.counts, 1.0)


def plan_evi(P_hat, r_hat, radii, r_radii=None, *, tol=1e-6, max_iters: int = 5_000, aperiodic: float = 0.9):
  """Optimistic planning over the confidence set (extended value iteration):

      (J⁺, h⁺, π) : J⁺ + h⁺(s) = max_a [ r̂⁺(s,a) + max_{‖p−P̂(·|s,a)‖_1 ≤ d(s,a)} p·h⁺ ].

  Returns (J⁺, h⁺ f[S], π i[S])."""
  sol = ar.extended_value_iteration(P_hat, r_hat, radii, r_radii, tol=tol, max_iters=max_iters, aperiodic=aperiodic)
  return sol.gain, sol.bias, sol.policy


def plan(state: LoopState, cfg: LoopConfig) -> LoopState:
  """A policy switch: replan on the current data with accuracy tol = 1/√max(t,1) (UCRL2's choice, so
  the planning error adds O(√T) to the regret) and record the counts of the switch."""
  P_hat, r_hat = empirical_model(state)
  d, d_r = confidence_radii(state.counts, cfg, state.radius_scale)
  tol = 1.0 / jnp.sqrt(jnp.maximum(state.t, 1).astype(r_hat.dtype))
  gain, _, policy = plan_evi(P_hat, r_hat, d, d_r, tol=tol, max_iters=cfg.evi_max_iters, aperiodic=cfg.aperiodic)
  return state._replace(plan_counts=state.counts, policy=policy, gain_plus=gain, switches=state.switches + 1)


def init(cfg: LoopConfig, radius_scale=None, dtype=None) -> LoopState:
  """Zero counts, then the first plan (every model is plausible, so π is the most optimistic one).
  `radius_scale` (default cfg.radius_scale) may be traced."""
  dtype = dtype or jnp.result_type(float)
  S, A = cfg.n_states, cfg.n_actions
  scale = jnp.asarray(cfg.radius_scale if radius_scale is None else radius_scale, dtype)
  state = LoopState(jnp.zeros((S, A), dtype), jnp.zeros((S, A, S), dtype), jnp.zeros((S, A), dtype),
                    jnp.zeros((S, A), dtype), jnp.zeros(S, jnp.int32), jnp.asarray(0.0, dtype), scale,
                    jnp.asarray(0), jnp.asarray(0))
  return plan(state, cfg)


def should_switch(state: LoopState) -> jax.Array:
  """The low-switching trigger: switch once some pair has been visited as often since the last switch
  as before it, ν(s,a) = n(s,a) − n_k(s,a) ≥ max(1, n_k(s,a)). Each pair fires ≤ log2(T) + 1 times,
  so the number of switches is ≤ SA(log2 T + 1)."""
  return jnp.any(state.counts - state.plan_counts >= jnp.maximum(1.0, state.plan_counts))


def act(state: LoopState, obs, key=None):
  """a = π_k(s), the greedy action of the current optimistic hypothesis; aux carries J⁺."""
  del key
  return state.policy[obs], {"gain_plus": state.gain_plus}


def update(state: LoopState, transition) -> LoopState:
  """Adds the transition (s, a, r, s') to the counts."""
  s, a, r, s_next = transition
  return state._replace(
      counts=state.counts.at[s, a].add(1.0),
      transitions=state.transitions.at[s, a, s_next].add(1.0),
      reward_sum=state.reward_sum.at[s, a].add(r),
      t=state.t + 1,
  )


class Trace(NamedTuple):
  regret: jax.Array  # cumulative pseudo-regret Σ_t (J* − r(s_t,a_t)) at each checkpoint, f[seeds, C]
  switches: jax.Array  # number of policy switches at each checkpoint, i[seeds, C]
  steps: jax.Array  # checkpoint times, i[C]


def run(keys, cfg: LoopConfig, env: amdp.AMDPParams, n_checkpoints: int, radius_scale=None) -> Trace:
  """Runs LOOP for cfg.horizon steps on every seed in `keys: [seeds, 2]`, logging at n_checkpoints
  evenly spaced times (cfg.horizon must be a multiple). `radius_scale`: scalar or f[seeds] (a batch
  may mix learners), default cfg.radius_scale.

  Seeds are vmapped inside the step; the planner sits behind one `lax.cond` on "some seed switches",
  so it runs on O(seeds·SA·log T) steps instead of every step (a per-seed cond under vmap would
  evaluate it everywhere)."""
  if cfg.horizon % n_checkpoints:
    raise ValueError(f"`n_checkpoints`={n_checkpoints} must divide the horizon {cfg.horizon}.")
  block = cfg.horizon // n_checkpoints
  gain_star = amdp.oracle(env).gain
  n_seeds = keys.shape[0]
  scales = jnp.broadcast_to(jnp.asarray(cfg.radius_scale if radius_scale is None else radius_scale), (n_seeds,))
  states = jax.vmap(lambda c: init(cfg, c))(scales)
  obs = jax.vmap(lambda k: amdp.reset(k, env)[1])(keys)

  def one_step(key, state, s):
    a, _ = act(state, s)
    s_next, _, reward, _, info = amdp.step(key, env, s, a)
    return update(state, (s, a, reward, s_next)), s_next, gain_star - info["mean_reward"]

  def replan(states):
    fire = jax.vmap(should_switch)(states)
    planned = jax.vmap(lambda st: plan(st, cfg))(states)
    return jax.tree.map(lambda new, old: jnp.where(fire.reshape((-1,) + (1,) * (old.ndim - 1)), new, old),
                        planned, states)

  def step_all(carry, t):
    states, s, regret = carry
    step_keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(keys)
    states, s, inst = jax.vmap(one_step)(step_keys, states, s)
    fire = jax.vmap(should_switch)(states)
    states = jax.lax.cond(jnp.any(fire), replan, lambda x: x, states)
    return (states, s, regret + inst), None

  def block_step(carry, b):
    carry, _ = jax.lax.scan(step_all, carry, b * block + jnp.arange(block))
    return carry, (carry[2], carry[0].switches)

  dtype = states.counts.dtype
  _, (regret, switches) = jax.lax.scan(block_step, (states, obs, jnp.zeros(n_seeds, dtype)), jnp.arange(n_checkpoints))
  return Trace(regret.T, switches.T, block * (1 + jnp.arange(n_checkpoints)))
