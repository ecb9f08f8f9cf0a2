"""Finite linear MDPs with adversarial (oblivious) loss sequences and an exact best-policy-in-hindsight
oracle; the testbed of Dai, Luo, Wei, Zimmert, "Refined Regret for Adversarial MDPs with Linear
Function Approximation", ICML 2023.

Two generators share one parameter type:
- `tabular_as_linear`: a tabular MDP seen through one-hot features φ(s,a) = e_(s,a), d = SA;
- `simplex_linear_mdp`: a d-rectangular linear MDP with features on the simplex Δ_d,
  P_h(s'|s,a) = Σ_i φ_i(s,a) μ_{h,i}(s'), so that d stays fixed while A grows.
Episode k's loss is linear in the features, ℓ_k(h,s,a) = φ(s,a)ᵀθ_{k,h} with θ_{k,h} = Θ_{j mod T, h} + u_k,
j = ⌊log₂ k⌋ (T = 2 tables switching over doubling phases; T = 1 gives stochastic losses) and
u_k ~ U[0, noise]^d; with Θ ∈ [0, 1−noise] every loss lies in [0, 1], and every Q^π_{k,h} is linear in φ.
Layers h = 0..H−1; the state space is the same S states at every layer (time-inhomogeneous transitions
make it effectively layered).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax.theory.kernels import occupancy as occ
from rljax.theory.kernels import vi


class LinearMDP(NamedTuple):
  phi: jax.Array  # f[S,A,d]
  P: jax.Array  # f[H,S,A,S]
  s0: jax.Array  # f[S]
  theta_tables: jax.Array  # f[T,H,d], T ∈ {1,2} loss parameters the adversary switches between
  noise: jax.Array  # scalar, per-episode U[0, noise] perturbation of θ
  noise_key: jax.Array  # key of the (oblivious) noise sequence
  action_mask: jax.Array  # bool[A], the available actions (a prefix; see `with_actions`)


class EnvState(NamedTuple):
  h: jax.Array
  s: jax.Array
  episode: jax.Array


def _check_sizes(**sizes) -> None:
  for name, v in sizes.items():
    if int(v) < 1:
      raise ValueError(f"`{name}` must be >= 1, got {v}.")


def _dirichlet_rows(key, shape, n):
  e = jax.random.exponential(key, (*shape, n))
  return e / jnp.sum(e, -1, keepdims=True)


def _tables(key, horizon, dim, noise, n_tables):
  """n_tables ∈ {1, 2} random loss parameters in [0, 1 − noise]^{H×d}; 1 table = stochastic losses."""
  if not 0.0 <= noise < 1.0:
    raise ValueError(f"`noise` must be in [0, 1), got {noise}.")
  if n_tables not in (1, 2):
    raise ValueError(f"`n_tables` must be 1 or 2, got {n_tables}.")
  return (1.0 - noise) * jax.random.uniform(key, (n_tables, horizon, dim))


def tabular_as_linear(key, n_states: int, n_actions: int, horizon: int, *, noise: float = 0.1,
                      n_tables: int = 2) -> LinearMDP:
  """Random tabular MDP (P_h(·|s,a) ~ Dirichlet(1), s_0 = 0) with one-hot features φ(s,a) = e_(s,a)."""
  _check_sizes(n_states=n_states, n_actions=n_actions, horizon=horizon)
  k_p, k_l, k_n = jax.random.split(key, 3)
  S, A = n_states, n_actions
  phi = jnp.eye(S * A).reshape(S, A, S * A)
  P = _dirichlet_rows(k_p, (horizon, S, A), S)
  tables = _tables(k_l, horizon, S * A, noise, n_tables)
  return LinearMDP(phi, P, jax.nn.one_hot(0, S), tables, jnp.asarray(noise), k_n, jnp.ones((A,), bool))


def simplex_linear_mdp(key, n_states: int, n_actions: int, dim: int, horizon: int, *, noise: float = 0.1,
                       concentration: float = 0.3, n_tables: int = 2) -> LinearMDP:
  """d-rectangular linear MDP: φ(s,a) ~ Dirichlet(concentration·1_d) on Δ_d, μ_{h,i} ~ Dirichlet(1) over
  states, P_h(s'|s,a) = Σ_i φ_i(s,a)μ_{h,i}(s'); s_0 = 0. A small concentration spreads the features
  towards the vertices, which keeps Σ^π well conditioned."""
  _check_sizes(n_states=n_states, n_actions=n_actions, dim=dim, horizon=horizon)
  k_f, k_m, k_l, k_n = jax.random.split(key, 4)
  phi = jax.random.dirichlet(k_f, jnp.full((dim,), concentration), (n_states, n_actions))
  mu = _dirichlet_rows(k_m, (horizon, dim), n_states)
  P = jnp.einsum("sai,hit->hsat", phi, mu)
  tables = _tables(k_l, horizon, dim, noise, n_tables)
  return LinearMDP(phi, P, jax.nn.one_hot(0, n_states), tables, jnp.asarray(noise), k_n, jnp.ones((n_actions,), bool))


def with_actions(params: LinearMDP, n_actions) -> LinearMDP:
  """The same MDP with only the first `n_actions` actions available (traceable, so one compiled
  learner serves a sweep over A; the features of the kept actions do not change)."""
  if isinstance(n_actions, int) and not 1 <= n_actions <= params.phi.shape[1]:
    raise ValueError(f"`n_actions` must be in [1, {params.phi.shape[1]}], got {n_actions}.")
  return params._replace(action_mask=jnp.arange(params.phi.shape[1]) < n_actions)


def loss_theta(params: LinearMDP, episode) -> jax.Array:
  """θ_{k,h} = Θ_{⌊log₂ k⌋ mod T, h} + u_k for episode k ≥ 1 (u_k from the fixed noise key). Returns f[H,d]."""
  k = jnp.maximum(jnp.asarray(episode, jnp.int32), 1)
  phase = (31 - jax.lax.clz(k)) % params.theta_tables.shape[0]  # ⌊log₂ k⌋ exactly, from the leading zeros
  u = params.noise * jax.random.uniform(jax.random.fold_in(params.noise_key, k), params.theta_tables.shape[1:],
                                        params.theta_tables.dtype)
  return params.theta_tables[phase] + u


def loss_table(params: LinearMDP, episode) -> jax.Array:
  """ℓ_k(h,s,a) = φ(s,a)ᵀθ_{k,h}: f[H,S,A] in [0, 1]."""
  return jnp.einsum("sad,hd->hsa", params.phi, loss_theta(params, episode))


def reset(key, params: LinearMDP, episode=1) -> tuple[EnvState, jax.Array]:
  """Starts episode `episode` (the adversary's index k ≥ 1) at s_0 ~ params.s0; obs is the state index."""
  s = jax.random.categorical(key, jnp.log(params.s0))
  return EnvState(jnp.zeros((), jnp.int32), s, jnp.asarray(episode, jnp.int32)), s


def step(key, params: LinearMDP, state: EnvState, action):
  """One transition: loss ℓ_k(h,s,a) (reward = −loss), s' ~ P_h(·|s,a); done after layer H−1.
  info = {"loss", "phi": φ(s,a)} (the feature of the visited pair, what a linear learner records)."""
  loss = loss_table(params, state.episode)[state.h, state.s, action]
  s_next = jax.random.categorical(key, jnp.log(params.P[state.h, state.s, action]))
  h_next = state.h + 1
  done = h_next >= params.P.shape[0]
  info = {"loss": loss, "phi": params.phi[state.s, action]}
  return EnvState(h_next, s_next, state.episode), s_next, -loss, done, info


def expected_loss(params: LinearMDP, probs: jax.Array, losses: jax.Array) -> jax.Array:
  """⟨q^π, ℓ⟩ = Σ_h Σ_{s,a} q^π_h(s,a) ℓ_h(s,a) for a policy table `probs: f[H,S,A]`, via kernels.occupancy."""
  q = occ.occupancy(params.P, jnp.log(probs), params.s0)
  return occ.expected_return(q, losses)


def best_in_hindsight(params: LinearMDP, cum_losses: jax.Array) -> jax.Array:
  """min_π ⟨q^π, Σ_k ℓ_k⟩ over policies on the available actions: transitions are fixed, so the best
  fixed policy for a loss sequence is the optimal policy of the summed losses, found by backward
  induction (kernels.vi on reward −Σℓ, −∞ on unavailable actions)."""
  reward = jnp.where(params.action_mask, -cum_losses, -jnp.inf)
  return -params.s0 @ vi.value_iteration(params.P, reward).v[0]


def oracle(params: LinearMDP, checkpoints) -> jax.Array:
  """Exact comparator curve: for each K in `checkpoints` (increasing ints), min_π Σ_{k≤K} ⟨q^π, ℓ_k⟩.
  The losses are summed segment by segment between checkpoints; the DP runs only at the checkpoints."""
  checkpoints = jnp.asarray(checkpoints, jnp.int32)
  starts = jnp.concatenate([jnp.ones((1,), jnp.int32), checkpoints[:-1] + 1])

  def segment(cum, bounds):
    lo, hi = bounds
    cum = jax.lax.fori_loop(lo, hi + 1, lambda k, c: c + loss_table(params, k), cum)
    return cum, best_in_hindsight(params, cum)

  _, best = jax.lax.scan(segment, jnp.zeros(params.P.shape[:3], params.theta_tables.dtype), (starts, checkpoints))
  return best
