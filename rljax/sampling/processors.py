"""Logits processors for sampling: small pure functions of `f[..., V]` logits.

Each processor returns logits of the same shape in float32, with excluded tokens at −∞, so they
compose and the sampled token's log-probability is `log_softmax(processed)[token]`. Every parameter
may be a traced scalar: a sampler that passes them as arrays compiles once for all their values, and
a disabled processor (k = 0, p = 1, min_p = 0) returns its input unchanged. Order used by
`process_logits` follows transformers' sampling warpers: temperature → top-k → top-p → min-p.

  temperature τ:  x / τ
  top-k:          keep x_j ≥ the k-th largest value (ties at the threshold are kept)
  top-p:          keep the smallest set of most likely tokens whose mass reaches p
                  (both without sorting the vocabulary: `rljax.ops.masks` bisects for the threshold)
  min-p:          keep tokens with p_j ≥ min_p · max_i p_i
  token mask:     keep tokens where `allowed` is True

`filter_logits` chains the first four (`process_logits` normalises the result), and `sample` draws a
token from it by inverting the CDF at a given uniform (`draw`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.losses import geometric_mixture_logits, nlpo_masked_logits
from rljax.ops.masks import top_k_mask, top_p_mask


def _f32(logits: jax.Array) -> jax.Array:
  return jnp.asarray(logits).astype(jnp.promote_types(jnp.asarray(logits).dtype, jnp.float32))


def temperature_logits(logits: jax.Array, temperature) -> jax.Array:
  """x / τ for τ > 0."""
  return _f32(logits) / temperature


def top_k_logits(logits: jax.Array, k) -> jax.Array:
  """Keeps the k largest logits (and ties with the k-th); k ≤ 0 or k ≥ V keeps all. k may be traced."""
  x = _f32(logits)
  return jnp.where(_top_k_keep(x, k), x, -jnp.inf)


def top_p_logits(logits: jax.Array, p) -> jax.Array:
  """Nucleus filtering: keeps the smallest set of most likely tokens with mass ≥ p; p = 1 keeps all."""
  x = _f32(logits)
  return jnp.where(_top_p_keep(x, p), x, -jnp.inf)


def min_p_logits(logits: jax.Array, min_p) -> jax.Array:
  """Keeps tokens with p_j ≥ min_p · max p, i.e. x_j ≥ max x + log(min_p); min_p = 0 keeps all."""
  x = _f32(logits)
  return jnp.where(_min_p_keep(x, min_p), x, -jnp.inf)


# The filters as masks, so that `filter_logits` writes logits once. Top-k and top-p run under `lax.cond`:
# disabled, they cost nothing but the all-True mask.
def _top_k_keep(x: jax.Array, k) -> jax.Array:
  k = jnp.asarray(k, jnp.int32)
  return jax.lax.cond((k > 0) & (k < x.shape[-1]), lambda: top_k_mask(x, k), lambda: jnp.ones(x.shape, jnp.bool_))


def _top_p_keep(x: jax.Array, p) -> jax.Array:
  p = jnp.asarray(p, x.dtype)
  return jax.lax.cond(p < 1, lambda: top_p_mask(x, p), lambda: jnp.ones(x.shape, jnp.bool_))


def _min_p_keep(x: jax.Array, min_p) -> jax.Array:
  min_p = jnp.asarray(min_p, x.dtype)
  return (min_p <= 0) | (x >= jnp.max(x, axis=-1, keepdims=True) + jnp.log(jnp.maximum(min_p, 1e-38)))


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


def filter_logits(logits: jax.Array, params: SamplingParams) -> jax.Array:
  """The processed logits `f32[..., V]` (temperature → top-k → top-p → min-p), not normalised: the
  processors chained, as masks (min-p may take the maximum before top-k and top-p, which keep it)."""
  x = temperature_logits(logits, params.temperature)
  keep = _top_k_keep(x, params.top_k)
  keep &= _top_p_keep(jnp.where(keep, x, -jnp.inf), params.top_p)
  keep &= _min_p_keep(x, params.min_p)
  return jnp.where(keep, x, -jnp.inf)


def process_logits(logits: jax.Array, params: SamplingParams) -> jax.Array:
  """Normalised log-probabilities `f32[..., V]` of the distribution a token is drawn from."""
  return jax.nn.log_softmax(filter_logits(logits, params), axis=-1)


def _filtering(params: SamplingParams) -> jax.Array:
  return (params.top_k > 0) | (params.top_p < 1) | (params.min_p > 0)


def unprocessed(params: SamplingParams) -> jax.Array:
  """Whether the processed distribution is softmax(logits) itself: temperature 1, no filter, not greedy."""
  return ~_filtering(params) & (params.temperature == 1) & ~params.greedy


def sample(logits: jax.Array, u: jax.Array, params: SamplingParams) -> tuple[jax.Array, jax.Array]:
  """A token per row of `f[B, V]` logits drawn from the processed distribution at uniforms `u` ∈ [0, 1)
  `f32[B]` (`draw`), or its argmax when greedy; returns (token i32[B], its processed log-prob, 0 when greedy)."""
  x = _f32(logits)
  filtering = _filtering(params)
  # Without a filter the temperature is applied inside the draw's own pass over the logits.
  x = jax.lax.cond(filtering, lambda x: filter_logits(x, params), lambda x: x, x)
  temperature = jnp.where(filtering, 1.0, params.temperature)
  greedy = lambda x: (_argmax(x), jnp.zeros(x.shape[:-1], jnp.float32))
  return jax.lax.cond(params.greedy, greedy, lambda x: draw(x, u, temperature), x)


def draw(logits: jax.Array, u: jax.Array, temperature=1.0) -> tuple[jax.Array, jax.Array]:
  """Draws from softmax(logits / τ) `f[B, V]` by inverting its CDF at `u` ∈ [0, 1) `f32[B]`.

  With e = exp((x − max x) / τ) and Z = Σ e, the token is the first j with Σ_{i ≤ j} e_i > u·Z, so for
  u ~ U[0, 1) token j is drawn with probability e_j / Z (up to float rounding: float32 uniforms lie on
  a 2^-23 grid), and a token with e_j = 0 (−∞, or underflow) never. One uniform per row replaces the V
  Gumbel variates of `jax.random.categorical`, and the search stays O(V): sums of blocks of about √V
  consecutive tokens, the first block whose running sum exceeds u·Z, then the first token inside it.

  Returns (token i32[B], its log-probability (x_token − max x) / τ − log Z).
  """
  x = _f32(logits)
  b, v = x.shape
  top = jnp.max(x, axis=-1)
  e = jnp.exp((x - top[:, None]) / temperature)
  block = _block_size(v)
  if block == v:
    running = jnp.cumsum(e, axis=-1)
    token = _first_above(running, u * running[:, -1], e > 0)
    z = jnp.sum(e, axis=-1)
  else:
    n_blocks = -(-v // block)
    e = jnp.pad(e, ((0, 0), (0, n_blocks * block - v))).reshape(b, n_blocks, block)
    sums = jnp.sum(e, axis=-1)
    running = jnp.cumsum(sums, axis=-1)
    target = u * running[:, -1]
    blk = _first_above(running, target, sums > 0)
    inner = jnp.take_along_axis(e, blk[:, None, None], axis=1)[:, 0]
    rest = target - (_pick(running, blk) - _pick(sums, blk))
    token = blk * block + _first_above(jnp.cumsum(inner, axis=-1), jnp.maximum(rest, 0), inner > 0)
    # Z from a plain sum of the block sums: the running sum's rounding grows with the number of blocks.
    z = jnp.sum(sums, axis=-1)
  return token, (_pick(x, token) - top) / temperature - jnp.log(z)


def _block_size(v: int) -> int:
  """V itself up to 1024 tokens (one level), else a divisor of V within 8x of √V (no padding), else 256."""
  if v <= 1024:
    return v
  divisors = [d for d in range(1, math.isqrt(v) + 1) if v % d == 0]
  near = min(divisors + [v // d for d in divisors], key=lambda d: abs(math.log(d * d / v)))
  return near if abs(math.log(near * near / v)) <= 2 * math.log(8) else 256


def _first_above(running: jax.Array, target: jax.Array, positive: jax.Array) -> jax.Array:
  """Index of the first positive term whose running sum exceeds target, or of the last positive term
  when rounding left every running sum at or under it. Positive terms only: a scan's float sums need
  not be monotone, and a term of probability 0 must never be drawn. (A min and a max, which XLA:CPU
  vectorises, rather than an argmax.)"""
  n = running.shape[-1]
  index = jnp.arange(n, dtype=jnp.int32)
  first = jnp.min(jnp.where(positive & (running > target[:, None]), index, n), axis=-1)
  last = jnp.max(jnp.where(positive, index, 0), axis=-1)
  return jnp.where(first < n, first, last)


def _argmax(x: jax.Array) -> jax.Array:
  """First index of the largest entry of each row (jnp.argmax, as a max and a min that vectorise)."""
  index = jnp.arange(x.shape[-1], dtype=jnp.int32)
  return jnp.min(jnp.where(x == jnp.max(x, axis=-1, keepdims=True), index, x.shape[-1]), axis=-1)


def _pick(x: jax.Array, index: jax.Array) -> jax.Array:
  return jnp.take_along_axis(x, index[..., None], axis=-1)[..., 0]
