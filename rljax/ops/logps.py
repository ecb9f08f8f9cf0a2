"""Per-token log-probabilities of target tokens from `[B, T, V]` logits, chunked over the sequence.

    log p[b, t] = log softmax(z[b, t])[y[b, t]] = z[b, t, y[b, t]] − lse[b, t],
    lse[b, t]   = logsumexp_v z[b, t, v] = m + log Σ_v exp(z[b, t, v] − m),   m = max_v z[b, t, v],

computed as a difference of logits and a stable logsumexp, never as log(softmax). The gradient is

    ∂ log p[b, t] / ∂z[b, t, v] = 1[v = y[b, t]] − softmax(z[b, t])_v
                                = 1[v = y[b, t]] − exp(z[b, t, v] − lse[b, t])

(the familiar softmax − onehot is the gradient of the negative log-likelihood −log p).

Memory. An LLM head emits bf16 logits `[B, T, V]`; at V = 151936 and 16k tokens that is already
4.6 GiB. The usual `take_along_axis(log_softmax(logits.astype(f32)), y)` keeps one number per token,
yet on XLA:CPU its forward materialises a float32 `[B, T, V]` copy (twice the input; XLA:GPU fuses
that one away), and on every backend its backward holds float32 `[B, T, V]` buffers besides the
gradient (9.3 GiB at the size above). Here:

  * Forward: the sequence axis is cut into chunks of `chunk_size` tokens. Each chunk is sliced from
    the original array (`lax.dynamic_slice_in_dim` inside a `lax.fori_loop`; the whole array is never
    transposed, reshaped or padded), upcast to float32 and reduced to `[B, chunk]` before the next
    chunk, so the float32 working set is `[B, chunk, V]` (at most `chunk / T` of the baseline's).
  * Backward (`jax.custom_vjp`): the forward keeps only `lse: f32[B, T]` besides its inputs, so the
    gradient onehot − exp(z − lse) is one elementwise pass that reads the logits and writes the
    gradient in the logits' dtype: no float32 `[B, T, V]` residual, no recomputed reductions. This
    does what `jax.checkpoint` around the chunk would do (no stored float32 chunk residuals) without
    its costs: a rematerialised max/sum per chunk, and the transpose of the dynamic slice, which
    accumulates a zero-padded `[B, T, V]` cotangent per chunk. Forward-mode differentiation
    (`jax.jvp`, `jax.hessian`) is therefore not supported.

`lax.optimization_barrier` ties the logits to the chunk index inside the loop: backends without
native bf16 slicing (XLA:CPU) rewrite a bf16 dynamic slice as a slice of a float32 convert of the
whole array, which loop-invariant code motion would then hoist out of the loop — the very float32
copy this function exists to avoid. The barrier makes the array loop-variant, so the convert stays
fused with the per-chunk slice. It copies nothing.
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp
from jax import lax

from rljax import checks

# Float32 elements (B · chunk · V) per chunk under chunk_size="auto" (rounded down to a power of
# two of tokens, so typical T split without a tail). XLA:CPU materialises the float32 chunk: at
# V = 152k, chunks of 8-16 tokens (≤ 8 MiB, cache-resident) ran the forward 2.4-4.5x faster than the
# baseline, 32-128 tokens 1.5-3x, and >= 256 tokens 0.5-1.2x (a shared 2-core CPU, noisy). XLA:GPU
# fuses the chunk away (no float32 buffer at any size), but each loop iteration costs tens of µs, so
# it wants few, large chunks: on an H200 at V = 152k, 4096-token chunks ran the forward at 0.96-1.02x
# the baseline, 1024 at 0.93-1.00x, 256 at 0.76x. Measured with benchmarks/token_logps.py.
CPU_CHUNK_ELEMENTS = 1 << 21
ACCELERATOR_CHUNK_ELEMENTS = 1 << 30


def chunk_stats(logits: jax.Array, targets: jax.Array, dtype: jnp.dtype) -> tuple[jax.Array, jax.Array]:
  """`(z[y] − lse, lse)` over the last axis of a `[B, C, V]` chunk, in `dtype` (≥ float32)."""
  vocab = logits.shape[-1]
  z = logits.astype(dtype)
  lse = jax.nn.logsumexp(z, axis=-1)  # subtracts the max
  # Targets outside [0, V) gather NaN (fill mode) instead of wrapping (negative) or clamping.
  safe = jnp.where(targets < 0, vocab, targets)
  picked = jnp.take_along_axis(z, safe[..., None], axis=-1, mode="fill")[..., 0]
  return picked - lse, lse


def chunk_dlogits(z: jax.Array, targets: jax.Array, lse: jax.Array, g: jax.Array) -> jax.Array:
  """g · (onehot(y) − exp(z − lse)), the cotangent of the logits `z` of `z[y] − lse` (no onehot for
  an out-of-range id)."""
  onehot = jnp.arange(z.shape[-1]) == targets[..., None]
  return g[..., None] * (onehot.astype(z.dtype) - jnp.exp(z - lse[..., None]))


def slice_chunk(arrays: tuple[jax.Array, ...], start: jax.Array, size: int) -> tuple[jax.Array, ...]:
  """Tokens `[start, start + size)` (axis 1) of each array, sliced from the whole arrays.

  The barrier keeps the arrays loop-variant (see the module docstring): it copies nothing.
  """
  arrays, start = lax.optimization_barrier((arrays, start))
  return tuple(lax.dynamic_slice_in_dim(a, start, size, axis=1) for a in arrays)


def map_chunks(fn, arrays: tuple[jax.Array, ...], chunk_size: int | None, dtype: jnp.dtype, n_outputs: int = 2):
  """Applies `fn(*chunks) -> n_outputs arrays f[B, C]` over chunks of axis 1 of `arrays` (all `[B, T, ...]`)
  and assembles the `f[B, T]` outputs; `chunk_size` None or ≥ T is one call. Full chunks run in a
  `lax.fori_loop`; a remainder T mod chunk_size is one shorter chunk of static size."""
  batch, length = arrays[0].shape[:2]
  if chunk_size is None or chunk_size >= length:
    return fn(*arrays)
  n_full, tail = divmod(length, chunk_size)

  def write(outs, start, size):
    parts = fn(*slice_chunk(arrays, start, size))
    return tuple(lax.dynamic_update_slice_in_dim(o, p, start, axis=1) for o, p in zip(outs, parts))

  outs = tuple(jnp.zeros((batch, length), dtype) for _ in range(n_outputs))
  outs = lax.fori_loop(0, n_full, lambda i, o: write(o, i * chunk_size, chunk_size), outs)
  return write(outs, jnp.int32(n_full * chunk_size), tail) if tail else outs


def _forward(logits: jax.Array, targets: jax.Array, chunk_size: int | None) -> tuple[jax.Array, jax.Array]:
  """`(logps, lse)`, both `[B, T]` in the compute dtype, chunk by chunk over `T`."""
  dtype = checks.compute_dtype(logits)
  return map_chunks(lambda z, y: chunk_stats(z, y, dtype), (logits, targets), chunk_size, dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _token_logps(logits, targets, chunk_size):
  return _forward(logits, targets, chunk_size)[0]


def _token_logps_fwd(logits, targets, chunk_size):
  logps, lse = _forward(logits, targets, chunk_size)
  return logps, (logits, targets, lse)


def _token_logps_bwd(chunk_size, residuals, g):
  del chunk_size  # the backward is one elementwise pass; it needs no chunking
  logits, targets, lse = residuals
  return chunk_dlogits(logits.astype(lse.dtype), targets, lse, g).astype(logits.dtype), None


_token_logps.defvjp(_token_logps_fwd, _token_logps_bwd)


def default_chunk_size(batch: int, vocab: int, backend: str | None = None) -> int:
  """The chunk length (in tokens) that `chunk_size="auto"` uses for `[batch, T, vocab]` logits.

  The largest power of two ≤ `CPU_CHUNK_ELEMENTS / (batch · vocab)` on CPU, and
  ≤ `ACCELERATOR_CHUNK_ELEMENTS / (batch · vocab)` elsewhere; at least 1. `backend` defaults to
  `jax.default_backend()`. At V = 151936, B = 1: 8 tokens on CPU, 4096 on GPU.
  """
  backend = jax.default_backend() if backend is None else backend
  budget = CPU_CHUNK_ELEMENTS if backend == "cpu" else ACCELERATOR_CHUNK_ELEMENTS
  tokens = max(1, budget // max(1, batch * vocab))
  return 1 << (tokens.bit_length() - 1)


def token_logps(
    logits: jax.Array, targets: jax.Array, *, chunk_size: int | Literal["auto"] | None = "auto"
) -> jax.Array:
  """Log-probability of each target token, `log softmax(logits)[b, t, targets[b, t]]`.

  Args:
    logits: `[B, T, V]` floating logits of any dtype (typically bf16). Never upcast as a whole.
    targets: `int[B, T]` token ids in `[0, V)`; an id outside that range gives NaN at its position
      and no gradient (e.g. an ignore index of -100: mask it out with `jnp.where`, not a product).
    chunk_size: tokens per chunk along `T` (static). `None` or `>= T` computes in one chunk. A `T`
      that is not a multiple is finished by one shorter chunk of static size. Peak float32 working
      memory is at most `B · chunk_size · V · 4` bytes. `"auto"`: `default_chunk_size(B, V)`, e.g.
      8 tokens on CPU and 4096 on GPU at B = 1, V = 151936 (the best speed on each, see there).

  Returns:
    `[B, T]` log-probabilities in float32 (float64 when `logits` are float64). Reverse-mode
    gradients w.r.t. `logits` are `g · (onehot − softmax)` in the dtype of `logits`.
  """
  if jnp.ndim(logits) != 3:
    raise ValueError(f"`logits` must have rank 3 [B, T, V], got shape {jnp.shape(logits)}.")
  if jnp.ndim(targets) != 2:
    raise ValueError(f"`targets` must have rank 2 [B, T], got shape {jnp.shape(targets)}.")
  batch, length, vocab = jnp.shape(logits)
  if jnp.shape(targets) != (batch, length):
    raise ValueError(
        f"`targets` has shape {jnp.shape(targets)}, expected {(batch, length)} (the [B, T] of `logits`)."
    )
  if vocab == 0:
    raise ValueError("`logits` must have a non-empty vocabulary axis, got V = 0.")
  if not jnp.issubdtype(jnp.result_type(logits), jnp.floating):
    raise ValueError(f"`logits` must be floating, got dtype {jnp.result_type(logits)}.")
  if not jnp.issubdtype(jnp.result_type(targets), jnp.integer):
    raise ValueError(f"`targets` must be integer token ids, got dtype {jnp.result_type(targets)}.")
  if isinstance(chunk_size, str) and chunk_size == "auto":
    chunk_size = default_chunk_size(batch, vocab)
  elif chunk_size is not None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
      raise ValueError(f"`chunk_size` must be a positive Python int, \"auto\" or None, got {chunk_size!r}.")
    checks.check_positive("chunk_size", chunk_size)
  targets = jnp.asarray(targets)
  if jnp.iinfo(targets.dtype).bits < 32:  # room for V and the out-of-range sentinel
    targets = targets.astype(jnp.int32)
  return _token_logps(jnp.asarray(logits), targets, chunk_size)
