"""Communicating average-reward MDPs with an exact oracle: RiverSwim and random dense MDPs.

Environment for He, Zhong & Yang, "Sample-efficient Learning of Infinite-horizon Average-reward MDPs
with General Function Approximation" (LOOP / AGEC, ICLR 2024). RiverSwim follows Strehl & Littman
(2008) with the rewards rescaled to [0, 1]. Pure functions: `reset`, `step` (Bernoulli rewards with
mean r(s,a)) and `oracle` (optimal gain, bias, span and policy by relative value iteration).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.kernels import average_reward as ar


class AMDPParams(NamedTuple):
  P: jax.Array  # f[S,A,S]
  r: jax.Array  # f[S,A], mean rewards in [0, 1]
  s0: jax.Array  # i[], start state


class AMDPOracle(NamedTuple):
  gain: jax.Array  # J*
  bias: jax.Array  # h* f[S], min 0
  span: jax.Array  # sp(h*)
  policy: jax.Array  # i[S]


LEFT, RIGHT = 0, 1


def riverswim(n_states: int = 6, *, p_right: float = 0.35, p_stay: float = 0.6, r_left: float = 5 / 1000,
              r_right: float = 1.0) -> AMDPParams:
  """RiverSwim: a chain s_1..s_S; LEFT moves left deterministically (reward r_left at s_1); RIGHT
  succeeds w.p. p_right, stays w.p. p_stay and drifts left w.p. 1 − p_right − p_stay in the interior,
  with the boundary mass folded onto s_1 / s_S; RIGHT at s_S pays r_right. Optimal: always RIGHT.
  """
  if n_states < 2:
    raise ValueError(f"`n_states` must be >= 2, got {n_states}.")
  p_left = 1.0 - p_right - p_stay
  if min(p_right, p_stay, p_left) < 0:
    raise ValueError(f"`p_right` + `p_stay` must be <= 1 with both >= 0, got {p_right}, {p_stay}.")
  S = n_states
  P = np.zeros((S, 2, S))
  r = np.zeros((S, 2))
  for s in range(S):
    P[s, LEFT, max(s - 1, 0)] = 1.0
    P[s, RIGHT, min(s + 1, S - 1)] += p_right
    P[s, RIGHT, s] += p_stay
    P[s, RIGHT, max(s - 1, 0)] += p_left
  r[0, LEFT] = r_left
  r[S - 1, RIGHT] = r_right
  return AMDPParams(jnp.asarray(P), jnp.asarray(r), jnp.asarray(0))


def random_communicating(key, n_states: int, n_actions: int, *, concentration: float = 1.0) -> AMDPParams:
  """A dense random AMDP: P(·|s,a) ~ Dirichlet(concentration·1) (all entries positive, hence
  ergodic and communicating), r(s,a) ~ U[0,1]."""
  if n_states < 1 or n_actions < 1:
    raise ValueError(f"`n_states` and `n_actions` must be >= 1, got {n_states}, {n_actions}.")
  if concentration <= 0:
    raise ValueError(f"`concentration` must be positive, got {concentration}.")
  k_p, k_r = jax.random.split(key)
  alpha = jnp.full((n_states,), concentration)
  P = jax.random.dirichlet(k_p, alpha, (n_states, n_actions))
  return AMDPParams(P, jax.random.uniform(k_r, (n_states, n_actions)), jnp.asarray(0))


def reset(key, params: AMDPParams) -> tuple[jax.Array, jax.Array]:
  """Starts at params.s0; the observation is the state."""
  del key
  return params.s0, params.s0


def step(key, params: AMDPParams, state, action):
  """s' ~ P(·|s,a), reward ~ Bernoulli(r(s,a)); never done. `info["mean_reward"]` = r(s,a) for the
  pseudo-regret."""
  k_s, k_r = jax.random.split(key)
  nxt = jax.random.categorical(k_s, jnp.log(params.P[state, action]))
  mean = params.r[state, action]
  reward = jax.random.bernoulli(k_r, mean).astype(mean.dtype)
  return nxt, nxt, reward, jnp.asarray(False), {"mean_reward": mean}


def oracle(params: AMDPParams, *, tol: float = 1e-10) -> AMDPOracle:
  """Optimal gain J*, bias h*, span sp(h*) and an optimal policy by relative value iteration."""
  sol = ar.relative_value_iteration(params.P, params.r, tol=tol)
  return AMDPOracle(sol.gain, sol.bias, sol.bias.max() - sol.bias.min(), sol.policy)
