"""Agnostic RL with a generative model: spanning capacity and the trajectory-tree learner.

Jia, Li, Rakhlin, Sekhari & Srebro, "When is Agnostic Reinforcement Learning Statistically
Tractable?", NeurIPS 2023 (core results of the thesis "Agnostic Reinforcement Learning: Foundations
and Algorithms"). With a generative model, finding a policy ε-good relative to a class Π (no
realizability) takes Õ(H·C(Π)·log|Π|/ε²) samples, where C(Π) is the spanning capacity
(`rljax.theory.kernels.spanning`); bounded C(Π) is necessary and sufficient.

This module holds the policy classes of the reproduction (all policies, singletons, k-deviation and
random classes; tables `int[N, H, S]`, −1 meaning "any action"), a random stochastic layered MDP and the
trajectory-tree learner: each tree is one deterministic MDP sampled from the generative model, on which
every π ∈ Π is evaluated; only the (h, s, a) nodes some π reaches are queried, at most C(Π) per layer.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.kernels.spanning import layer_counts, spanning_capacity

__all__ = [
    "LayeredMDP", "TreeResult", "all_policies", "singletons", "k_deviation", "random_class", "tree_widths",
    "random_layered_mdp", "policy_values", "trajectory_tree_learner", "spanning_capacity", "layer_counts",
]


def tree_widths(horizon: int, n_actions: int = 2, max_width: int | None = None) -> tuple[int, ...]:
  """States per layer of the A-ary tree, w_h = A^h, optionally capped at `max_width`."""
  if horizon < 1:
    raise ValueError(f"`horizon` must be positive, got {horizon}.")
  w = [n_actions**h for h in range(horizon)]
  return tuple(w if max_width is None else [min(x, max_width) for x in w])


def all_policies(horizon: int, n_states: int) -> np.ndarray:
  """Π_all as one product row of −1 entries (every action at every (h, s)); C(Π_all) = A^H on the tree."""
  return -np.ones((1, horizon, n_states), np.int64)


def singletons(widths, n_states: int) -> np.ndarray:
  """Π_sing = {π_0 ≡ 0} ∪ {π_{h,s}: action 1 at (h, s) only}: |Π| = 1 + Σ_h w_h, yet C(Π_sing) = H + 1,
  because a trajectory deviates from π_0 at most once."""
  H = len(widths)
  rows = [np.zeros((H, n_states), np.int64)]
  for h, w in enumerate(widths):
    for s in range(w):
      r = np.zeros((H, n_states), np.int64)
      r[h, s] = 1
      rows.append(r)
  return np.stack(rows)


def k_deviation(key: jax.Array, n_policies: int, widths, n_states: int, k: int) -> np.ndarray:
  """n_policies draws of π_0 ≡ 0 with action 1 at k distinct uniformly chosen states (k = 1 gives
  singletons); C grows with k from about H + 1 towards the random-class value."""
  H = len(widths)
  if not 0 <= k <= sum(widths):
    raise ValueError(f"`k` must be in 0..{sum(widths)}, got {k}.")
  flat = jnp.asarray([h * n_states + s for h, w in enumerate(widths) for s in range(w)])
  pick = jax.vmap(lambda kk: jax.random.choice(kk, flat, (k,), replace=False))(jax.random.split(key, n_policies))
  out = jnp.zeros((n_policies, H * n_states), jnp.int32).at[jnp.arange(n_policies)[:, None], pick].set(1)
  return np.asarray(out.reshape(n_policies, H, n_states), np.int64)


def random_class(key: jax.Array, n_policies: int, horizon: int, n_states: int, n_actions: int = 2) -> np.ndarray:
  """n_policies uniformly random deterministic policies: C saturates at ≤ n_policies as H grows."""
  return np.asarray(jax.random.randint(key, (n_policies, horizon, n_states), 0, n_actions), np.int64)


class LayeredMDP(NamedTuple):
  """Stochastic layered MDP: P[h, s, a, s'] (h < H−1) and Bernoulli reward means R[h, s, a] ∈ [0, 1];
  rewards are scaled by 1/H so that every value lies in [0, 1]. Start state 0."""

  P: jax.Array
  R: jax.Array


def random_layered_mdp(key: jax.Array, horizon: int, n_states: int, n_actions: int = 2,
                       concentration: float = 0.5) -> LayeredMDP:
  """P[h, s, a] ~ Dirichlet(concentration·1), R[h, s, a] ~ U[0, 1]."""
  if concentration <= 0:
    raise ValueError(f"`concentration` must be positive, got {concentration}.")
  kp, kr = jax.random.split(key)
  P = jax.random.dirichlet(kp, jnp.full((n_states,), concentration), (horizon - 1, n_states, n_actions))
  return LayeredMDP(P, jax.random.uniform(kr, (horizon, n_states, n_actions)))


def policy_values(mdp: LayeredMDP, pi) -> jax.Array:
  """Exact V^π(s_0) = (1/H) Σ_h Σ_s d_h^π(s) R_h(s, π_h(s)) for every row of `pi: int[N, H, S]`, with
  d_0 = e_0 and d_{h+1}(s') = Σ_s d_h(s) P_h(s' | s, π_h(s)). Returns f[N]."""
  pi = jnp.asarray(pi)
  H, S = pi.shape[1:]

  def one(p):
    def layer(d, h):
      r = jnp.take_along_axis(mdp.R[h], p[h][:, None], 1)[:, 0]
      nxt = jnp.take_along_axis(mdp.P[jnp.minimum(h, H - 2)], p[h][:, None, None], 1)[:, 0]
      return d @ nxt, d @ r

    _, rewards = jax.lax.scan(layer, jnp.zeros(S, mdp.R.dtype).at[0].set(1.0), jnp.arange(H))
    return rewards.sum() / H

  return jax.vmap(one)(pi)


class TreeResult(NamedTuple):
  pi_hat: jax.Array  # int[], index of argmax_π V̂^π after all trees
  est_values: jax.Array  # f[N], V̂^π averaged over the trees
  running_values: jax.Array  # f[n_trees, N], V̂^π after the first n trees
  samples: jax.Array  # int[n_trees], generative-model queries of each tree (reached (h, s, a) nodes)


def trajectory_tree_learner(key: jax.Array, mdp: LayeredMDP, pi, n_trees: int) -> TreeResult:
  """Trajectory-tree policy evaluation with a generative model (Kearns, Mansour & Ng 2000; the upper
  bound of Jia et al. 2023). Tree i samples s'_{h,s,a} ~ P_h(·|s, a), r_{h,s,a} ~ Bern(R_h(s, a)), i.e.
  one deterministic MDP M_i; then V̂^π = (1/n) Σ_i (1/H) Σ_h r^{(i)}(s_h^π, a_h^π) for every π ∈ Π on
  shared samples and π̂ = argmax_π V̂^π. Tree i queries Σ_h |{(s_h^π, a_h^π): π ∈ Π}| ≤ H·C(Π) nodes,
  the sample count the theory charges. `pi: int[N, H, S]` without −1 entries.
  """
  pi = jnp.asarray(pi)
  if pi.ndim != 3 or pi.shape[1:] != mdp.R.shape[:2]:
    raise ValueError(f"`pi` must be [N, H, S] = [N, {mdp.R.shape[0]}, {mdp.R.shape[1]}], got {pi.shape}.")
  if pi.shape[1] < 2:
    raise ValueError("the learner needs `horizon` ≥ 2.")
  if n_trees < 1:
    raise ValueError(f"`n_trees` must be positive, got {n_trees}.")
  H, S, A = mdp.R.shape
  rows = jnp.arange(pi.shape[0])

  def tree(k):
    kt, kr = jax.random.split(k)
    trans = jax.random.categorical(kt, jnp.log(mdp.P))  # [H−1, S, A]
    rew = jax.random.bernoulli(kr, mdp.R).astype(mdp.R.dtype)  # [H, S, A]

    def layer(s, h):
      a = pi[rows, h, s]
      return trans[jnp.minimum(h, H - 2), s, a].astype(s.dtype), rew[h, s, a]

    _, r = jax.lax.scan(layer, jnp.zeros(pi.shape[0], jnp.int32), jnp.arange(H))
    return r.sum(0) / H, layer_counts(pi, trans, A).sum()

  values, samples = jax.lax.map(tree, jax.random.split(key, n_trees))
  running = jnp.cumsum(values, 0) / jnp.arange(1, n_trees + 1, dtype=values.dtype)[:, None]
  return TreeResult(jnp.argmax(running[-1]), running[-1], running, samples)
