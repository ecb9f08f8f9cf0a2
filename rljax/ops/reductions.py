"""Masked reductions over right-padded `[B, T]` token arrays.

A masked mean divides by the number of unmasked entries. An empty mask gives 0 (a documented finite
value), never NaN: the denominator is clamped at 1, and the numerator is then 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks


def masked_sum(x: jax.Array, mask: jax.Array, axis: int | tuple[int, ...] | None = None) -> jax.Array:
  """Σ x·mask over `axis` (all axes when None)."""
  checks.check_same_shape(x=x, mask=mask)
  return jnp.sum(jnp.where(mask, x, 0), axis=axis)


def mask_count(mask: jax.Array, axis: int | tuple[int, ...] | None = None, dtype=jnp.float32) -> jax.Array:
  """Σ mask over `axis`, as `dtype`."""
  return jnp.sum(mask, axis=axis, dtype=dtype)


def masked_mean(x: jax.Array, mask: jax.Array, axis: int | tuple[int, ...] | None = None) -> jax.Array:
  """Σ x·mask / max(Σ mask, 1) over `axis`; 0 where the mask is empty."""
  num = masked_sum(x, mask, axis)
  den = mask_count(mask, axis, dtype=num.dtype)
  return num / jnp.maximum(den, 1)


def sequence_logps(token_logps: jax.Array, mask: jax.Array, *, average: bool = False) -> jax.Array:
  """Sequence log-probability `f[B]` from per-token `f[B, T]`: masked sum, or mean when `average`.

  The masked sum is log π(y|x) as used by DPO; the mean is the length-normalised score of SimPO.
  """
  checks.check_same_shape(2, token_logps=token_logps, mask=mask)
  return masked_mean(token_logps, mask, axis=-1) if average else masked_sum(token_logps, mask, axis=-1)


def group_mean(x: jax.Array, group_size: int) -> jax.Array:
  """`f[G]` means of contiguous groups of `group_size` entries of `x: f[B]` (GRPO's layout: the n
  responses to one prompt are adjacent rows); B must be a multiple of `group_size`."""
  if jnp.ndim(x) != 1 or x.shape[0] % group_size:
    raise ValueError(f"`x` must be f[B] with B a multiple of group_size={group_size}, got shape {jnp.shape(x)}.")
  (x,) = checks.as_compute(x)
  return jnp.mean(x.reshape(-1, group_size), axis=-1)
