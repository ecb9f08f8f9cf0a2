"""Horizon-free, variance-dependent optimistic learning in latent MDPs by exact history planning.

Zhou, Wang & Du, "Horizon-Free and Variance-Dependent Reinforcement Learning for Latent MDPs"
(2023): regret Õ(√(Var* M Γ S A K)), polylogarithmic in H when the total reward is ≤ 1, with a
matching Ω(√(Var* M S A K)) lower bound. The context m is unobserved during an episode and revealed
at its end, so the learner keeps per-context counts, and plans a history-dependent policy.

rljax instance (model-optimistic, value-bonus form): per context, the empirical model (P̂_m, r̂_m),
Bernstein bonuses c(√(2 Var̂ L/n) + L/n) on rewards and on the next-history value (so near-
deterministic models earn small bonuses), the value truncated at 1 (horizon-free truncation), and
exact planning over the belief-determining histories (`plan_histories`, O(M (SA)^H)); replanning
only when some per-context count doubles. Pure `init / act / update / plan`; `run` simulates a batch
of seeds (one random LMDP each) and charges each episode V* − V^{π_k}, both exact.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.envs import lmdp


@dataclasses.dataclass(frozen=True)
class LmdpConfig:
  n_contexts: int
  n_states: int
  n_actions: int
  horizon: int
  n_episodes: int  # K, enters the confidence level L = log(MSAHK/δ)
  delta: float = 0.05
  bonus_scale: float = 1.0

  def __post_init__(self):
    if min(self.n_contexts, self.n_states, self.n_actions, self.horizon, self.n_episodes) < 1:
      raise ValueError(f"sizes must be >= 1, got {self}.")
    if self.horizon > 8:
      raise ValueError(f"`horizon` {self.horizon} is too large for history enumeration ((SA)^H nodes); use H <= 8.")
    if not 0 < self.delta < 1:
      raise ValueError(f"`delta` must lie in (0, 1), got {self.delta}.")
    if self.bonus_scale < 0:
      raise ValueError(f"`bonus_scale` must be non-negative, got {self.bonus_scale}.")

  @property
  def log_term(self) -> float:
    return float(np.log(self.n_contexts * self.n_states * self.n_actions * self.horizon * self.n_episodes / self.delta))


class LmdpState(NamedTuple):
  trans: jax.Array  # n_m(s,a,s') f[M,S,A,S]
  reward_sum: jax.Array  # f[M,H,S,A]
  reward_counts: jax.Array  # f[M,H,S,A]
  context_counts: jax.Array  # f[M]
  plan_counts: jax.Array  # n_m(s,a) at the last plan, f[M,S,A]
  policy: jax.Array  # flat history policy i[Σ_h N_h]
  episode: jax.Array  # this episode's (s_h, a_h, s_{h+1}) i[H,3] and rewards f[H], until m is revealed
  episode_rewards: jax.Array
  node: jax.Array  # index of the current history in its layer
  h: jax.Array
  switches: jax.Array


def plan_histories(P, r, w, *, rho=None, bonus=None, v_max=1.0) -> lmdp.PolicyTree:
  """Optimal (optimistic, when `bonus` is given) history-dependent policy of the LMDP (P f[M,S,A,S],
  r f[M,H,S,A], w f[M]) by history enumeration:

      V_h(x) = min(v_max, max_a Σ_m b_x(m) [r_m,h(s,a) + β_h(x,a,m) + Σ_s' P_m(s'|s,a) V_{h+1}(x a s')]),
      b_x(m) ∝ w_m Π_t P_m(s_{t+1}|s_t,a_t)   (exact belief),

  cost O(M (SA)^H). `rho` (default uniform) only weights the roots. Returns PolicyTree."""
  P, r, w = jnp.asarray(P), jnp.asarray(r), jnp.asarray(w)
  params = lmdp.check_lmdp(P, r, w, rho)
  masses = lmdp.history_masses(params.P, params.w, params.rho, r.shape[1])
  return lmdp.backward_histories(params.P, params.r, masses, bonus=bonus, v_max=v_max)


def empirical_model(state: LmdpState) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """P̂_m (uniform where unvisited), r̂_m (0 where unvisited), ŵ_m = (k_m + 1)/(k + M), n_m(s,a)."""
  n = state.trans.sum(-1)
  S = state.trans.shape[-1]
  P_hat = jnp.where(n[..., None] > 0, state.trans / jnp.maximum(n, 1.0)[..., None], 1.0 / S)
  r_hat = state.reward_sum / jnp.maximum(state.reward_counts, 1.0)
  w_hat = (state.context_counts + 1.0) / (state.context_counts.sum() + state.context_counts.shape[0])
  return P_hat, r_hat, w_hat, n


def bernstein_bonus(P_hat, r_hat, n, n_r, cfg: LmdpConfig):
  """β_h(x,a,m) = c[√(2 Var_{P̂_m(·|s,a)}(V_{h+1}(x a ·)) L/n) + L/n] + c[√(2 r̂(1−r̂) L/n_r) + L/n_r]
  with n, n_r floored at 1; returns the `bonus(h, s, v_next)` callable of the planner."""
  L, c = cfg.log_term, cfg.bonus_scale
  n, n_r = jnp.maximum(n, 1.0), jnp.maximum(n_r, 1.0)

  def bonus(h, s, v_next):
    p = jnp.moveaxis(P_hat[:, s], 0, -2)  # [N, A, M, S']
    mean = jnp.einsum("xams,xas->xam", p, v_next)
    var = jnp.maximum(jnp.einsum("xams,xas->xam", p, v_next**2) - mean**2, 0.0)
    n_sa = jnp.moveaxis(n[:, s], 0, -1)  # [N, A, M]
    rh, nr = jnp.moveaxis(r_hat[:, h, s], 0, -1), jnp.moveaxis(n_r[:, h, s], 0, -1)
    return c * (jnp.sqrt(2 * var * L / n_sa) + L / n_sa + jnp.sqrt(2 * rh * (1 - rh) * L / nr) + L / nr)

  return bonus


def plan(state: LmdpState, cfg: LmdpConfig) -> LmdpState:
  """Replans the optimistic history policy on the current data and records the counts."""
  P_hat, r_hat, w_hat, n = empirical_model(state)
  bonus = bernstein_bonus(P_hat, r_hat, n, state.reward_counts, cfg) if cfg.bonus_scale > 0 else None
  tree = plan_histories(P_hat, r_hat, w_hat, bonus=bonus)
  return state._replace(policy=tree.policy, plan_counts=n, switches=state.switches + 1)


def init(cfg: LmdpConfig, dtype=None) -> LmdpState:
  """Zero counts and no plan yet: plan_counts = −1 makes `should_switch` true, so the first policy is
  the fully optimistic plan made at the first switch check (before the first episode)."""
  dtype = dtype or jnp.result_type(float)
  M, S, A, H = cfg.n_contexts, cfg.n_states, cfg.n_actions, cfg.horizon
  n_nodes = int(lmdp.layer_offsets(S, A, H)[-1])
  z = lambda *shape: jnp.zeros(shape, dtype)
  return LmdpState(z(M, S, A, S), z(M, H, S, A), z(M, H, S, A), z(M), -jnp.ones((M, S, A), dtype),
                   jnp.zeros(n_nodes, jnp.int32), jnp.zeros((H, 3), jnp.int32), z(H), jnp.asarray(0), jnp.asarray(0),
                   jnp.asarray(0))


def should_switch(state: LmdpState) -> jax.Array:
  """Replan when some per-context count doubled: n_m(s,a) − n^k_m(s,a) ≥ max(1, n^k_m(s,a)) (checked
  between episodes)."""
  n = state.trans.sum(-1)
  return jnp.any(n - state.plan_counts >= jnp.maximum(1.0, state.plan_counts))


def _history_index(state: LmdpState, obs):
  return jnp.where(state.h == 0, obs, state.node)


def act(state: LmdpState, obs, key=None):
  """a_h = π_k(x_h) for the current history x_h = (s_0, a_0, ..., s_h) (x_0 = obs)."""
  del key
  S, A = state.trans.shape[1:3]
  offsets = jnp.asarray(lmdp.layer_offsets(S, A, state.episode.shape[0]))
  return state.policy[offsets[state.h] + _history_index(state, obs)], {}


def update(state: LmdpState, transition) -> LmdpState:
  """Appends (s, a, r, s') to the episode and extends the history; when `done`, the revealed context m
  receives the whole episode's counts."""
  s, a, reward, s_next, done, context = transition
  S, A = state.trans.shape[1:3]
  H = state.episode.shape[0]
  x = _history_index(state, s)
  episode = state.episode.at[state.h].set(jnp.stack([s, a, s_next]).astype(jnp.int32))
  rewards = state.episode_rewards.at[state.h].set(reward)
  d = jnp.asarray(done, state.trans.dtype)
  m = jnp.maximum(context, 0)
  es, ea, en = episode.T
  hs = jnp.arange(H)
  return state._replace(
      trans=state.trans.at[m, es, ea, en].add(d),
      reward_sum=state.reward_sum.at[m, hs, es, ea].add(d * rewards),
      reward_counts=state.reward_counts.at[m, hs, es, ea].add(d),
      context_counts=state.context_counts.at[m].add(d),
      episode=episode, episode_rewards=rewards,
      node=jnp.where(done, 0, (x * A + a) * S + s_next),
      h=jnp.where(done, 0, state.h + 1),
  )


class Trace(NamedTuple):
  regret: jax.Array  # cumulative Σ_k (V* − V^{π_k}) at each checkpoint, f[seeds, C]
  switches: jax.Array  # i[seeds, C]
  episodes: jax.Array  # i[C]
  v_star: jax.Array  # f[seeds]


def run(keys, cfg: LmdpConfig, envs: lmdp.LMDPParams, n_checkpoints: int) -> Trace:
  """Runs cfg.n_episodes episodes on every seed (`keys: [seeds,2]`, `envs` leaves `[seeds, ...]`),
  logging at n_checkpoints evenly spaced episode counts. Seeds are vmapped inside the episode; the
  planner sits behind one batch-level `lax.cond`, so it runs only after episodes where some seed's
  counts doubled (checked before each episode; the first check plans the initial policy)."""
  if cfg.n_episodes % n_checkpoints:
    raise ValueError(f"`n_checkpoints`={n_checkpoints} must divide n_episodes={cfg.n_episodes}.")
  block = cfg.n_episodes // n_checkpoints
  n_seeds = keys.shape[0]
  v_star = jax.vmap(lambda e: lmdp.oracle(e)[0])(envs)
  states = jax.vmap(lambda _: init(cfg))(jnp.arange(n_seeds))
  values = jnp.zeros(n_seeds, v_star.dtype)  # value of the current policy, set by the first plan

  def episode_one(key, env, state):
    k_reset, k_steps = jax.random.split(key)
    env_state, obs = lmdp.reset(k_reset, env)

    def one_step(carry, k):
      state, env_state, obs = carry
      a, _ = act(state, obs)
      env_state, nxt, reward, done, info = lmdp.step(k, env, env_state, a)
      return (update(state, (obs, a, reward, nxt, done, info["context"])), env_state, nxt), None

    (state, _, _), _ = jax.lax.scan(one_step, (state, env_state, obs), jax.random.split(k_steps, cfg.horizon))
    return state

  def replan(args):
    states, values = args
    fire = jax.vmap(should_switch)(states)
    planned = jax.vmap(lambda st: plan(st, cfg))(states)
    pick = lambda new, old: jnp.where(fire.reshape((-1,) + (1,) * (old.ndim - 1)), new, old)
    states = jax.tree.map(pick, planned, states)
    return states, pick(jax.vmap(lmdp.policy_value)(envs, states.policy), values)

  def episode_all(carry, k):
    states, values, regret = carry
    fire = jax.vmap(should_switch)(states)
    states, values = jax.lax.cond(jnp.any(fire), replan, lambda x: x, (states, values))
    ep_keys = jax.vmap(lambda key: jax.random.fold_in(key, k))(keys)
    states = jax.vmap(episode_one)(ep_keys, envs, states)
    return (states, values, regret + v_star - values), None

  def block_step(carry, b):
    carry, _ = jax.lax.scan(episode_all, carry, b * block + jnp.arange(block))
    return carry, (carry[2], carry[0].switches)

  init_carry = (states, values, jnp.zeros(n_seeds, values.dtype))
  _, (regret, switches) = jax.lax.scan(block_step, init_carry, jnp.arange(n_checkpoints))
  return Trace(regret.T, switches.T, block * (1 + jnp.arange(n_checkpoints)), v_star)
