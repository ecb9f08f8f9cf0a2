"""Unified Policy Gradient Estimator (UPGE) and Hybrid Post-Training (HPT).

Lv, Zuo, Sun, Liu, Wei, Chen, Ding, Zhou et al., "Towards a Unified View of Large Language Model
Post-Training", 2025 (arXiv 2509.04419). Reference: TsinghuaC3I/Unify-Post-Training (README).

UPGE writes SFT and RL gradients as one per-token estimator with four parts,

    grad_Uni = 1_stable · (1/π_ref) · Â · ∇π_θ,

and since ∇π_θ/π_ref = (π_θ/π_ref)·∇log π_θ, a surrogate whose gradient it is:

    ℓ_t = −sg(1_stable,t) · sg(Â_t) · exp(logp_t − sg(logd_t)),   L = aggregate(ℓ, m)

with logd the log of the reference denominator. Instances (`UPGE_INSTANCES`):

| method    | denominator π_ref          | 1_stable        | Â (caller's)               |
|-----------|----------------------------|-----------------|----------------------------|
| sft       | π_θ (logd = sg(logp))      | 1               | 1                          |
| rft       | π_θ                        | 1               | 1 on correct, 0 else       |
| reinforce | π_θ                        | 1               | R − baseline               |
| ppo       | π_old                      | PPO clip mask   | GAE                        |
| grpo      | π_old                      | PPO clip mask   | group-normalised R         |

With the PPO clip mask (`ppo_stable_mask`) the UPGE gradient equals the PPO-clip gradient exactly
(no dual clip). Only gradients are shared: the surrogate's *value* is −Â·r on kept tokens.

HPT switches per prompt q between RL on its n rollouts and SFT on its demonstration y*_q by the
rollout accuracy P_q: α_q = 1[P_q > γ] (γ = 0: SFT only where every rollout failed, the paper's
Qwen2.5-Math setting [M]). The optional "soft" gate α_q = σ((P_q − γ)/τ) is a rljax extension.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.losses.advantages import broadcast_to_tokens
from rljax.losses import aggregation
from rljax.losses.aggregation import aggregate_parts
from rljax.losses.policy_gradient import ppo_clip_loss
from rljax.ops.reductions import group_mean
from rljax.losses.registry import register

Metrics = dict[str, jax.Array]

# method -> (denominator, stabilisation): "self" = sg(π_θ), "behaviour" = π_old; "clip" = PPO mask.
UPGE_INSTANCES = {
    "sft": ("self", None),
    "rft": ("self", None),
    "reinforce": ("self", None),
    "ppo": ("behaviour", "clip"),
    "grpo": ("behaviour", "clip"),
}
HPT_MODES = ("switch", "soft")


def _token_advantages(advantages, mask):
  """`f[B]` advantages broadcast over tokens; `f[B, T]` unchanged (shape checked by the caller)."""
  return broadcast_to_tokens(advantages, mask) if jnp.ndim(advantages) == 1 else advantages


def ppo_stable_mask(
    logp: jax.Array, old_logp: jax.Array, advantages: jax.Array, *, clip_low: float = 0.2, clip_high: float = 0.2
) -> jax.Array:
  """`bool[B, T]`: False where PPO-clip has zero gradient, (Â > 0, r > 1+ε_high) or (Â < 0, r < 1−ε_low)."""
  checks.check_same_shape(2, logp=logp, old_logp=old_logp, advantages=advantages)
  checks.check_nonnegative("clip_low", clip_low)
  checks.check_nonnegative("clip_high", clip_high)
  lp, old, adv = checks.as_compute(*(jax.lax.stop_gradient(x) for x in (logp, old_logp, advantages)))
  r = jnp.exp(lp - old)
  return ~(((adv > 0) & (r > 1 + clip_high)) | ((adv < 0) & (r < 1 - clip_low)))


@register("upge", kind="policy", reads=("logp", "log_denominator", "advantages", "mask", "stable_mask"))
def unified_pg_loss(
    logp: jax.Array,
    log_denominator: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    stable_mask: jax.Array | None = None,
    *,
    agg: str = "token-mean",
    log_ratio_clamp: float | None = None,
) -> tuple[jax.Array, Metrics]:
  """UPGE surrogate L = aggregate(−1_stable·Â·exp(logp − sg(logd)), m).

  Args:
    logp: `f[B, T]` current log-probs; receives gradients.
    log_denominator: `f[B, T]` log π_ref; stop-gradient (pass `logp` itself for the π_θ denominator).
    advantages: `f[B, T]` (or `f[B]`, broadcast) Â; constant.
    mask: `bool[B, T]` response-token mask.
    stable_mask: optional `bool[B, T]` 1_stable (None: all ones).
    agg: aggregation mode; log_ratio_clamp: symmetric clamp of logp − logd before exp (None: none).

  Metrics: `ratio_mean`, `stable_frac` (token means), `loss_numerator`, `loss_denominator`.
  """
  checks.check_choice("agg", agg, aggregation.MODES)
  checks.check_same_shape(2, logp=logp, log_denominator=log_denominator, mask=mask)
  advantages = _token_advantages(advantages, mask)
  checks.check_same_shape(2, advantages=advantages, mask=mask)
  if stable_mask is not None:
    checks.check_same_shape(2, stable_mask=stable_mask, mask=mask)
  if log_ratio_clamp is not None:
    checks.check_positive("log_ratio_clamp", log_ratio_clamp)
  mask = jnp.asarray(mask, bool)
  lp, logd, adv = checks.as_compute(
      logp, jax.lax.stop_gradient(log_denominator), jax.lax.stop_gradient(advantages)
  )
  stable = mask if stable_mask is None else mask & jnp.asarray(stable_mask, bool)
  delta = jnp.where(mask, lp - logd, 0)
  if log_ratio_clamp is not None:
    delta = jnp.clip(delta, -log_ratio_clamp, log_ratio_clamp)
  ratio = jnp.exp(delta)
  num, den = aggregate_parts(jnp.where(stable, -adv * ratio, 0), mask, agg)
  n_tok = jnp.maximum(jnp.sum(mask, dtype=lp.dtype), 1)
  metrics = {
      "ratio_mean": jnp.sum(jnp.where(mask, ratio, 0)) / n_tok,
      "stable_frac": jnp.sum(stable, dtype=lp.dtype) / n_tok,
      "loss_numerator": num,
      "loss_denominator": den,
  }
  return num / jnp.where(den > 0, den, 1), checks.stop_metrics(metrics)


def upge_instance_loss(
    method: str,
    logp: jax.Array,
    mask: jax.Array,
    advantages: jax.Array | None = None,
    old_logp: jax.Array | None = None,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    agg: str = "token-mean",
) -> tuple[jax.Array, Metrics]:
  """`unified_pg_loss` with the parts of `UPGE_INSTANCES[method]`.

  "sft" uses Â = 1 (`advantages` must be None); the others take the caller's Â (`f[B, T]` or `f[B]`), and
  "ppo"/"grpo" also need `old_logp`.
  """
  checks.check_choice("method", method, tuple(UPGE_INSTANCES))
  denominator, stabiliser = UPGE_INSTANCES[method]
  if method == "sft":
    if advantages is not None:
      raise ValueError("`advantages` must be None for method 'sft' (Â = 1).")
    advantages = jnp.ones(jnp.shape(logp), checks.compute_dtype(logp))
  elif advantages is None:
    raise ValueError(f"`advantages` is required for method {method!r}.")
  advantages = _token_advantages(advantages, mask)
  if denominator == "behaviour" and old_logp is None:
    raise ValueError(f"`old_logp` is required for method {method!r}.")
  logd = logp if denominator == "self" else old_logp
  stable = None
  if stabiliser == "clip":
    stable = ppo_stable_mask(logp, old_logp, advantages, clip_low=clip_low, clip_high=clip_high)
  return unified_pg_loss(logp, logd, advantages, mask, stable, agg=agg)


def hpt_gate(group_acc: jax.Array, *, gamma: float = 0.0, mode: str = "switch", temperature: float = 0.1) -> jax.Array:
  """RL weight α_q `f[G]`: 1[P_q > γ] ("switch") or σ((P_q − γ)/τ) ("soft"); SFT gets 1 − α_q."""
  checks.check_choice("mode", mode, HPT_MODES)
  checks.check_positive("temperature", temperature)
  (acc,) = checks.as_compute(jax.lax.stop_gradient(group_acc))
  if mode == "switch":
    return (acc > gamma).astype(acc.dtype)
  return jax.nn.sigmoid((acc - gamma) / temperature)


def _hpt_call(fn, b, ctx):
  group_acc = group_mean(b["rewards"], ctx["group_size"])
  return fn(b["logp"], b["old_logp"], b["advantages"], b["mask"], b["demo_logp"], b["demo_mask"], group_acc)


@register("hpt", kind="policy", reads=("logp", "old_logp", "advantages", "mask", "demo_logp", "demo_mask", "rewards"), call=_hpt_call)
def hpt_loss(
    logp: jax.Array,
    old_logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    demo_logp: jax.Array,
    demo_mask: jax.Array,
    group_acc: jax.Array,
    *,
    gamma: float = 0.0,
    mode: str = "switch",
    temperature: float = 0.1,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
    agg: str = "token-mean",
) -> tuple[jax.Array, Metrics]:
  """HPT: per prompt, GRPO (`ppo_clip_loss`) on its rollouts or NLL on its demonstration.

  Rollouts and demonstrations are aggregated *jointly*: their numerators and denominators add, so
  with "token-mean" every trained token (rollout or demonstration) has the same weight. With all
  prompts gated to RL the loss is exactly `ppo_clip_loss`; with all gated to SFT it is the NLL of
  the demonstrations. "switch" drops the unused side's tokens from the denominator; "soft" keeps
  every token and weights RL advantages by α and demonstration NLL by 1 − α.

  Args:
    logp, old_logp, advantages, mask: `[B, T]` rollout arrays (advantages may be `f[B]`),
      B = G·n in contiguous groups of n.
    demo_logp: `f[G, Td]` log-probs of each prompt's demonstration; receives gradients.
    demo_mask: `bool[G, Td]`.
    group_acc: `f[G]` rollout accuracy P_q.
    gamma: accuracy threshold γ (RL iff P_q > γ); mode, temperature: see `hpt_gate`.
    clip_low, clip_high, dual_clip: passed to `ppo_clip_loss`.
    agg: aggregation mode (the "seq-mean-token-sum-norm" normaliser is the rollout length T).

  Metrics: `frac_sft_prompts` (mean of 1 − α), `rl_loss`, `sft_loss` (each side aggregated alone),
  `loss_numerator`, `loss_denominator`.
  """
  checks.check_choice("agg", agg, aggregation.MODES)
  (batch, t_len) = checks.check_same_shape(2, logp=logp, old_logp=old_logp, mask=mask)
  advantages = _token_advantages(advantages, mask)
  checks.check_same_shape(2, advantages=advantages, mask=mask)
  (groups, _) = checks.check_same_shape(2, demo_logp=demo_logp, demo_mask=demo_mask)
  if jnp.shape(group_acc) != (groups,):
    raise ValueError(f"`group_acc` has shape {jnp.shape(group_acc)}, expected ({groups},) (one per demonstration).")
  if groups == 0 or batch % groups:
    raise ValueError(f"`logp` has {batch} rollouts, not a multiple of the {groups} prompts in `demo_logp`.")
  alpha = hpt_gate(group_acc, gamma=gamma, mode=mode, temperature=temperature)
  alpha_rows = jnp.repeat(alpha, batch // groups)[:, None]
  mask, demo_mask = jnp.asarray(mask, bool), jnp.asarray(demo_mask, bool)
  (dlp,) = checks.as_compute(demo_logp)
  if mode == "switch":
    rl_adv, rl_mask = advantages, mask & (alpha_rows > 0)
    sft_w, sft_mask = 1.0, demo_mask & (alpha == 0)[:, None]
  else:
    # α ≥ 0 folds into the advantages: the clipped surrogate is positively homogeneous in Â.
    rl_adv, rl_mask = advantages * alpha_rows, mask
    sft_w, sft_mask = (1 - alpha)[:, None], demo_mask
  rl, rl_metrics = ppo_clip_loss(
      logp, old_logp, rl_adv, rl_mask, clip_low=clip_low, clip_high=clip_high, dual_clip=dual_clip, agg=agg
  )
  norm = t_len if agg == "seq-mean-token-sum-norm" else None
  sft_num, sft_den = aggregate_parts(sft_w * -jnp.where(demo_mask, dlp, 0), sft_mask, agg, norm=norm)
  rl_den = rl_metrics["loss_denominator"]
  # token-sum's denominator is the constant 1, not a count, so it does not add.
  den = rl_den if agg == "token-sum" else rl_den + sft_den
  safe_den = jnp.where(den > 0, den, 1)
  # `rl` carries the gradient (the metrics' numerator is stop-gradient); its share of the joint
  # denominator is exactly 1 when no prompt is gated to SFT, so the loss is then `rl` bit for bit.
  loss = rl * (rl_den / safe_den) + sft_num / safe_den
  metrics = {
      "frac_sft_prompts": jnp.mean(1 - alpha),
      "rl_loss": rl,
      "sft_loss": sft_num / jnp.where(sft_den > 0, sft_den, 1),
      "loss_numerator": rl_metrics["loss_numerator"] + sft_num,
      "loss_denominator": den,
  }
  return loss, checks.stop_metrics(metrics)
