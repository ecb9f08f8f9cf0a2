"""Listwise preference losses: LiPO (Liu et al., "LiPO: Listwise Preference Optimization through
Learning-to-Rank", arXiv 2402.01878, 2024).

Each prompt comes with a list of K responses y_1..y_K, graded labels ψ_i (e.g. reward-model scores
in [0, 1]) and a `list_mask` marking the real items of a right- or arbitrarily-padded list. The model
scores are the implicit rewards

    s_i = β·[log π_θ(y_i|x) − log π_ref(y_i|x)],

and every objective is a learning-to-rank loss of s against ψ, summed over the prompt's list and then
reduced over the batch. Pairs (i, j) range over ordered label pairs ψ_i > ψ_j with both items
unmasked, so tied labels and masked items contribute nothing to the pairwise objectives.

Masked items are sanitised to s = ψ = 0 before any nonlinear op, so padding may hold any value (even
NaN or ±inf) without reaching the loss, the metrics or the gradient. An all-masked list contributes 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.losses.registry import register

Metrics = dict[str, jax.Array]

OBJECTIVES = (
    "pair_logistic", "pair_hinge", "list_mle", "softmax_ce", "point_mse", "point_sigmoid", "lambda",
)


def _masked_logsumexp(x: jax.Array, mask: jax.Array, axis: int = -1) -> jax.Array:
  """log Σ_{mask} e^x over `axis`; 0 for an empty mask, with finite gradients everywhere.

  Double-where: masked entries enter `exp` as 0 rather than as x − max, which can overflow (the
  backward pass would then form 0·inf = NaN), and an empty row takes log(1) instead of log(0).
  """
  nonempty = jnp.any(mask, axis=axis, keepdims=True)
  x_max = jnp.max(jnp.where(mask, x, -jnp.inf), axis=axis, keepdims=True)
  x_max = jax.lax.stop_gradient(jnp.where(nonempty, x_max, 0))
  terms = jnp.where(mask, jnp.exp(jnp.where(mask, x - x_max, 0)), 0)
  total = jnp.where(nonempty, jnp.sum(terms, axis=axis, keepdims=True), 1)
  return jnp.squeeze(x_max + jnp.log(total), axis=axis)


def _ranks(values: jax.Array, mask: jax.Array) -> jax.Array:
  """1-based rank of each item by `values` descending among unmasked items, `[..., K]`.

  Ties go to the lower index (the order of a stable sort). A fractional rank would make every tie
  share one rank, and at initialisation (π_θ = π_ref, all s = 0) that sets every LiPO-λ weight to 0.
  """
  k = values.shape[-1]
  vi, vj = values[..., :, None], values[..., None, :]
  earlier = jnp.arange(k)[None, :] < jnp.arange(k)[:, None]  # [i, j]: j < i
  ahead = (vj > vi) | ((vj == vi) & earlier)
  return 1 + jnp.sum(ahead & mask[..., None, :], axis=-1)


def _gains(labels: jax.Array) -> jax.Array:
  return jnp.exp2(labels) - 1


def lambda_weights(scores: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
  """LambdaLoss DCG weights of LiPO-λ (Eq. 8), `f[K] -> f[K, K]`; leading batch axes broadcast.

      Δ_ij = |G_i − G_j|·|1/D(τ_i) − 1/D(τ_j)|,   G = 2^ψ − 1,   D(τ) = log(1 + τ) (natural log)

  τ_i is the 1-based rank of item i by `scores` descending among unmasked items (ties: lower index
  first), so masked items do not shift the ranks of the others. Δ is symmetric with a zero diagonal,
  zero in any row or column of a masked item, and carries no gradient (τ is piecewise constant; the
  weights are treated as constants as in TF-Ranking's `DCGLambdaWeight`).
  """
  checks.check_same_shape(scores=scores, labels=labels, mask=mask)
  scores, labels = checks.as_compute(jax.lax.stop_gradient(scores), jax.lax.stop_gradient(labels))
  mask = jnp.asarray(mask, bool)
  labels = jnp.where(mask, labels, 0)
  scores = jnp.where(mask, scores, 0)
  inv_discount = 1 / jnp.log1p(_ranks(scores, mask).astype(scores.dtype))
  gains = _gains(labels)
  delta = jnp.abs(gains[..., :, None] - gains[..., None, :]) * jnp.abs(
      inv_discount[..., :, None] - inv_discount[..., None, :]
  )
  both = mask[..., :, None] & mask[..., None, :]
  return jnp.where(both, delta, 0)


def _list_mle(s: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
  """Plackett–Luce NLL of the label order: −Σ_i [s_π(i) − log Σ_{j≥i} e^{s_π(j)}], per prompt."""
  # Masked items sort last, so every suffix of a real item holds real items only (plus padding that
  # the suffix mask drops). Stable argsort: tied labels keep their list order.
  order = jnp.argsort(jnp.where(mask, -labels, jnp.inf), axis=-1, stable=True)
  s = jnp.take_along_axis(s, order, axis=-1)
  mask = jnp.take_along_axis(mask, order, axis=-1)
  k = s.shape[-1]
  suffix = jnp.arange(k)[None, :] >= jnp.arange(k)[:, None]  # [i, j]: j ≥ i
  lse = _masked_logsumexp(s[..., None, :], suffix & mask[..., None, :], axis=-1)
  return -jnp.sum(jnp.where(mask, s - lse, 0), axis=-1)


def _softmax_ce(s: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
  """−Σ_i (ψ_i/Σ_j ψ_j)·log softmax(s)_i over the unmasked items; 0 when Σ_j ψ_j = 0."""
  log_softmax = s - _masked_logsumexp(s, mask)[..., None]
  total = jnp.sum(labels, axis=-1, keepdims=True)
  target = labels / jnp.where(total == 0, 1, total)
  return -jnp.sum(jnp.where(mask, target * log_softmax, 0), axis=-1)


@register("lipo", kind="listwise", reads=("logps", "ref_logps", "labels", "list_mask"))
def lipo_loss(
    policy_logps: jax.Array,
    ref_logps: jax.Array,
    labels: jax.Array,
    list_mask: jax.Array | None = None,
    *,
    beta: float,
    objective: str = "lambda",
    hinge_margin: float = 1.0,
    reduction: str = "mean",
) -> tuple[jax.Array, Metrics]:
  """LiPO listwise preference loss (Liu et al. 2024, arXiv 2402.01878), per prompt:

      pair_logistic  Σ_{ψ_i>ψ_j} log(1 + e^{−(s_i − s_j)})                 (DPO_BT)
      pair_hinge     Σ_{ψ_i>ψ_j} max(0, δ − (s_i − s_j)),  δ = hinge_margin  (SLiC)
      list_mle       −Σ_i [s_π(i) − log Σ_{j≥i} e^{s_π(j)}], π sorts ψ desc  (DPO_PL, Eq. 7)
      softmax_ce     −Σ_i (ψ_i/Σ_j ψ_j)·log softmax(s)_i
      point_mse      Σ_i (s_i − ψ_i)²
      point_sigmoid  −Σ_i [ψ_i log σ(s_i) + (1 − ψ_i) log σ(−s_i)]
      lambda         Σ_{ψ_i>ψ_j} Δ_ij · log(1 + e^{−(s_i − s_j)})           (LiPO-λ, Eq. 8)

  with s_i = β(log π_θ(y_i) − log π_ref(y_i)) and Δ from `lambda_weights` (stop-gradient). For
  `list_mle`, tied labels keep their list order (stable sort), so only that objective depends on the
  order of tied items. With K = 2 and distinct labels, `pair_logistic` and `list_mle` equal `dpo_loss`.

  Args:
    policy_logps: `f[B, K]` log π_θ(y_i|x), summed over tokens.
    ref_logps: `f[B, K]` log π_ref(y_i|x).
    labels: `f[B, K]` graded labels ψ (larger is better; in [0, 1] for `point_sigmoid`).
    list_mask: `bool[B, K]`, True for real items; None means all items are real.
    beta: KL strength β > 0.
    objective: one of `OBJECTIVES`.
    hinge_margin: δ ≥ 0 of `pair_hinge`.
    reduction: "mean" (default), "sum" or "none" (per-prompt `f[B]`) over the batch.

  Metrics (stop-gradient): `ndcg_at_k`, the batch mean of NDCG@K of the ranking by s against gains
  G = 2^ψ − 1 over the unmasked items (0 where the ideal DCG is 0, as sklearn; log base cancels);
  `pair_acc`, the fraction of ordered label pairs ψ_i > ψ_j in the batch with s_i > s_j;
  `mean_score_gap`, the mean of s_i − s_j over those pairs.
  """
  checks.check_positive("beta", beta)
  checks.check_choice("objective", objective, OBJECTIVES)
  checks.check_nonnegative("hinge_margin", hinge_margin)
  checks.check_same_shape(2, policy_logps=policy_logps, ref_logps=ref_logps, labels=labels)
  if list_mask is None:
    mask = jnp.ones(jnp.shape(policy_logps), bool)
  else:
    checks.check_same_shape(2, policy_logps=policy_logps, list_mask=list_mask)
    mask = jnp.asarray(list_mask, bool)
  policy, ref, labels = checks.as_compute(policy_logps, ref_logps, labels)
  # Sanitise padding before any nonlinear op: there a zero cotangent times a NaN/inf derivative of
  # the padding value would still be NaN. (The affine map to s passes a zero cotangent through.)
  s = jnp.where(mask, beta * (policy - ref), 0)
  labels = jnp.where(mask, labels, 0)

  diff = s[..., :, None] - s[..., None, :]  # [b, i, j] = s_i − s_j
  pairs = mask[..., :, None] & mask[..., None, :] & (labels[..., :, None] > labels[..., None, :])

  def pair_sum(x):
    return jnp.sum(jnp.where(pairs, x, 0), axis=(-2, -1))

  if objective == "pair_logistic":
    per_prompt = pair_sum(jax.nn.softplus(-diff))
  elif objective == "pair_hinge":
    per_prompt = pair_sum(jax.nn.relu(hinge_margin - diff))
  elif objective == "lambda":
    per_prompt = pair_sum(lambda_weights(s, labels, mask) * jax.nn.softplus(-diff))
  elif objective == "list_mle":
    per_prompt = _list_mle(s, labels, mask)
  elif objective == "softmax_ce":
    per_prompt = _softmax_ce(s, labels, mask)
  elif objective == "point_mse":
    per_prompt = jnp.sum(jnp.where(mask, (s - labels) ** 2, 0), axis=-1)
  else:  # point_sigmoid
    pointwise = labels * jax.nn.softplus(-s) + (1 - labels) * jax.nn.softplus(s)
    per_prompt = jnp.sum(jnp.where(mask, pointwise, 0), axis=-1)

  num_pairs = jnp.maximum(jnp.sum(pairs, dtype=s.dtype), 1)
  metrics = {
      "ndcg_at_k": jnp.mean(_ndcg(s, labels, mask)),
      "pair_acc": jnp.sum(pairs & (diff > 0), dtype=s.dtype) / num_pairs,
      "mean_score_gap": jnp.sum(jnp.where(pairs, diff, 0)) / num_pairs,
  }
  return checks.reduce_examples(per_prompt, reduction), checks.stop_metrics(metrics)


def _ndcg(s: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
  """Per-prompt NDCG@K = DCG(ranking by s) / DCG(ranking by ψ), discount 1/log2(1 + τ)."""
  gains = jnp.where(mask, _gains(labels), 0)

  def dcg(values):
    return jnp.sum(gains / jnp.log2(1 + _ranks(values, mask).astype(gains.dtype)), axis=-1)

  ideal = dcg(labels)  # ties in ψ have equal gains, so their order does not change the ideal DCG
  return jnp.where(ideal > 0, dcg(s) / jnp.where(ideal > 0, ideal, 1), 0)
