"""APO (Asymmetric Policy Optimization): DADS KL weights for correct answers, STCR length penalty for wrong ones.

Hong, Guo, Xia, Wang, Zhang, Jin & Zhao, "APO: Enhancing Reasoning Ability of MLLMs via Asymmetric
Policy Optimization", 2025 (arXiv 2506.21655; the model is View-R1). Follows the authors' View-R1 code
(`experience_maker.py`, `ppo_actor.py`, `train_grpo.sh`). Group g has n responses with rewards R_i,
correctness c_i = trunc(R_i) ∈ {0, 1} (View-R1's rewards are accuracy + 0.5·format ∈ [0, 1.5]) and
lengths L_i; d_g = 1 − Σ_i c_i / n is the fraction wrong.

* DADS (difficulty-adaptive divergence shaping), positives only: the KL term is
      β · mean_i [ w_i · (Σ_t m·k3_t / Σ_t m) ],   w_i = f(d_g) if A_i > 0 else 1,
      f(d) = 1 − exp(−e·(1 − d))   ("one_minus_exp", View-R1's),   f(d) = exp(−e·d)   ("exp", older),
  with f(0) = f(1) = 1 for degenerate groups. f(0.5) ≈ 0.743: the correct answers of hard prompts
  are nearly free of the KL constraint. β = `init_kl_coef` = 1e-3 with k3 in View-R1's script.
* STCR (suboptimal trajectory complexity regularisation), negatives only:
      L̄⁺_g = mean length of the correct responses,   Δ_i = (L_i − L̄⁺_g)·(1 − c_i),
      s_i = 2 − base^{−Δ_i} if Δ_i > 0 else 1 (base = 1.00001),   s_i = 1 in a group with no correct,
      A_i ← s_i·A_i.
  s ∈ [1, 2) grows slowly with the excess length (Δ = 10⁴ tokens gives ≈ 1.095); it never changes a
  sign, and negatives have A < 0, so longer wrong answers get a more negative advantage.

APO = `grpo_advantages(R, group_size=n, eps=1e-9)` (unbiased std, View-R1's `group_norm`)
      × `apo_stcr_scale` → `ppo_clip_loss` + β·`weighted_seq_kl_loss(seq_weights=dads_kl_weights)`.
With w ≡ 1 and s ≡ 1 this is GRPO with a k3 KL loss. Weights and scales are constants of the
objective (stop-gradient).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.losses import aggregation
from rljax.losses.kl import kl_penalty
from rljax.ops.reductions import masked_mean
from rljax.losses.registry import register

Metrics = dict[str, jax.Array]
DADS_FORMS = ("one_minus_exp", "exp")


def _correct(rewards: jax.Array) -> jax.Array:
  (r,) = checks.as_compute(rewards)
  return jnp.clip(jnp.trunc(jax.lax.stop_gradient(r)), 0, 1)


def dads_kl_weights(rewards: jax.Array, advantages: jax.Array, *, form: str = "one_minus_exp") -> jax.Array:
  """DADS per-response KL weights `f[G, n]`: f(d_g) where A_i > 0, 1 elsewhere (module docstring).

  Args:
    rewards: `f[G, n]` rewards; correctness is trunc(R) clipped to {0, 1}.
    advantages: `f[G, n]` advantages (only their sign is used).
    form: "one_minus_exp" (View-R1's f(d) = 1 − exp(−e(1 − d))) or "exp" (f(d) = exp(−e·d)).
  """
  checks.check_choice("form", form, DADS_FORMS)
  checks.check_same_shape(2, rewards=rewards, advantages=advantages)
  c = _correct(rewards)
  n_correct = jnp.sum(c, axis=-1, keepdims=True)
  n = c.shape[-1]
  d = 1 - n_correct / n
  f = 1 - jnp.exp(-math.e * (1 - d)) if form == "one_minus_exp" else jnp.exp(-math.e * d)
  # Integer counts, not d, decide degeneracy: d is then compared without rounding error.
  f = jnp.where((n_correct == 0) | (n_correct == n), 1.0, f)
  positive = jax.lax.stop_gradient(jnp.asarray(advantages)) > 0
  return jnp.where(positive, f, 1.0).astype(c.dtype)


def apo_stcr_scale(rewards: jax.Array, lengths: jax.Array, *, base: float = 1.00001) -> jax.Array:
  """STCR advantage scale s `f[G, n]` ∈ [1, 2) (module docstring); multiply the advantages by it.

  Args:
    rewards: `f[G, n]` rewards; correctness is trunc(R) clipped to {0, 1}.
    lengths: `[G, n]` response lengths in tokens (any real dtype).
    base: b > 1 of the saturating penalty 1 − b^{−Δ}.
  """
  checks.check_same_shape(2, rewards=rewards, lengths=lengths)
  b = checks.concrete_value(base)
  if b is not None and not b > 1:
    raise ValueError(f"`base` must be > 1, got {b}.")
  c = _correct(rewards)
  (length,) = checks.as_compute(lengths)
  length = jax.lax.stop_gradient(length.astype(c.dtype))
  n_correct = jnp.sum(c, axis=-1, keepdims=True)
  mean_pos = jnp.sum(length * c, axis=-1, keepdims=True) / jnp.maximum(n_correct, 1)
  excess = (length - mean_pos) * (1 - c)
  penalise = (excess > 0) & (n_correct > 0)
  # log b in double precision: float32 rounds 1.00001 to 1.0000100136, a 1e-4 relative error in
  # log b (View-R1's float32 `1.00001 ** -Δ` carries that error). −expm1(−Δ·log b) = 1 − b^{−Δ}.
  log_base = math.log(b) if b is not None else jnp.log(jnp.asarray(base, c.dtype))
  return 1 + jnp.where(penalise, -jnp.expm1(-excess * log_base), 0)


@register("weighted_seq_kl", kind="policy", reads=("logp", "ref_logp", "mask", "seq_weights"))
def weighted_seq_kl_loss(
    logp: jax.Array,
    ref_logp: jax.Array,
    mask: jax.Array,
    seq_weights: jax.Array,
    *,
    kind: str = "k3",
    clamp: float | None = None,
    agg: str = "seq-mean-token-mean",
) -> tuple[jax.Array, Metrics]:
  """Per-sequence weighted KL loss: aggregate(w_i · k(logp − ref_logp)_{i,t}, mask, agg).

  With the default `agg="seq-mean-token-mean"` this is View-R1's
  mean_i [w_i · Σ_t m·k_t / Σ_t m] (its batch mean counts only non-empty rows). Multiply by β.

  Args:
    logp: `f[B, T]` log π_θ of the sampled tokens; the only input receiving gradients.
    ref_logp: `f[B, T]` log π_ref; constant.
    mask: `bool[B, T]` response mask. An all-empty mask gives 0.
    seq_weights: `f[B]` per-response weights (e.g. `dads_kl_weights(...).reshape(-1)`); constant.
    kind, clamp: estimator of `rljax.losses.kl.kl_penalty` (View-R1: k3, no clamp).
    agg: aggregation mode of `rljax.losses.aggregation`.

  Metrics (stop-gradient): `kl` (unweighted masked token mean of k), `weight_mean`,
  `loss_numerator`, `loss_denominator`.
  """
  checks.check_choice("agg", agg, aggregation.MODES)
  batch, _ = checks.check_same_shape(2, logp=logp, ref_logp=ref_logp, mask=mask)
  if jnp.shape(seq_weights) != (batch,):
    raise ValueError(f"`seq_weights` has shape {jnp.shape(seq_weights)}, expected ({batch},) (one per response).")
  mask = jnp.asarray(mask, bool)
  logp, ref_logp, w = checks.as_compute(logp, ref_logp, seq_weights)
  # where(): -inf log-probs in padding must reach neither the value nor the gradient.
  kl = kl_penalty(jnp.where(mask, logp, 0), jnp.where(mask, ref_logp, 0), kind=kind, clamp=clamp)
  w = jax.lax.stop_gradient(w)
  num, den = aggregation.aggregate_parts(w[:, None] * kl, mask, agg)
  metrics = {
      "kl": masked_mean(kl, mask),
      "weight_mean": jnp.mean(w),
      "loss_numerator": num,
      "loss_denominator": den,
  }
  return num / jnp.where(den > 0, den, 1), checks.stop_metrics(metrics)
