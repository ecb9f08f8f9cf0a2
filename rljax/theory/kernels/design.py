"""Optimal experimental design on a finite set of arms: Frank–Wolfe G-/D-optimal design, the minimax
"difference-vector" design with a prior covariance, the smallest sample size meeting a design
tolerance, and rounding to integer pull counts.

Shared kernel; first used by FTPedel (Wagenmaker & Pacchiano, "Leveraging Offline Data in Online
Reinforcement Learning", ICML 2023), whose exploration rounds solve

    min_{λ∈Δ_K} max_{y∈Y} ‖y‖²_{(N A(λ) + Λ_off)^{-1}},    A(λ) = Σ_k λ_k x_k x_kᵀ,

over difference vectors y = x_i − x_j of the surviving arms, with Λ_off the offline covariance. With
Λ_off = 0 the N-dependence factors out (the RAGE / G-optimal case), and for Y = X the optimum is the
D-optimal design with max_x xᵀA(λ*)^{-1}x = d (Kiefer–Wolfowitz). Everything is pure and jit-able;
iteration counts are static, the sample size N is traced.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Design(NamedTuple):
  weights: jax.Array  # [K] λ on the simplex
  value: jax.Array  # objective at λ
  history: jax.Array  # [n_iters] objective after every iteration


def _check_arms(x: jax.Array) -> jax.Array:
  x = jnp.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"`x` must be [K, d], got shape {x.shape}.")
  return x


def design_matrix(x: jax.Array, weights: jax.Array) -> jax.Array:
  """A(λ) = Σ_k λ_k x_k x_kᵀ = Xᵀ diag(λ) X for `x: [K, d]`, `weights: [K]`."""
  return jnp.einsum("k,ki,kj->ij", weights, x, x)


def g_optimal_design(x: jax.Array, *, n_iters: int = 200, reg: float = 0.0) -> Design:
  """Fedorov–Wynn Frank–Wolfe on log det A(λ) from the uniform design (Kiefer–Wolfowitz: the D-optimal
  λ is G-optimal, max_k x_kᵀA(λ)^{-1}x_k = d at the optimum).

  Each step moves towards the vertex k* = argmax_k g_k(λ), g_k = x_kᵀA^{-1}x_k (the gradient of log det),
  with the exact line-search step γ = (g_{k*}/d − 1)/(g_{k*} − 1), so log det A never decreases.
  `value` and `history` are max_k g_k (→ d). `reg`·I is added to A when X does not span R^d.
  """
  x = _check_arms(x)
  k, d = x.shape
  eye = reg * jnp.eye(d, dtype=x.dtype)

  def g(lam):
    a_inv = jnp.linalg.inv(design_matrix(x, lam) + eye)
    return jnp.einsum("ki,ij,kj->k", x, a_inv, x)

  def body(lam, _):
    gk = g(lam)
    top = jnp.argmax(gk)
    gamma = jnp.clip((gk[top] / d - 1.0) / jnp.maximum(gk[top] - 1.0, 1e-12), 0.0, 1.0)
    new = (1.0 - gamma) * lam + gamma * jax.nn.one_hot(top, k, dtype=x.dtype)
    return new, jnp.max(g(new))

  lam, hist = jax.lax.scan(body, jnp.full((k,), 1.0 / k, x.dtype), None, length=n_iters)
  return Design(lam, jnp.max(g(lam)), hist)


def _minimax_objective(y, y_mask, x, lam_off, n, lam):
  """q_y = ‖y‖²_{(n A(λ) + Λ_off)^{-1}} for every y, and their max over the valid y.

  A relative ridge 10^{-10}(n + tr Λ_off/d + 10^{-200}) makes designs that miss a direction cost ~10^{10}‖y‖²
  instead of a singular solve (whose batched LU can return garbage rather than inf)."""
  d = x.shape[1]
  m = n * design_matrix(x, lam) + lam_off
  m = m + 1e-10 * (n + jnp.trace(lam_off) / d + 1e-200) * jnp.eye(d, dtype=x.dtype)
  sol = jnp.linalg.solve(m, y.T).T  # [P, d]
  q = jnp.where(y_mask, jnp.einsum("pi,pi->p", y, sol), -jnp.inf)
  return q, sol, jnp.max(q)


def minimax_design(y: jax.Array, x: jax.Array, lam_off: jax.Array, n, *, y_mask=None, n_iters: int = 200,
                   sharpness: float = 30.0, n_steps: int = 24) -> Design:
  """min_{λ∈Δ_K} f(λ),  f(λ) = max_{y∈Y} yᵀ(n A(λ) + Λ_off)^{-1} y   (Frank–Wolfe with line search).

  The max is non-smooth, so the Frank–Wolfe vertex comes from the gradient of a soft-max surrogate:
  with weights w_y ∝ exp(sharpness · q_y / max q) over the valid y,

      k* = argmax_k Σ_y w_y (x_kᵀ M^{-1} y)²     (= −∂/∂λ_k Σ_y w_y q_y / n,  M = n A(λ) + Λ_off),

  together with the away vertex k_a = argmin_{k: λ_k>0} of the same score; the best point on the grid
  γ ∈ {0} ∪ {2^{-j}} of the exact f along (1 − γ)λ + γ e_{k*} (toward step) and λ + γ γ_max (λ − e_{k_a})
  (away step, γ_max = λ_{k_a}/(1 − λ_{k_a})) is taken, so f is non-increasing over the iterations and
  weight can leave a useless arm. `y: [P, d]`, `x: [K, d]`, `lam_off: [d, d]` (PSD), `n` > 0
  (traced), `y_mask: bool[P]` picks the valid y (at least one). Starts from the uniform design.
  """
  x = _check_arms(x)
  y, lam_off = jnp.asarray(y, x.dtype), jnp.asarray(lam_off, x.dtype)
  k, d = x.shape
  if y.ndim != 2 or y.shape[1] != d or lam_off.shape != (d, d):
    raise ValueError(f"need `y: [P, {d}]` and `lam_off: [{d}, {d}]`, got {y.shape} and {lam_off.shape}.")
  y_mask = jnp.ones(y.shape[:1], bool) if y_mask is None else jnp.asarray(y_mask, bool)
  if y_mask.shape != y.shape[:1]:
    raise ValueError(f"`y_mask` must have shape ({y.shape[0]},), got {y_mask.shape}.")
  steps = jnp.concatenate([jnp.zeros((1,), x.dtype), 2.0 ** -jnp.arange(n_steps, dtype=x.dtype)])
  objective = lambda lam: _minimax_objective(y, y_mask, x, lam_off, n, lam)

  def body(lam, _):
    q, sol, fmax = objective(lam)
    w = jax.nn.softmax(jnp.where(y_mask, sharpness * q / fmax, -jnp.inf))
    score = jnp.einsum("p,kp->k", w, (x @ sol.T) ** 2)
    toward = jax.nn.one_hot(jnp.argmax(score), k, dtype=x.dtype)
    away = jnp.argmin(jnp.where(lam > 0, score, jnp.inf))
    room = lam[away] / jnp.maximum(1.0 - lam[away], 1e-12)  # largest step keeping λ ≥ 0
    cands = jnp.concatenate([
        (1.0 - steps[:, None]) * lam + steps[:, None] * toward,
        lam + (room * steps)[:, None] * (lam - jax.nn.one_hot(away, k, dtype=x.dtype)),
    ])
    cands = jnp.maximum(cands, 0.0)
    vals = jax.vmap(lambda c: objective(c)[2])(cands)
    vals = jnp.where(jnp.isnan(vals), jnp.inf, vals)  # singular designs (a vertex alone) lose the search
    best = jnp.argmin(vals)
    return cands[best], vals[best]

  lam, hist = jax.lax.scan(body, jnp.full((k,), 1.0 / k, x.dtype), None, length=n_iters)
  return Design(lam, objective(lam)[2], hist)


def min_samples(y: jax.Array, x: jax.Array, lam_off: jax.Array, tolerance, *, y_mask=None, n_max: float = 1e7,
                n_iters: int = 60, n_bisect: int = 24) -> tuple[jax.Array, Design]:
  """Smallest N ≥ 0 with min_λ max_y ‖y‖²_{(N A(λ) + Λ_off)^{-1}} ≤ tolerance, and its design.

  The optimal value is non-increasing in N, so N is found by bisection on log N over [1, n_max] (N = 0
  when the prior alone meets the tolerance, N = n_max when even n_max does not).
  """
  lam_off = jnp.asarray(lam_off, x.dtype)
  y_mask = jnp.ones(y.shape[:1], bool) if y_mask is None else y_mask
  prior_ok = _minimax_objective(y, y_mask, x, lam_off, 0.0, jnp.full((x.shape[0],), 1.0 / x.shape[0], x.dtype))[2]
  solve = lambda n: minimax_design(y, x, lam_off, n, y_mask=y_mask, n_iters=n_iters)

  def bisect(bounds, _):
    lo, hi = bounds
    mid = jnp.sqrt(lo * hi)
    ok = solve(mid).value <= tolerance
    return (jnp.where(ok, lo, mid), jnp.where(ok, mid, hi)), None

  (_, hi), _ = jax.lax.scan(bisect, (jnp.asarray(1.0, x.dtype), jnp.asarray(n_max, x.dtype)), None, length=n_bisect)
  n = jnp.where(prior_ok <= tolerance, 0.0, hi)
  return n, solve(jnp.maximum(n, 1.0))


def round_design(weights: jax.Array, n) -> jax.Array:
  """Integer pull counts c_k summing to ⌈n⌉ with c_k ≥ ⌊⌈n⌉ λ_k⌋ (largest-remainder rounding), so
  |c_k − ⌈n⌉λ_k| < 1 for every arm."""
  weights = jnp.asarray(weights)
  total = jnp.ceil(n)
  target = total * weights
  base = jnp.floor(target)
  left = (total - jnp.sum(base)).astype(jnp.int32)
  rank = jnp.argsort(jnp.argsort(-(target - base)))
  return (base + (rank < left)).astype(jnp.int32)
