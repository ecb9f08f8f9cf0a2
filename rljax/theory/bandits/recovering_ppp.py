"""Purely periodic policies for bandits with recovering rewards (Simchi-Levi, Zheng & Zhu, "Offline
Planning and Online Learning under Recovering Rewards"; ICML 2021 short version "Dynamic Planning and
Learning under Recovering Rewards").

Offline: the LP relaxation over "pull arm i every p periods" variables,

    max_x Σ_i Σ_p x_{i,p} R_i(p)/p   s.t.  Σ_i Σ_p x_{i,p}/p ≤ K,  Σ_p x_{i,p} ≤ 1,  x ≥ 0,

upper-bounds every policy's long-run reward per period; rounding it to a purely periodic schedule (each
arm draws its period from x_{i,·} and a uniform offset; overflows above K are cut to the K densest arms)
loses a fraction O(1/√K). The LP has a single coupling constraint, so it is solved exactly through its
Lagrangian: for a price λ on the budget each arm picks argmax_p (R_i(p) − λ)/p (or nothing), the budget
used is nonincreasing in λ, and bisection on λ plus a mix of the two bracketing choices gives an optimal
vertex (complementary slackness). Everything is jit-able.

Online: periodic UCB re-solves the LP with optimistic indices Ū_i(d) = min{R_max, R̂_i(d) + √(2 log T/n_{i,d})}
(R_max when n_{i,d} = 0) at the start of doubling epochs and follows the rounded schedule in between.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax.theory.envs import recovering_bandit as env


def _check_table(r) -> jax.Array:
  r = jnp.asarray(r)
  if r.ndim != 2:
    raise ValueError(f"`r` must be [N, d_max], got shape {r.shape}.")
  return r


def _lagrangian_choice(r: jax.Array, lam) -> tuple[jax.Array, jax.Array]:
  """Per arm, x(λ) = 1{p = argmax_p (R(p) − λ)/p, value > 0}: returns (x [N, d_max], budget Σ x/p)."""
  p = jnp.arange(1, r.shape[1] + 1, dtype=r.dtype)
  score = (r - lam) / p
  x = jax.nn.one_hot(jnp.argmax(score, axis=1), r.shape[1], dtype=r.dtype) * (jnp.max(score, axis=1) > 0)[:, None]
  return x, jnp.sum(x / p)


def lp_solve(r: jax.Array, k, *, iters: int = 100) -> tuple[jax.Array, jax.Array]:
  """Exact solution (x [N, d_max], value) of the periodic LP relaxation above for the table r[i, d−1] = R_i(d).

  Dual: min_{λ≥0} λK + Σ_i max(0, max_p (R_i(p) − λ)/p). Bisection keeps lo, hi with
  budget(lo) > K ≥ budget(hi); the optimum mixes x(lo) and x(hi) so that the budget is met with
  equality (or takes x(0) when the budget does not bind).
  """
  if isinstance(k, (int, float)) and k <= 0:
    raise ValueError(f"`k` must be positive, got {k}.")
  r = _check_table(r)

  def body(_, carry):
    lo, x_lo, b_lo, hi, x_hi, b_hi = carry
    mid = 0.5 * (lo + hi)
    x_mid, b_mid = _lagrangian_choice(r, mid)
    over = b_mid > k
    pick = lambda a, b: jnp.where(over, a, b)
    return pick(mid, lo), pick(x_mid, x_lo), pick(b_mid, b_lo), pick(hi, mid), pick(x_hi, x_mid), pick(b_hi, b_mid)

  # The bracketing choices are carried, not recomputed after the loop: at the kink a recomputation can
  # round to the other side and break budget(lo) > K >= budget(hi).
  top = jnp.max(r) + 1.0
  init = (jnp.zeros((), r.dtype), *_lagrangian_choice(r, 0.0), top, *_lagrangian_choice(r, top))
  _, x_lo, b_lo, _, x_hi, b_hi = jax.lax.fori_loop(0, iters, body, init)
  theta = jnp.where(b_lo <= k, 1.0, (k - b_hi) / jnp.maximum(b_lo - b_hi, 1e-30))
  x = theta * x_lo + (1 - theta) * x_hi
  p = jnp.arange(1, r.shape[1] + 1, dtype=r.dtype)
  return x, jnp.sum(x * r / p)


def round_periodic(key: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Independent rounding: arm i draws p_i ~ x_{i,·} (period 0 = never, w.p. 1 − Σ_p x_{i,p}) and an
  offset o_i ~ U{0..p_i−1}; it is scheduled at t = o_i + j p_i. Returns (period [N], offset [N])."""
  k_p, k_o = jax.random.split(key)
  rest = jnp.clip(1.0 - jnp.sum(x, axis=1, keepdims=True), 0.0, 1.0)
  probs = jnp.concatenate([rest, jnp.clip(x, 0.0, 1.0)], axis=1)
  period = jax.random.categorical(k_p, jnp.log(probs), axis=1).astype(jnp.int32)
  offset = jnp.floor(jax.random.uniform(k_o, period.shape) * jnp.maximum(period, 1)).astype(period.dtype)
  return period, offset


def schedule(t, period: jax.Array, offset: jax.Array, priority: jax.Array, k: int) -> jax.Array:
  """Pull mask at period t: arms with (t − o_i) mod p_i = 0; when more than K are due, the K with the
  highest priority (the LP density R_i(p_i)/p_i) are pulled and the others wait for their next slot."""
  due = (period > 0) & (jnp.mod(t - offset, jnp.maximum(period, 1)) == 0)
  score = jnp.where(due, priority, -jnp.inf)
  top = jnp.zeros(due.shape, bool).at[jax.lax.top_k(score, k)[1]].set(True)
  return due & top


def density(r: jax.Array, period: jax.Array) -> jax.Array:
  """R_i(p_i)/p_i of the drawn periods (0 for arms never pulled)."""
  p = jnp.maximum(period, 1)
  return jnp.where(period > 0, jnp.take_along_axis(r, (p - 1)[:, None], axis=1)[:, 0] / p, 0.0)


def run_offline(key: jax.Array, params: env.RecoveringParams, horizon: int) -> jax.Array:
  """Solves the LP on the true means, rounds it and plays the schedule for `horizon` periods; returns
  the expected reward of every period `[horizon]` (pseudo-reward, no noise)."""
  x, _ = lp_solve(params.means, params.k)
  k_round, k_env = jax.random.split(key)
  period, offset = round_periodic(k_round, x)
  priority = density(params.means, period)
  state, _ = env.reset(k_env, params)

  def body(state, t):
    pulled = schedule(t, period, offset, priority, params.k)
    state, _, _, _, info = env.step(k_env, params, state, pulled)
    return state, info["expected"]

  return jax.lax.scan(body, state, jnp.arange(horizon))[1]


class UCBState(NamedTuple):
  sums: jax.Array  # [N, d_max] reward sums per (arm, idle time)
  counts: jax.Array  # [N, d_max]
  period: jax.Array  # current rounded schedule
  offset: jax.Array
  priority: jax.Array
  next_epoch: jax.Array  # period at which the LP is re-solved (doubling)
  t: jax.Array


def ucb_index(state: UCBState, horizon: int, scale, r_max: float = 1.0) -> jax.Array:
  """Ū(i, d) = min{R_max, R̂_i(d) + c √(2 log T / n_{i,d})}, R_max for unvisited (i, d); c = 1 for
  rewards in [0, 1], c = σ for σ-sub-Gaussian noise around the mean."""
  n = jnp.maximum(state.counts, 1)
  ucb = state.sums / n + scale * jnp.sqrt(2 * jnp.log(horizon) / n)
  return jnp.where(state.counts > 0, jnp.minimum(ucb, r_max), r_max)


def ucb_init(n_arms: int, d_max: int) -> UCBState:
  """No data; the first `ucb_act` (t = 0) solves the LP on all-optimistic indices."""
  zeros = jnp.zeros((n_arms, d_max), jnp.result_type(float))
  z = jnp.zeros((n_arms,), jnp.int32)
  return UCBState(zeros, zeros, z, z, zeros[:, 0], jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def ucb_act(key: jax.Array, state: UCBState, k: int, horizon: int, scale=1.0) -> tuple[UCBState, jax.Array]:
  """At an epoch start (t = 0, 1, 2, 4, ...) re-solves the LP on Ū and re-rounds; returns the updated
  state and this period's pull mask."""

  def replan(s):
    idx = ucb_index(s, horizon, scale)
    period, offset = round_periodic(key, lp_solve(idx, k)[0])
    return s._replace(period=period, offset=offset, priority=density(idx, period),
                      next_epoch=jnp.maximum(2 * s.t, 1))

  state = jax.lax.cond(state.t == state.next_epoch, replan, lambda s: s, state)
  return state, schedule(state.t, state.period, state.offset, state.priority, k)


def ucb_update(state: UCBState, pulled: jax.Array, idle: jax.Array, obs: jax.Array) -> UCBState:
  """Adds each pulled arm's observed reward to the statistics of its idle time d (the bucket d − 1)."""
  hit = jax.nn.one_hot(idle - 1, state.sums.shape[1], dtype=state.sums.dtype) * pulled[:, None]
  return state._replace(sums=state.sums + hit * obs[:, None], counts=state.counts + hit, t=state.t + 1)


def run_online(key: jax.Array, params: env.RecoveringParams, horizon: int, scale=1.0) -> jax.Array:
  """Periodic UCB for `horizon` periods; returns the expected reward of every period `[horizon]`."""
  n, d_max = params.means.shape
  state, _ = env.reset(key, params)

  def body(carry, k):
    agent, state = carry
    k_act, k_env = jax.random.split(k)
    agent, pulled = ucb_act(k_act, agent, params.k, horizon, scale)
    idle = state.idle
    state, _, _, _, info = env.step(k_env, params, state, pulled)
    return (ucb_update(agent, pulled, idle, info["obs"]), state), info["expected"]

  return jax.lax.scan(body, (ucb_init(n, d_max), state), jax.random.split(key, horizon))[1]
