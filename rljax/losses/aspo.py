"""ASPO: advantage shaping for tool-integrated reasoning.

Lin & Xu, "Understanding Tool-Integrated Reasoning", 2025 (arXiv 2508.19201). To steer a behaviour
such as calling the code tool early, ASPO edits the GRPO advantage after normalisation instead of
the reward. With A_i the correctness-only GRPO advantage and p_i a behaviour feature (here the
normalised position of the first tool call) of the correct, tool-using responses S_g of group g:

    z_i  = (p_i − mean_{S_g} p) / (std_{S_g} p + ε)          population std over S_g
    s_i  = clip(−δ·z_i, −k·|A_i|, k·|A_i|)                   0 ≤ k < 1
    A'_i = A_i + s_i  for i ∈ S_g,   A'_i = A_i otherwise

Earlier calls (z < 0) get a positive tilt. Because |s_i| ≤ k|A_i| < |A_i|, sign(A') = sign(A), every
correct response keeps A' ≥ (1 − k)·A > 0 when A > 0, and incorrect responses are untouched; the
group mean of A' is no longer 0, by design (a bounded tilt, not a renormalised signal).

Why not shape the reward: in an all-correct group GRPO's (R' − mean)/std removes the correctness part
entirely and rescales the bonus differences to unit variance, so correct responses get advantages as
negative as −1 for a late call (`reward_shaping_baseline` reproduces that ablation).

The feature definition, δ and k are not pinned down by the spec ([M]); the defaults δ = 1, k = 0.5
are its placeholders. Everything returned here is a constant of the policy objective (stop-gradient).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks


def aspo_advantages(
    base_adv: jax.Array,
    correct: jax.Array,
    feature: jax.Array,
    feature_valid: jax.Array,
    *,
    delta: float = 1.0,
    k: float = 0.5,
    eps: float = 1e-6,
) -> jax.Array:
  """Shaped advantages A' `f[G, n]` (formula in the module docstring).

  Args:
    base_adv: `f[G, n]` GRPO advantages of the correctness reward alone.
    correct: `bool[G, n]` correctness of each response.
    feature: `f[G, n]` behaviour feature p_i, e.g. `first_tool_call_position`; lower is rewarded.
    feature_valid: `bool[G, n]`, False where the feature is undefined (no tool call).
    delta: tilt strength δ ≥ 0.
    k: bound 0 ≤ k < 1 on the tilt relative to |A_i|; k = 0 returns `base_adv`.
    eps: ε > 0 in the z-score denominator (a group with one valid response gets z = 0).
  """
  checks.check_same_shape(2, base_adv=base_adv, correct=correct, feature=feature, feature_valid=feature_valid)
  checks.check_nonnegative("delta", delta)
  k_value = checks.concrete_value(k)
  if k_value is not None and not 0.0 <= k_value < 1.0:
    raise ValueError(f"`k` must be in [0, 1), got {k_value}.")
  checks.check_positive("eps", eps)
  adv, p = checks.as_compute(base_adv, feature)
  adv, p = jax.lax.stop_gradient(adv), jax.lax.stop_gradient(p)
  sel = jnp.asarray(correct, bool) & jnp.asarray(feature_valid, bool)
  count = jnp.maximum(jnp.sum(sel, axis=-1, keepdims=True, dtype=adv.dtype), 1)
  mean = jnp.sum(jnp.where(sel, p, 0), axis=-1, keepdims=True) / count
  var = jnp.sum(jnp.where(sel, (p - mean) ** 2, 0), axis=-1, keepdims=True) / count
  z = (p - mean) / (jnp.sqrt(var) + eps)
  bound = k * jnp.abs(adv)
  tilt = jnp.clip(-delta * z, -bound, bound)
  return adv + jnp.where(sel, tilt, 0)


def first_tool_call_position(
    tokens: jax.Array, mask: jax.Array, *, tool_open_id: int, normalize: bool = True
) -> tuple[jax.Array, jax.Array]:
  """Position of the first tool call in each response: `(position f[B], has_call bool[B])`.

  The position counts the policy tokens (mask True) before the first `tool_open_id` token that the
  policy emitted (mask True), so prompt and tool-output tokens (mask False) do not shift it. With
  `normalize` it is divided by the response's number of policy tokens, giving a value in [0, 1).
  Responses without a call get position 0 and `has_call = False`.
  """
  checks.check_same_shape(2, tokens=tokens, mask=mask)
  mask = jnp.asarray(mask, bool)
  is_call = (jnp.asarray(tokens) == tool_open_id) & mask
  has_call = jnp.any(is_call, axis=-1)
  first = jnp.argmax(is_call, axis=-1)
  before = jnp.cumsum(mask, axis=-1, dtype=jnp.int32) - mask.astype(jnp.int32)
  pos = jnp.take_along_axis(before, first[:, None], axis=-1)[:, 0].astype(jnp.float32)
  if normalize:
    pos = pos / jnp.maximum(jnp.sum(mask, axis=-1, dtype=jnp.float32), 1)
  return jnp.where(has_call, pos, 0), has_call


def reward_shaping_baseline(rewards: jax.Array, bonus: jax.Array, *, lam: float) -> jax.Array:
  """Naive reward shaping R' = R + λ·b `f[B]`, the ablation ASPO replaces (normalise R' with GRPO)."""
  checks.check_same_shape(1, rewards=rewards, bonus=bonus)
  r, b = checks.as_compute(rewards, bonus)
  return jax.lax.stop_gradient(r + lam * b)
