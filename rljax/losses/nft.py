"""Negative-aware Fine-Tuning (NFT): maximum likelihood on verifier-labelled self-generated answers.

Chen, Zheng, Zhu, Chen, Zhao, Wang, Chen, Liu, Zhu & Zhu (NVIDIA/Tsinghua), "Bridging Supervised
Learning and Reinforcement Learning in Math Reasoning", 2025 (arXiv 2505.18116). Reference:
NVlabs/NFT `dp_actor.py`.

Model the rollout policy of a question as a mixture π_old = r̂·π⁺ + (1 − r̂)·π⁻ with r̂ the group
accuracy (clipped to [0.02, 0.98]), and set π⁺ := π_θ. The *implicit negative policy* is then
π⁻_θ = (π_old − r̂·π_θ)/(1 − r̂), so negatives can be fitted by maximum likelihood under π⁻_θ. With
R_t = exp(min(logp_t − old_logp_t, 10)) and reward R_i ∈ [0, 1] (binary in the paper):

    ℓ⁺_t = −log clampg(R_t, ε⁺)                          (correct answers)
    ℓ⁻_t = −log clampg((1 − r̂·R_t)/(1 − r̂), ε⁻)         (incorrect answers)
    L    = aggregate(ω(r̂_i) · [R_i·ℓ⁺ + λ⁻·(1 − R_i)·ℓ⁻], m)

clampg(x, ε) has the value max(x, ε) and the gradient of x (gradient-preserving clamp), so the
per-token gradient is bounded by 1/ε. ω is 1 ("none"), 1 − r̂ ("one_minus_r", the released
scripts' `normalize=1`) or sqrt((1 − r̂)/r̂) ("grpo", `normalize=2`).

On-policy equivalence (θ = θ_old, clamps inactive): ∇ℓ⁺ = −∇logp and ∇ℓ⁻ = r̂/(1 − r̂)·∇logp, so
"grpo" weighting with λ⁻ = 1 gives exactly the GRPO gradient with *population*-std advantages
A⁺ = sqrt((1 − r̂)/r̂), A⁻ = −sqrt(r̂/(1 − r̂)) (no ε in the std), and "one_minus_r" exactly the
Dr.GRPO (mean-only) gradient, under the same aggregation. λ⁻ = 0 is ratio-weighted RFT. Groups with
r̂ ∈ {0, 1} carry no signal; filter them (DAPO dynamic sampling) as the reference does.

Gradients flow only into `logp`: old log-probs, rewards and group accuracies are constants.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.losses import aggregation
from rljax.losses.aggregation import aggregate_parts
from rljax.ops.reductions import group_mean
from rljax.losses.registry import register

Metrics = dict[str, jax.Array]

WEIGHTINGS = ("none", "one_minus_r", "grpo")
RATIO_TYPES = ("token", "sequence")


def _clamp_preserving_grad(x: jax.Array, lo) -> jax.Array:
  return x + jax.lax.stop_gradient(jnp.maximum(x, lo) - x)


def _check_acc_clip(acc_clip) -> tuple[float, float]:
  lo, hi = acc_clip
  if not 0.0 < lo <= hi < 1.0:
    raise ValueError(f"`acc_clip` must satisfy 0 < low <= high < 1, got {acc_clip}.")
  return lo, hi


def _log_ratio(logp, old_logp, mask, ratio_type, log_ratio_clamp):
  """Per-token log R_t (token) or the per-response Σ_t m·δ broadcast over tokens (sequence)."""
  delta = jnp.where(mask, logp - old_logp, 0)
  if ratio_type == "sequence":
    delta = jnp.broadcast_to(jnp.sum(delta, axis=-1, keepdims=True), delta.shape)
  # Upper clamp only, as in the reference: it stops exp overflow; a large negative δ is harmless.
  return delta if log_ratio_clamp is None else jnp.minimum(delta, log_ratio_clamp)


def implicit_negative_logratio(
    logp: jax.Array, old_logp: jax.Array, group_acc: jax.Array, *, acc_clip=(0.02, 0.98)
) -> jax.Array:
  """log π⁻_θ/π_old = log[(1 − r̂·R_t)/(1 − r̂)] per token, `f[B, T]`; −inf where π⁻_θ ≤ 0.

  For analysis: it reaches −inf once the policy puts more than 1/r̂ times the behaviour mass on a
  token, which is where NFT's negative clamp takes over.
  """
  (batch, _) = checks.check_same_shape(2, logp=logp, old_logp=old_logp)
  if jnp.shape(group_acc) != (batch,):
    raise ValueError(f"`group_acc` has shape {jnp.shape(group_acc)}, expected ({batch},).")
  lo, hi = _check_acc_clip(acc_clip)
  lp, old, acc = checks.as_compute(logp, old_logp, group_acc)
  acc = jnp.clip(acc, lo, hi)[:, None]
  proxy = (1 - acc * jnp.exp(lp - old)) / (1 - acc)
  return jnp.where(proxy > 0, jnp.log(jnp.where(proxy > 0, proxy, 1)), -jnp.inf)


def _nft_call(fn, b, ctx):
  n = ctx["group_size"]
  group_acc = jnp.repeat(group_mean(b["rewards"], n), n)
  return fn(b["logp"], b["old_logp"], b["mask"], b["rewards"], group_acc)


@register("nft", kind="policy", reads=("logp", "old_logp", "mask", "rewards"), call=_nft_call)
def nft_loss(
    logp: jax.Array,
    old_logp: jax.Array,
    mask: jax.Array,
    rewards: jax.Array,
    group_acc: jax.Array,
    *,
    weighting: str = "one_minus_r",
    neg_weight: float = 1.0,
    eps_pos: float = 0.0,
    eps_neg: float = 1.0,
    acc_clip: tuple[float, float] = (0.02, 0.98),
    ratio_type: str = "token",
    log_ratio_clamp: float | None = 10.0,
    agg: str = "seq-mean-token-sum-norm",
    norm: float | None = None,
) -> tuple[jax.Array, Metrics]:
  """NFT loss (formulas and the on-policy GRPO equivalence in the module docstring).

  Defaults follow the released NVlabs/NFT 7B/32B scripts: `normalize=1` ("one_minus_r"),
  `neg_weight=1`, `clamp_negative=1.0`, `clamp_positive=0.0`, token ratio, log-ratio clamp 10. The
  reference divides a token sum by a constant 1000; `agg="seq-mean-token-sum-norm"` is the same
  kind of constant normaliser (pass `norm`). The reference falls back to PPO for λ⁻ < 0; call
  `ppo_clip_loss` for that instead (here λ⁻ < 0 raises).

  Args:
    logp: `f[B, T]` current log-probs; receives gradients.
    old_logp: `f[B, T]` rollout-policy log-probs.
    mask: `bool[B, T]` response-token mask.
    rewards: `f[B]` R_i ∈ [0, 1] (1 = correct); fractional values mix the two terms.
    group_acc: `f[B]` r̂ of each response's question (group mean reward, broadcast per response).
    weighting: ω, "none", "one_minus_r" (default) or "grpo".
    neg_weight: λ⁻ ≥ 0 (1 = NFT, 0 = RFT).
    eps_pos, eps_neg: clamp floors ε⁺ ≥ 0 and ε⁻ > 0.
    acc_clip: (low, high) clip of r̂, 0 < low ≤ high < 1.
    ratio_type: "token" or "sequence" (R = exp(Σ_t m·δ), one value per response, broadcast over its
      tokens; with `agg="seq-mean-token-mean"` each response then counts once).
    log_ratio_clamp: upper clamp of log R (None: none).
    agg, norm: aggregation mode and its constant normaliser (`rljax.losses.aggregation`).

  Metrics: `pos_loss` and `neg_loss` (the two terms' shares of the loss), `frac_neg_clamped`
  (fraction of incorrect-answer tokens with the ε⁻ clamp active), `implicit_neg_ratio_min` (minimum
  of (1 − r̂R)/(1 − r̂) over incorrect-answer tokens; 1, its on-policy value, when there are none),
  `loss_numerator`, `loss_denominator`.
  """
  checks.check_choice("agg", agg, aggregation.MODES)
  checks.check_choice("weighting", weighting, WEIGHTINGS)
  checks.check_choice("ratio_type", ratio_type, RATIO_TYPES)
  checks.check_nonnegative("neg_weight", neg_weight)
  checks.check_nonnegative("eps_pos", eps_pos)
  checks.check_positive("eps_neg", eps_neg)
  if log_ratio_clamp is not None:
    checks.check_positive("log_ratio_clamp", log_ratio_clamp)
  lo, hi = _check_acc_clip(acc_clip)
  (batch, _) = checks.check_same_shape(2, logp=logp, old_logp=old_logp, mask=mask)
  for name, arr in (("rewards", rewards), ("group_acc", group_acc)):
    if jnp.shape(arr) != (batch,):
      raise ValueError(f"`{name}` has shape {jnp.shape(arr)}, expected ({batch},).")
  mask = jnp.asarray(mask, bool)
  lp, old, r, acc = checks.as_compute(
      logp, jax.lax.stop_gradient(old_logp), jax.lax.stop_gradient(rewards), jax.lax.stop_gradient(group_acc)
  )
  acc = jnp.clip(acc, lo, hi)
  ratio = jnp.exp(_log_ratio(lp, old, mask, ratio_type, log_ratio_clamp))
  proxy = (1 - acc[:, None] * ratio) / (1 - acc[:, None])
  pos_tok = -jnp.log(_clamp_preserving_grad(ratio, eps_pos))
  neg_tok = -jnp.log(_clamp_preserving_grad(proxy, eps_neg))
  if weighting == "none":
    omega = jnp.ones_like(acc)
  elif weighting == "one_minus_r":
    omega = 1 - acc
  else:
    omega = jnp.sqrt((1 - acc) / acc)
  pos_part = (omega * r)[:, None] * pos_tok
  neg_part = (omega * neg_weight * (1 - r))[:, None] * neg_tok
  num, den = aggregate_parts(pos_part + neg_part, mask, agg, norm=norm)
  safe_den = jnp.where(den > 0, den, 1)
  pos_num, _ = aggregate_parts(pos_part, mask, agg, norm=norm)
  neg_num, _ = aggregate_parts(neg_part, mask, agg, norm=norm)

  neg_tokens = mask & (r < 1)[:, None]
  n_neg = jnp.sum(neg_tokens, dtype=lp.dtype)
  metrics = {
      "pos_loss": pos_num / safe_den,
      "neg_loss": neg_num / safe_den,
      "frac_neg_clamped": jnp.sum(neg_tokens & (proxy < eps_neg), dtype=lp.dtype) / jnp.maximum(n_neg, 1),
      "implicit_neg_ratio_min": jnp.where(n_neg > 0, jnp.min(jnp.where(neg_tokens, proxy, jnp.inf)), 1.0),
      "loss_numerator": num,
      "loss_denominator": den,
  }
  return num / safe_den, checks.stop_metrics(metrics)
