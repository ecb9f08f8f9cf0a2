"""Key/value cache for incremental decoding with `Decoder.decode`.

The cache holds, per layer, the (post-RoPE) keys and values of every token seen so far in fixed-size
buffers [B, max_len, n_kv_heads, head_dim], so each decode call costs O(T * max_len) attention instead
of recomputing the whole prefix. All shapes are static, so a prefill followed by a `lax.scan` of
single-token steps compiles once.

One write index is shared by the batch: call t writes its T tokens into slots [index, index + T) of
every row. Rows of different prompt lengths are handled by left padding: `mask[b, s]` records whether
slot s holds a real token, and masked slots are never attended. Positions are tracked per row
(`next_position[b]` = number of real tokens row b has seen), so a left-padded prompt's first real
token gets position 0, exactly as in the full forward with positions = cumsum(mask) - 1.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class KVCache(NamedTuple):
  """Decode state; a pytree, so it passes through `jax.jit` and `lax.scan` carries unchanged.

  k, v: per-layer tuples of [B, max_len, n_kv_heads, head_dim] buffers.
  index: int32[] next slot to write (the number of slots filled so far, padding included).
  mask: bool[B, max_len], True where a slot holds a real (attendable) token.
  next_position: int32[B], the position the next real token of each row gets.
  """

  k: tuple[jax.Array, ...]
  v: tuple[jax.Array, ...]
  index: jax.Array
  mask: jax.Array
  next_position: jax.Array

  @property
  def batch_size(self) -> int:
    return self.mask.shape[0]

  @property
  def max_len(self) -> int:
    return self.mask.shape[1]


def init_cache(n_layers: int, batch: int, max_len: int, n_kv_heads: int, head_dim: int,
               dtype) -> KVCache:
  """An empty cache (all slots masked, index 0, every row at position 0)."""
  if batch <= 0 or max_len <= 0:
    raise ValueError(f"`batch` and `max_len` must be > 0, got batch={batch}, max_len={max_len}.")
  zeros = lambda: jnp.zeros((batch, max_len, n_kv_heads, head_dim), dtype)
  return KVCache(
      k=tuple(zeros() for _ in range(n_layers)),
      v=tuple(zeros() for _ in range(n_layers)),
      index=jnp.zeros((), jnp.int32),
      mask=jnp.zeros((batch, max_len), jnp.bool_),
      next_position=jnp.zeros((batch,), jnp.int32),
  )


def write(buffer: jax.Array, new: jax.Array, index: jax.Array) -> jax.Array:
  """buffer[:, index:index + T] = new, along axis 1 (the slot axis), in the buffer's dtype."""
  start = (jnp.zeros((), jnp.int32), jnp.asarray(index, jnp.int32)) + (jnp.zeros((), jnp.int32),) * (
      buffer.ndim - 2)
  return jax.lax.dynamic_update_slice(buffer, new.astype(buffer.dtype), start)
