"""One Flax NNX decoder-only transformer for the llama, qwen2 and gpt2 families.

Each block is pre-norm:

  h = x + Attn(Norm(x)),   y = h + MLP(Norm(h)).

Attention over T queries and S = T keys, with n_heads query heads sharing n_kv_heads key/value heads
(grouped-query attention, group size G = n_heads / n_kv_heads):

  score[t, s] = <q_t, k_s> / sqrt(head_dim),   allowed iff s <= t and attention_mask[s] = 1,
  out_t = sum_s softmax_s(score[t, :])[s] v_s.

The mask is causal in array index, and positions are explicit: with left padding the first real token
sits at index > 0 but must get position 0, so by default positions = cumsum(attention_mask) - 1.
RoPE (llama/qwen2) rotates each (i, i + head_dim/2) pair of q and k by angle position * inv_freq[i];
GPT-2 adds a learned position embedding instead.

Parameter names end in einsum-style axis letters: d = d_model, n = query heads, k = kv heads,
h = head_dim, f = d_ff, v = vocab, p = positions. Each nnx.Param carries its logical axis names in the
`out_sharding` metadata (with eager sharding off), e.g. ("embed", "heads", "head_dim"), so a mesh can be
applied later via logical-to-mesh rules.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rljax.models.config import DecoderConfig

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
    x32 = x.astype(jnp.float32)
    if self.rms:
      y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
      return (y * self.scale_d[...].astype(jnp.float32)).astype(x.dtype)
    mu = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mu), axis=-1, keepdims=True)
    y = (x32 - mu) * jax.lax.rsqrt(var + self.eps)
    y = y * self.scale_d[...].astype(jnp.float32) + self.bias_d[...].astype(jnp.float32)
    return y.astype(x.dtype)


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

  def __call__(self, x: jax.Array, positions: jax.Array, mask: jax.Array) -> jax.Array:
    """x: [B, T, d]; positions: int[B, T]; mask: bool[B, T, S] (True = may attend)."""
    cfg = self.cfg
    ct = cfg.compute_dtype
    proj = lambda w, b, eq: _add_bias(jnp.einsum(eq, x, w[...].astype(ct)), b, ct)
    q = proj(self.q_proj_dnh, self.q_bias_nh, "btd,dnh->btnh")
    k = proj(self.k_proj_dkh, self.k_bias_kh, "btd,dkh->btkh")
    v = proj(self.v_proj_dkh, self.v_bias_kh, "btd,dkh->btkh")
    if cfg.uses_rope:
      inv_freq = rope_inv_freq(cfg)
      q, k = apply_rope(q, positions, inv_freq), apply_rope(k, positions, inv_freq)
    b, t = x.shape[:2]
    g = cfg.n_heads // cfg.n_kv_heads
    # Query head j uses kv head j // g (HF `repeat_kv` order), so split n as (k, g).
    q = q.reshape(b, t, cfg.n_kv_heads, g, cfg.head_dim)
    scores = jnp.einsum("btkgh,bskh->bkgts", q, k, preferred_element_type=jnp.float32)
    scores = scores / math.sqrt(cfg.head_dim)
    # A finite floor (not -inf) keeps fully masked rows (padding queries) NaN-free.
    scores = jnp.where(mask[:, None, None], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(ct)
    out = jnp.einsum("bkgts,bskh->btkgh", probs, v).reshape(b, t, cfg.n_heads, cfg.head_dim)
    y = jnp.einsum("btnh,nhd->btd", out, self.o_proj_nhd[...].astype(ct))
    return _add_bias(y, self.o_bias_d, ct)


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
    up = _add_bias(jnp.einsum("btd,df->btf", x, self.up_proj_df[...].astype(ct)), self.up_bias_f, ct)
    if self.gate_proj_df is not None:
      gate = jnp.einsum("btd,df->btf", x, self.gate_proj_df[...].astype(ct))
      hidden = _activation(self.cfg.activation, gate) * up
    else:
      hidden = _activation(self.cfg.activation, up)
    y = jnp.einsum("btf,fd->btd", hidden, self.down_proj_fd[...].astype(ct))
    return _add_bias(y, self.down_bias_d, ct)


class Block(nnx.Module):

  def __init__(self, cfg: DecoderConfig, rngs: nnx.Rngs):
    self.attn_norm = Norm(cfg, rngs)
    self.attn = Attention(cfg, rngs)
    self.mlp_norm = Norm(cfg, rngs)
    self.mlp = MLP(cfg, rngs)

  def __call__(self, x, positions, mask):
    x = x + self.attn(self.attn_norm(x), positions, mask)
    return x + self.mlp(self.mlp_norm(x))


class Decoder(nnx.Module):
  """Decoder-only LM: `model(tokens, attention_mask, positions) -> logits f32[B, T, V]`."""

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

  def hidden_states(self, tokens: jax.Array, attention_mask: jax.Array | None = None,
                    positions: jax.Array | None = None) -> jax.Array:
    """Final-norm hidden states [B, T, d_model] in compute dtype (input to the LM head)."""
    cfg = self.cfg
    if tokens.ndim != 2:
      raise ValueError(f"`tokens` must have shape [batch, time], got {tokens.shape}.")
    b, t = tokens.shape
    if attention_mask is None:
      attention_mask = jnp.ones((b, t), jnp.bool_)
    elif attention_mask.shape != tokens.shape:
      raise ValueError(f"`attention_mask` has shape {attention_mask.shape}, expected {tokens.shape}.")
    attention_mask = attention_mask.astype(jnp.bool_)
    if positions is None:
      # Left padding: the first real token gets position 0; pad slots are clipped to 0 (never attended).
      positions = jnp.maximum(jnp.cumsum(attention_mask.astype(jnp.int32), axis=-1) - 1, 0)
    elif positions.shape != tokens.shape:
      raise ValueError(f"`positions` has shape {positions.shape}, expected {tokens.shape}.")
    causal = jnp.tril(jnp.ones((t, t), jnp.bool_))
    mask = causal[None] & attention_mask[:, None, :]  # [B, T, S]
    x = self.embed_vd[...][tokens].astype(cfg.compute_dtype)
    if self.pos_embed_pd is not None:
      x = x + self.pos_embed_pd[...][positions].astype(cfg.compute_dtype)
    for layer in self.layers:
      x = layer(x, positions, mask)
    return self.final_norm(x)

  def logits_from_hidden(self, hidden: jax.Array) -> jax.Array:
    """LM head: hidden [B, T, d] -> float32 logits [B, T, V] (tied head uses embed_vd^T)."""
    ct = self.cfg.compute_dtype
    if self.lm_head_dv is None:
      return jnp.einsum("btd,vd->btv", hidden, self.embed_vd[...].astype(ct),
                        preferred_element_type=jnp.float32)
    return jnp.einsum("btd,dv->btv", hidden, self.lm_head_dv[...].astype(ct),
                      preferred_element_type=jnp.float32)

  def __call__(self, tokens: jax.Array, attention_mask: jax.Array | None = None,
               positions: jax.Array | None = None) -> jax.Array:
    return self.logits_from_hidden(self.hidden_states(tokens, attention_mask, positions))
