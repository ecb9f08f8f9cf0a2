"""KDRL: GRPO on verifiable rewards plus on-policy reverse-KL distillation to a teacher.

Xu, Zhu, Deng, Li, Hou, Wang, Shang, Xu & Mi, "KDRL: Post-Training Reasoning LLMs via Unified
Knowledge Distillation and Reinforcement Learning", 2025 (arXiv 2506.02208). With
d_t = logp_t − teacher_logp_t on tokens the *student* sampled (a teacher forward pass over student
rollouts, shared tokenizer):

    L_KDRL = c_PG · L_GRPO(logp, old_logp, A, m) + β_t · aggregate(M_i · k(d_t), m)

* L_GRPO is `ppo_clip_loss` (called, not re-implemented) with the same aggregation as the KD term;
  the teacher term takes the place of the usual reference-model KL.
* k is a per-token KL estimator (`rljax.losses.kl.kl_penalty`). For a single token (T = 1) drawn
  from π_θ, and exactly in expectation: E∇k1 = 0; E∇k2 = ∇KL(π_θ‖π_T), the reverse-KL gradient
  KDRL wants; E∇k3 = ∇KL(π_T‖π_θ), the *forward*-KL direction, although k3's value estimates the
  reverse KL. For T > 1 a per-token k2 drops the future-KL cross terms (the prefix distribution is
  held fixed). `full_token_rkl` gives the exact per-token reverse KL from full logits.
* M ∈ {0,1}^B is the reward-guided KD mask (`reward_guided_kd_mask`); masked responses still count
  in the aggregation denominator, so the mask never rescales the other tokens' KD weight.
* β_t is a constant or `kdrl_kl_schedule` (linear annealing, imitate early then shift to reward).
* c_PG = 1 is KDRL; c_PG = 0 leaves the paper's pure on-policy RKL distillation baseline (KD alone).

Gradients flow only into `logp`: teacher and behaviour log-probs, advantages and rewards are constants.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.losses import aggregation
from rljax.losses.aggregation import aggregate_parts
from rljax.losses.kl import kl_penalty
from rljax.losses.policy_gradient import ppo_clip_loss
from rljax.losses.registry import register

Metrics = dict[str, jax.Array]

KD_MASKS = ("none", "response", "group")
KL_KINDS = ("k1", "k2", "k3", "abs")


def reward_guided_kd_mask(
    rewards: jax.Array, *, mode: str = "response", threshold: float = 0.5, group_size: int | None = None
) -> jax.Array:
  """Which responses receive the KD term, `bool[B]`; a response is incorrect when R < `threshold`.

  * "none": every response.
  * "response": only incorrect responses; correct ones are left to RL, which avoids over-regularising
    good behaviour and the pull toward the teacher's longer outputs.
  * "group": only responses whose whole group (contiguous blocks of `group_size`) is incorrect, i.e.
    where GRPO has no signal.

  The default threshold 0.5 separates both 1/0 and ±1 rewards. [M] which variant the paper prefers.
  """
  checks.check_choice("mode", mode, KD_MASKS)
  (batch,) = checks.check_same_shape(1, rewards=rewards)
  (r,) = checks.as_compute(jax.lax.stop_gradient(rewards))
  if mode == "none":
    return jnp.ones((batch,), bool)
  incorrect = r < threshold
  if mode == "response":
    return incorrect
  if not isinstance(group_size, numbers.Integral) or group_size < 1 or batch % group_size:
    raise ValueError(f"`group_size` must be a positive int dividing the batch ({batch}), got {group_size!r}.")
  return jnp.repeat(jnp.all(incorrect.reshape(-1, group_size), axis=1), group_size)


def full_token_rkl(student_logits: jax.Array, teacher_logits: jax.Array, mask: jax.Array) -> jax.Array:
  """Exact per-token reverse KL Σ_v π_θ(v)(log π_θ(v) − log π_T(v)), `f[B, T]`, 0 on padding.

  Needs full `[B, T, V]` logits, so it is only affordable for small vocabularies; the CPU targets use
  it as ground truth for the sampled estimators. Gradients flow into `student_logits` only.
  """
  checks.check_same_shape(3, student_logits=student_logits, teacher_logits=teacher_logits)
  if jnp.shape(mask) != jnp.shape(student_logits)[:2]:
    raise ValueError(f"`mask` has shape {jnp.shape(mask)}, expected {jnp.shape(student_logits)[:2]}.")
  s, t = checks.as_compute(student_logits, jax.lax.stop_gradient(teacher_logits))
  log_s, log_t = jax.nn.log_softmax(s, axis=-1), jax.nn.log_softmax(t, axis=-1)
  kl = jnp.sum(jnp.exp(log_s) * (log_s - log_t), axis=-1)
  return jnp.where(mask, kl, 0)


def kdrl_kl_schedule(step, *, beta0: float = 5e-3, beta_min: float = 1e-3, decay: float) -> jax.Array:
  """Linearly annealed KD coefficient β_t = max(β0 − decay·t, β_min); pure and jit-able in `step`.

  β0 = 5e-3 and β_min = 1e-3 follow a secondary summary of the paper [M]; the per-step `decay` κ is
  not pinned down [M], so it has no default.
  """
  checks.check_nonnegative("beta_min", beta_min)
  checks.check_nonnegative("decay", decay)
  b0, bmin = checks.concrete_value(beta0), checks.concrete_value(beta_min)
  if b0 is not None and bmin is not None and b0 < bmin:
    raise ValueError(f"`beta0` must be >= `beta_min`, got {b0} < {bmin}.")
  t = jnp.asarray(step, jnp.float32)
  return jnp.maximum(beta0 - decay * t, beta_min)


def kd_loss(
    logp: jax.Array,
    teacher_logp: jax.Array,
    mask: jax.Array,
    *,
    kind: str = "k2",
    distill: jax.Array | None = None,
    agg: str = "token-mean",
) -> tuple[jax.Array, Metrics]:
  """On-policy distillation term aggregate(M_i · k(logp − teacher_logp), m); alone it is pure RKL KD.

  Args:
    logp: `f[B, T]` student log-probs of its own sampled tokens; receives gradients.
    teacher_logp: `f[B, T]` teacher log-probs of the same tokens; constant.
    mask: `bool[B, T]` response-token mask.
    kind: KL estimator "k1", "k2" (default; unbiased reverse-KL gradient), "k3" or "abs".
    distill: optional `bool[B]` M (see `reward_guided_kd_mask`); None distils every response.
    agg: aggregation mode (`rljax.losses.aggregation`).

  Metrics: `kd_loss`, `kd_frac_tokens` (fraction of response tokens distilled),
  `teacher_student_logratio_mean` (token mean of teacher_logp − logp), `loss_numerator`,
  `loss_denominator`.
  """
  checks.check_choice("kind", kind, KL_KINDS)
  checks.check_choice("agg", agg, aggregation.MODES)
  (batch, _) = checks.check_same_shape(2, logp=logp, teacher_logp=teacher_logp, mask=mask)
  mask = jnp.asarray(mask, bool)
  tok = mask
  if distill is not None:
    checks.check_same_shape(1, distill=distill)
    if jnp.shape(distill) != (batch,):
      raise ValueError(f"`distill` has shape {jnp.shape(distill)}, expected ({batch},).")
    tok = mask & jnp.asarray(distill, bool)[:, None]
  lp, tlp = checks.as_compute(logp, jax.lax.stop_gradient(teacher_logp))
  # Padding may hold -inf teacher log-probs; zeroing both inputs keeps the estimator's gradient finite.
  lp, tlp = jnp.where(mask, lp, 0), jnp.where(mask, tlp, 0)
  per_tok = jnp.where(tok, kl_penalty(lp, tlp, kind=kind), 0)
  num, den = aggregate_parts(per_tok, mask, agg)
  loss = num / jnp.where(den > 0, den, 1)
  n_tok = jnp.maximum(jnp.sum(mask, dtype=lp.dtype), 1)
  metrics = {
      "kd_loss": loss,
      "kd_frac_tokens": jnp.sum(tok, dtype=lp.dtype) / n_tok,
      "teacher_student_logratio_mean": jnp.sum(tlp - lp) / n_tok,
      "loss_numerator": num,
      "loss_denominator": den,
  }
  return loss, checks.stop_metrics(metrics)


def _kdrl_call(fn, b, ctx):
  return fn(b["logp"], b["old_logp"], b[ctx["kl_target"]], b["advantages"], b["mask"], b["rewards"],
            kl_coef=ctx["kl_coef"], kl_kind=ctx["kl_kind"], group_size=ctx["group_size"])


@register("kdrl", kind="policy", reads=("logp", "old_logp", "advantages", "mask", "rewards"), own_kl=True,
          call=_kdrl_call)
def kdrl_loss(
    logp: jax.Array,
    old_logp: jax.Array,
    teacher_logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    rewards: jax.Array | None = None,
    *,
    kl_coef,
    pg_coef: float = 1.0,
    kl_kind: str = "k2",
    kd_mask: str = "none",
    reward_threshold: float = 0.5,
    group_size: int | None = None,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
    agg: str = "token-mean",
    log_ratio_clamp: float | None = None,
) -> tuple[jax.Array, Metrics]:
  """KDRL loss  L = c_PG·ppo_clip_loss(logp, old_logp, A, m) + β·kd_loss(logp, teacher_logp, m, M).

  With β = 0 the value and gradient are exactly those of `ppo_clip_loss` (GRPO with the caller's
  group-normalised advantages). The paper's GRPO aggregation is token-level (1/Σ|o_i|), the default.

  Args:
    logp, old_logp, teacher_logp: `f[B, T]` student (gradients), behaviour and teacher log-probs.
    advantages: `f[B, T]`, or `f[B]` broadcast over tokens (e.g. `grpo_advantages`).
    mask: `bool[B, T]` response-token mask.
    rewards: `f[B]` outcome rewards; required unless `kd_mask == "none"`.
    kl_coef: β ≥ 0, a float or a traced scalar (e.g. `kdrl_kl_schedule(step, ...)`). Paper: constant
      β ∈ {1e-3, 2e-3, 5e-3} or annealed 5e-3 → 1e-3 [M].
    pg_coef: c_PG ≥ 0 on the GRPO term; 1 (default) is KDRL, 0 pure RKL distillation (the KD baseline).
    kl_kind: KD estimator, "k2" (default; the paper reports k2 working better [M]), "k3", "k1", "abs".
    kd_mask, reward_threshold, group_size: reward-guided KD mask (`reward_guided_kd_mask`).
    clip_low, clip_high, dual_clip, log_ratio_clamp: passed to `ppo_clip_loss`.
    agg: aggregation mode, shared by both terms so that their numerators add over one denominator.

  Metrics: those of `ppo_clip_loss`, plus `pg_loss`, `kd_loss`, `kd_frac_tokens`,
  `teacher_student_logratio_mean`, `kl_coef`, and the combined `loss_numerator`/`loss_denominator`.
  """
  checks.check_nonnegative("kl_coef", kl_coef)
  checks.check_nonnegative("pg_coef", pg_coef)
  checks.check_choice("kd_mask", kd_mask, KD_MASKS)
  checks.check_choice("kl_kind", kl_kind, KL_KINDS)
  checks.check_same_shape(2, logp=logp, old_logp=old_logp, teacher_logp=teacher_logp, mask=mask)
  distill = None
  if kd_mask != "none":
    if rewards is None:
      raise ValueError(f"`rewards` is required for kd_mask={kd_mask!r}.")
    if jnp.shape(rewards) != (jnp.shape(logp)[0],):
      raise ValueError(f"`rewards` has shape {jnp.shape(rewards)}, expected ({jnp.shape(logp)[0]},).")
    distill = reward_guided_kd_mask(rewards, mode=kd_mask, threshold=reward_threshold, group_size=group_size)
  pg, pg_metrics = ppo_clip_loss(
      logp, old_logp, advantages, mask,
      clip_low=clip_low, clip_high=clip_high, dual_clip=dual_clip, agg=agg, log_ratio_clamp=log_ratio_clamp,
  )
  kd, kd_metrics = kd_loss(logp, teacher_logp, mask, kind=kl_kind, distill=distill, agg=agg)
  loss = pg_coef * pg + kl_coef * kd
  metrics = {
      **pg_metrics,
      **kd_metrics,
      "pg_loss": pg,
      "kl_coef": jnp.asarray(kl_coef, loss.dtype),
      "loss_numerator": pg_coef * pg_metrics["loss_numerator"] + kl_coef * kd_metrics["loss_numerator"],
      "loss_denominator": kd_metrics["loss_denominator"],
  }
  return loss, checks.stop_metrics(metrics)
