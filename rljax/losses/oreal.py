"""OREAL: outcome-reward RL for binary feedback (behaviour cloning on positives + reshaped negatives).

Lyu, Gao, Gu, Zhang, Gao, Liu, Wang, Li, Zhao, Huang, Cao, Liu, Liu, Liu, Zhang, Lin & Chen,
"Exploring the Limit of Outcome Reward for Learning Mathematical Reasoning", 2025 (arXiv 2502.06781).
References: InternLM/OREAL trainer and configs, xtuner v1 `OrealLoss`.

Tokens split into a positive set P (A > 0) and a negative set N (A ≤ 0), each aggregated on its own
(`agg` applied to the set's mask, so "token-mean" divides by N⁺ and N⁻ respectively):

    L = λ⁺·[w_sft·agg_P(ω·(−logp)·(A if sft_mult_adv else 1)) + w_pg·agg_P(ω·ℓ^PPO)]
      + λ⁻·agg_N(ω·ℓ^PPO) + β·agg_all(k(logp − ref_logp))

* ℓ^PPO is `ppo_clip_loss`'s per-token clipped surrogate. Token weights enter through its
  advantages: max(−ωA·r, −ωA·clip(r)) = ω·max(−A·r, −A·clip(r)) for ω ≥ 0.
* Advantages: `oreal_advantages` (released config `reward_shaping_type="rloo"`: A⁺ = 1 − p̂_loo,
  A⁻ = −p̂_loo for 1/0 rewards). The paper's own negative-reward reshaping factor is [M].
* ω: token-level reward-model weights (`token_rm_weights`), 1 when None.
* The original trainer is `pg_weight=0, sft_mult_adv=True` (BC on positives times A⁺, an on-policy
  policy gradient on negatives); xtuner v1 is the default `pg_weight=1, sft_mult_adv=False`, ω = 1.
* β = 0.01 with k3 (the trainer's "unbias" KL) [V config]; λ⁺ = 1, λ⁻ = 0.5 [V config].

Data filter (`one_pos_one_neg`, the released `filter_trajectory=True`): per prompt of k samples, groups
with pass rate 0 or 1 are dropped, and the others keep ONE uniformly drawn correct and ONE uniformly
drawn incorrect response. The RLOO advantages are computed on all k samples before the filter
(train_oreal.py: reward shaping, then `TrajectoryDatasetWithFilter.update`).

Theory (`bon_policy`, `bon_alpha`): with binary R and pass rate p = Σ_y π₀(y)R(y), the best-of-N
response (ties broken uniformly) is distributed as

    π_BoN(y) = π₀(y)·[(1 − (1 − p)^N)/p]^{R(y)}·[(1 − p)^{N−1}]^{1−R(y)} = π₀(y)·exp(R(y)/α)/Z,
    1/α = log(1 − (1 − p)^N) − log p − (N − 1)·log(1 − p),

the KL-regularised optimum for reward R at temperature α: behaviour cloning on BoN samples learns it.

Gradients flow only into `logp` (and into `token_scores` in `token_rm_loss`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.losses.advantages import broadcast_to_tokens, grpo_advantages, rloo_advantages
from rljax.losses import aggregation
from rljax.losses.aggregation import aggregate_parts
from rljax.losses.kl import KINDS as KL_KINDS, kl_penalty
from rljax.losses.policy_gradient import ppo_clip_loss
from rljax.ops.reductions import masked_mean
from rljax.losses.registry import register

Metrics = dict[str, jax.Array]

SHAPINGS = ("rloo", "grpo")


def oreal_advantages(rewards: jax.Array, *, group_size: int, shaping: str = "rloo") -> jax.Array:
  """Per-response `f[B]` advantages over contiguous groups: "rloo" (released config) or "grpo"."""
  checks.check_choice("shaping", shaping, SHAPINGS)
  if shaping == "rloo":
    return rloo_advantages(rewards, group_size=group_size)
  return grpo_advantages(rewards, group_size=group_size)


def one_pos_one_neg(rewards: jax.Array, key: jax.Array) -> jax.Array:
  """OREAL's trajectory filter: keep-mask `bool[G, n]` over G prompts × n responses.

  A group with at least one correct (R > 0) and one incorrect response keeps one correct and one
  incorrect response, each drawn uniformly (`random.choice` in the released `TrajectoryDatasetWithFilter`);
  a group with pass rate 0 or 1 keeps nothing. (The released filter calls R == 1 correct; for 1/0 or ±1
  rewards that is R > 0, the positive set of `oreal_loss` and the label of `token_rm_loss`.)
  """
  checks.check_same_shape(2, rewards=rewards)
  (r,) = checks.as_compute(jax.lax.stop_gradient(rewards))
  pos = r > 0
  u = jax.random.uniform(key, r.shape)  # argmax of iid uniforms over a set = a uniform draw from it
  pick = lambda members: jax.nn.one_hot(jnp.argmax(jnp.where(members, u, -1.0), axis=-1), r.shape[-1], dtype=bool)
  both = jnp.any(pos, axis=-1) & jnp.any(~pos, axis=-1)
  return (pick(pos) | pick(~pos)) & both[:, None]


def bon_alpha(pass_rate: jax.Array, n: int) -> jax.Array:
  """Temperature α of the best-of-`n` policy, π_BoN ∝ π₀·exp(R/α) (module docstring); +inf where
  n = 1 or the pass rate is 0 or 1 (then π_BoN = π₀)."""
  if isinstance(n, bool) or not isinstance(n, int) or n < 1:
    raise ValueError(f"`n` must be a positive int, got {n!r}.")
  (p,) = checks.as_compute(pass_rate)
  inside = (p > 0) & (p < 1)
  q = jnp.where(inside, p, 0.5)
  inv = jnp.log1p(-(1 - q) ** n) - jnp.log(q) - (n - 1) * jnp.log1p(-q)
  return jnp.where(inside & (inv > 0), 1 / jnp.where(inv > 0, inv, 1), jnp.inf)


def bon_policy(pi0: jax.Array, rewards: jax.Array, n: int) -> jax.Array:
  """Distribution `f[..., K]` of the best-of-`n` answer under π₀ `f[..., K]` with binary rewards
  `rewards` (R > 0 correct), ties among the correct draws broken uniformly (module docstring)."""
  if isinstance(n, bool) or not isinstance(n, int) or n < 1:
    raise ValueError(f"`n` must be a positive int, got {n!r}.")
  checks.check_same_shape(None, pi0=pi0, rewards=rewards)
  pi, r = checks.as_compute(pi0, rewards)
  good = r > 0
  p = jnp.sum(jnp.where(good, pi, 0), axis=-1, keepdims=True)
  up = (1 - (1 - p) ** n) / jnp.where(p > 0, p, 1)
  down = (1 - p) ** (n - 1)
  return pi * jnp.where(good, up, jnp.where(p < 1, down, 0))


def _check_rm_inputs(token_scores, mask, rewards):
  (batch, _) = checks.check_same_shape(2, token_scores=token_scores, mask=mask)
  if jnp.shape(rewards) != (batch,):
    raise ValueError(f"`rewards` has shape {jnp.shape(rewards)}, expected ({batch},).")


def token_rm_loss(token_scores: jax.Array, mask: jax.Array, rewards: jax.Array) -> tuple[jax.Array, Metrics]:
  """Token-RM training loss: BCE of σ(mean_t w_t) against the outcome 1[R > 0], mean over responses.

  Args:
    token_scores: `f[B, T]` per-token RM logits w_t; receives gradients.
    mask: `bool[B, T]`; empty responses are left out of the mean.
    rewards: `f[B]` outcome rewards (1/0 or ±1).

  Metrics: `rm_acc` (sign of the mean score agrees with the label), `loss_numerator`,
  `loss_denominator` (number of non-empty responses).
  """
  _check_rm_inputs(token_scores, mask, rewards)
  mask = jnp.asarray(mask, bool)
  s, r = checks.as_compute(token_scores, jax.lax.stop_gradient(rewards))
  score = masked_mean(s, mask, axis=-1)
  label = (r > 0).astype(s.dtype)
  bce = jax.nn.softplus(score) - label * score
  valid = jnp.any(mask, axis=-1)
  num = jnp.sum(jnp.where(valid, bce, 0))
  den = jnp.sum(valid, dtype=s.dtype)
  safe = jnp.maximum(den, 1)
  metrics = {
      "rm_acc": jnp.sum(valid & ((score > 0) == (label > 0)), dtype=s.dtype) / safe,
      "loss_numerator": num,
      "loss_denominator": den,
  }
  return num / safe, checks.stop_metrics(metrics)


def token_rm_weights(
    token_scores: jax.Array, mask: jax.Array, rewards: jax.Array, *, threshold: float = 0.5
) -> jax.Array:
  """Token importance weights ω ∈ [0, 1], `f[B, T]`, stop-gradient, 0 on padding.

  p_t = σ(mean_{s≤t} w_s) is the RM's running estimate that the response is correct (the trainer
  uses the prefix mean, not w_t alone). With q_t = p_t on correct responses (R > 0) and 1 − p_t on
  incorrect ones, ω_t = clip((q_t − τ)/(1 − τ), 0, 1): τ = 0.5 gives max(2p − 1, 0) on positives
  and max(1 − 2p, 0) on negatives (the released `threshold_rescale`, τ = 0.5).
  """
  _check_rm_inputs(token_scores, mask, rewards)
  checks.check_in_range("threshold", threshold, 0.0, 1.0)
  if checks.concrete_value(threshold) == 1.0:
    raise ValueError("`threshold` must be < 1.")
  mask = jnp.asarray(mask, bool)
  s, r = checks.as_compute(jax.lax.stop_gradient(token_scores), jax.lax.stop_gradient(rewards))
  prefix_sum = jnp.cumsum(jnp.where(mask, s, 0), axis=-1)
  prefix_len = jnp.cumsum(mask, axis=-1, dtype=s.dtype)
  p = jax.nn.sigmoid(prefix_sum / jnp.maximum(prefix_len, 1))
  q = jnp.where((r > 0)[:, None], p, 1 - p)
  return jnp.where(mask, jnp.clip((q - threshold) / (1 - threshold), 0, 1), 0)


def _oreal_call(fn, b, ctx):
  # `token_weights` (the token-level reward model's) is optional: None weighs every token 1.
  return fn(b["logp"], b["old_logp"], b[ctx["kl_target"]], b["advantages"], b["mask"], b.get("token_weights"),
            kl_coef=ctx["kl_coef"], kl_kind=ctx["kl_kind"])


@register("oreal", kind="policy", reads=("logp", "old_logp", "advantages", "mask"), own_kl=True, call=_oreal_call)
def oreal_loss(
    logp: jax.Array,
    old_logp: jax.Array,
    ref_logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    token_weights: jax.Array | None = None,
    *,
    pos_factor: float = 1.0,
    neg_factor: float = 0.5,
    sft_weight: float = 1.0,
    pg_weight: float = 1.0,
    sft_mult_adv: bool = False,
    kl_coef: float = 0.01,
    kl_kind: str = "k3",
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    agg: str = "token-mean",
) -> tuple[jax.Array, Metrics]:
  """OREAL loss (formula in the module docstring).

  Args:
    logp, old_logp, ref_logp: `f[B, T]` current (gradients), behaviour and reference log-probs.
    advantages: `f[B, T]` (or `f[B]`, broadcast) shaped advantages; A > 0 marks the positive
      (behaviour-cloned) tokens.
    mask: `bool[B, T]` response-token mask.
    token_weights: optional `f[B, T]` ω ≥ 0 (e.g. `token_rm_weights`); None means 1.
    pos_factor, neg_factor: λ⁺, λ⁻ ≥ 0.
    sft_weight, pg_weight: w_sft, w_pg ≥ 0 of the two positive terms.
    sft_mult_adv: multiply the BC term by A (the trainer's `pos_mult_adv=True`).
    kl_coef, kl_kind: β ≥ 0 and the KL estimator toward `ref_logp`.
    clip_low, clip_high: PPO clip range of ℓ^PPO.
    agg: aggregation applied within each token set.

  Metrics: `sft_loss`, `pg_pos_loss`, `pg_neg_loss`, `kl_loss` (unweighted set aggregates),
  `pos_frac_tokens`, and the exact-accumulation parts `{pos,neg,kl}_{numerator,denominator}`: the
  loss is λ⁺·pos + λ⁻·neg + β·kl over three different denominators, so there is no single
  `loss_numerator`/`loss_denominator`; sum each pair over micro-batches and divide once.
  """
  checks.check_choice("agg", agg, aggregation.MODES)
  checks.check_choice("kl_kind", kl_kind, KL_KINDS)
  for name, v in (("pos_factor", pos_factor), ("neg_factor", neg_factor), ("sft_weight", sft_weight),
                  ("pg_weight", pg_weight), ("kl_coef", kl_coef)):
    checks.check_nonnegative(name, v)
  (batch, _) = checks.check_same_shape(2, logp=logp, old_logp=old_logp, ref_logp=ref_logp, mask=mask)
  if jnp.shape(advantages) == (batch,):
    advantages = broadcast_to_tokens(advantages, mask)
  checks.check_same_shape(2, advantages=advantages, mask=mask)
  if token_weights is not None:
    checks.check_same_shape(2, token_weights=token_weights, mask=mask)
  mask = jnp.asarray(mask, bool)
  lp, ref, adv = checks.as_compute(logp, jax.lax.stop_gradient(ref_logp), jax.lax.stop_gradient(advantages))
  w = jnp.ones_like(lp) if token_weights is None else checks.as_compute(jax.lax.stop_gradient(token_weights))[0]
  pos, neg = mask & (adv > 0), mask & (adv <= 0)

  sft_tok = w * -jnp.where(mask, lp, 0) * (adv if sft_mult_adv else 1)
  sft_num, pos_den = aggregate_parts(sft_tok, pos, agg)
  ppo_kw = dict(clip_low=clip_low, clip_high=clip_high, dual_clip=None, agg=agg)
  pg_pos, m_pos = ppo_clip_loss(lp, old_logp, adv * w, pos, **ppo_kw)
  pg_neg, m_neg = ppo_clip_loss(lp, old_logp, adv * w, neg, **ppo_kw)
  kl_tok = kl_penalty(jnp.where(mask, lp, 0), jnp.where(mask, ref, 0), kind=kl_kind)
  kl_num, kl_den = aggregate_parts(kl_tok, mask, agg)

  def ratio(num, den):
    return num / jnp.where(den > 0, den, 1)

  # Combine the differentiable values: the numerators in `m_pos`/`m_neg` are stop-gradient metrics.
  sft = ratio(sft_num, pos_den)
  kl = ratio(kl_num, kl_den)
  loss = pos_factor * (sft_weight * sft + pg_weight * pg_pos) + neg_factor * pg_neg + kl_coef * kl
  pos_num = sft_weight * sft_num + pg_weight * m_pos["loss_numerator"]
  neg_num, neg_den = m_neg["loss_numerator"], m_neg["loss_denominator"]
  metrics = {
      "sft_loss": sft,
      "pg_pos_loss": pg_pos,
      "pg_neg_loss": pg_neg,
      "kl_loss": kl,
      "pos_frac_tokens": jnp.sum(pos, dtype=lp.dtype) / jnp.maximum(jnp.sum(mask, dtype=lp.dtype), 1),
      "pos_numerator": pos_num,
      "pos_denominator": pos_den,
      "neg_numerator": neg_num,
      "neg_denominator": neg_den,
      "kl_numerator": kl_num,
      "kl_denominator": kl_den,
  }
  return loss, checks.stop_metrics(metrics)
