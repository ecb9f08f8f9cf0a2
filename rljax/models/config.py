"""`DecoderConfig`: one frozen description of a decoder-only LM, built from a transformers config.json.

Four families share one decoder (`rljax.models.decoder.Decoder`):

  llama: RMSNorm, RoPE, grouped-query attention, SwiGLU MLP, optionally tied embeddings.
  qwen2: llama plus a bias on the q/k/v projections.
  qwen3: llama plus QK-norm (an RMSNorm over head_dim on each query and key head, after the
         projection and before RoPE); `attention_bias` biases q/k/v and o; head_dim is explicit.
  gpt2:  learned absolute positions, LayerNorm (with bias), GELU-tanh MLP, biases everywhere, tied
         embeddings; the fused `c_attn` projection is split into q/k/v at load time.

The config is hashable (no dicts or lists), because NNX keeps it in the graph definition, which `jax.jit`
hashes to look up compiled code.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

FAMILIES = ("llama", "qwen2", "qwen3", "gpt2")
ACTIVATIONS = ("silu", "gelu_new", "gelu_pytorch_tanh", "gelu")
ROPE_TYPES = ("default", "llama3")
ATTENTION_IMPLEMENTATIONS = ("auto", "einsum", "xla", "cudnn", "splash")

_ARCHITECTURES = {
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "gpt2": "GPT2LMHeadModel",
}


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
  """Sizes and numerics of a decoder-only transformer.

  `head_dim` defaults to d_model / n_heads; `n_kv_heads` must divide `n_heads` (each KV head serves
  n_heads / n_kv_heads query heads). `param_dtype` is the storage dtype of the weights; `compute_dtype`
  is the dtype of the matmul inputs. Norm statistics, softmax and the returned logits are always float32.

  `remat` rematerialises each block in `Decoder.hidden_states` (nnx.remat = jax.checkpoint): the
  backward pass keeps only each block's input x [B, T, d_model] and recomputes the block's forward,
  instead of storing its intermediates (q/k/v, float32 attention scores and probabilities
  [B, n_heads, T, T], MLP hidden [B, T, d_ff], norms). Activation memory per layer drops from
  O(B T (n_heads T + d_ff + d_model)) to O(B T d_model), for about one extra forward pass of compute
  (~+33% FLOPs of a training step). Gradients are unchanged. It does not affect `decode`.

  `attention` picks the self-attention kernel (`rljax.models.attention`): "auto" (default) takes cuDNN's
  fused flash kernel on a CUDA GPU in bf16/fp16 ("xla" otherwise), the Pallas splash kernel on TPU and
  "einsum" on CPU; "einsum" writes out float32 [B, n_heads, T, S] scores; "xla" and "cudnn" call
  `jax.nn.dot_product_attention` with is_causal and sequence lengths instead of a dense mask, which
  requires each row's real tokens to be one contiguous run (left-padded prompt + completion + trailing
  padding; packed rows use their segment ids); "splash" is the TPU kernel. KV-cache decoding always
  uses "einsum".

  `activation_rules` maps the logical names of activations (batch, length, act_embed, act_heads,
  act_kv_heads, act_mlp, act_vocab) to mesh axes, as (name, axes) pairs; None uses
  `rljax.sharding.DEFAULT_RULES`. The decoder constrains its residual stream, q/k/v, the MLP hidden and
  the logits with them whenever a mesh is set (`jax.set_mesh`), and is unchanged without one.
  """

  family: str
  vocab_size: int
  d_model: int
  n_layers: int
  n_heads: int
  n_kv_heads: int
  head_dim: int
  d_ff: int
  max_positions: int
  norm_eps: float
  activation: str
  tie_word_embeddings: bool
  qkv_bias: bool
  rope_theta: float = 10000.0
  rope_type: str = "default"
  # llama3 frequency scaling; ignored unless rope_type == "llama3".
  rope_factor: float = 8.0
  rope_low_freq_factor: float = 1.0
  rope_high_freq_factor: float = 4.0
  rope_original_max_positions: int = 8192
  bos_token_id: int | None = None
  eos_token_id: int | None = None
  pad_token_id: int | None = None
  param_dtype: Any = jnp.float32
  compute_dtype: Any = jnp.float32
  remat: bool = False
  attention: str = "auto"
  activation_rules: Any = None

  def __post_init__(self):
    if self.attention not in ATTENTION_IMPLEMENTATIONS:
      raise ValueError(f"`attention` must be one of {ATTENTION_IMPLEMENTATIONS}, got {self.attention!r}.")
    if self.family not in FAMILIES:
      raise ValueError(f"Unknown architecture family {self.family!r}; supported: {FAMILIES}.")
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"Unsupported activation {self.activation!r}; supported: {ACTIVATIONS}.")
    if self.rope_type not in ROPE_TYPES:
      raise ValueError(f"Unsupported rope_type {self.rope_type!r}; supported: {ROPE_TYPES}.")
    for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "d_ff",
                 "max_positions"):
      if getattr(self, name) <= 0:
        raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)}.")
    if self.n_heads % self.n_kv_heads:
      raise ValueError(f"`n_kv_heads`={self.n_kv_heads} must divide `n_heads`={self.n_heads}.")
    if self.family != "gpt2" and self.head_dim % 2:
      raise ValueError(f"RoPE needs an even `head_dim`, got {self.head_dim}.")

  @property
  def uses_rope(self) -> bool:
    return self.family != "gpt2"

  @property
  def o_bias(self) -> bool:
    """GPT-2, and llama/qwen3 with `attention_bias=True`, also bias the output projection; qwen2 does not."""
    return self.family == "gpt2" or (self.family in ("llama", "qwen3") and self.qkv_bias)

  @property
  def qk_norm(self) -> bool:
    """qwen3 RMS-normalises each query and key head over head_dim (learned scale [head_dim] per layer)."""
    return self.family == "qwen3"

  @classmethod
  def from_hf(cls, hf: dict[str, Any], *, param_dtype: Any = jnp.float32,
              compute_dtype: Any = None) -> DecoderConfig:
    """Reads a transformers config.json dict (v4 or v5 keys)."""
    family = hf.get("model_type")
    if family not in FAMILIES:
      raise ValueError(f"Unknown architecture: model_type={family!r} (architectures="
                       f"{hf.get('architectures')}); supported model types: {FAMILIES}.")
    common = dict(
        family=family,
        vocab_size=hf["vocab_size"],
        bos_token_id=_single_id(hf.get("bos_token_id")),
        eos_token_id=_single_id(hf.get("eos_token_id")),
        pad_token_id=_single_id(hf.get("pad_token_id")),
        param_dtype=param_dtype,
        compute_dtype=param_dtype if compute_dtype is None else compute_dtype,
    )
    if family == "gpt2":
      for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"):
        if hf.get(flag):
          raise ValueError(f"GPT-2 config option `{flag}=True` is not supported.")
      if not hf.get("scale_attn_weights", True):
        raise ValueError("GPT-2 config option `scale_attn_weights=False` is not supported.")
      d = hf["n_embd"]
      return cls(
          d_model=d, n_layers=hf["n_layer"], n_heads=hf["n_head"], n_kv_heads=hf["n_head"],
          head_dim=d // hf["n_head"], d_ff=hf.get("n_inner") or 4 * d,
          max_positions=hf["n_positions"], norm_eps=hf.get("layer_norm_epsilon", 1e-5),
          activation=hf.get("activation_function", "gelu_new"),
          tie_word_embeddings=hf.get("tie_word_embeddings", True), qkv_bias=True, **common)

    if hf.get("mlp_bias"):
      raise ValueError(f"{family} config option `mlp_bias=True` is not supported.")
    if hf.get("use_sliding_window") or "sliding_attention" in (hf.get("layer_types") or ()):
      raise ValueError(f"{family} sliding-window attention (`use_sliding_window=True` or sliding "
                       "`layer_types`) is not supported.")
    d, n_heads = hf["hidden_size"], hf["num_attention_heads"]
    # v5 keeps rope settings in `rope_parameters`; v4 used top-level `rope_theta` / `rope_scaling`.
    rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    theta = rope.get("rope_theta", hf.get("rope_theta", 10000.0))
    rope_kwargs = {}
    if rope_type == "llama3":
      rope_kwargs = dict(
          rope_factor=rope["factor"], rope_low_freq_factor=rope["low_freq_factor"],
          rope_high_freq_factor=rope["high_freq_factor"],
          rope_original_max_positions=rope["original_max_position_embeddings"])
    return cls(
        d_model=d, n_layers=hf["num_hidden_layers"], n_heads=n_heads,
        n_kv_heads=hf.get("num_key_value_heads") or n_heads,
        # transformers' Qwen3Config defaults head_dim to 128 rather than hidden_size / heads.
        head_dim=hf.get("head_dim") or (128 if family == "qwen3" else d // n_heads), d_ff=hf["intermediate_size"],
        max_positions=hf.get("max_position_embeddings", 2048), norm_eps=hf.get("rms_norm_eps", 1e-6),
        activation=hf.get("hidden_act", "silu"),
        tie_word_embeddings=hf.get("tie_word_embeddings", False),
        qkv_bias=family == "qwen2" or bool(hf.get("attention_bias", False)),
        rope_theta=float(theta), rope_type=rope_type, **rope_kwargs, **common)

  def to_hf(self) -> dict[str, Any]:
    """A config.json dict that `transformers.AutoConfig` reads back to the same architecture."""
    out: dict[str, Any] = {
        "architectures": [_ARCHITECTURES[self.family]],
        "model_type": self.family,
        "vocab_size": self.vocab_size,
        "tie_word_embeddings": self.tie_word_embeddings,
        "bos_token_id": self.bos_token_id,
        "eos_token_id": self.eos_token_id,
        "pad_token_id": self.pad_token_id,
        "dtype": jnp.dtype(self.param_dtype).name,
    }
    if self.family == "gpt2":
      if self.head_dim * self.n_heads != self.d_model:
        raise ValueError("GPT-2 requires head_dim * n_heads == d_model.")
      out.update(n_embd=self.d_model, n_layer=self.n_layers, n_head=self.n_heads, n_inner=self.d_ff,
                 n_positions=self.max_positions, layer_norm_epsilon=self.norm_eps,
                 activation_function=self.activation)
      return out
    rope: dict[str, Any] = {"rope_theta": self.rope_theta, "rope_type": self.rope_type}
    if self.rope_type == "llama3":
      rope.update(factor=self.rope_factor, low_freq_factor=self.rope_low_freq_factor,
                  high_freq_factor=self.rope_high_freq_factor,
                  original_max_position_embeddings=self.rope_original_max_positions)
    out.update(hidden_size=self.d_model, num_hidden_layers=self.n_layers,
               num_attention_heads=self.n_heads, num_key_value_heads=self.n_kv_heads,
               head_dim=self.head_dim, intermediate_size=self.d_ff,
               max_position_embeddings=self.max_positions, rms_norm_eps=self.norm_eps,
               hidden_act=self.activation, rope_parameters=rope, rope_theta=self.rope_theta)
    if self.family in ("llama", "qwen3"):
      out["attention_bias"] = self.qkv_bias
    elif not self.qkv_bias:
      raise ValueError("qwen2 always has a q/k/v bias; `qkv_bias=False` cannot be saved as qwen2.")
    return out


def _single_id(value: Any) -> int | None:
  # Some configs list several eos ids; keep the first so the config stays hashable.
  if isinstance(value, (list, tuple)):
    return int(value[0]) if value else None
  return None if value is None else int(value)
