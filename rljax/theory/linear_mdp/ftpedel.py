"""FTPedel: policy elimination with offline-aware experimental design (H = 1 instance).

Wagenmaker & Pacchiano, "Leveraging Offline Data in Online Reinforcement Learning", ICML 2023. Given
an offline data set with covariance Λ_off, FTPedel explores online only in the directions that the
offline data does not already cover. For horizon H = 1 the linear MDP is a linear bandit with arms
x_1..x_K (the policies), φ_π = x_π, and the algorithm is best-arm identification with prior data:

    round l = 1, 2, ...:  ε_l = 2^{-l},  β_l = 2σ² log(2K²l²/δ)
      N_l = min{N : min_λ max_{i,j∈S_l} ‖x_i − x_j‖²_{(N A(λ) + Λ_off)^{-1}} ≤ ε_l²/β_l}
      pull the rounded design ⌈N_l⌉λ_l; θ̂_l = ridge on [offline data + round-l online data]
      S_{l+1} = S_l \\ {j : max_{i∈S_l} (x_i − x_j)ᵀθ̂_l > ε_l}
    stop once ε_l ≤ ε/2 (every surviving arm is then ε-optimal, with probability 1 − δ) or |S_l| = 1.

On the good event every |(x_i − x_j)ᵀ(θ̂_l − θ*)| ≤ ε_l, so the best arm survives and arms with gap
> 2ε_l are removed: the output is certified. The sample complexity is governed by

    N*(ε) = min{N : min_λ max_{π≠π*} ‖x_{π*} − x_π‖²_{(N A(λ) + Λ_off)^{-1}} / max(Δ_π, ε)² ≤ 1/(c β)}

(`complexity`); Λ_off = 0 gives the online (Pedel / RAGE) complexity. `offline_lcb` is the
offline-only baseline (pessimistic arm choice, which cannot certify arms outside the data's span).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax.theory.kernels import design as dk


class Config(NamedTuple):
  epsilon: float = 0.05
  delta: float = 0.05
  sigma: float = 1.0  # reward noise scale
  ridge: float = 1e-8  # keeps the pooled Gram matrix invertible in directions no surviving difference uses
  n_max: float = 1e7  # cap on the online samples of one round
  design_iters: int = 60
  n_bisect: int = 24


class Result(NamedTuple):
  arm: jax.Array  # recommended arm
  certified: jax.Array  # every round met its design tolerance (no N_l hit n_max)
  online_samples: jax.Array  # Σ_l ⌈N_l⌉
  round_samples: jax.Array  # [L] ⌈N_l⌉
  active: jax.Array  # bool[L + 1, K] surviving arms before each round and at the end
  theta_hat: jax.Array  # last estimate


def n_rounds(epsilon: float) -> int:
  """L = ⌈log2(2/ε)⌉: the first round with ε_L = 2^{-L} ≤ ε/2."""
  if not 0 < epsilon < 1:
    raise ValueError(f"`epsilon` must be in (0, 1), got {epsilon}.")
  return max(1, math.ceil(math.log2(2.0 / epsilon)))


def beta(round_index, n_arms: int, delta: float, sigma: float):
  """β_l = 2σ² log(2K²l²/δ): Gaussian tail for the K² pair differences, union over rounds (Σ 1/l² < 2)."""
  return 2.0 * sigma**2 * jnp.log(2.0 * n_arms**2 * jnp.asarray(round_index, jnp.result_type(float)) ** 2 / delta)


def pairs(arms: jax.Array, active: jax.Array) -> tuple[jax.Array, jax.Array]:
  """All differences x_i − x_j `[K², d]` and the mask of pairs i ≠ j with both arms active."""
  k = arms.shape[0]
  diff = (arms[:, None] - arms[None]).reshape(k * k, -1)
  mask = (active[:, None] & active[None] & ~jnp.eye(k, dtype=bool)).reshape(-1)
  return diff, mask


def minimax_design(arms: jax.Array, active: jax.Array, lam_off: jax.Array, n, *, n_iters: int = 200) -> dk.Design:
  """The round design min_λ max_{i,j∈S} ‖x_i − x_j‖²_{(n A(λ) + Λ_off)^{-1}} over all K arms
  (`kernels.design.minimax_design` on the difference vectors of the surviving set S = `active`)."""
  diff, mask = pairs(arms, jnp.asarray(active, bool))
  return dk.minimax_design(diff, arms, lam_off, n, y_mask=mask, n_iters=n_iters)


def _offline_stats(arms, offline_x, offline_y, offline_mask):
  offline_x, offline_y = jnp.asarray(offline_x, arms.dtype), jnp.asarray(offline_y, arms.dtype)
  if offline_x.ndim != 2 or offline_x.shape[1] != arms.shape[1] or offline_y.shape != offline_x.shape[:1]:
    raise ValueError(f"need `offline_x: [n, {arms.shape[1]}]` and `offline_y: [n]`, got {offline_x.shape}, "
                     f"{offline_y.shape}.")
  w = jnp.ones(offline_y.shape, arms.dtype) if offline_mask is None else jnp.asarray(offline_mask, arms.dtype)
  return jnp.einsum("n,ni,nj->ij", w, offline_x, offline_x), jnp.einsum("n,n,ni->i", w, offline_y, offline_x)


def bandit(key: jax.Array, cfg: Config, arms: jax.Array, theta: jax.Array, offline_x: jax.Array,
           offline_y: jax.Array, offline_mask=None) -> Result:
  """FTPedel on the linear bandit (arms `[K, d]`, mean rewards x_kᵀθ, N(0, σ²) noise) with offline
  data `offline_x: [n, d]`, `offline_y: [n]` (`offline_mask: bool[n]` keeps shapes static across n).

  Pulls of one arm are drawn through their sufficient statistic: c pulls of arm k add c x_k x_kᵀ to
  the Gram matrix and x_k (c μ_k + σ√c z) to b, z ~ N(0, 1) — the same law as c separate pulls.
  """
  arms, theta = jnp.asarray(arms), jnp.asarray(theta, jnp.asarray(arms).dtype)
  if arms.ndim != 2 or theta.shape != arms.shape[1:]:
    raise ValueError(f"`arms` must be [K, d] and `theta` [d], got {arms.shape} and {theta.shape}.")
  if cfg.sigma <= 0 or cfg.ridge <= 0 or not 0 < cfg.delta < 1:
    raise ValueError(f"need sigma > 0, ridge > 0, 0 < delta < 1; got {cfg}.")
  k, d = arms.shape
  lam_off, b_off = _offline_stats(arms, offline_x, offline_y, offline_mask)
  means = arms @ theta
  n_round = n_rounds(cfg.epsilon)

  def round_step(carry, inputs):
    active, ok, _ = carry
    l, key = inputs
    eps_l = 2.0 ** (-l.astype(arms.dtype))
    diff, mask = pairs(arms, active)
    tol = eps_l**2 / beta(l, k, cfg.delta, cfg.sigma)
    n, des = dk.min_samples(diff, arms, lam_off, tol, y_mask=mask, n_max=cfg.n_max, n_iters=cfg.design_iters,
                            n_bisect=cfg.n_bisect)
    live = jnp.sum(active) > 1
    counts = jnp.where(live, dk.round_design(jnp.nan_to_num(des.weights), n), 0).astype(arms.dtype)
    sums = counts * means + cfg.sigma * jnp.sqrt(counts) * jax.random.normal(key, (k,), arms.dtype)
    gram = lam_off + jnp.einsum("k,ki,kj->ij", counts, arms, arms) + cfg.ridge * jnp.eye(d, dtype=arms.dtype)
    theta_hat = jnp.linalg.solve(gram, b_off + arms.T @ sums)
    value = arms @ theta_hat
    beaten = jnp.max(jnp.where(active, value, -jnp.inf)) - value > eps_l
    new_active = jnp.where(live, active & ~beaten, active)
    ok = ok & ((n < cfg.n_max) | ~live)
    return (new_active, ok, theta_hat), (active, jnp.sum(counts))

  init = (jnp.ones((k,), bool), jnp.asarray(True), jnp.zeros((d,), arms.dtype))
  rounds = (jnp.arange(1, n_round + 1), jax.random.split(key, n_round))
  (active, ok, theta_hat), (history, samples) = jax.lax.scan(round_step, init, rounds)
  arm = jnp.argmax(jnp.where(active, arms @ theta_hat, -jnp.inf))
  return Result(arm, ok, jnp.sum(samples), samples, jnp.concatenate([history, active[None]]), theta_hat)


def complexity(arms: jax.Array, theta: jax.Array, lam_off: jax.Array, epsilon: float, c_beta, *,
               n_iters: int = 200) -> jax.Array:
  """N*(ε) = min{N : min_λ max_{π≠π*} ‖x_{π*} − x_π‖²_{(N A(λ) + Λ_off)^{-1}} / max(Δ_π, ε)² ≤ 1/(cβ)}
  with `c_beta` = cβ; solved by bisection on N (`kernels.design.min_samples`)."""
  arms = jnp.asarray(arms)
  means = arms @ jnp.asarray(theta, arms.dtype)
  best = jnp.argmax(means)
  gap = jnp.maximum(means[best] - means, epsilon)
  y = (arms[best] - arms) / gap[:, None]
  n, _ = dk.min_samples(y, arms, lam_off, 1.0 / c_beta, y_mask=jnp.arange(arms.shape[0]) != best,
                        n_iters=n_iters, n_bisect=40)
  return n


def offline_lcb(cfg: Config, arms: jax.Array, offline_x: jax.Array, offline_y: jax.Array, offline_mask=None,
                *, lam: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """Offline-only baseline: θ̂ = (Λ_off + λI)^{-1} b_off, pick argmax_k LCB_k with
  LCB/UCB_k = x_kᵀθ̂ ∓ √β ‖x_k‖_{(Λ_off + λI)^{-1}}, β = β_1 of FTPedel. Certified when
  LCB_pick ≥ max_{k≠pick} UCB_k − ε (the only certificate offline data can give)."""
  arms = jnp.asarray(arms)
  lam_off, b_off = _offline_stats(arms, offline_x, offline_y, offline_mask)
  v_inv = jnp.linalg.inv(lam_off + lam * jnp.eye(arms.shape[1], dtype=arms.dtype))
  theta_hat = v_inv @ b_off
  width = jnp.sqrt(beta(1, arms.shape[0], cfg.delta, cfg.sigma) * jnp.einsum("ki,ij,kj->k", arms, v_inv, arms))
  value = arms @ theta_hat
  pick = jnp.argmax(value - width)
  others = jnp.where(jnp.arange(arms.shape[0]) == pick, -jnp.inf, value + width)
  return pick, value[pick] - width[pick] >= jnp.max(others) - cfg.epsilon
