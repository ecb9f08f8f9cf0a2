"""Critic loss of PPO and the per-token policy entropy from logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from rljax import checks
from rljax.losses import aggregation
from rljax.ops.reductions import masked_mean
from rljax.losses.registry import register

Metrics = dict[str, jax.Array]


@register("value", kind="value", reads=("values", "old_values", "returns", "mask"))
def value_loss(
    values: jax.Array,
    old_values: jax.Array,
    returns: jax.Array,
    mask: jax.Array,
    *,
    clip: float | None = 0.5,
    agg: str = "token-mean",
    norm: float | None = None,
) -> tuple[jax.Array, Metrics]:
  """Clipped value loss of PPO (Schulman et al. 2017), as in verl `compute_value_loss`.

      V_clip = clip(V, V_old − ε_v, V_old + ε_v)
      L = ½·aggregate(max((V − R)², (V_clip − R)²), mask, agg)

  The pessimistic max keeps the critic from moving more than ε_v from the rollout values in the
  direction that lowers the loss. `clip=None` is the plain ½·aggregate((V − R)²). ε_v = 0.5 is
  verl's `cliprange_value`; TRL-PPO uses 0.2, OpenRLHF no clipping by default (`clip_eps=None`).
  OpenRLHF's V_old + clip(V − V_old, ±ε_v) is the same value.

  Gradients flow into `values` only; `old_values` and `returns` are stop-gradiented. Where the
  clipped term is the larger one and V is outside V_old ± ε_v, the gradient is 0.

  Metrics (stop-gradient): `vf_clipfrac`, the masked fraction of tokens whose clipped term is
  strictly larger (verl's definition); `value_mean`, the masked mean of V; `loss_numerator` and
  `loss_denominator` of `aggregation.aggregate_parts` (with the ½ included), whose ratio is the
  loss: for exact gradient accumulation over micro-batches, sum them separately.

  Args:
    values: `f[B, T]` current critic values V.
    old_values: `f[B, T]` critic values at rollout time V_old.
    returns: `f[B, T]` targets R (e.g. from `advantages.gae`).
    mask: `bool[B, T]` response mask. An empty mask gives loss 0 and zero metrics.
    clip: ε_v > 0, or None for no clipping.
    agg: aggregation mode (`aggregation.MODES`), default "token-mean".
    norm: the constant of "seq-mean-token-sum-norm" (see `aggregation.aggregate`).
  """
  checks.check_same_shape(2, values=values, old_values=old_values, returns=returns, mask=mask)
  checks.check_choice("agg", agg, aggregation.MODES)
  if clip is not None:
    checks.check_positive("clip", clip)
  mask = jnp.asarray(mask, bool)
  values, old_values, returns = checks.as_compute(values, old_values, returns)
  # where(), not a product: NaN in padding would otherwise reach the gradient as 0·NaN.
  values = jnp.where(mask, values, 0)
  old_values = lax.stop_gradient(jnp.where(mask, old_values, 0))
  returns = lax.stop_gradient(jnp.where(mask, returns, 0))
  unclipped = jnp.square(values - returns)
  if clip is None:
    per_token = unclipped
    clipped = jnp.zeros(mask.shape, bool)
  else:
    # clip(V, ...) rather than V_old + clip(V − V_old): inside the band it is V exactly, so both
    # terms tie and the gradient is exactly that of the unclipped loss.
    clipped_loss = jnp.square(jnp.clip(values, old_values - clip, old_values + clip) - returns)
    per_token = jnp.maximum(unclipped, clipped_loss)
    clipped = clipped_loss > unclipped
  num, den = aggregation.aggregate_parts(0.5 * per_token, mask, agg, norm=norm)
  loss = num / jnp.where(den > 0, den, 1)
  metrics = {
      "vf_clipfrac": masked_mean(clipped.astype(values.dtype), mask),
      "value_mean": masked_mean(values, mask),
      "loss_numerator": num,
      "loss_denominator": den,
  }
  return loss, checks.stop_metrics(metrics)


def entropy_from_logits(logits: jax.Array) -> jax.Array:
  """Entropy of softmax(logits) over the last axis: H = logsumexp(z) − Σ_v softmax(z)_v·z_v.

  Computed as Σ_v p_v·(lse − z_v) after shifting the max logit to 0: the same quantity, with
  non-negative terms (so H >= 0) of size O(log V) even when the logits are large; log p = z − lse
  comes from a stable logsumexp, never from log(softmax). In float32 (float64 for float64 input)
  whatever the input dtype. Entries of −inf (a masked vocabulary) contribute 0 to the value and
  the gradient; a row that is entirely −inf has no distribution and gives 0. +inf or NaN logits
  give NaN.

  Materialises the float32 `[..., V]` array; gradients flow into `logits`
  (∂H/∂z_v = −p_v·(log p_v + H)).

  Args:
    logits: `f[..., V]` of any floating dtype.

  Returns:
    `f[...]` entropies.
  """
  if jnp.ndim(logits) < 1 or jnp.shape(logits)[-1] == 0:
    raise ValueError(f"`logits` must have a non-empty last (vocabulary) axis, got shape {jnp.shape(logits)}.")
  if not jnp.issubdtype(jnp.result_type(logits), jnp.floating):
    raise ValueError(f"`logits` must be floating, got dtype {jnp.result_type(logits)}.")
  z = jnp.asarray(logits, checks.compute_dtype(logits))
  finite = z > -jnp.inf
  # An all −inf row would give lse = −inf and a NaN gradient; any finite lse makes its p all 0.
  empty = ~jnp.any(finite, axis=-1, keepdims=True)
  # H is shift invariant; with the max at 0, lse − z is a difference of O(log V) numbers, not of
  # two large logits (each with an absolute rounding error of ulp(z)).
  z = z - lax.stop_gradient(jnp.where(empty, 0, jnp.max(z, axis=-1, keepdims=True)))
  lse = jax.nn.logsumexp(jnp.where(empty, 0, z), axis=-1, keepdims=True)
  p = jnp.exp(z - lse)
  # Double where: p·(lse − z) at z = −inf is 0·inf; the inner where keeps NaN out of the gradient.
  neg_logp = jnp.where(finite, lse - z, 0)
  return jnp.sum(jnp.where(finite, p * neg_logp, 0), axis=-1)
