"""Ridge regression and elliptical-potential machinery shared by the linear bandit / linear MDP modules.

Used first by PR-LSVI (Wu & Sun, "Making RL with Preference-based Feedback Efficient via
Randomization", ICLR 2024) and meant for every linear-bandit style module (OFUL, LinUCB, LSVI-UCB,
rare-switching algorithms). Everything here is a pure function, jit-able and vmap-able (batch over
seeds or over many candidate representations with `jax.vmap`); run it in float64, because Gram
matrices after many rank-one updates are badly conditioned in float32.

Notation: data x_i ∈ R^d, targets y_i, weights w_i ≥ 0 (e.g. w_i = σ_i^{-2}), ridge λ > 0,

    V = λI + Σ_i w_i x_i x_iᵀ,   b = Σ_i w_i y_i x_i,   θ̂ = V^{-1} b.

Growing data live in a fixed-capacity `Buffer` with a validity mask, so shapes stay static under
`lax.scan`; an online learner can instead carry a `RidgeState` (V, V^{-1}, b, log det V) and update
it in O(d²) per sample with Sherman–Morrison and the matrix determinant lemma. `logistic_mle` is
the ridge-regularised Bradley–Terry (logistic) MLE of preference learners (PR-LSVI, the RLHF
variant of demonstration-regularised RL).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


def _weights(n: int, dtype, weights=None, mask=None) -> jax.Array:
  w = jnp.ones((n,), dtype) if weights is None else jnp.asarray(weights, dtype)
  if w.shape != (n,):
    raise ValueError(f"`weights` must have shape ({n},), got {w.shape}.")
  if mask is not None:
    if jnp.shape(mask) != (n,):
      raise ValueError(f"`mask` must have shape ({n},), got {jnp.shape(mask)}.")
    w = jnp.where(mask, w, 0.0)
  return w


def _check_lam(lam) -> None:
  if isinstance(lam, (int, float)) and lam <= 0:
    raise ValueError(f"`lam` must be positive, got {lam}.")


def gram(x: jax.Array, lam, *, weights=None, mask=None) -> jax.Array:
  """V = λI + Σ_i w_i m_i x_i x_iᵀ for `x: [n, d]` (m_i the validity mask, w_i the weights)."""
  x = jnp.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"`x` must be [n, d], got shape {x.shape}.")
  _check_lam(lam)
  w = _weights(x.shape[0], x.dtype, weights, mask)
  return lam * jnp.eye(x.shape[1], dtype=x.dtype) + jnp.einsum("n,ni,nj->ij", w, x, x)


def ridge_solve(x: jax.Array, y: jax.Array, lam, *, weights=None, mask=None) -> jax.Array:
  """Weighted ridge estimate θ̂ = argmin_θ Σ_i w_i m_i (y_i − θᵀx_i)² + λ‖θ‖² = V^{-1} Σ_i w_i m_i y_i x_i.

  `x: [n, d]`, `y: [n]`; `weights` (per-sample w_i, e.g. inverse noise variances) and `mask` (which
  buffer rows hold data) default to all ones. Solved by Cholesky of the SPD matrix V.
  """
  x, y = jnp.asarray(x), jnp.asarray(y)
  if y.shape != x.shape[:1]:
    raise ValueError(f"`y` must have shape ({x.shape[0]},), got {y.shape}.")
  v = gram(x, lam, weights=weights, mask=mask)
  b = jnp.einsum("n,n,ni->i", _weights(x.shape[0], x.dtype, weights, mask), y, x)
  return jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(v), b)


def sherman_morrison(v_inv: jax.Array, x: jax.Array, weight=1.0) -> jax.Array:
  """Rank-one inverse update (V + w x xᵀ)^{-1} = V^{-1} − w V^{-1}x xᵀV^{-1} / (1 + w xᵀV^{-1}x).

  `weight=0` (e.g. a masked-out sample) leaves V^{-1} unchanged, so it can be used under `lax.scan`
  with a validity flag. The result is re-symmetrised to stop round-off drift over many updates.
  """
  u = v_inv @ x
  new = v_inv - weight * jnp.outer(u, u) / (1.0 + weight * (x @ u))
  return 0.5 * (new + new.T)


def elliptical_bonus(x: jax.Array, v_inv: jax.Array, scale=1.0) -> jax.Array:
  """Elliptical bonus scale · ‖x‖_{V^{-1}} = scale · sqrt(xᵀ V^{-1} x), batched over the leading axes of
  `x: [..., d]` (scale = √β_t from `oful_radius` gives the OFUL/LinUCB exploration bonus)."""
  x = jnp.asarray(x)
  if x.shape[-1] != v_inv.shape[-1]:
    raise ValueError(f"`x` has last axis {x.shape[-1]} but `v_inv` is {v_inv.shape}.")
  return scale * jnp.sqrt(jnp.maximum(jnp.einsum("...i,ij,...j->...", x, v_inv, x), 0.0))


def oful_radius(t, *, delta, lam, s_norm, l_norm, sigma, dim) -> jax.Array:
  """Self-normalised confidence radius of OFUL (Abbasi-Yadkori, Pál, Szepesvári 2011, Thm. 2):

      √β_t(δ) = σ sqrt(2 log(1/δ) + d log(1 + t L² / (λ d))) + √λ S,

  so that with probability 1 − δ, ‖θ̂_t − θ*‖_{V_t} ≤ √β_t for all t, when the noise is
  σ-sub-Gaussian, ‖x‖ ≤ L and ‖θ*‖ ≤ S. Returns √β_t (the radius, not its square).
  """
  if isinstance(delta, (int, float)) and not 0 < delta < 1:
    raise ValueError(f"`delta` must be in (0, 1), got {delta}.")
  _check_lam(lam)
  t = jnp.asarray(t, jnp.result_type(float))
  log_term = 2.0 * jnp.log(1.0 / delta) + dim * jnp.log1p(t * l_norm**2 / (lam * dim))
  return sigma * jnp.sqrt(log_term) + jnp.sqrt(lam) * s_norm


def logdet_increment(v_inv: jax.Array, x: jax.Array, weight=1.0) -> jax.Array:
  """Matrix determinant lemma: log det(V + w x xᵀ) − log det V = log(1 + w ‖x‖²_{V^{-1}}).

  Summed over t this is the elliptical potential Σ_t log(1 + ‖x_t‖²_{V_{t-1}^{-1}}) ≤ d log(1 + tL²/(λd)).
  """
  return jnp.log1p(weight * elliptical_bonus(x, v_inv) ** 2)


def determinant_doubled(logdet, logdet_at_switch, factor=2.0) -> jax.Array:
  """Rare-switching trigger: True once det V_t > factor · det V_{switch}, i.e.
  log det V_t − log det V_switch > log(factor). Between triggers a policy can be kept fixed; the
  number of triggers over T rounds is at most d log(1 + TL²/(λd)) / log(factor)."""
  return logdet - logdet_at_switch > jnp.log(factor)


class RidgeState(NamedTuple):
  """Online ridge statistics: V, V^{-1}, b = Σ w y x, log det V and the number of samples added."""

  v: jax.Array
  v_inv: jax.Array
  b: jax.Array
  logdet: jax.Array
  count: jax.Array


def ridge_init(dim: int, lam, dtype=None) -> RidgeState:
  """Empty statistics: V = λI, V^{-1} = I/λ, b = 0, log det V = d log λ."""
  _check_lam(lam)
  dtype = dtype or jnp.result_type(float)
  eye = jnp.eye(dim, dtype=dtype)
  return RidgeState(lam * eye, eye / lam, jnp.zeros((dim,), dtype), jnp.asarray(dim * jnp.log(lam), dtype),
                    jnp.zeros((), jnp.int32))


def ridge_update(state: RidgeState, x: jax.Array, y=0.0, weight=1.0, valid=True) -> RidgeState:
  """Adds (x, y) with weight w when `valid`: V += w x xᵀ, V^{-1} by Sherman–Morrison, b += w y x,
  log det V += log(1 + w ‖x‖²_{V^{-1}}). `valid=False` (traceable) returns the state unchanged."""
  w = jnp.where(valid, weight, 0.0).astype(state.v.dtype)
  return RidgeState(
      v=state.v + w * jnp.outer(x, x),
      v_inv=sherman_morrison(state.v_inv, x, w),
      b=state.b + w * y * x,
      logdet=state.logdet + logdet_increment(state.v_inv, x, w),
      count=state.count + jnp.asarray(valid, jnp.int32),
  )


def ridge_update_batch(state: RidgeState, x: jax.Array, y: jax.Array, weights: jax.Array) -> RidgeState:
  """Adds n weighted samples at once: V += Σ_j w_j x_j x_jᵀ, b += Σ_j w_j y_j x_j (`x: [n,d]`, `y, weights:
  [n]`; w_j = 0 drops a sample). V^{-1} and log det V are recomputed from a Cholesky factor of V, which
  for n ≫ 1 is cheaper and more accurate than n Sherman–Morrison steps; `count` adds the samples with w_j > 0."""
  x, y, weights = jnp.asarray(x), jnp.asarray(y), jnp.asarray(weights)
  if x.ndim != 2 or x.shape[1] != state.b.shape[0] or y.shape != x.shape[:1] or weights.shape != x.shape[:1]:
    raise ValueError(f"need `x` [n,{state.b.shape[0]}] and `y`, `weights` [n], got {x.shape}, {y.shape}, {weights.shape}.")
  v = state.v + jnp.einsum("n,ni,nj->ij", weights, x, x)
  chol = jax.scipy.linalg.cho_factor(v, lower=True)
  return RidgeState(
      v=v,
      v_inv=jax.scipy.linalg.cho_solve(chol, jnp.eye(v.shape[0], dtype=v.dtype)),
      b=state.b + x.T @ (weights * y),
      logdet=2.0 * jnp.sum(jnp.log(jnp.diagonal(chol[0]))),
      count=state.count + jnp.sum(weights > 0).astype(jnp.int32),
  )


def ridge_theta(state: RidgeState) -> jax.Array:
  """θ̂ = V^{-1} b from online statistics."""
  return state.v_inv @ state.b


class Buffer(NamedTuple):
  """Fixed-capacity data set: rows `x: [N, d]`, targets `y: [N]`, `mask: bool[N]`, fill `count`."""

  x: jax.Array
  y: jax.Array
  mask: jax.Array
  count: jax.Array


def buffer_init(capacity: int, dim: int, dtype=None) -> Buffer:
  if capacity <= 0 or dim <= 0:
    raise ValueError(f"`capacity` and `dim` must be positive, got {capacity} and {dim}.")
  dtype = dtype or jnp.result_type(float)
  return Buffer(jnp.zeros((capacity, dim), dtype), jnp.zeros((capacity,), dtype),
                jnp.zeros((capacity,), bool), jnp.zeros((), jnp.int32))


def buffer_add(buf: Buffer, x: jax.Array, y, valid=True) -> Buffer:
  """Writes (x, y) into the next free row when `valid` and the buffer is not full (else a no-op)."""
  ok = jnp.logical_and(valid, buf.count < buf.mask.shape[0])
  i = jnp.minimum(buf.count, buf.mask.shape[0] - 1)
  return Buffer(
      x=buf.x.at[i].set(jnp.where(ok, x, buf.x[i])),
      y=buf.y.at[i].set(jnp.where(ok, y, buf.y[i])),
      mask=buf.mask.at[i].set(jnp.logical_or(ok, buf.mask[i])),
      count=buf.count + ok.astype(jnp.int32),
  )


# ------------------------------------------------------------------ logistic (Bradley–Terry) regression


def logistic_loss(theta, dphi, outcomes, *, lam, mask=None) -> jax.Array:
  """L(θ) = Σ_i m_i ℓ(o_i θᵀΔφ_i) + (λ/2)‖θ‖², ℓ(z) = −log σ(z) = softplus(−z), o_i ∈ {−1, +1}."""
  m = jnp.ones(outcomes.shape, dphi.dtype) if mask is None else mask.astype(dphi.dtype)
  return jnp.sum(m * jax.nn.softplus(-outcomes * (dphi @ theta))) + 0.5 * lam * theta @ theta


def logistic_mle(dphi, outcomes, *, lam, mask=None, theta0=None, iters: int = 25):
  """Bradley–Terry reward MLE by Newton's method (run in float64):

      θ̂ = argmin_θ Σ_i m_i ℓ(o_i θᵀΔφ_i) + (λ/2)‖θ‖²,
      θ ← θ − H(θ)^{-1} ∇L(θ),  ∇L = −Σ m_i o_i σ(−o_i z_i) Δφ_i + λθ,
      H = Σ m_i σ(z_i)σ(−z_i) Δφ_iΔφ_iᵀ + λI,  z_i = θᵀΔφ_i.

  `dphi: [n, d]` trajectory-feature differences φ(τ¹) − φ(τ⁰), `outcomes: [n]` in {−1, +1}
  (+1 when τ¹ was preferred), `mask: bool[n]` marks filled rows of a fixed-capacity buffer,
  `theta0` warm-starts `iters` Newton steps (a few suffice inside an online loop). Returns
  (θ̂, Σ) with the design Gram matrix Σ = λI + Σ_i m_i Δφ_iΔφ_iᵀ used for perturbation and queries.
  """
  dphi, outcomes = jnp.asarray(dphi), jnp.asarray(outcomes, jnp.asarray(dphi).dtype)
  if dphi.ndim != 2 or outcomes.shape != dphi.shape[:1]:
    raise ValueError(f"`dphi` must be [n, d] and `outcomes` [n]; got {dphi.shape} and {outcomes.shape}.")
  if isinstance(lam, (int, float)) and lam <= 0:
    raise ValueError(f"`lam` must be positive (it makes the Newton system well posed), got {lam}.")
  m = jnp.ones(outcomes.shape, dphi.dtype) if mask is None else mask.astype(dphi.dtype)
  eye = jnp.eye(dphi.shape[1], dtype=dphi.dtype)

  def newton(_, theta):
    z = dphi @ theta
    grad = -(m * outcomes * jax.nn.sigmoid(-outcomes * z)) @ dphi + lam * theta
    hess = jnp.einsum("n,ni,nj->ij", m * jax.nn.sigmoid(z) * jax.nn.sigmoid(-z), dphi, dphi) + lam * eye
    return theta - jnp.linalg.solve(hess, grad)

  theta0 = jnp.zeros(dphi.shape[1], dphi.dtype) if theta0 is None else theta0
  theta = jax.lax.fori_loop(0, iters, newton, theta0)
  return theta, gram(dphi, lam, mask=mask)
