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
number k_q of correct rollouts: RL iff k_q > γ (`hpt_gate`; γ = 0 in the authors' Qwen2.5-Math
scripts: SFT only where every rollout failed, γ = 2 in their LLaMA3.1-8B script). `hpt_loss` is the
authors' actor loss: the RL side unclipped, summed over tokens / T, with Dr.GRPO advantages by default,
plus sft_coef × the token-mean NLL of the gated demonstrations (TsinghuaC3I/Unify-Post-Training, `mix_trainer.py`
`select_on_off_ada_balance`, `mix_actor.py`, `exp_scripts/train.sh`). The "soft" gate
α_q = σ((k_q − γ − ½)/τ) is a rljax extension.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.losses.advantages import broadcast_to_tokens
from rljax.losses import aggregation
from rljax.losses.aggregation import aggregate_parts
from rljax.losses.policy_gradient import ppo_clip_loss
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
HPT_RL_NORMS = ("width", "agg")  # the RL side: Σ/T (the authors' scripts) or the aggregation `agg`


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


def hpt_gate(num_correct: jax.Array, *, gamma: float = 0.0, mode: str = "switch",
             temperature: float = 1.0) -> jax.Array:
  """RL weight α_q `f[G]` from the count k_q of correct rollouts: 1[k_q > γ] ("switch", the authors'
  `select_on_off_ada_balance`) or σ((k_q − γ − ½)/τ) ("soft", a rljax extension centred between the
  switch's last SFT count and its first RL count, so τ → 0 recovers the switch); SFT gets 1 − α_q."""
  checks.check_choice("mode", mode, HPT_MODES)
  checks.check_positive("temperature", temperature)
  (k,) = checks.as_compute(jax.lax.stop_gradient(num_correct))
  if mode == "switch":
    return (k > gamma).astype(k.dtype)
  return jax.nn.sigmoid((k - gamma - 0.5) / temperature)


def count_correct(rewards: jax.Array, group_size: int) -> jax.Array:
  """`f[G]` count of correct rollouts per prompt: rewards at the verifier's success value 1 (the
  authors' `reward == success_value`), over contiguous groups of `group_size`."""
  (r,) = checks.as_compute(jax.lax.stop_gradient(rewards))
  if r.ndim != 1 or r.shape[0] % group_size:
    raise ValueError(f"`rewards` must be f[B] with B a multiple of group_size={group_size}, got shape {r.shape}.")
  return jnp.sum((r >= 1).reshape(-1, group_size), axis=-1).astype(r.dtype)  # a sum: exact integers


def _hpt_call(fn, b, ctx):
  k = count_correct(b["rewards"], ctx["group_size"])
  return fn(b["logp"], b["old_logp"], b["advantages"], b["mask"], b["demo_logp"], b["demo_mask"], k)


@register("hpt", kind="policy", reads=("logp", "old_logp", "advantages", "mask", "demo_logp", "demo_mask", "rewards"),
          call=_hpt_call)
def hpt_loss(
    logp: jax.Array,
    old_logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    demo_logp: jax.Array,
    demo_mask: jax.Array,
    num_correct: jax.Array,
    *,
    gamma: float = 0.0,
    sft_coef: float = 1.0,
    mode: str = "switch",
    temperature: float = 1.0,
    clip_low: float = jnp.inf,
    clip_high: float = jnp.inf,
    rl_norm: str = "width",
    agg: str = "token-mean",
) -> tuple[jax.Array, Metrics]:
  """HPT: per prompt q, RL on its n rollouts if k_q > γ correct, else SFT on its demonstration y*_q.

      L = L_RL + sft_coef · L_SFT
      ℓ_t   = max(−Â·r, −Â·clip(r, 1 − ε_l, 1 + ε_h)),  r = π_θ/π_old, on the tokens m ∧ [k_q > γ]
      L_RL  = Σ ℓ / T  (`rl_norm="width"`, T the rollout width)  or  aggregate(ℓ, ·, agg)  ("agg")
      L_SFT = token-mean of −log π_θ(y*_q) over the demonstrations of the prompts with k_q ≤ γ

  as the authors' actor (`mix_actor.py`, offline_loss_type "sft": `pg_loss = sft_loss * sft_loss_coef +
  pg_loss`, each side normalised on its own). Their scripts drop the ratio clip (`loss_remove_clip=True`:
  the default ε = ∞ here, i.e. the UPGE instance with π_old denominator and 1_stable = 1,
  `unified_pg_loss(logp, old_logp, Â, m)`), sum the RL tokens over the padded width T
  (`loss_remove_token_mean=True`, "width"; not divided by the number of rollouts, so the RL side's weight
  against the demonstrations' mean grows with the rollouts in a batch: verl computes it per micro-batch and
  averages over micro-batches, which equals "width" here on a batch of that micro-batch's size) and take
  Â = R − mean_g R (Dr.GRPO; the advantage estimator's job). γ ≥ n gates every prompt to SFT, γ < 0 none:
  the loss is then exactly the RL side (with "agg", `ppo_clip_loss(..., agg=agg)`, value and gradient).
  "soft" trains both sides of every prompt, the RL advantages scaled by α_q and each demonstration
  token's NLL by 1 − α_q (`hpt_gate`).

  The loss is a sum of two separately normalised terms, so it reports no joint
  `loss_numerator`/`loss_denominator`: micro-batches are weighted equally, as in verl.

  Args:
    logp, old_logp, advantages, mask: `[B, T]` rollout arrays (advantages may be `f[B]`),
      B = G·n in contiguous groups of n.
    demo_logp: `f[G, Td]` log-probs of each prompt's demonstration; receives gradients.
    demo_mask: `bool[G, Td]`.
    num_correct: `f[G]` (or int) k_q, the correct rollouts of each prompt (`count_correct`).
    gamma: the gate γ (RL iff k_q > γ); sft_coef: weight of L_SFT (≥ 0).
    mode, temperature: see `hpt_gate`.
    clip_low, clip_high: PPO ratio clip of the RL side (∞: none, the authors' scripts).
    rl_norm: "width" (Σ/T, the authors' scripts) or "agg" (the aggregation `agg`).
    agg: aggregation mode of the RL side under `rl_norm="agg"` (a preset's `agg`; unused under "width").

  Metrics: `frac_sft_prompts` (mean 1 − α), `rl_loss`, `sft_loss` (each side alone), `clipfrac`.
  """
  checks.check_choice("agg", agg, aggregation.MODES)
  checks.check_choice("rl_norm", rl_norm, HPT_RL_NORMS)
  checks.check_nonnegative("sft_coef", sft_coef)
  (batch, t_len) = checks.check_same_shape(2, logp=logp, old_logp=old_logp, mask=mask)
  advantages = _token_advantages(advantages, mask)
  checks.check_same_shape(2, advantages=advantages, mask=mask)
  (groups, _) = checks.check_same_shape(2, demo_logp=demo_logp, demo_mask=demo_mask)
  if jnp.shape(num_correct) != (groups,):
    raise ValueError(f"`num_correct` has shape {jnp.shape(num_correct)}, expected ({groups},) (one per demonstration).")
  if groups == 0 or batch % groups:
    raise ValueError(f"`logp` has {batch} rollouts, not a multiple of the {groups} prompts in `demo_logp`.")
  alpha = hpt_gate(num_correct, gamma=gamma, mode=mode, temperature=temperature)
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
  rl, rl_metrics = ppo_clip_loss(logp, old_logp, rl_adv, rl_mask, clip_low=clip_low, clip_high=clip_high,
                                 agg="token-sum" if rl_norm == "width" else agg)
  if rl_norm == "width":
    rl = rl / max(t_len, 1)
  sft = aggregation.aggregate(sft_w * -jnp.where(demo_mask, dlp, 0), sft_mask, "token-mean")
  metrics = {"frac_sft_prompts": jnp.mean(1 - alpha), "rl_loss": rl, "sft_loss": sft,
             "clipfrac": rl_metrics["clipfrac"]}
  return rl + sft_coef * sft, checks.stop_metrics(metrics)
