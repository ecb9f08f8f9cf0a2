"""Divergences between finite distributions and the duals of divergence-regularised minimisation.

Shared kernel of the theory modules: the KL, total-variation and χ² divergences between categoricals
(last axis), the Bernoulli KL, the dual forms of

    inf_μ { E_μ[V] + λ·D(μ‖μ0) }                                          (λ > 0)

used by robust regularised MDPs (Tang, Liu & Xu, "Robust Offline RL with Linearly Structured
f-Divergence Regularization", ICML 2025) and the prior mass of a KL ball on a grid of hypotheses
(the "weight" of the universality lens / index of resolvability).

Conventions: categorical divergences take log-probabilities (−inf marks zero mass) and reduce the last
axis, broadcasting over leading ones. The duals take a value vector `v: f[..., n]`, probabilities
`p0: f[..., n]` and λ broadcastable to the leading shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlog1py, xlogy

from rljax import checks


def _check_probs(name: str, p) -> None:
  """ValueError when a concrete `p` has negative entries or rows not summing to 1."""
  if isinstance(p, jax.core.Tracer):
    return
  p = np.asarray(p, np.float64)
  if np.any(p < 0) or not np.allclose(np.sum(p, -1), 1.0, atol=1e-6):
    raise ValueError(f"`{name}` must be probabilities (>= 0, summing to 1 over the last axis).")


def _check_log_probs(name: str, log_p) -> None:
  if not isinstance(log_p, jax.core.Tracer):
    _check_probs(name, np.exp(np.asarray(log_p, np.float64)))


def _check_pair(log_p, log_q, names=("log_p", "log_q")) -> tuple[jax.Array, jax.Array]:
  try:
    jnp.broadcast_shapes(jnp.shape(log_p), jnp.shape(log_q))
  except ValueError:
    raise ValueError(f"`{names[0]}` {jnp.shape(log_p)} and `{names[1]}` {jnp.shape(log_q)} do not broadcast.") from None
  _check_log_probs(names[0], log_p)
  _check_log_probs(names[1], log_q)
  return checks.as_compute(log_p, log_q)


def categorical_kl(log_p: jax.Array, log_q: jax.Array) -> jax.Array:
  """KL(p‖q) = Σ_i p_i (log p_i − log q_i) over the last axis, from log-probabilities.

  Atoms with p_i = 0 contribute 0 (also where q_i = 0); p_i > 0 = q_i gives +inf.
  """
  log_p, log_q = _check_pair(log_p, log_q)
  p = jnp.exp(log_p)
  # where() keeps 0·(−inf − …) out of the sum; the inner where keeps the untaken branch finite.
  diff = jnp.where(p > 0, log_p - jnp.where(p > 0, log_q, 0.0), 0.0)
  return jnp.sum(p * diff, axis=-1)


def total_variation(log_p: jax.Array, log_q: jax.Array) -> jax.Array:
  """TV(p, q) = sup_A |p(A) − q(A)| = ½ Σ_i |p_i − q_i| over the last axis, from log-probabilities."""
  log_p, log_q = _check_pair(log_p, log_q)
  return 0.5 * jnp.sum(jnp.abs(jnp.exp(log_p) - jnp.exp(log_q)), axis=-1)


def chi2_divergence(log_p: jax.Array, log_q: jax.Array) -> jax.Array:
  """χ²(p‖q) = Σ_i (p_i − q_i)²/q_i = Σ_i q_i·(p_i/q_i − 1)² over the last axis, from log-probabilities.

  Computed as Σ q·expm1(log p − log q)², without the cancellation of Σ p²/q − 1 near p = q.
  Atoms with q_i = 0 contribute +inf if p_i > 0 and 0 otherwise.
  """
  log_p, log_q = _check_pair(log_p, log_q)
  q = jnp.exp(log_q)
  safe_q = jnp.where(q > 0, log_q, 0.0)
  inside = q * jnp.square(jnp.expm1(log_p - safe_q))
  outside = jnp.where(log_p > -jnp.inf, jnp.inf, 0.0)
  return jnp.sum(jnp.where(q > 0, inside, outside), axis=-1)


def bernoulli_kl(p, q) -> jax.Array:
  """KL(Ber(p)‖Ber(q)) = p·log(p/q) + (1 − p)·log((1 − p)/(1 − q)), elementwise.

  Finite at the edges p ∈ {0, 1} (0·log 0 = 0, via xlogy) and +inf when p ∉ {0, 1} meets q ∈ {0, 1}.
  log(1 − q) uses log1p(−q), so q close to 0 keeps full precision.
  """
  for name, x in (("p", p), ("q", q)):
    if not isinstance(x, jax.core.Tracer) and np.any((np.asarray(x) < 0) | (np.asarray(x) > 1)):
      raise ValueError(f"`{name}` must lie in [0, 1].")
  p, q = checks.as_compute(p, q)
  return xlogy(p, p) - xlogy(p, q) + xlog1py(1 - p, -p) - xlog1py(1 - p, -q)


def _dual_inputs(v, p0, lam):
  if jnp.shape(v) != jnp.shape(p0) or jnp.ndim(v) < 1:
    raise ValueError(f"`v` {jnp.shape(v)} and `p0` {jnp.shape(p0)} must have the same shape, ndim >= 1.")
  _check_probs("p0", p0)
  checks.check_positive("lam", lam)
  return checks.as_compute(v, p0, lam)


def dual_kl(v: jax.Array, p0: jax.Array, lam) -> jax.Array:
  """inf_{μ≪μ0} E_μ[V] + λ·KL(μ‖μ0) = −λ·log E_{μ0}[exp(−V/λ)]   (Donsker–Varadhan).

  Attained at μ ∝ μ0·exp(−V/λ). λ → ∞ gives E_{μ0} V; λ → 0 gives the μ0-essential infimum of V.
  Evaluated with a weighted logsumexp, so it is stable for any V/λ.
  """
  v, p0, lam = _dual_inputs(v, p0, lam)
  lam = jnp.asarray(lam)[..., None]
  return -lam[..., 0] * jax.nn.logsumexp(-v / lam, b=p0, axis=-1)


def dual_tv(v: jax.Array, p0: jax.Array, lam) -> jax.Array:
  """inf_μ E_μ[V] + λ·TV(μ, μ0) = E_{μ0}[min{V, min_s V(s) + λ}],   TV = ½‖μ − μ0‖₁.

  Moving mass δ from atom s to the argmin s* changes E_μ V by δ·(V* − V(s)) and costs λδ, so every
  atom whose value exceeds V* + λ is emptied into s*. μ need not be ≪ μ0 here, so the minimum runs
  over all atoms, including those with μ0 = 0. λ → 0 gives min V; λ ≥ max V − min V gives E_{μ0} V.
  """
  v, p0, lam = _dual_inputs(v, p0, lam)
  floor = jnp.min(v, axis=-1, keepdims=True) + jnp.asarray(lam)[..., None]
  return jnp.sum(p0 * jnp.minimum(v, floor), axis=-1)


def dual_chi2(v: jax.Array, p0: jax.Array, lam) -> jax.Array:
  """inf_{μ≪μ0} E_μ[V] + λ·χ²(μ‖μ0) = sup_α { E_{μ0}[V_α] − Var_{μ0}(V_α)/(4λ) },  V_α = min{V, α}.

  Derivation: with w = μ/μ0 ≥ 0, E_{μ0} w = 1, the Lagrangian minimiser is
  w = max{0, 1 − (V − η)/(2λ)}; substituting α = η + 2λ, and using that dropping w ≥ 0 on the
  clipped problem lower-bounds the infimum for every α, the dual is the sup above (the sup, not an
  inf; it is attained where E_{μ0} V_α = α − 2λ). The α-objective is a concave quadratic between
  consecutive sorted values of V: with A, B the μ0-mass-weighted sums of V and V² below α, Q their
  mass and P = 1 − Q, it is A + Pα − (B + Pα² − (A + Pα)²)/(4λ), maximised at α = (2λ + A)/Q. The
  sup is therefore found exactly by one sort and a max over the n pieces (an exact 1-D search).
  λ → ∞ gives E V − Var V/(4λ) → E V.
  """
  v, p0, lam = _dual_inputs(v, p0, lam)
  lam = jnp.asarray(lam)[..., None]
  order = jnp.argsort(v, axis=-1)
  vs = jnp.take_along_axis(v, order, axis=-1)
  ps = jnp.take_along_axis(p0, order, axis=-1)
  a = jnp.cumsum(ps * vs, axis=-1)
  b = jnp.cumsum(ps * vs**2, axis=-1)
  q = jnp.cumsum(ps, axis=-1)
  # Mass strictly above piece k from a reverse cumsum: 1 − q would lose the small tail masses.
  p_hi = jnp.flip(jnp.cumsum(jnp.flip(ps, -1), axis=-1), -1) - ps
  lo = vs
  hi = jnp.concatenate([vs[..., 1:], vs[..., -1:]], axis=-1)
  stationary = jnp.where(q > 0, (2 * lam + a) / jnp.where(q > 0, q, 1.0), jnp.inf)
  alpha = jnp.clip(stationary, lo, hi)
  mean = a + p_hi * alpha
  var = b + p_hi * alpha**2 - mean**2
  return jnp.max(mean - var / (4 * lam), axis=-1)


def kl_ball_mass(divergences: jax.Array, log_weights: jax.Array, eps) -> jax.Array:
  """log W_ε = log Σ_g w_g·1{D_g ≤ ε}: the prior mass of a divergence ball on a grid of hypotheses.

  `divergences: f[G]` holds D(p_θ‖p_{θ_g}) for each grid point g, `log_weights: f[G]` its log prior
  weight (not renormalised here), `eps` any shape. Returns log W_ε with the shape of `eps` (−inf for
  an empty ball). One sort and a cumulative logsumexp serve every ε, so a fine ε-grid is cheap;
  W_ε is a step function of ε that jumps at the sorted divergences.
  """
  if jnp.ndim(divergences) != 1 or jnp.shape(divergences) != jnp.shape(log_weights):
    raise ValueError(
        f"`divergences` {jnp.shape(divergences)} and `log_weights` {jnp.shape(log_weights)} must be equal 1-D shapes.")
  d, lw, eps = checks.as_compute(divergences, log_weights, eps)
  order = jnp.argsort(d)
  d_sorted = d[order]
  cum = jax.lax.cumlogsumexp(lw[order])
  idx = jnp.searchsorted(d_sorted, eps, side="right")
  return jnp.where(idx > 0, cum[jnp.maximum(idx - 1, 0)], -jnp.inf)
