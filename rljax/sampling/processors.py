"""Logits processors for sampling: small pure functions of `f[..., V]` logits.

Each processor returns logits of the same shape in float32, with excluded tokens at −∞, so they
compose and the sampled token's log-probability is `log_softmax(processed)[token]`. Every parameter
may be a traced scalar: a sampler that passes them as arrays compiles once for all their values, and
a disabled processor (k = 0, p = 1, min_p = 0) returns its input unchanged. Order used by
`process_logits` follows transformers' sampling warpers: temperature → top-k → top-p → min-p.

  temperature τ:  x / τ
  top-k:          keep x_j ≥ the k-th largest value (ties at the threshold are kept)
  top-p:          keep the smallest set of most likely tokens whose mass reaches p
  min-p:          keep tokens with p_j ≥ min_p · max_i p_i
  token mask:     keep tokens where `allowed` is True
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.losses import geometric_mixture_logits, nlpo_masked_logits
from rljax.ops.masks import top_p_mask


def _f32(logits: jax.Array) -> jax.Array:
  return jnp.asarray(logits).astype(jnp.promote_types(jnp.asarray(logits).dtype, jnp.float32))


def temperature_logits(logits: jax.Array, temperature) -> jax.Array:
  """x / τ for τ > 0."""
  return _f32(logits) / temperature


def top_k_logits(logits: jax.Array, k) -> jax.Array:
  """Keeps the k largest logits (and ties with the k-th); k ≤ 0 or k ≥ V keeps all. k may be traced."""
  x = _f32(logits)
  v = x.shape[-1]
  k = jnp.asarray(k, jnp.int32)

  def apply(x):
    kth = jnp.take(jnp.sort(x, axis=-1), jnp.clip(v - k, 0, v - 1), axis=-1)[..., None]
    return jnp.where(x >= kth, x, -jnp.inf)

  return jax.lax.cond((k > 0) & (k < v), apply, lambda x: x, x)


def top_p_logits(logits: jax.Array, p) -> jax.Array:
  """Nucleus filtering: keeps the smallest set of most likely tokens with mass ≥ p; p = 1 keeps all."""
  x = _f32(logits)
  p = jnp.asarray(p, x.dtype)
  return jax.lax.cond(p < 1, lambda x: jnp.where(top_p_mask(x, p), x, -jnp.inf), lambda x: x, x)


def min_p_logits(logits: jax.Array, min_p) -> jax.Array:
  """Keeps tokens with p_j ≥ min_p · max p, i.e. x_j ≥ max x + log(min_p); min_p = 0 keeps all."""
  x = _f32(logits)
  min_p = jnp.asarray(min_p, x.dtype)
  threshold = jnp.max(x, axis=-1, keepdims=True) + jnp.log(jnp.maximum(min_p, 1e-38))
  return jnp.where((min_p <= 0) | (x >= threshold), x, -jnp.inf)


def token_mask_logits(logits: jax.Array, allowed: jax.Array) -> jax.Array:
  """−∞ wherever the broadcastable `bool[..., V]` `allowed` is False."""
  return jnp.where(jnp.asarray(allowed, jnp.bool_), _f32(logits), -jnp.inf)


def geometric_mixture(policy_logits: jax.Array, ref_logits: jax.Array, *, alpha) -> jax.Array:
  """Nash-MD's token-level mixture π^(1−α)·μ^α: log_softmax((1−α)·log π + α·log μ).

  Equal to log_softmax((1−α)·policy_logits + α·ref_logits) (each log-softmax only shifts a row by a
  constant); α = 0 and α = 1 return the exact endpoints. Wraps `rljax.losses.geometric_mixture_logits`,
  the kernel the Nash-MD loss uses, so sampler and loss share one definition.
  """
  return geometric_mixture_logits(policy_logits, ref_logits, beta=alpha)


def nlpo_mask(policy_logits: jax.Array, mask_policy_logits: jax.Array, *, top_p, min_keep: int = 1,
              always_keep: jax.Array | None = None) -> jax.Array:
  """NLPO's action mask: the policy's logits restricted to the top-p set (at least `min_keep` tokens, plus
  the `bool[V]` `always_keep`) of a frozen masking policy."""
  return nlpo_masked_logits(policy_logits, mask_policy_logits, top_p=top_p, min_keep=min_keep, always_keep=always_keep)


class SamplingParams(NamedTuple):
  """Traced sampling parameters; disabled values: top_k = 0, top_p = 1, min_p = 0."""

  temperature: jax.Array
  top_k: jax.Array
  top_p: jax.Array
  min_p: jax.Array
  greedy: jax.Array


def sampling_params(*, temperature=1.0, top_k=None, top_p=None, min_p=None, greedy=False) -> SamplingParams:
  """Validates concrete values and returns them as arrays (None disables a processor).

  Raises ValueError for temperature ≤ 0 without `greedy`, top_p outside (0, 1], a negative top_k or
  min_p outside [0, 1].
  """
  v = {k: checks.concrete_value(x) if x is not None else None
       for k, x in dict(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p).items()}
  problems = [
      (not greedy and v["temperature"] is not None and v["temperature"] <= 0,
       f"`temperature` must be > 0 unless greedy=True, got {temperature}."),
      (v["top_p"] is not None and not 0 < v["top_p"] <= 1, f"`top_p` must lie in (0, 1], got {top_p}."),
      (v["top_k"] is not None and v["top_k"] < 0, f"`top_k` must be >= 0 (0 disables it), got {top_k}."),
      (v["min_p"] is not None and not 0 <= v["min_p"] <= 1, f"`min_p` must lie in [0, 1], got {min_p}."),
  ]
  for bad, message in problems:
    if bad:
      raise ValueError(message)
  return SamplingParams(
      temperature=jnp.asarray(1.0 if greedy is True or temperature is None else temperature, jnp.float32),
      top_k=jnp.asarray(0 if top_k is None else top_k, jnp.int32),
      top_p=jnp.asarray(1.0 if top_p is None else top_p, jnp.float32),
      min_p=jnp.asarray(0.0 if min_p is None else min_p, jnp.float32),
      greedy=jnp.asarray(greedy, jnp.bool_),
  )


def process_logits(logits: jax.Array, params: SamplingParams) -> jax.Array:
  """Normalised log-probabilities `f32[..., V]` of the distribution a token is drawn from."""
  x = temperature_logits(logits, params.temperature)
  x = top_k_logits(x, params.top_k)
  x = top_p_logits(x, params.top_p)
  x = min_p_logits(x, params.min_p)
  return jax.nn.log_softmax(x, axis=-1)
