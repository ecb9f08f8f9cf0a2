"""Entropy dynamics of policy-gradient RL and the covariance-based losses Clip-Cov and KL-Cov.

Cui, Zhang, Chen, Yuan, … Ding, "The Entropy Mechanism of Reinforcement Learning for Reasoning
Language Models", 2025 (arXiv 2505.22617). For a softmax policy with logits z, a logit step Δz
changes the entropy by, to first order,

    ΔH ≈ −Cov_{a~π}(log π(a), Δz_a)                                (`predicted_entropy_change`)

so natural PG (Δz = η·A) lowers the entropy exactly when high-probability actions have
positive advantage. Over a batch the per-token analogue is

    Cov_i = (A_i − Ā)·(logp_i − logp̄),   Ā, logp̄ masked means over the N valid tokens
                                                                   (`token_covariance`)

and a few tokens with very large Cov_i drive the entropy collapse. Clip-Cov detaches a random
few of them from the PPO gradient; KL-Cov puts a |δ| penalty on the top few. Without such
intervention the validation reward follows R ≈ −a·e^H + b (`entropy_performance_fit`).

Both losses choose k = max(⌊ratio·N⌋, 1) tokens with N the number of valid tokens, as verl does.
N is data-dependent while jit needs static shapes, so a static bound k_max (from the padded size
B·T) sizes `lax.top_k`, and only the first k of the ranked tokens are kept. For a concrete
(Python) ratio, k is computed with verl's float64 rounding of ratio·N exactly; for a traced ratio
it is ⌊ratio·N⌋ in the compute dtype and k_max = B·T.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rljax import checks
from rljax.losses import aggregation
from rljax.losses.policy_gradient import clipped_surrogate, policy_inputs
from rljax.ops.reductions import masked_mean
from rljax.losses.registry import register

Metrics = dict[str, jax.Array]


def _covariance(logp, adv, mask):
  """Cov_i over valid tokens of padding-zeroed inputs; stop-gradient, 0 outside the mask."""
  logp = jax.lax.stop_gradient(logp)
  adv = jax.lax.stop_gradient(adv)
  cov = (adv - masked_mean(adv, mask)) * (logp - masked_mean(logp, mask))
  return jnp.where(mask, cov, 0)


def token_covariance(logp: jax.Array, advantages: jax.Array, mask: jax.Array) -> jax.Array:
  """Per-token covariance Cov_i = (A_i − Ā)·(logp_i − logp̄), `f[B, T]`, 0 outside `mask`.

  Ā and logp̄ are masked means over all valid tokens of the batch (verl `clip_cov`/`kl_cov`).
  `logp` is detached: the result is a statistic and passes no gradient. Its masked mean is the
  batch covariance of log-probability and advantage, whose sign predicts the entropy change.

  Args:
    logp: `f[B, T]` log π of the sampled tokens.
    advantages: `f[B, T]`, or `f[B]` broadcast over tokens.
    mask: `bool[B, T]`.
  """
  logp, _, adv, mask = policy_inputs(logp, logp, advantages, mask, "token-mean")
  return _covariance(logp, adv, mask)


def _check_ratio(name: str, value) -> None:
  checks.check_positive(name, value)
  checks.check_in_range(name, value, 0.0, 1.0)


def _dynamic_k(ratio, n_valid: jax.Array, size: int) -> tuple[jax.Array, int]:
  """k = max(⌊ratio·N⌋, 1) for the traced valid count N, and a static bound k_max ≥ k (≤ size)."""
  v = checks.concrete_value(ratio)
  if v is None:
    k = jnp.maximum(jnp.floor(ratio * n_valid), 1).astype(jnp.int32)
    return k, size
  # verl computes int(ratio * N) in float64 on the host. k(N) is a non-decreasing step function
  # of N with k_max − 1 breakpoints (the smallest N with ⌊v·N⌋ ≥ j), so exact float64 rounding costs
  # a constant of that length, not a table over all B·T counts.
  floors = np.floor(v * np.arange(size + 1, dtype=np.float64))
  k_max = max(int(floors[-1]), 1)
  breaks = np.searchsorted(floors, np.arange(2, k_max + 1), side="left").astype(np.int32)
  k = 1 + jnp.sum(n_valid >= jnp.asarray(breaks), dtype=jnp.int32)
  return k, min(k_max, size)


def _select_top(scores: jax.Array, eligible: jax.Array, k: jax.Array, k_max: int) -> jax.Array:
  """Mask of the (at most) k highest-scoring eligible entries of flat `scores`; ties by lower index."""
  size = scores.shape[0]
  if k_max == 0:
    return jnp.zeros(size, bool)
  _, idx = jax.lax.top_k(scores, k_max)
  take = (jnp.arange(k_max) < k) & eligible[idx]
  return jnp.zeros(size, bool).at[idx].set(take)


def _cov_metrics(cov, mask, selected, k):
  n_valid = jnp.sum(mask)
  n_selected = jnp.sum(selected, dtype=cov.dtype)
  return {
      "cov_mean": masked_mean(cov, mask),
      "cov_max": jnp.where(n_valid > 0, jnp.max(jnp.where(mask, cov, -jnp.inf)), 0),
      "frac_selected": n_selected / jnp.maximum(n_valid, 1),
      "num_selected": n_selected,
      "k": k.astype(cov.dtype),
  }


def _clip_cov_call(fn, b, ctx):
  return fn(b["logp"], b["old_logp"], b["advantages"], b["mask"], key=b["key"])


@register("clip_cov", kind="policy", reads=("logp", "old_logp", "advantages", "mask", "key"), call=_clip_cov_call)
def clip_cov_loss(
    logp: jax.Array,
    old_logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    *,
    key: jax.Array,
    clip_ratio: float = 2e-4,
    cov_lb: float = 1.0,
    cov_ub: float = 5.0,
    clip_low: float = 1.0,
    clip_high: float = 1.0,
    agg: str = "token-mean",
) -> tuple[jax.Array, Metrics]:
  """Clip-Cov (Cui et al. 2025): PPO-clip with a few high-covariance tokens detached.

      ℓ_i = max(−A_i·r_i, −A_i·clip(r_i, 1 − ε_l, 1 + ε_h))             (`ppo_clip_loss`)
      C   = {valid i not clipped by PPO with ω_lb < Cov_i < ω_ub}
      S   = k tokens drawn uniformly without replacement from C (all of C if |C| < k),
            k = max(⌊clip_ratio·N⌋, 1),  N = number of valid tokens
      ℓ_i ← 0 for i ∈ S

  As in verl (`compute_policy_loss_clip_cov`, `corr = 0`), a selected token's loss is set to 0:
  it passes no gradient and still counts in the denominator of the aggregation. With no
  candidate the loss and its gradient are exactly those of `ppo_clip_loss` (no dual clip, no
  log-ratio clamp, as in verl's clip_cov). The draw uses `key` (a uniformly random permutation
  ranks the candidates); it is uniform over subsets like verl's `torch.randperm`, not the same
  subset.

  Args:
    logp, old_logp, advantages, mask: as in `ppo_clip_loss`; only `logp` receives gradients.
    key: PRNG key for the draw.
    clip_ratio: fraction r ∈ (0, 1] of valid tokens to detach (paper/verl: 2e-4).
    cov_lb, cov_ub: ω_lb < ω_ub, the covariance band of candidates (1.0, 5.0).
    clip_low, clip_high: PPO ε_l, ε_h ≥ 0. Default 1.0 and 1.0, the authors' Clip-Cov recipes
      (`recipe/dapo/{7b,32b}_clip_cov.sh`: clip_ratio_low = clip_ratio_high = 1), so the ratio is only
      clipped above 2 for A > 0 (and never for A < 0, as r ≥ 0); their baseline and KL-Cov recipes use 0.2.
    agg: aggregation mode (default "token-mean", the paper's).

  Metrics: `clipfrac` (PPO clipping, ℓ² > ℓ¹), `frac_selected` (detached tokens / N; verl logs
  this as `pg_clipfrac`), `num_selected`, `k`, `cov_mean`, `cov_max` (over valid tokens),
  `approx_kl`, `loss_numerator`, `loss_denominator`.
  """
  if key is None:
    raise ValueError("`key` must be a PRNG key (jax.random.key), got None.")
  _check_ratio("clip_ratio", clip_ratio)
  lb, ub = checks.concrete_value(cov_lb), checks.concrete_value(cov_ub)
  if lb is not None and ub is not None and not lb < ub:
    raise ValueError(f"`cov_lb` must be < `cov_ub`, got cov_lb={lb}, cov_ub={ub}.")
  checks.check_clip("clip_low", clip_low)
  checks.check_clip("clip_high", clip_high)
  logp, old_logp, adv, mask = policy_inputs(logp, old_logp, advantages, mask, agg)

  delta = logp - old_logp
  loss_mat, is_clipped = clipped_surrogate(jnp.exp(delta), adv, clip_low, clip_high)
  cov = _covariance(logp, adv, mask)
  candidates = mask & ~is_clipped & (cov > cov_lb) & (cov < cov_ub)
  k, k_max = _dynamic_k(clip_ratio, jnp.sum(mask, dtype=jnp.int32), mask.size)
  # Distinct random ranks make "the first k by rank" a uniform draw without replacement.
  ranks = jax.random.permutation(key, mask.size).astype(jnp.int32)
  flat_candidates = candidates.reshape(-1)
  scores = jnp.where(flat_candidates, ranks, -1)
  selected = _select_top(scores, flat_candidates, k, k_max).reshape(mask.shape)
  loss_mat = jnp.where(selected, 0, loss_mat)

  loss, parts = aggregation.aggregate_with_parts(loss_mat, mask, agg)
  metrics = {
      "clipfrac": masked_mean(is_clipped.astype(jnp.float32), mask),
      **_cov_metrics(cov, mask, selected, k),
      "approx_kl": masked_mean(-delta, mask),
      **parts,
  }
  return loss, checks.stop_metrics(metrics)


@register("kl_cov", kind="policy", reads=("logp", "old_logp", "advantages", "mask"))
def kl_cov_loss(
    logp: jax.Array,
    old_logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    *,
    kl_ratio: float = 2e-3,
    kl_coef: float = 1.0,
    agg: str = "token-mean",
) -> tuple[jax.Array, Metrics]:
  """KL-Cov (Cui et al. 2025): unclipped surrogate plus |δ| on the top-k covariance tokens.

      ℓ_i = −A_i·r_i + β·|logp_i − old_logp_i|·1[i ∈ top-k of Cov],   k = max(⌊κ·N⌋, 1)

  with N the number of valid tokens, κ = `kl_ratio` and β = `kl_coef`. There is no ratio
  clipping at all: the penalty alone keeps the high-covariance tokens near π_old. The selection
  is deterministic; ties in Cov go to the lower flat index (verl's `torch.topk` leaves them
  unspecified). The |δ| gradient is β·sign(δ), 0 at δ = 0 as in torch (jnp.abs would give β).

  Defaults: κ = 2e-3 and β = 1 (the paper's 7B recipe); verl's code falls back to κ = 2e-4
  (the paper's 32B value) when `kl_cov_ratio` is unset.

  Args:
    logp, old_logp, advantages, mask: as in `ppo_clip_loss`; only `logp` receives gradients.
    kl_ratio: κ ∈ (0, 1].
    kl_coef: β ≥ 0.
    agg: aggregation mode (default "token-mean").

  Metrics: `frac_selected`, `num_selected`, `k`, `cov_mean`, `cov_max`, `clipfrac` (always 0,
  kept so every policy loss logs the same keys), `abs_kl` (mean |δ|, verl's `ppo_kl` here),
  `approx_kl`, `ratio_mean`, `loss_numerator`, `loss_denominator`.
  """
  _check_ratio("kl_ratio", kl_ratio)
  checks.check_nonnegative("kl_coef", kl_coef)
  logp, old_logp, adv, mask = policy_inputs(logp, old_logp, advantages, mask, agg)

  delta = logp - old_logp
  ratio = jnp.exp(delta)
  cov = _covariance(logp, adv, mask)
  k, k_max = _dynamic_k(kl_ratio, jnp.sum(mask, dtype=jnp.int32), mask.size)
  flat_mask = mask.reshape(-1)
  scores = jnp.where(flat_mask, cov.reshape(-1), -jnp.inf)
  selected = _select_top(scores, flat_mask, k, k_max).reshape(mask.shape)
  abs_delta = delta * jax.lax.stop_gradient(jnp.sign(delta))
  loss_mat = -adv * ratio + jnp.where(selected, kl_coef * abs_delta, 0)

  loss, parts = aggregation.aggregate_with_parts(loss_mat, mask, agg)
  metrics = {
      "clipfrac": jnp.zeros((), loss_mat.dtype),
      **_cov_metrics(cov, mask, selected, k),
      "abs_kl": masked_mean(jnp.abs(delta), mask),
      "approx_kl": masked_mean(-delta, mask),
      "ratio_mean": masked_mean(ratio, mask),
      **parts,
  }
  return loss, checks.stop_metrics(metrics)


def predicted_entropy_change(logits: jax.Array, delta_logits: jax.Array) -> jax.Array:
  """First-order entropy change of softmax(z) under a logit step Δz:  ΔH ≈ −Cov_{a~π}(log π_a, Δz_a).

  From ∂H/∂z_a = −π_a·(log π_a + H). The categorical axis is the last one; the result has the
  leading shape. Natural PG (Δz = η·A) gives −η·Cov_π(log π, A); exact tabular PG
  (Δz = η·π·A) gives −η·Cov_π(log π, π·A). A constant shift of Δz changes nothing.

  Args:
    logits: `f[..., K]` logits z (entries of −inf are actions with π = 0, which contribute 0).
    delta_logits: `f[..., K]` the step Δz.
  """
  checks.check_same_shape(logits=logits, delta_logits=delta_logits)
  if jnp.ndim(logits) < 1:
    raise ValueError(f"`logits` must have rank >= 1 (categories on the last axis), got shape {jnp.shape(logits)}.")
  z, dz = checks.as_compute(logits, delta_logits)
  log_pi = jax.nn.log_softmax(z, axis=-1)
  pi = jnp.exp(log_pi)
  # π = 0 (a logit of −inf) contributes nothing; where() keeps 0·(−inf) from becoming NaN.
  log_pi = jnp.where(pi > 0, log_pi, 0)
  dz = jnp.where(pi > 0, dz, 0)
  centred_log_pi = log_pi - jnp.sum(pi * log_pi, axis=-1, keepdims=True)
  centred_dz = dz - jnp.sum(pi * dz, axis=-1, keepdims=True)
  return -jnp.sum(pi * centred_log_pi * centred_dz, axis=-1)


def entropy_performance_fit(H: jax.Array, R: jax.Array) -> dict[str, jax.Array]:
  """Least-squares fit of the entropy–performance law R = −a·e^H + b (Cui et al. 2025).

  Linear least squares in (a, b) on the feature x = e^H, computed on centred data. Returns
  `a`, `b`, `ceiling` = b − a (the predicted R at H = 0, i.e. once entropy is exhausted) and
  `r2`, the coefficient of determination (1 for a perfect fit; 1 also when R is constant and
  fitted exactly). With constant H the slope is undetermined and set to 0 (a = 0, b = mean R).

  Args:
    H: `f[N]` mean token entropy of each checkpoint (nats), N ≥ 2.
    R: `f[N]` its reward or validation accuracy.
  """
  (n,) = checks.check_same_shape(1, H=H, R=R)
  if n < 2:
    raise ValueError(f"`H` must hold at least 2 points to fit 2 parameters, got {n}.")
  h, r = checks.as_compute(H, R)
  x = jnp.exp(h)
  x_mean, r_mean = jnp.mean(x), jnp.mean(r)
  xc, rc = x - x_mean, r - r_mean
  sxx = jnp.sum(xc * xc)
  slope = jnp.where(sxx > 0, jnp.sum(xc * rc) / jnp.where(sxx > 0, sxx, 1), 0)
  b = r_mean - slope * x_mean
  ss_res = jnp.sum((rc - slope * xc) ** 2)
  ss_tot = jnp.sum(rc * rc)
  r2 = jnp.where(ss_tot > 0, 1 - ss_res / jnp.where(ss_tot > 0, ss_tot, 1), jnp.where(ss_res > 0, 0.0, 1.0))
  a = -slope
  return {"a": a, "b": b, "ceiling": b - a, "r2": r2}
