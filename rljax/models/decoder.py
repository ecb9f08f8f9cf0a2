"""One Flax NNX decoder-only transformer for the llama, qwen2, qwen3 and gpt2 families.

Each block is pre-norm:

  h = x + Attn(Norm(x)),   y = h + MLP(Norm(h)).

Attention over T queries and S = T keys, with n_heads query heads sharing n_kv_heads key/value heads
(grouped-query attention, group size G = n_heads / n_kv_heads):

  score[t, s] = <q_t, k_s> / sqrt(head_dim),   allowed iff s <= t and attention_mask[s] = 1,
  out_t = sum_s softmax_s(score[t, :])[s] v_s.

The mask is causal in array index, and positions are explicit: with left padding the first real token
sits at index > 0 but must get position 0, so by default positions = cumsum(attention_mask) - 1.
RoPE (llama/qwen2/qwen3) rotates each (i, i + head_dim/2) pair of q and k by angle position * inv_freq[i];
GPT-2 adds a learned position embedding instead. qwen3 first RMS-normalises each head of q and k over
head_dim (QK-norm, its own scale per layer). The kernel computing the softmax is chosen by
`DecoderConfig.attention` (see rljax.models.attention).

Packed sequences: with `segment_ids` i[B, T], token t may attend to s only if also
segment_ids[t] = segment_ids[s], and positions restart at 0 at the start of each segment. Segments
must be contiguous runs along T (a repeated id after a different one is a new run for positions but
shares attention with the earlier run).

Incremental decoding: `decode(tokens, cache)` attends the new T tokens over a fixed-size `KVCache`
(see rljax.models.cache) and writes their keys/values at the cache index; prefill is `decode` on the
whole (left-padded) prompt and each sampling step is `decode` with T = 1.

dtype policy: parameters are stored in `param_dtype` and matmul inputs cast to `compute_dtype` (e.g.
both bfloat16); norm statistics, attention scores/softmax and the returned logits are float32.

Parameter names end in einsum-style axis letters: d = d_model, n = query heads, k = kv heads,
h = head_dim, f = d_ff, v = vocab, p = positions. Each nnx.Param carries its logical axis names in the
`out_sharding` metadata (with eager sharding off), e.g. ("embed", "heads", "head_dim"), so a mesh can be
applied later via logical-to-mesh rules.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rljax import sharding
from rljax.models import attention
from rljax.models import cache as kv_cache
from rljax.models.config import DecoderConfig
from rljax.ops.linear import linear

_INIT_STD = 0.02


def _param(rngs: nnx.Rngs | None, shape, axes, dtype, init: str = "normal") -> nnx.Param:
  if init == "normal":
    value = _INIT_STD * jax.random.normal(rngs.params(), shape, dtype)
  elif init == "ones":
    value = jnp.ones(shape, dtype)
  else:
    value = jnp.zeros(shape, dtype)
  # eager_sharding=False: keep the names as metadata only; no mesh is needed to build the model.
  return nnx.Param(value, out_sharding=axes, eager_sharding=False)


def _shard(cfg: DecoderConfig, x: jax.Array, *axes: str | None) -> jax.Array:
  """Constrains an activation to its logical axes on the current mesh (a no-op without one).

  A dimension the mesh axis does not divide (e.g. 3 heads over tensor=2) is replicated rather than
  rejected: the parameters' placement already reported it.
  """
  rules = sharding.DEFAULT_RULES if cfg.activation_rules is None else cfg.activation_rules
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return sharding.constrain(x, axes, rules, on_indivisible="replicate")


class Norm(nnx.Module):
  """RMSNorm  x / sqrt(mean(x^2) + eps) * scale  (llama/qwen2), or LayerNorm with bias (gpt2).

  Statistics are taken in float32 whatever the compute dtype.
  """

  def __init__(self, cfg: DecoderConfig, rngs: nnx.Rngs):
    self.rms = cfg.family != "gpt2"
    self.eps = cfg.norm_eps
    self.scale_d = _param(rngs, (cfg.d_model,), ("embed",), cfg.param_dtype, "ones")
    self.bias_d = None if self.rms else _param(rngs, (cfg.d_model,), ("embed",), cfg.param_dtype, "zeros")

  def __call__(self, x: jax.Array) -> jax.Array:
    if self.rms:
      return rms_norm(x, self.scale_d, self.eps)
    x32 = x.astype(jnp.float32)
    mu = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mu), axis=-1, keepdims=True)
    y = (x32 - mu) * jax.lax.rsqrt(var + self.eps)
    y = y * self.scale_d[...].astype(jnp.float32) + self.bias_d[...].astype(jnp.float32)
    return y.astype(x.dtype)


def rms_norm(x: jax.Array, scale: nnx.Param, eps: float) -> jax.Array:
  """x / sqrt(mean(x^2) + eps) * scale over the last axis, statistics in float32."""
  x32 = x.astype(jnp.float32)
  y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
  return (y * scale[...].astype(jnp.float32)).astype(x.dtype)


def rope_inv_freq(cfg: DecoderConfig) -> np.ndarray:
  """inv_freq[i] = theta^(-2i / head_dim), with llama3 wavelength-dependent scaling when configured."""
  inv = 1.0 / (cfg.rope_theta ** (np.arange(0, cfg.head_dim, 2, dtype=np.float32) / cfg.head_dim))
  inv = inv.astype(np.float32)
  if cfg.rope_type == "llama3":
    # Long wavelengths (beyond original_len / low_freq_factor) are slowed by `factor`, short ones
    # (below original_len / high_freq_factor) are kept, and the band between is interpolated.
    old = cfg.rope_original_max_positions
    low, high, factor = cfg.rope_low_freq_factor, cfg.rope_high_freq_factor, cfg.rope_factor
    wavelen = 2 * math.pi / inv
    scaled = np.where(wavelen > old / low, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < old / high) & ~(wavelen > old / low)
    inv = np.where(medium, smoothed, scaled).astype(np.float32)
  return inv


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: np.ndarray) -> jax.Array:
  """Rotates x[..., i] and x[..., i + h/2] by angle positions * inv_freq[i] (HF `rotate_half` layout).

  x: [B, T, heads, h]; positions: int[B, T].
  """
  angle = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)  # [B, T, h/2]
  cos = jnp.cos(angle)[:, :, None, :]
  sin = jnp.sin(angle)[:, :, None, :]
  x32 = x.astype(jnp.float32)
  x1, x2 = jnp.split(x32, 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x.dtype)


class Attention(nnx.Module):
  """Grouped-query attention; q/k/v kernels are [d_model, heads, head_dim], output is [heads, head_dim, d_model]."""

  def __init__(self, cfg: DecoderConfig, rngs: nnx.Rngs):
    self.cfg = cfg
    d, n, k, h, dt = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.param_dtype
    self.q_proj_dnh = _param(rngs, (d, n, h), ("embed", "heads", "head_dim"), dt)
    self.k_proj_dkh = _param(rngs, (d, k, h), ("embed", "kv_heads", "head_dim"), dt)
    self.v_proj_dkh = _param(rngs, (d, k, h), ("embed", "kv_heads", "head_dim"), dt)
    self.o_proj_nhd = _param(rngs, (n, h, d), ("heads", "head_dim", "embed"), dt)
    if cfg.qkv_bias:
      self.q_bias_nh = _param(rngs, (n, h), ("heads", "head_dim"), dt, "zeros")
      self.k_bias_kh = _param(rngs, (k, h), ("kv_heads", "head_dim"), dt, "zeros")
      self.v_bias_kh = _param(rngs, (k, h), ("kv_heads", "head_dim"), dt, "zeros")
    else:
      self.q_bias_nh = self.k_bias_kh = self.v_bias_kh = None
    self.o_bias_d = _param(rngs, (d,), ("embed",), dt, "zeros") if cfg.o_bias else None
    # QK-norm scales, shared by all heads (HF q_norm / k_norm).
    self.q_norm_h = _param(rngs, (h,), ("head_dim",), dt, "ones") if cfg.qk_norm else None
    self.k_norm_h = _param(rngs, (h,), ("head_dim",), dt, "ones") if cfg.qk_norm else None

  def __call__(self, x: jax.Array, positions: jax.Array, mask, kv=None, index=None):
    """x: [B, T, d]; positions: int[B, T]; mask: an `attention.SelfMask` without `kv`, else a dense
    bool[B, T, S] (True = may attend).

    Without `kv`, S = T and the keys are this call's own tokens; returns y [B, T, d]. With `kv` =
    (k, v) cache buffers [B, S, k, h], this call's keys/values are first written at slots
    [index, index + T) and attention runs over all S slots; returns (y, (k, v)) with the new buffers.
    """
    cfg = self.cfg
    ct = cfg.compute_dtype
    proj = lambda name, b, eq: _add_bias(_project(self, name, x, eq), b, ct)
    q = proj("q_proj_dnh", self.q_bias_nh, "btd,dnh->btnh")
    k = proj("k_proj_dkh", self.k_bias_kh, "btd,dkh->btkh")
    v = proj("v_proj_dkh", self.v_bias_kh, "btd,dkh->btkh")
    q = _shard(cfg, q, "batch", "length", "act_heads", "head_dim")
    k = _shard(cfg, k, "batch", "length", "act_kv_heads", "head_dim")
    v = _shard(cfg, v, "batch", "length", "act_kv_heads", "head_dim")
    if cfg.qk_norm:
      q, k = rms_norm(q, self.q_norm_h, cfg.norm_eps), rms_norm(k, self.k_norm_h, cfg.norm_eps)
    if cfg.uses_rope:
      inv_freq = rope_inv_freq(cfg)
      q, k = apply_rope(q, positions, inv_freq), apply_rope(k, positions, inv_freq)
    new_kv = None
    if kv is not None:
      new_kv = (kv_cache.write(kv[0], k, index), kv_cache.write(kv[1], v, index))
      new_kv = tuple(_shard(cfg, c, "batch", "length", "act_kv_heads", "head_dim") for c in new_kv)
      k, v = new_kv[0].astype(ct), new_kv[1].astype(ct)
    out = attention.attend(cfg, q, k, v, mask)
    y = _add_bias(_project(self, "o_proj_nhd", out, "btnh,nhd->btd"), self.o_bias_d, ct)
    return y if kv is None else (y, new_kv)


def _project(module: nnx.Module, name: str, x: jax.Array, eq: str) -> jax.Array:
  """einsum(eq, x, W) for the kernel W = `module.<name>` in compute dtype, plus the LoRA update of the adapter
  `module.<target>_lora` when one is attached (target = name without its axis letters, e.g. q_proj; see
  rljax.models.lora). `eq` contracts the trailing axes of x with the leading (input) axes of W; the einsum is
  `rljax.ops.linear.linear`, whose weight gradient XLA:CPU runs at full matmul speed."""
  y = linear(eq, x, getattr(module, name)[...].astype(module.cfg.compute_dtype))
  adapter = getattr(module, name.rpartition("_")[0] + "_lora", None)
  return y if adapter is None else y + adapter(x)


def _add_bias(y: jax.Array, bias: nnx.Param | None, ct) -> jax.Array:
  return y if bias is None else y + bias[...].astype(ct)


def _activation(name: str, x: jax.Array) -> jax.Array:
  if name == "silu":
    return jax.nn.silu(x)
  # gelu_new / gelu_pytorch_tanh are the tanh approximation; plain "gelu" is the exact erf form.
  return jax.nn.gelu(x, approximate=name != "gelu")


class MLP(nnx.Module):
  """SwiGLU  down(act(gate x) * up x)  for llama/qwen2; GPT-2: down(act(up x + b) ) + b."""

  def __init__(self, cfg: DecoderConfig, rngs: nnx.Rngs):
    self.cfg = cfg
    d, f, dt = cfg.d_model, cfg.d_ff, cfg.param_dtype
    gated = cfg.family != "gpt2"
    self.gate_proj_df = _param(rngs, (d, f), ("embed", "mlp"), dt) if gated else None
    self.up_proj_df = _param(rngs, (d, f), ("embed", "mlp"), dt)
    self.down_proj_fd = _param(rngs, (f, d), ("mlp", "embed"), dt)
    self.up_bias_f = None if gated else _param(rngs, (f,), ("mlp",), dt, "zeros")
    self.down_bias_d = None if gated else _param(rngs, (d,), ("embed",), dt, "zeros")

  def __call__(self, x: jax.Array) -> jax.Array:
    ct = self.cfg.compute_dtype
    up = _add_bias(_project(self, "up_proj_df", x, "btd,df->btf"), self.up_bias_f, ct)
    if self.gate_proj_df is not None:
      gate = _project(self, "gate_proj_df", x, "btd,df->btf")
      hidden = _activation(self.cfg.activation, gate) * up
    else:
      hidden = _activation(self.cfg.activation, up)
    hidden = _shard(self.cfg, hidden, "batch", "length", "act_mlp")
    y = _project(self, "down_proj_fd", hidden, "btf,fd->btd")
    return _add_bias(y, self.down_bias_d, ct)


class Block(nnx.Module):
  """Pre-norm block: h = x + Attn(Norm(x)), y = h + MLP(Norm(h))."""

  def __init__(self, cfg: DecoderConfig, rngs: nnx.Rngs):
    self.attn_norm = Norm(cfg, rngs)
    self.attn = Attention(cfg, rngs)
    self.mlp_norm = Norm(cfg, rngs)
    self.mlp = MLP(cfg, rngs)

  def __call__(self, x, positions, mask, kv=None, index=None):
    """Returns the new residual stream, plus the updated (k, v) buffers when `kv` is given."""
    cfg = self.attn.cfg
    if kv is None:
      x = x + self.attn(self.attn_norm(x), positions, mask)
      return _shard(cfg, x + self.mlp(self.mlp_norm(x)), "batch", "length", "act_embed")
    y, kv = self.attn(self.attn_norm(x), positions, mask, kv, index)
    x = x + y
    return _shard(cfg, x + self.mlp(self.mlp_norm(x)), "batch", "length", "act_embed"), kv


def _block_forward(block: Block, x, positions, mask):
  return block(x, positions, mask)


# Rematerialised block: the backward pass recomputes the block's forward from its input instead of
# reading stored activations (see `DecoderConfig.remat`).
_remat_block_forward = nnx.remat(_block_forward)


def segment_positions(attention_mask: jax.Array, segment_ids: jax.Array) -> jax.Array:
  """Per-segment positions: the number of real tokens before t within t's (contiguous) segment.

  With c = cumsum(mask) (inclusive) and start(t) the first index of t's run of equal segment ids,
  position[t] = c[t] - (c[start(t)] - mask[start(t)]) - 1, clipped at 0 for padding before the
  first real token of a segment.
  """
  m = attention_mask.astype(jnp.int32)
  c = jnp.cumsum(m, axis=-1)
  t = segment_ids.shape[-1]
  idx = jnp.broadcast_to(jnp.arange(t), segment_ids.shape)
  is_start = jnp.concatenate(
      [jnp.ones_like(segment_ids[:, :1], jnp.bool_), segment_ids[:, 1:] != segment_ids[:, :-1]], axis=-1)
  start = jax.lax.cummax(jnp.where(is_start, idx, 0), axis=1)
  before = jnp.take_along_axis(c - m, start, axis=-1)
  return jnp.maximum(c - before - 1, 0)


class Decoder(nnx.Module):
  """Decoder-only LM: `model(tokens, attention_mask, positions, segment_ids) -> logits f32[B, T, V]`,
  and `decode(tokens, cache)` for incremental decoding with a `KVCache` from `init_cache`."""

  def __init__(self, cfg: DecoderConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    dt = cfg.param_dtype
    self.embed_vd = _param(rngs, (cfg.vocab_size, cfg.d_model), ("vocab", "embed"), dt)
    self.pos_embed_pd = (_param(rngs, (cfg.max_positions, cfg.d_model), (None, "embed"), dt)
                         if cfg.family == "gpt2" else None)
    self.layers = nnx.List([Block(cfg, rngs) for _ in range(cfg.n_layers)])
    self.final_norm = Norm(cfg, rngs)
    self.lm_head_dv = (None if cfg.tie_word_embeddings
                       else _param(rngs, (cfg.d_model, cfg.vocab_size), ("embed", "vocab"), dt))

  def _check_inputs(self, tokens, attention_mask, positions, segment_ids=None):
    if tokens.ndim != 2:
      raise ValueError(f"`tokens` must have shape [batch, time], got {tokens.shape}.")
    for name, arr in (("attention_mask", attention_mask), ("positions", positions),
                      ("segment_ids", segment_ids)):
      if arr is not None and arr.shape != tokens.shape:
        raise ValueError(f"`{name}` has shape {arr.shape}, expected {tokens.shape} (the shape of "
                         "`tokens`).")
    if attention_mask is None:
      attention_mask = jnp.ones(tokens.shape, jnp.bool_)
    return attention_mask.astype(jnp.bool_)

  def _embed(self, tokens: jax.Array, positions: jax.Array) -> jax.Array:
    ct = self.cfg.compute_dtype
    x = self.embed_vd[...][tokens].astype(ct)
    if self.pos_embed_pd is not None:
      x = x + self.pos_embed_pd[...][positions].astype(ct)
    return _shard(self.cfg, x, "batch", "length", "act_embed")

  def hidden_states(self, tokens: jax.Array, attention_mask: jax.Array | None = None,
                    positions: jax.Array | None = None, segment_ids: jax.Array | None = None) -> jax.Array:
    """Final-norm hidden states [B, T, d_model] in compute dtype (input to the LM head).

    tokens: int[B, T]; attention_mask: [B, T] (1 = real token; default all real); positions: int[B, T]
    (default cumsum(mask) - 1, restarted per segment when `segment_ids` is given); segment_ids: int[B, T]
    for packed rows, attention is restricted to equal ids. Without segment ids, the "xla"/"cudnn" kernels
    (GPU default) need each row's real tokens to be one contiguous run (see rljax.models.attention).
    """
    # Causal & real key & same segment; each kernel builds its own form of it. Without a mask every
    # token is real, which the fused kernels take as plain causal attention.
    mask = attention.SelfMask(None if attention_mask is None else attention_mask.astype(jnp.bool_), segment_ids)
    attention_mask = self._check_inputs(tokens, attention_mask, positions, segment_ids)
    if positions is None:
      if segment_ids is None:
        # Left padding: the first real token gets position 0; pad slots clip to 0 (never attended).
        positions = jnp.maximum(jnp.cumsum(attention_mask.astype(jnp.int32), axis=-1) - 1, 0)
      else:
        positions = segment_positions(attention_mask, segment_ids)
    x = self._embed(tokens, positions)
    forward = _remat_block_forward if self.cfg.remat else _block_forward
    for layer in self.layers:
      x = forward(layer, x, positions, mask)
    return self.final_norm(x)

  def init_cache(self, batch: int, max_len: int, dtype=None) -> kv_cache.KVCache:
    """An empty `KVCache` for `decode`: per-layer k/v buffers [batch, max_len, n_kv_heads, head_dim]
    in `dtype` (default compute_dtype). max_len bounds prompt plus generated tokens, padding included."""
    cfg = self.cfg
    dtype = cfg.compute_dtype if dtype is None else dtype
    return kv_cache.init_cache(cfg.n_layers, batch, max_len, cfg.n_kv_heads, cfg.head_dim, dtype)

  def decode(self, tokens: jax.Array, cache: kv_cache.KVCache, *, attention_mask: jax.Array | None = None,
             positions: jax.Array | None = None) -> tuple[jax.Array, kv_cache.KVCache]:
    """Appends T tokens to `cache` and returns (float32 logits [B, T, V], updated cache).

    The new tokens occupy slots [i, i + T) with i = cache.index; query t attends slot s iff
    s <= i + t and the slot holds a real token (cache.mask after writing this call's attention_mask).
    Default positions continue each row: next_position[b] + (real tokens before t in this call).
    Prefill = decode(prompt, empty cache, attention_mask=prompt_mask) with left-padded prompts; a
    sampling step = decode(next_token[:, None], cache). Writing past max_len is not detectable under
    jit (dynamic_update_slice clamps the start), so size the cache for prompt + new tokens.
    """
    attention_mask = self._check_inputs(tokens, attention_mask, positions)
    b, t = tokens.shape
    if cache.batch_size != b:
      raise ValueError(f"`tokens` has batch {b} but the cache was built for batch {cache.batch_size}.")
    if len(cache.k) != self.cfg.n_layers:
      raise ValueError(f"The cache has {len(cache.k)} layers; the model has {self.cfg.n_layers}.")
    if t > cache.max_len:
      raise ValueError(f"Cannot decode {t} tokens into a cache of max_len {cache.max_len}.")
    if not isinstance(cache.index, jax.core.Tracer) and int(cache.index) + t > cache.max_len:
      raise ValueError(f"Cache overflow: index {int(cache.index)} + {t} tokens > max_len {cache.max_len}.")
    m32 = attention_mask.astype(jnp.int32)
    if positions is None:
      positions = cache.next_position[:, None] + jnp.maximum(jnp.cumsum(m32, axis=-1) - 1, 0)
    slot_mask = kv_cache.write(cache.mask, attention_mask, cache.index)  # [B, S]
    query_slot = cache.index + jnp.arange(t)  # [T]
    causal = jnp.arange(cache.max_len)[None, :] <= query_slot[:, None]  # [T, S]
    mask = causal[None] & slot_mask[:, None, :]
    x = self._embed(tokens, positions)
    new_k, new_v = [], []
    for layer, k, v in zip(self.layers, cache.k, cache.v):
      x, (k, v) = layer(x, positions, mask, (k, v), cache.index)
      new_k.append(k)
      new_v.append(v)
    logits = self.logits_from_hidden(self.final_norm(x))
    new_cache = kv_cache.KVCache(tuple(new_k), tuple(new_v), cache.index + t, slot_mask,
                                 cache.next_position + m32.sum(axis=-1))
    return logits, new_cache

  def logits_from_hidden(self, hidden: jax.Array) -> jax.Array:
    """LM head: hidden [B, T, d] -> float32 logits [B, T, V] (tied head uses embed_vd^T)."""
    ct = self.cfg.compute_dtype
    if self.lm_head_dv is None:
      logits = jnp.einsum("btd,vd->btv", hidden, self.embed_vd[...].astype(ct),
                          preferred_element_type=jnp.float32)
    else:
      logits = jnp.einsum("btd,dv->btv", hidden, self.lm_head_dv[...].astype(ct),
                          preferred_element_type=jnp.float32)
    return _shard(self.cfg, logits, "batch", "length", "act_vocab")

  def __call__(self, tokens: jax.Array, attention_mask: jax.Array | None = None,
               positions: jax.Array | None = None, segment_ids: jax.Array | None = None) -> jax.Array:
    return self.logits_from_hidden(self.hidden_states(tokens, attention_mask, positions, segment_ids))
