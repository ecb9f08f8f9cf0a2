"""Sparse enumeration vs least squares on a G-optimal design in misspecified linear bandits
("Does Sparsity Help in Learning Misspecified Linear Bandits?", Dong & Yang, ICML 2023).

With an s-sparse θ* and ε-misspecification, enumerating a net of sparse parameters and querying each
candidate's greedy action finds an O(ε)-optimal arm with O((d/ε_net)^s) queries, while least squares on
a G-optimal design (the non-sparse baseline) is only O(ε√d)-optimal (Lattimore–Szepesvári–Weisz).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.envs.linear_bandit import LinearBanditParams, oracle
from rljax.theory.kernels.design import g_optimal_design, round_design


class Result(NamedTuple):
  action: jax.Array  # the returned arm
  subopt: jax.Array  # max_a f(x_a) − f(x_action)
  queries: jax.Array  # reward queries used


def net(s: int, eps_net: float) -> np.ndarray:
  """Grid ε_net·Z^s ∩ {0 < ‖g‖ ≤ 1}: every unit-ball point lies within ε_net√s/2 of it."""
  m = int(np.floor(1.0 / eps_net))
  grid = np.stack(np.meshgrid(*[np.arange(-m, m + 1) * eps_net] * s, indexing="ij"), -1).reshape(-1, s)
  norm = np.linalg.norm(grid, axis=1)
  return grid[(norm > 0) & (norm <= 1 + 1e-12)]


def candidates(d: int, s: int, eps_net: float) -> np.ndarray:
  """Θ_c = ∪_{|S|=s} N_S, N_S a grid net of the unit ball of span(e_S): |Θ_c| = C(d, s)·|N| ∝ (d/ε_net)^s.

  Built with itertools outside jit; returns float64 `[C(d,s)·|N|, d]`.
  """
  if not 1 <= s <= d:
    raise ValueError(f"need 1 <= s <= d, got s={s}, d={d}.")
  if not 0 < eps_net <= 1:
    raise ValueError(f"`eps_net` must lie in (0, 1], got {eps_net}.")
  grid = net(s, eps_net)
  supports = np.asarray(list(itertools.combinations(range(d), s)))
  out = np.zeros((len(supports), len(grid), d))
  out[np.arange(len(supports))[:, None, None], np.arange(len(grid))[None, :, None], supports[:, None, :]] = grid
  return out.reshape(-1, d)


def _noisy_means(key, params: LinearBanditParams, counts):
  """Empirical mean of `counts[a]` noisy pulls of each arm: f(x_a) + σ ξ_a/√counts_a (exact in law)."""
  xi = jax.random.normal(key, counts.shape, params.arms.dtype)
  return oracle(params).means + params.noise_std * xi / jnp.sqrt(jnp.maximum(counts, 1))


def run(key: jax.Array, params: LinearBanditParams, theta_c: jax.Array, r_rep: int) -> Result:
  """Sparse enumeration: each θ ∈ Θ_c queries x_θ = argmax_a ⟨θ, x_a⟩ r_rep times; returns the queried
  arm with the highest empirical mean, â = argmax_{a queried} ȳ_a (pulls of one arm pooled over θ).

  Queries = |Θ_c|·r_rep. Guarantee: some θ' ∈ Θ_c is ε_net-close to θ*/‖θ*‖, so f(x_θ') ≥ max f − O(ε).
  """
  theta_c = jnp.asarray(theta_c, params.arms.dtype)
  if theta_c.ndim != 2 or theta_c.shape[1] != params.arms.shape[1]:
    raise ValueError(f"`theta_c` must be [N, {params.arms.shape[1]}], got {theta_c.shape}.")
  if r_rep < 1:
    raise ValueError(f"`r_rep` must be positive, got {r_rep}.")
  k = params.arms.shape[0]
  greedy = jnp.argmax(theta_c @ params.arms.T, axis=1)
  counts = jnp.bincount(greedy, length=k) * r_rep
  ybar = jnp.where(counts > 0, _noisy_means(key, params, counts), -jnp.inf)
  action = jnp.argmax(ybar)
  return Result(action, oracle(params).gaps[action], jnp.sum(counts))


def design_ls(key: jax.Array, params: LinearBanditParams, n, *, n_iters: int = 200) -> Result:
  """Baseline: G-optimal design λ (Frank–Wolfe), ⌈n⌉ pulls c_a = round(nλ_a), least squares
  θ̂ = (Σ_a c_a x_a x_aᵀ)^{-1} Σ_a c_a x_a ȳ_a and the greedy arm â = argmax_a ⟨θ̂, x_a⟩.

  Misspecification biases θ̂ so that |⟨θ̂ − θ*, x⟩| ≤ ε√d (Kiefer–Wolfowitz), hence O(ε√d) suboptimality.
  """
  arms = params.arms
  d = arms.shape[1]
  counts = round_design(g_optimal_design(arms, n_iters=n_iters).weights, n)
  ybar = _noisy_means(key, params, counts)
  c = counts.astype(arms.dtype)
  gram = jnp.einsum("k,ki,kj->ij", c, arms, arms) + 1e-9 * jnp.eye(d, dtype=arms.dtype)
  theta_hat = jnp.linalg.solve(gram, arms.T @ (c * ybar))
  action = jnp.argmax(arms @ theta_hat)
  return Result(action, oracle(params).gaps[action], jnp.sum(counts))
