"""Attention kernels of `Decoder`: one function, several implementations, picked by `DecoderConfig.attention`.

For queries q[B, T, N, H] and keys/values k, v [B, S, K, H] (grouped-query attention: N = K * G, query
head j reads kv head j // G, HF's `repeat_kv` order), every implementation computes

  out_t = sum_s softmax_s(<q_t, k_s> / sqrt(H) over the allowed s)[s] v_s.

A forward over a call's own tokens (S = T) passes a `SelfMask`: s is allowed iff s <= t, real[s], and
segment_ids[s] = segment_ids[t] when the row is packed. The KV-cache path (`Decoder.decode`) passes a
dense bool[B, T, S] mask instead, because its causality is offset by the cache index, which
`is_causal` cannot express; it always runs "einsum" (its single-token steps are bound by reading the
cache, not by the score matrix).

Implementations (outputs at padding queries are unspecified; only real queries are comparable):

  "einsum"  the reference: float32 scores [B, K, G, T, S] written out, masked with a finite floor,
            softmax, weighted sum. Any mask; memory O(B N T S).
  "xla"     `jax.nn.dot_product_attention(implementation="xla")` with the mapping below.
  "cudnn"   the same mapping with `implementation="cudnn"`: cuDNN's fused flash kernel (GPU; bf16 or
            fp16, head_dim a multiple of 8 and <= 128, or <= 256 from Hopper on), which never holds
            the [T, S] scores and skips the blocks above the diagonal.
  "splash"  the Pallas splash kernel for TPU (causal mask and segment ids, default block sizes, T a
            multiple of 128). Not run on a TPU by the tests; off TPU it runs in Pallas interpret mode,
            which is how the tests check its math.
  "auto"    chosen at trace time: "cudnn" on a CUDA GPU when its dtype and head_dim conditions hold
            (else "xla"), "splash" on TPU when T is a multiple of 128 (else "xla"), "einsum" on CPU.

The mapping for "xla"/"cudnn": cuDNN's padding takes only per-row sequence lengths (real tokens at
indices [0, length)), while rljax rows are left-padded prompts followed by completions and trailing
padding. Each row is therefore rotated so that its real run starts at index 0, attended with
`is_causal=True` and lengths, and rotated back. Positions are explicit (RoPE is applied before), so the
rotation changes nothing but the index, and causality within the run is preserved.
Precondition: each row's real tokens form ONE contiguous run (true of every batch rljax builds); a mask
with holes needs "einsum". Packed rows (`segment_ids`) instead pass their same-segment mask densely,
with `is_causal=True` (cuDNN still fuses it, reading a [B, 1, T, S] bias).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax.models.config import DecoderConfig

_SPLASH_BLOCK = 128


class SelfMask(NamedTuple):
  """Which keys a forward over its own T tokens may attend (causal in index on top of this).

  real: bool[B, T], True at real tokens, or None when every token is real; segment_ids: int[B, T]
  (non-negative) for packed rows, or None.
  """

  real: jax.Array | None
  segment_ids: jax.Array | None = None


def dense_mask(mask: SelfMask, t: int) -> jax.Array:
  """bool[B or 1, t, t]: s <= t, real[s], and equal segment ids when given."""
  dense = jnp.tril(jnp.ones((t, t), jnp.bool_))[None]
  if mask.real is not None:
    dense = dense & mask.real[:, None, :]
  if mask.segment_ids is not None:
    dense = dense & (mask.segment_ids[:, :, None] == mask.segment_ids[:, None, :])
  return dense


def cudnn_supported(cfg: DecoderConfig) -> bool:
  """Whether cuDNN's flash kernel takes this config on the default device (the "auto" test on GPU)."""
  if jnp.dtype(cfg.compute_dtype) not in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
    return False
  capability = getattr(jax.devices()[0], "compute_capability", None)  # CUDA devices only
  if capability is None:
    return False
  hopper = tuple(int(x) for x in str(capability).split(".")) >= (9, 0)
  return cfg.head_dim % 8 == 0 and cfg.head_dim <= (256 if hopper else 128)


def resolve(cfg: DecoderConfig, seq_len: int) -> str:
  """The implementation `cfg.attention` means for a self-attention over `seq_len` tokens, on the
  default backend at trace time ("auto" resolved; explicit names are returned as they are)."""
  if cfg.attention != "auto":
    return cfg.attention
  backend = jax.default_backend()
  if backend == "gpu":
    return "cudnn" if cudnn_supported(cfg) else "xla"
  if backend == "tpu":
    return "splash" if seq_len % _SPLASH_BLOCK == 0 else "xla"
  return "einsum"


def attend(cfg: DecoderConfig, q: jax.Array, k: jax.Array, v: jax.Array,
           mask: SelfMask | jax.Array) -> jax.Array:
  """Attention output [B, T, N, H] in q's dtype; `mask` is a `SelfMask` or a dense bool[B, T, S]."""
  if not isinstance(mask, SelfMask):
    return einsum_attention(q, k, v, mask)
  implementation = resolve(cfg, q.shape[1])
  if implementation == "einsum":
    return einsum_attention(q, k, v, dense_mask(mask, q.shape[1]))
  if implementation == "splash":
    return splash_attention(q, k, v, mask)
  return fused_attention(q, k, v, mask, implementation)


def einsum_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
  """The written-out reference; mask: bool[B or 1, T, S] (True = may attend)."""
  b, t, n, h = q.shape
  kv_heads = k.shape[2]
  # Query head j uses kv head j // g, so split n as (k, g).
  q = q.reshape(b, t, kv_heads, n // kv_heads, h)
  scores = jnp.einsum("btkgh,bskh->bkgts", q, k, preferred_element_type=jnp.float32) / math.sqrt(h)
  # A finite floor (not -inf) keeps fully masked rows (padding queries) NaN-free.
  scores = jnp.where(mask[:, None, None], scores, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
  return jnp.einsum("bkgts,bskh->btkgh", probs, v).reshape(b, t, n, h)


@jax.custom_vjp
def roll_rows(x: jax.Array, shift: jax.Array) -> jax.Array:
  """y[b, i] = x[b, (i + shift[b]) mod T] along axis 1 (a per-row rotation to the left).

  Its transpose is the opposite rotation, so the backward pass is a gather too (custom VJP) instead
  of the scatter-add XLA would derive for a general gather.
  """
  t = x.shape[1]
  idx = (jnp.arange(t)[None, :] + shift[:, None]) % t
  return jnp.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)


def _roll_rows_fwd(x, shift):
  return roll_rows(x, shift), shift


def _roll_rows_bwd(shift, g):
  return roll_rows(g, -shift), None


roll_rows.defvjp(_roll_rows_fwd, _roll_rows_bwd)


def fused_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: SelfMask, implementation: str) -> jax.Array:
  """`jax.nn.dot_product_attention` with causal + sequence lengths ("xla" or "cudnn"; see the module
  docstring for the rotation and its one-contiguous-run precondition)."""
  if mask.segment_ids is not None:
    return jax.nn.dot_product_attention(q, k, v, mask=dense_mask(mask, q.shape[1])[:, None], is_causal=True,
                                        implementation=implementation)
  if mask.real is None:
    return jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation=implementation)
  start = jnp.argmax(mask.real, axis=1).astype(jnp.int32)  # first real index; 0 for an empty row
  length = jnp.sum(mask.real, axis=1, dtype=jnp.int32)
  q, k, v = (roll_rows(x, start) for x in (q, k, v))
  # An empty row keeps one (padding) key so that no kernel normalises over zero keys.
  out = jax.nn.dot_product_attention(q, k, v, is_causal=True, query_seq_lengths=length,
                                     key_value_seq_lengths=jnp.maximum(length, 1),
                                     implementation=implementation)
  return roll_rows(out, -start)


@functools.lru_cache(maxsize=None)
def _splash_kernel(seq_len: int, group: int, interpret: bool):
  from jax.experimental.pallas.ops.tpu import splash_attention as splash

  mask = splash.MultiHeadMask([splash.CausalMask((seq_len, seq_len))] * group)
  # One kv head and its `group` query heads per call (the MQA form), vmapped over kv heads and batch.
  # The kernel holds its block-sparsity tables as arrays: build them as constants, not as tracers of
  # whichever trace first asks for the kernel, so that the cached kernel serves every later trace.
  with jax.ensure_compile_time_eval():
    return splash.make_splash_mqa(mask, head_shards=1, q_seq_shards=1, interpret=interpret)


def splash_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: SelfMask) -> jax.Array:
  """Pallas splash attention (TPU): causal mask AND equal segment ids, padding being segment 0 and
  real tokens segment_ids + 1 (each padding query then still sees itself, as splash requires)."""
  from jax.experimental.pallas.ops.tpu import splash_attention as splash

  b, t, n, h = q.shape
  kv_heads = k.shape[2]
  if t % _SPLASH_BLOCK:
    raise ValueError(f'attention="splash" needs a sequence length divisible by {_SPLASH_BLOCK}, got {t}.')
  kernel = _splash_kernel(t, n // kv_heads, jax.default_backend() != "tpu")
  seg = jnp.zeros((b, t), jnp.int32) if mask.segment_ids is None else mask.segment_ids.astype(jnp.int32)
  seg = seg + 1 if mask.real is None else jnp.where(mask.real, seg + 1, 0)
  # The kernel does not scale the scores.
  qg = (q * (1.0 / math.sqrt(h))).astype(q.dtype).reshape(b, t, kv_heads, n // kv_heads, h).transpose(0, 2, 3, 1, 4)
  per_head = jax.vmap(lambda q, k, v, s: kernel(q, k, v, segment_ids=splash.SegmentIds(s, s)),
                      in_axes=(0, 0, 0, None))
  out = jax.vmap(per_head)(qg, k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3), seg)  # [B, K, G, T, H]
  return out.transpose(0, 3, 1, 2, 4).reshape(b, t, n, h)
