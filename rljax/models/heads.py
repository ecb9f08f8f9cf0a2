"""Heads on a decoder backbone: a fused LM head for token log-probabilities, value and reward heads.

Fused LM head. With hidden states h: [B, T, D], head weights W: [D, V] and targets y: [B, T],

    z[b, t]     = h[b, t] · W                                     (logits, [V])
    log p[b, t] = z[b, t, y[b, t]] − lse[b, t],   lse[b, t] = logsumexp_v z[b, t, v],

and with g = ∂L/∂ log p and the per-token logit gradient dz = g · (onehot(y) − softmax(z)),

    ∂L/∂h[b, t] = dz[b, t] · Wᵀ,        ∂L/∂W = Σ_{b, t} h[b, t]ᵀ dz[b, t].

`lm_head_token_logps` computes this chunk by chunk over T, so the `[B, T, V]` logits (and their
`[B, T, V]` cotangent) never exist: only one `[B, C, V]` float32 chunk at a time.

Design: `jax.custom_vjp`, storing (h, W, y, lse) — inputs plus one float32 per token. The backward
loops over the same chunks, recomputes z = h_c · W (one matmul), forms dz from the stored lse (no
second max/sum reduction), and accumulates dh chunk-wise and ∂L/∂W in one float32 `[D, V]` buffer.
The alternative, `lax.scan` over chunks with `jax.checkpoint` around each, gives the same asymptotic
peak but (a) reruns the whole chunk forward, reductions included, inside the backward, (b) needs T
reshaped (and padded for a non-divisor) into a chunk axis, which copies h and y, and (c) stacks the
per-chunk dh cotangents before un-reshaping them. The custom rule does strictly less work and holds
no more memory, so it is used here (measured temp memory in tests/test_heads.py). As with
`token_logps`, forward-mode differentiation (`jax.jvp`) is therefore not supported.

The softmax math is float32 (float64 under x64) whatever the compute dtype: the chunk matmul
accumulates into float32 (`preferred_element_type`), then `rljax.ops.logps.chunk_stats`
(shared with `token_logps`) reduces it.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from rljax import checks
from rljax.ops.logps import chunk_dlogits, chunk_stats, default_chunk_size, map_chunks, slice_chunk

ChunkSize = int | Literal["auto"] | None


def _chunk_logits(h_c: jax.Array, head: jax.Array, acc_dtype) -> jax.Array:
  """`[B, C, D] · [D, V] -> [B, C, V]`, accumulated in `acc_dtype` (≥ float32)."""
  return jnp.einsum("bcd,dv->bcv", h_c, head, preferred_element_type=acc_dtype)


def _chunks(length: int, chunk_size: int | None) -> tuple[int, int, int]:
  """(chunk, number of full chunks, tail length) covering `[0, length)`."""
  if chunk_size is None or chunk_size >= length:
    return length, 1, 0
  n_full, tail = divmod(length, chunk_size)
  return chunk_size, n_full, tail


def _forward(hidden, head, targets, chunk_size):
  """`(logps, lse)`, both `[B, T]` in the accumulation dtype."""
  acc = checks.compute_dtype(hidden, head)
  stats = lambda h_c, y_c: chunk_stats(_chunk_logits(h_c, head, acc), y_c, acc)
  return map_chunks(stats, (hidden, targets), chunk_size, acc)


def _backward(hidden, head, targets, lse, g, chunk_size):
  """`(∂L/∂hidden, ∂L/∂head)` in the dtypes of `hidden` and `head`, chunk by chunk over `T`."""
  length = hidden.shape[1]
  acc = lse.dtype
  g = g.astype(acc)

  def grads(h_c, y_c, lse_c, g_c):
    dz = chunk_dlogits(_chunk_logits(h_c, head, acc), y_c, lse_c, g_c)
    # Cast to the matmul dtype, as autodiff of the unfused path would hand a bf16 logit cotangent
    # to the head matmul; both products still accumulate in float32.
    dz = dz.astype(head.dtype)
    dh_c = jnp.einsum("bcv,dv->bcd", dz, head, preferred_element_type=acc)
    dw_c = jnp.einsum("bcd,bcv->dv", h_c, dz, preferred_element_type=acc)
    return dh_c.astype(hidden.dtype), dw_c

  chunk, n_full, tail = _chunks(length, chunk_size)
  if n_full == 1 and not tail:
    dh, dw = grads(hidden, targets, lse, g)
    return dh, dw.astype(head.dtype)

  def step(start, size, carry):
    dh, dw = carry
    dh_c, dw_c = grads(*slice_chunk((hidden, targets, lse, g), start, size))
    return lax.dynamic_update_slice_in_dim(dh, dh_c, start, axis=1), dw + dw_c

  carry = (jnp.zeros_like(hidden), jnp.zeros(head.shape, acc))
  carry = lax.fori_loop(0, n_full, lambda i, c: step(i * chunk, chunk, c), carry)
  if tail:
    carry = step(jnp.int32(n_full * chunk), tail, carry)
  dh, dw = carry
  return dh, dw.astype(head.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _fused(hidden, head, targets, chunk_size):
  return _forward(hidden, head, targets, chunk_size)[0]


def _fused_fwd(hidden, head, targets, chunk_size):
  logps, lse = _forward(hidden, head, targets, chunk_size)
  return logps, (hidden, head, targets, lse)


def _fused_bwd(chunk_size, residuals, g):
  hidden, head, targets, lse = residuals
  dh, dw = _backward(hidden, head, targets, lse, g, chunk_size)
  return dh, dw, None


_fused.defvjp(_fused_fwd, _fused_bwd)


def _resolve_chunk_size(chunk_size: Any, batch: int, vocab: int) -> int | None:
  if isinstance(chunk_size, str) and chunk_size == "auto":
    return default_chunk_size(batch, vocab)
  if chunk_size is None:
    return None
  if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
    raise ValueError(f"`chunk_size` must be a positive Python int, \"auto\" or None, got {chunk_size!r}.")
  checks.check_positive("chunk_size", chunk_size)
  return chunk_size


def lm_head_token_logps(hidden: jax.Array, head_dv: jax.Array, targets: jax.Array, *,
                        chunk_size: ChunkSize = "auto") -> jax.Array:
  """`log softmax(hidden · head_dv)[b, t, targets[b, t]]` without materialising `[B, T, V]` logits.

  Equal (values and reverse-mode gradients w.r.t. `hidden` and `head_dv`) to
  `token_logps(hidden @ head_dv, targets)`, up to float rounding: the logits are accumulated in
  float32 here even for bf16 inputs, so bf16 results are closer to the float32 reference.

  Args:
    hidden: `[B, T, D]` floating hidden states (the final-norm output of a decoder).
    head_dv: `[D, V]` floating LM head weights; for a tied head pass `embed_vd.T` (a transposed view
      that XLA folds into the matmul). Both inputs are cast to their common dtype for the matmul.
    targets: `int[B, T]` token ids in `[0, V)`; an id outside that range gives NaN at its position
      and no gradient (mask an ignore index out with `jnp.where`, not a product).
    chunk_size: tokens per chunk along `T` (static). Peak float32 working memory is about
      `B · chunk_size · V · 4` bytes plus a float32 `[D, V]` gradient accumulator in the backward.
      `None` or `>= T`: one chunk. A non-multiple `T` ends with one shorter chunk. `"auto"`:
      `rljax.ops.logps.default_chunk_size(B, V)`.

  Returns:
    `f32[B, T]` log-probabilities (float64 when an input is float64).
  """
  if jnp.ndim(hidden) != 3:
    raise ValueError(f"`hidden` must have rank 3 [B, T, D], got shape {jnp.shape(hidden)}.")
  if jnp.ndim(head_dv) != 2:
    raise ValueError(f"`head_dv` must have rank 2 [D, V], got shape {jnp.shape(head_dv)}.")
  batch, length, d_model = jnp.shape(hidden)
  if jnp.shape(head_dv)[0] != d_model:
    raise ValueError(f"`head_dv` has shape {jnp.shape(head_dv)}, expected [D, V] with D = {d_model} "
                     "(the last axis of `hidden`); pass a tied [V, D] embedding as `embed_vd.T`.")
  vocab = jnp.shape(head_dv)[1]
  if vocab == 0:
    raise ValueError("`head_dv` must have a non-empty vocabulary axis, got V = 0.")
  if jnp.shape(targets) != (batch, length):
    raise ValueError(f"`targets` has shape {jnp.shape(targets)}, expected {(batch, length)} "
                     "(the [B, T] of `hidden`).")
  for name, x in (("hidden", hidden), ("head_dv", head_dv)):
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
      raise ValueError(f"`{name}` must be floating, got dtype {jnp.result_type(x)}.")
  if not jnp.issubdtype(jnp.result_type(targets), jnp.integer):
    raise ValueError(f"`targets` must be integer token ids, got dtype {jnp.result_type(targets)}.")
  chunk_size = _resolve_chunk_size(chunk_size, batch, vocab)
  # One matmul dtype; the casts sit outside the custom rule so autodiff casts the gradients back.
  mm = jnp.result_type(hidden, head_dv)
  targets = jnp.asarray(targets)
  if jnp.iinfo(targets.dtype).bits < 32:  # room for V and the out-of-range sentinel
    targets = targets.astype(jnp.int32)
  return _fused(jnp.asarray(hidden, mm), jnp.asarray(head_dv, mm), targets, chunk_size)


def lm_head_weights(model) -> jax.Array:
  """The `[D, V]` LM head of a `Decoder` in its compute dtype: `lm_head_dv`, or `embed_vdᵀ` when tied."""
  ct = model.cfg.compute_dtype
  if model.lm_head_dv is None:
    return model.embed_vd[...].astype(ct).T
  return model.lm_head_dv[...].astype(ct)


def model_token_logps(model, tokens: jax.Array, targets: jax.Array, attention_mask: jax.Array | None = None,
                      positions: jax.Array | None = None, *, segment_ids: jax.Array | None = None,
                      chunk_size: ChunkSize = "auto") -> jax.Array:
  """`token_logps(model(tokens, attention_mask, positions, segment_ids), targets)` via the fused head: `f32[B, T]`.

  The backbone runs as usual (`model.hidden_states`; `segment_ids` for packed rows); only the LM head and
  log-softmax are fused, so the `[B, T, V]` logits never exist. Tied and untied heads are both handled
  (`lm_head_weights`). Gradients reach every model parameter (use under `nnx.grad` / `nnx.value_and_grad`).
  """
  hidden = model.hidden_states(tokens, attention_mask=attention_mask, positions=positions, segment_ids=segment_ids)
  return lm_head_token_logps(hidden, lm_head_weights(model), targets, chunk_size=chunk_size)


def last_token_index(attention_mask: jax.Array) -> jax.Array:
  """`int32[B]`: the index of the last position with `attention_mask = 1` in each row.

  Right padding `[1 1 1 0 0]` -> 2; left padding `[0 0 1 1 1]` -> T − 1 = 4 (the last slot, the last
  real token); any gaps -> the last 1. A row with no 1 at all has no valid token; it maps to T − 1.
  """
  if jnp.ndim(attention_mask) != 2:
    raise ValueError(f"`attention_mask` must have rank 2 [B, T], got shape {jnp.shape(attention_mask)}.")
  length = jnp.shape(attention_mask)[1]
  if length == 0:
    raise ValueError("`attention_mask` must have at least one position, got T = 0.")
  # argmax returns the first maximum, so search the reversed mask for its first 1.
  flipped = jnp.asarray(attention_mask).astype(jnp.bool_)[:, ::-1]
  return (length - 1 - jnp.argmax(flipped, axis=-1)).astype(jnp.int32)


def _check_hidden(hidden: jax.Array, d_model: int) -> None:
  if jnp.ndim(hidden) != 3 or jnp.shape(hidden)[-1] != d_model:
    raise ValueError(f"`hidden` must have shape [B, T, {d_model}], got {jnp.shape(hidden)}.")


class ValueHead(nnx.Module):
  """Per-token value `V[b, t] = hidden[b, t] · w + c`: `[B, T, D] -> f32[B, T]`.

  A Linear d_model -> 1 computed in float32 (whatever the hidden dtype), stored in `param_dtype`.
  Apply it to `model.hidden_states(...)` of any backbone (policy or a separate critic).
  """

  def __init__(self, d_model: int, *, rngs: nnx.Rngs, param_dtype: Any = jnp.float32,
               kernel_init: Any = nnx.initializers.normal(0.02)):
    checks.check_positive("d_model", d_model)
    self.d_model = d_model
    self.proj = nnx.Linear(d_model, 1, dtype=jnp.float32, param_dtype=param_dtype,
                           kernel_init=kernel_init, rngs=rngs)

  def __call__(self, hidden: jax.Array) -> jax.Array:
    _check_hidden(hidden, self.d_model)
    return self.proj(hidden.astype(jnp.float32))[..., 0]


class RewardHead(ValueHead):
  """Scalar reward per sequence: a Linear d_model -> 1 read at the last valid token, `f32[B]`.

      r[b] = hidden[b, t_b] · w + c,   t_b = the last t with attention_mask[b, t] = 1.

  For a right-padded batch t_b is the last real token before the padding; for a left-padded batch
  (padding first, as in generation) t_b = T − 1, the final slot, which holds the last real token.
  Without a mask every row reads t = T − 1. A row whose mask is all 0 also reads T − 1 (meaningless;
  mask such rows out of the loss). Only the selected `[B, D]` states go through the projection.
  Constructed like `ValueHead`.
  """

  def __call__(self, hidden: jax.Array, attention_mask: jax.Array | None = None) -> jax.Array:
    _check_hidden(hidden, self.d_model)
    batch, length = jnp.shape(hidden)[:2]
    if attention_mask is None:
      index = jnp.full((batch,), length - 1, jnp.int32)
    else:
      if jnp.shape(attention_mask) != (batch, length):
        raise ValueError(f"`attention_mask` has shape {jnp.shape(attention_mask)}, expected "
                         f"{(batch, length)} (the [B, T] of `hidden`).")
      index = last_token_index(attention_mask)
    last = jnp.take_along_axis(hidden, index[:, None, None], axis=1)[:, 0]  # [B, D]
    return self.proj(last.astype(jnp.float32))[..., 0]


class RewardModel(nnx.Module):
  """A decoder backbone with a `RewardHead`: `model(tokens, attention_mask) -> f32[B]`, the scalar
  reward of each sequence read at its last real token (Bradley–Terry reward models, POLAR)."""

  def __init__(self, backbone: nnx.Module, *, rngs: nnx.Rngs):
    self.backbone = backbone
    self.head = RewardHead(backbone.cfg.d_model, rngs=rngs)

  def __call__(self, tokens: jax.Array, attention_mask: jax.Array | None = None) -> jax.Array:
    return self.head(self.backbone.hidden_states(tokens, attention_mask=attention_mask), attention_mask)
