"""Token masks over the vocabulary and the sequence.

* `top_p_mask`: the nucleus (smallest most-likely set with mass ≥ p) of a distribution over the
  vocabulary, shared by the sampler's top-p filter and NLPO's masking policy.
* `top_k_mask`: the tokens at or above the k-th largest logit (the sampler's top-k filter).
* `last_token` / `at_last_token`: the last valid position of each right-padded row, where a
  sequence-level score becomes a token reward (EOS rewards of PPO, REINFORCE++, ReMax).

The two vocabulary masks are defined by the descending order of the logits (ties by lowest index) but
never sort: XLA:CPU sorts a 150k vocabulary in hundreds of milliseconds, at every sampling step. Each
finds its threshold logit by bisection over the logits' order-preserving integer image (`order_key`),
one pass over the vocabulary per halving (a count, or a masked sum of probabilities, above a trial
value) until the bracket's two keys are adjacent: at most 33 passes for float32. The set is then every
token above the threshold plus the first ties at it, in index order.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks


def check_top_p(p_name: str, p: float, keep_name: str, min_keep: int) -> None:
  """A top-p threshold p ∈ (0, 1] (or traced) and a static minimum number of kept tokens ≥ 1."""
  if not isinstance(min_keep, int) or isinstance(min_keep, bool) or min_keep < 1:
    raise ValueError(f"`{keep_name}` must be an int >= 1, got {min_keep!r}.")
  v = checks.concrete_value(p)
  if v is not None and not 0.0 < v <= 1.0:
    raise ValueError(f"`{p_name}` must be in (0, 1], got {v}.")


# Top-k over a large vocabulary with k ≤ _BLOCKS searches only the _BLOCKS blocks of _BLOCK consecutive
# tokens with the largest maxima, which hold the k largest: one pass gathers them, and the bisection runs
# over _BLOCKS·_BLOCK tokens instead of V. (The same gathering serves top-p only when the nucleus sits
# above every other block; checking that costs a flat distribution more than it saves a peaked one.)
_BLOCK, _BLOCKS = 128, 64


def top_p_mask(logits: jax.Array, p: float, *, min_tokens_to_keep: int = 1) -> jax.Array:
  """`bool[..., V]`: the smallest set of most likely tokens with probability mass ≥ p.

  Token j (in descending order of probability, ties by lowest index) is kept iff the mass of the
  tokens ranked before it is < p, or its rank is < `min_tokens_to_keep`. p ≥ 1 keeps every token.
  RL4LMs' `learned_top_p` (HF's top-p rule) differs only at exact equality: it also keeps a token
  whose preceding mass equals p.

  Sort-free: with M(t) = Σ_{x_j > t} p_j, the last kept token's logit is x* = min{t : M(t) < p}
  (bisection), every token above x* is kept, and of the c tokens tied at x* (probability q each) the
  first n = clip(⌈(p − M(x*)) / q⌉, 1, c) in index order: the i-th tie has mass i·q + M(x*) before it.

  Args:
    logits: `f[..., V]` logits of the distribution defining the set (gradients are not needed).
    p: mass threshold p ∈ (0, 1]; may be traced.
    min_tokens_to_keep: static int ≥ 1.
  """
  check_top_p("p", p, "min_tokens_to_keep", min_tokens_to_keep)
  if jnp.ndim(logits) < 1:
    raise ValueError(f"`logits` must have a vocabulary axis, got shape {jnp.shape(logits)}.")
  (x,) = checks.as_compute(logits)
  x = jax.lax.stop_gradient(x)
  last, n = _nucleus(x, jax.nn.softmax(x, axis=-1), p, min(min_tokens_to_keep, x.shape[-1]))
  return _prefix(x, last, n) | (p >= 1)


def top_k_mask(logits: jax.Array, k) -> jax.Array:
  """`bool[..., V]`: the tokens whose logit is ≥ the k-th largest (so ties with it are all kept).

  k may be traced; k ≤ 0 or k ≥ V keeps every token. The threshold max{t : #(x_j ≥ t) ≥ k} is found
  by bisection (no sort).
  """
  if jnp.ndim(logits) < 1:
    raise ValueError(f"`logits` must have a vocabulary axis, got shape {jnp.shape(logits)}.")
  (x,) = checks.as_compute(logits)
  x = jax.lax.stop_gradient(x)
  k = jnp.asarray(k, x.dtype)
  if x.shape[-1] < 2 * _BLOCKS * _BLOCK:
    kth = _kth_largest(x, k)
  else:
    # The k largest lie in the k blocks with the largest maxima.
    kth = jax.lax.cond(jnp.all(k <= _BLOCKS), lambda: _kth_largest(_top_blocks(x, _BLOCKS), k),
                       lambda: _kth_largest(x, k))
  return (x >= kth[..., None]) | (k <= 0) | (k >= x.shape[-1])


def _kth_largest(x: jax.Array, k) -> jax.Array:
  """The k-th largest logit of each row (k ≥ 1; ≤ V, else the smallest): max{t : #(x_j ≥ t) ≥ k}."""
  return _from_key(_bisect(x, lambda t: _count(x >= _from_key(t)[..., None]), lambda c: c >= k)[0])


def _nucleus(x: jax.Array, probs: jax.Array, p, min_keep: int) -> tuple[jax.Array, jax.Array]:
  """(x*, n) of `top_p_mask`: the set is every logit above x* plus the first n ties at it."""
  mass_above = lambda t: jnp.sum(jnp.where(x >= _from_key(t + 1)[..., None], probs, 0), axis=-1)
  _, last, mass = _bisect(x, mass_above, lambda m: m >= p)
  last = _from_key(last)
  tie = x == last[..., None]
  q = jnp.max(jnp.where(tie, probs, 0), axis=-1)
  # q = 0 (underflow) gives +inf: every tie has the same mass M(x*) < p before it.
  n = jnp.minimum(jnp.maximum(jnp.ceil((p - mass) / q), 1), _count(tie))
  if min_keep > 1:
    kth = _kth_largest(x, min_keep)
    short = _count(x > last[..., None]) + n < min_keep
    last, n = jnp.where(short, kth, last), jnp.where(short, min_keep - _count(x > kth[..., None]), n)
  return last, n


def _top_blocks(x: jax.Array, n: int) -> jax.Array:
  """The logits `[..., n·_BLOCK]` in the n blocks of _BLOCK consecutive tokens with the largest maxima
  (−∞ pads the last block)."""
  v = x.shape[-1]
  n_blocks = -(-v // _BLOCK)
  padding = [(0, 0)] * (x.ndim - 1) + [(0, n_blocks * _BLOCK - v)]
  blocks = jnp.pad(x, padding, constant_values=-jnp.inf).reshape(x.shape[:-1] + (n_blocks, _BLOCK))
  _, index = jax.lax.top_k(jnp.max(blocks, axis=-1), n)
  return jnp.take_along_axis(blocks, index[..., None], axis=-2).reshape(x.shape[:-1] + (n * _BLOCK,))


def order_key(x: jax.Array) -> jax.Array:
  """Unsigned integers in the order of the floats `x`: x_i < x_j ⇔ key_i < key_j, and −0 = +0.

  A float is sign and magnitude: setting the sign bit of a non-negative float and flipping every bit
  of a negative one gives the unsigned order. NaN has no place in it (not supported).
  """
  x = jnp.where(x == 0, jnp.zeros_like(x), x)
  bits = jax.lax.bitcast_convert_type(x, jnp.dtype(f"uint{8 * x.dtype.itemsize}"))
  sign = jnp.asarray(1, bits.dtype) << (8 * x.dtype.itemsize - 1)
  return jnp.where(bits >= sign, ~bits, bits | sign)


def _from_key(key: jax.Array) -> jax.Array:
  """The float whose `order_key` is `key` (key of −0 gives −0, which compares like +0)."""
  sign = jnp.asarray(1, key.dtype) << (8 * key.dtype.itemsize - 1)
  bits = jnp.where(key >= sign, key ^ sign, ~key)
  return jax.lax.bitcast_convert_type(bits, jnp.dtype(f"float{8 * key.dtype.itemsize}"))


def _count(mask: jax.Array) -> jax.Array:
  # A float sum (exact below 2^24 tokens, for float32): XLA:CPU reduces floats faster than ints.
  return jnp.sum(mask, axis=-1, dtype=jnp.float32)


def _bisect(x: jax.Array, measure, below):
  """Per row of `x` [..., V], the two adjacent keys t (`order_key`) around where `below` turns False.

  measure(t) -> f[...] is one pass over the vocabulary at trial keys t; below(measure(t)) must
  be True for every t under some boundary and False from it on, and measure must be 0 at the key
  after the largest logit. Compared as floats, `order_key(x_j) ≥ t` is `x_j ≥ _from_key(t)`. From
  (min key − 1, max key + 1), each pass halves the bracket (lo, hi) of every row where hi − lo > 1:
  at most 33 passes for float32.

  Returns (lo, hi, measure(hi)): lo is the largest key with `below` True, hi = lo + 1.
  """
  def body(state):
    lo, hi, at_hi = state
    mid = lo + (hi - lo) // 2
    value = measure(mid)
    open_ = hi - lo > 1
    up, down = open_ & below(value), open_ & ~below(value)
    return jnp.where(up, mid, lo), jnp.where(down, mid, hi), jnp.where(down, value, at_hi)

  # Brackets from float reductions: XLA:CPU reduces unsigned integers slowly.
  lo, hi = order_key(jnp.min(x, axis=-1)) - 1, order_key(jnp.max(x, axis=-1)) + 1
  init = (lo, hi, jnp.zeros(lo.shape, jax.eval_shape(measure, lo).dtype))
  return jax.lax.while_loop(lambda s: jnp.any(s[1] - s[0] > 1), body, init)


def _prefix(x: jax.Array, last: jax.Array, n: jax.Array) -> jax.Array:
  """`bool[..., V]`: the logits above `last` plus the first n (in index order) equal to it."""
  above, tie = x > last[..., None], x == last[..., None]

  def split(_):
    # Only when some row keeps part of its ties: the running count is an O(V log V) scan on CPU.
    return above | (tie & (jnp.cumsum(tie, axis=-1, dtype=jnp.int32) <= n[..., None]))

  return jax.lax.cond(jnp.any(n < _count(tie)), split, lambda _: above | tie, None)


def last_token(mask: jax.Array) -> jax.Array:
  """`bool[B, T]`, True at the last True of each row of `mask` (nowhere for an empty row)."""
  length = mask.shape[-1]
  last = length - 1 - jnp.argmax(mask[:, ::-1], axis=-1)
  return (jnp.arange(length) == last[:, None]) & mask


def at_last_token(scores: jax.Array, mask: jax.Array) -> jax.Array:
  """Token rewards `f[B, T]`: each row's score at its last valid token (EOS), 0 elsewhere."""
  return jnp.where(last_token(mask), scores[:, None], 0)
