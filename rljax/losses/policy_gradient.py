"""Token-level policy-gradient surrogates for RL on language models: PPO-clip, GSPO, CISPO, REINFORCE.

Every loss takes right-padded `logp, old_logp: f[B, T]` (log π_θ and log π_old of the sampled
tokens), `advantages: f[B, T]` (or `f[B]`, broadcast over tokens) and `mask: bool[B, T]`, and
returns `(loss, metrics)`. With δ = logp − old_logp and r = exp(δ), the per-token loss ℓ_{i,t} is
reduced by `rljax.losses.aggregation.aggregate` in mode `agg`; `metrics["loss_numerator"]` and
`metrics["loss_denominator"]` are its two parts, so micro-batches accumulate exactly (sum both,
divide once).

Only `logp` receives gradients. `old_logp`, `advantages` and every clip decision are constants of
the surrogate, so ∂loss/∂logp_{i,t} = w_{i,t}·∂ℓ_{i,t}/∂logp_{i,t}, with w the aggregation weight of
the token. Padding is replaced by 0 before any arithmetic, so NaN/−inf log-probs outside the mask
reach neither the value nor the gradient. An all-empty mask gives loss 0 with zero gradients.

Metrics are stop-gradient masked token means: `clipfrac` (fraction of tokens whose clipped branch
is active), `approx_kl` (mean −δ, verl's `ppo_kl`), `ratio_mean` (mean importance weight).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.losses import aggregation
from rljax.ops.reductions import masked_mean
from rljax.losses.registry import register

Metrics = dict[str, jax.Array]


def policy_inputs(logp, old_logp, advantages, mask, agg):
  """Validates shapes and `agg`; returns compute-dtype `(logp, old_logp, adv, mask)`, padding zeroed.

  `old_logp` and `adv` come back stop-gradient; `adv` is `f[B, T]` even when given as `f[B]`.
  """
  checks.check_choice("agg", agg, aggregation.MODES)
  batch, length = checks.check_same_shape(2, logp=logp, old_logp=old_logp, mask=mask)
  return _token_arrays(logp, old_logp, advantages, mask, batch, length)


def _token_arrays(logp, old_logp, advantages, mask, batch, length):
  adv_shape = jnp.shape(advantages)
  if adv_shape == (batch,):
    advantages = jnp.broadcast_to(jnp.asarray(advantages)[:, None], (batch, length))
  elif adv_shape != (batch, length):
    raise ValueError(
        f"`advantages` has shape {adv_shape}, expected ({batch}, {length}) (per token) or ({batch},) (per sequence)."
    )
  mask = jnp.asarray(mask, bool)
  logp, old_logp, adv = checks.as_compute(logp, old_logp, advantages)
  old_logp = jax.lax.stop_gradient(old_logp)
  adv = jax.lax.stop_gradient(adv)
  # where(), not a product: a NaN or -inf log-prob in padding would poison exp() and the gradient.
  zero = lambda x: jnp.where(mask, x, 0)
  return zero(logp), zero(old_logp), zero(adv), mask


def _log_ratio(logp, old_logp, clamp):
  delta = logp - old_logp
  if clamp is not None:
    delta = jnp.clip(delta, -clamp, clamp)
  return delta


def clipped_surrogate(ratio, adv, clip_low, clip_high) -> tuple[jax.Array, jax.Array]:
  """PPO's pessimistic surrogate max(−A·r, −A·clip(r, 1−ε_l, 1+ε_h)) and where the clipped branch wins."""
  unclipped = -adv * ratio
  clipped = -adv * jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high)
  is_clipped = clipped > unclipped
  # where(), not maximum(): on a tie maximum() splits the gradient 1/2–1/2 between the branches,
  # which would halve it at r = 1 ± ε. The clipped branch only wins strictly outside the range,
  # where clip() passes no gradient.
  return jnp.where(is_clipped, clipped, unclipped), is_clipped


@register("ppo_clip", kind="policy", reads=("logp", "old_logp", "advantages", "mask"))
def ppo_clip_loss(
    logp: jax.Array,
    old_logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
    agg: str = "token-mean",
    log_ratio_clamp: float | None = None,
) -> tuple[jax.Array, Metrics]:
  """PPO clipped surrogate (Schulman et al. 2017) with asymmetric and dual clipping.

      r = exp(δ),  δ = logp − old_logp   (δ clamped to ±`log_ratio_clamp` first, when given)
      ℓ = max(−A·r, −A·clip(r, 1 − ε_l, 1 + ε_h))
      ℓ ← min(ℓ, −c·A)  where A < 0,    c = `dual_clip` > 1 (Ye et al. 2020, "Mastering Complex
                                          Control in MOBA Games with Deep RL", dual-clip PPO)

  Gradient: −A·r·∂logp on tokens where the unclipped branch is active, 0 where clipping (or the
  dual cap, or the log-ratio clamp) is active: r > 1+ε_h with A > 0, r < 1−ε_l with A < 0, and
  r > c with A < 0. ε_h > ε_l is DAPO's "clip-higher" (Yu et al. 2025, ε_h = 0.28);
  `clip_low = clip_high = jnp.inf` is the unclipped importance-weighted PG −A·r.

  Defaults follow TRL's GRPO and OpenRLHF: no dual clip and no log-ratio clamp, so the per-token
  loss is TRL's `-min(r·A, clamp(r, 1-ε_l, 1+ε_h)·A)`. verl's `compute_policy_loss_vanilla`
  always applies the dual clip with c = 3 and clamps δ to ±20: pass `dual_clip=3.0,
  log_ratio_clamp=20.0` to reproduce it. TRL's `delta` (INTELLECT-2) gives the same loss as
  `dual_clip = delta` whenever delta ≥ 1 + ε_h.

  Args:
    logp: `f[B, T]` log π_θ of the sampled tokens; the only input receiving gradients.
    old_logp: `f[B, T]` log π_old (behaviour policy); stop-gradient.
    advantages: `f[B, T]`, or `f[B]` broadcast over tokens; stop-gradient.
    mask: `bool[B, T]` response-token mask.
    clip_low, clip_high: ε_l, ε_h ≥ 0 (`jnp.inf` disables a side).
    dual_clip: c > 1, or None (default) for no dual clip.
    agg: aggregation mode (`rljax.losses.aggregation.MODES`).
    log_ratio_clamp: clamp δ to [−v, v] before exp (verl: 20), or None (default, TRL).

  Metrics: `clipfrac` (ℓ² > ℓ¹, verl's `pg_clipfrac`), `clipfrac_lower` (dual cap active),
  `approx_kl` (mean −δ after the clamp), `ratio_mean`, `loss_numerator`, `loss_denominator`.
  """
  checks.check_clip("clip_low", clip_low)
  checks.check_clip("clip_high", clip_high)
  if dual_clip is not None:
    c = checks.concrete_value(dual_clip)
    if c is not None and not c > 1:
      raise ValueError(f"`dual_clip` must be > 1 (or None), got {c}.")
  checks.check_optional_positive("log_ratio_clamp", log_ratio_clamp)
  logp, old_logp, adv, mask = policy_inputs(logp, old_logp, advantages, mask, agg)

  delta = _log_ratio(logp, old_logp, log_ratio_clamp)
  ratio = jnp.exp(delta)
  loss_mat, is_clipped = clipped_surrogate(ratio, adv, clip_low, clip_high)
  if dual_clip is None:
    dual = jnp.zeros_like(mask)
  else:
    cap = -adv * dual_clip
    dual = (adv < 0) & (loss_mat > cap)
    loss_mat = jnp.where(dual, cap, loss_mat)

  loss, parts = aggregation.aggregate_with_parts(loss_mat, mask, agg)
  metrics = {
      "clipfrac": masked_mean(is_clipped.astype(jnp.float32), mask),
      "clipfrac_lower": masked_mean(dual.astype(jnp.float32), mask),
      "approx_kl": masked_mean(-delta, mask),
      "ratio_mean": masked_mean(ratio, mask),
      **parts,
  }
  return loss, checks.stop_metrics(metrics)


@register("gspo", kind="policy", reads=("logp", "old_logp", "advantages", "mask"))
def gspo_loss(
    logp: jax.Array,
    old_logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    *,
    clip_low: float = 3e-4,
    clip_high: float = 4e-4,
    agg: str = "seq-mean-token-mean",
    max_log_ratio: float | None = 10.0,
) -> tuple[jax.Array, Metrics]:
  """GSPO, Group Sequence Policy Optimization (Zheng et al. 2025, Qwen, arXiv 2507.18071).

      log s_i = (1/|y_i|)·Σ_t m_{i,t}·δ_{i,t}                  (length-normalised sequence log-ratio)
      log s_{i,t} = sg[log s_i] + logp_{i,t} − sg[logp_{i,t}]   (value s_i, gradient through token t)
      ℓ_{i,t} = max(−A·s_{i,t}, −A·clip(s_{i,t}, 1 − ε_l, 1 + ε_h))

  Every token of a sequence has the same ratio value s_i, so the whole sequence is clipped or
  not; unclipped tokens get ∂ℓ/∂logp_{i,t} = −A_{i,t}·s_i. With `agg="seq-mean-token-mean"` (the
  default, as in verl and OpenRLHF) this is the gradient of TRL's directly differentiated
  exp(mean_t δ), −A_i·s_i/(|y_i|·S) per token. TRL's default `loss_type="dapo"` aggregates by
  token-mean instead. With one token per sequence GSPO is `ppo_clip_loss`.

  `max_log_ratio` clamps log s_{i,t} from above before exp, as verl does (at 10): the value is
  then capped at e^10 and such tokens get no gradient. It only binds when the mean log-ratio
  exceeds 10, i.e. far outside any trust region; None reproduces TRL/OpenRLHF (no clamp).

  Args:
    logp, old_logp, advantages, mask: as in `ppo_clip_loss`; only `logp` receives gradients.
    clip_low, clip_high: ε_l, ε_h ≥ 0 on the sequence ratio (paper: 3e-4, 4e-4).
    agg: aggregation mode (default "seq-mean-token-mean").
    max_log_ratio: upper clamp of log s (default 10.0, verl), or None.

  Metrics: `clipfrac`, `approx_kl` (token mean −δ), `ratio_mean` (token mean of s_{i,t}),
  `loss_numerator`, `loss_denominator`.
  """
  checks.check_clip("clip_low", clip_low)
  checks.check_clip("clip_high", clip_high)
  checks.check_optional_positive("max_log_ratio", max_log_ratio)
  logp, old_logp, adv, mask = policy_inputs(logp, old_logp, advantages, mask, agg)

  delta = logp - old_logp
  lengths = jnp.sum(mask, axis=-1, dtype=delta.dtype)
  log_seq = jnp.sum(delta, axis=-1) / jnp.maximum(lengths, 1)
  sg = jax.lax.stop_gradient
  log_tok = sg(log_seq)[:, None] + (logp - sg(logp))
  if max_log_ratio is not None:
    log_tok = jnp.minimum(log_tok, max_log_ratio)
  ratio = jnp.exp(log_tok)
  loss_mat, is_clipped = clipped_surrogate(ratio, adv, clip_low, clip_high)

  loss, parts = aggregation.aggregate_with_parts(loss_mat, mask, agg)
  metrics = {
      "clipfrac": masked_mean(is_clipped.astype(jnp.float32), mask),
      "approx_kl": masked_mean(-delta, mask),
      "ratio_mean": masked_mean(ratio, mask),
      **parts,
  }
  return loss, checks.stop_metrics(metrics)


@register("cispo", kind="policy", reads=("logp", "old_logp", "advantages", "mask"))
def cispo_loss(
    logp: jax.Array,
    old_logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    *,
    clip_low: float | None = None,
    clip_high: float | None = 4.0,
    agg: str = "token-mean",
    log_ratio_clamp: float | None = None,
) -> tuple[jax.Array, Metrics]:
  """CISPO, clipped importance-sampling policy optimisation (MiniMax-M1, MiniMax 2025, arXiv 2506.13585).

      ℓ = −sg[clip(r, 1 − ε_l, 1 + ε_h)]·A·logp,    r = exp(δ)

  The importance weight is clipped and detached instead of the update being dropped, so every
  token keeps a REINFORCE gradient −clip(r)·A·∂logp, unlike PPO-clip where clipped tokens get
  none. The value is a surrogate: only its gradient is meaningful.

  Clip ranges differ between peers, so both are expressible:
  * Default (the paper, TRL): upper cap only. The paper disables the lower bound and tunes the
    upper one; TRL caps `min(r, epsilon_high)` at an absolute `epsilon_high`, 5.0 suggested
    (ScaleRL). Here `clip_low=None` (no lower clip) and `clip_high=4.0`, i.e. r ≤ 5; TRL's
    absolute cap ε maps to `clip_high = ε − 1` (caps below 1 are not supported).
  * verl `compute_policy_loss_cispo`: two-sided clip(r, 1 − ε_l, 1 + ε_h) with its PPO clip
    ratios (0.2/0.2 by default) and δ clamped to ±20: `clip_low=0.2, clip_high=0.2,
    log_ratio_clamp=20.0`.

  Args:
    logp, old_logp, advantages, mask: as in `ppo_clip_loss`; only `logp` receives gradients.
    clip_low: ε_l ≥ 0, or None (default) for no lower bound.
    clip_high: ε_h ≥ 0 (default 4.0, i.e. r ≤ 5), or None for no upper bound.
    agg: aggregation mode (default "token-mean", as in verl and TRL).
    log_ratio_clamp: clamp δ to [−v, v] before exp (verl: 20), or None (default).

  Metrics: `clipfrac` (weight clipped), `approx_kl`, `ratio_mean` (unclipped r),
  `loss_numerator`, `loss_denominator`.
  """
  checks.check_clip("clip_low", clip_low, allow_none=True)
  checks.check_clip("clip_high", clip_high, allow_none=True)
  checks.check_optional_positive("log_ratio_clamp", log_ratio_clamp)
  logp, old_logp, adv, mask = policy_inputs(logp, old_logp, advantages, mask, agg)

  delta = _log_ratio(logp, old_logp, log_ratio_clamp)
  ratio = jax.lax.stop_gradient(jnp.exp(delta))
  lo = -jnp.inf if clip_low is None else 1.0 - clip_low
  hi = jnp.inf if clip_high is None else 1.0 + clip_high
  weight = jnp.clip(ratio, lo, hi)
  loss_mat = -weight * adv * logp

  loss, parts = aggregation.aggregate_with_parts(loss_mat, mask, agg)
  metrics = {
      "clipfrac": masked_mean(((ratio < lo) | (ratio > hi)).astype(jnp.float32), mask),
      "approx_kl": masked_mean(-delta, mask),
      "ratio_mean": masked_mean(ratio, mask),
      **parts,
  }
  return loss, checks.stop_metrics(metrics)


@register("reinforce", kind="policy", reads=("logp", "advantages", "mask"))
def reinforce_loss(
    logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    *,
    agg: str = "token-mean",
) -> tuple[jax.Array, Metrics]:
  """On-policy REINFORCE / vanilla policy gradient (Williams 1992):  ℓ = −A·logp.

  ∂ℓ/∂logp = −A: the plain score-function gradient that the ratio losses reduce to at
  logp = old_logp. verl's `gpg` loss; its `compute_policy_loss_reinforce` (bypass mode) is the
  same surrogate but defaults to "seq-mean-token-sum" aggregation, here "token-mean" as for the
  other losses of this module.

  Args:
    logp: `f[B, T]`; the only input receiving gradients.
    advantages: `f[B, T]` or `f[B]`; stop-gradient.
    mask: `bool[B, T]`.
    agg: aggregation mode.

  Metrics: `logp_mean` (masked token mean), `loss_numerator`, `loss_denominator`.
  """
  checks.check_choice("agg", agg, aggregation.MODES)
  batch, length = checks.check_same_shape(2, logp=logp, mask=mask)
  logp, _, adv, mask = _token_arrays(logp, logp, advantages, mask, batch, length)
  loss, parts = aggregation.aggregate_with_parts(-adv * logp, mask, agg)
  metrics = {"logp_mean": masked_mean(logp, mask), **parts}
  return loss, checks.stop_metrics(metrics)
