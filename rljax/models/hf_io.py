"""Load and save Hugging Face transformers checkpoints (config.json + *.safetensors) as `Decoder`s.

Every HF tensor maps to one or more NNX parameters through a pair of layout transforms:

  llama/qwen2/qwen3 `nn.Linear` weights are [out, in]; our kernels are [in, ...], so they are transposed
  and the head axis is split out: q_proj.weight [n*h, d] -> q_proj_dnh [d, n, h]. qwen3's QK-norm
  scales q_norm.weight / k_norm.weight [h] map as they are.
  GPT-2 `Conv1D` weights are already [in, out]; the fused c_attn [d, 3d] splits into q, k, v.

Loading is strict: an unknown model_type, a missing or unexpected tensor, or a shape mismatch raises
an error naming the tensor. A few non-parameter buffers older checkpoints carry are skipped.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx

from rljax.models.config import DecoderConfig
from rljax.models.decoder import Decoder

_INDEX_FILE = "model.safetensors.index.json"
# Buffers (not parameters) found in some checkpoints: causal-mask tables and rotary caches.
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")


@dataclasses.dataclass(frozen=True)
class _Entry:
  """One HF tensor <-> the parameters it fills (attribute paths from the Decoder root)."""
  hf_name: str
  paths: tuple[tuple[Any, ...], ...]
  to_jax: Callable[[jax.Array], tuple[jax.Array, ...]]
  to_hf: Callable[..., jax.Array]


def _one(path, to_jax=lambda w: w, to_hf=lambda w: w) -> tuple:
  return ((path,), lambda w: (to_jax(w),), to_hf)


def _entries(cfg: DecoderConfig) -> list[_Entry]:
  d, n, k, h, v = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.vocab_size
  out: list[_Entry] = []
  add = lambda name, spec: out.append(_Entry(name, *spec))
  T = lambda w: w.T
  if cfg.family == "gpt2":
    add("transformer.wte.weight", _one(("embed_vd",)))
    add("transformer.wpe.weight", _one(("pos_embed_pd",)))
    for i in range(cfg.n_layers):
      p, L = f"transformer.h.{i}.", ("layers", i)
      add(p + "ln_1.weight", _one(L + ("attn_norm", "scale_d")))
      add(p + "ln_1.bias", _one(L + ("attn_norm", "bias_d")))
      add(p + "ln_2.weight", _one(L + ("mlp_norm", "scale_d")))
      add(p + "ln_2.bias", _one(L + ("mlp_norm", "bias_d")))
      A = L + ("attn",)
      add(p + "attn.c_attn.weight", (
          (A + ("q_proj_dnh",), A + ("k_proj_dkh",), A + ("v_proj_dkh",)),
          lambda w: tuple(x.reshape(d, n, h) for x in jnp.split(w, 3, axis=1)),
          lambda q, k_, v_: jnp.concatenate([x.reshape(d, n * h) for x in (q, k_, v_)], axis=1)))
      add(p + "attn.c_attn.bias", (
          (A + ("q_bias_nh",), A + ("k_bias_kh",), A + ("v_bias_kh",)),
          lambda b: tuple(x.reshape(n, h) for x in jnp.split(b, 3)),
          lambda q, k_, v_: jnp.concatenate([x.reshape(-1) for x in (q, k_, v_)])))
      add(p + "attn.c_proj.weight",
          _one(A + ("o_proj_nhd",), lambda w: w.reshape(n, h, d), lambda w: w.reshape(n * h, d)))
      add(p + "attn.c_proj.bias", _one(A + ("o_bias_d",)))
      M = L + ("mlp",)
      add(p + "mlp.c_fc.weight", _one(M + ("up_proj_df",)))
      add(p + "mlp.c_fc.bias", _one(M + ("up_bias_f",)))
      add(p + "mlp.c_proj.weight", _one(M + ("down_proj_fd",)))
      add(p + "mlp.c_proj.bias", _one(M + ("down_bias_d",)))
    add("transformer.ln_f.weight", _one(("final_norm", "scale_d")))
    add("transformer.ln_f.bias", _one(("final_norm", "bias_d")))
  else:
    add("model.embed_tokens.weight", _one(("embed_vd",)))
    for i in range(cfg.n_layers):
      p, L = f"model.layers.{i}.", ("layers", i)
      A, M = L + ("attn",), L + ("mlp",)
      add(p + "input_layernorm.weight", _one(L + ("attn_norm", "scale_d")))
      add(p + "post_attention_layernorm.weight", _one(L + ("mlp_norm", "scale_d")))
      for proj, heads, suffix in (("q", n, "dnh"), ("k", k, "dkh"), ("v", k, "dkh")):
        add(f"{p}self_attn.{proj}_proj.weight", _one(
            A + (f"{proj}_proj_{suffix}",),
            lambda w, heads=heads: w.T.reshape(d, heads, h),
            lambda w, heads=heads: w.reshape(d, heads * h).T))
        if cfg.qkv_bias:
          add(f"{p}self_attn.{proj}_proj.bias", _one(
              A + (f"{proj}_bias_{suffix[1:]}",),
              lambda b, heads=heads: b.reshape(heads, h), lambda b: b.reshape(-1)))
      add(p + "self_attn.o_proj.weight", _one(
          A + ("o_proj_nhd",), lambda w: w.T.reshape(n, h, d), lambda w: w.reshape(n * h, d).T))
      if cfg.o_bias:
        add(p + "self_attn.o_proj.bias", _one(A + ("o_bias_d",)))
      if cfg.qk_norm:
        add(p + "self_attn.q_norm.weight", _one(A + ("q_norm_h",)))
        add(p + "self_attn.k_norm.weight", _one(A + ("k_norm_h",)))
      add(p + "mlp.gate_proj.weight", _one(M + ("gate_proj_df",), T, T))
      add(p + "mlp.up_proj.weight", _one(M + ("up_proj_df",), T, T))
      add(p + "mlp.down_proj.weight", _one(M + ("down_proj_fd",), T, T))
    add("model.norm.weight", _one(("final_norm", "scale_d")))
  if not cfg.tie_word_embeddings:
    add("lm_head.weight", _one(("lm_head_dv",), T, T))
  del v
  return out


def _get(model: Decoder, path: tuple[Any, ...]) -> nnx.Param:
  node = model
  for key in path:
    node = node[key] if isinstance(key, int) else getattr(node, key)
  return node


def _expected_hf_shape(model: Decoder, entry: _Entry) -> tuple[int, ...]:
  structs = [jax.ShapeDtypeStruct(_get(model, p).get_value().shape, jnp.float32) for p in entry.paths]
  return tuple(jax.eval_shape(entry.to_hf, *structs).shape)


def _safetensor_files(path: str) -> dict[str, str]:
  """tensor name -> safetensors file, from the sharded index when present, else every *.safetensors."""
  from safetensors import safe_open

  index = os.path.join(path, _INDEX_FILE)
  if os.path.exists(index):
    with open(index) as f:
      weight_map = json.load(f)["weight_map"]
    return {name: os.path.join(path, fname) for name, fname in weight_map.items()}
  files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
  if not files:
    raise FileNotFoundError(f"No *.safetensors files (and no {_INDEX_FILE}) in {path!r}.")
  where: dict[str, str] = {}
  for fname in files:
    full = os.path.join(path, fname)
    with safe_open(full, framework="flax") as f:
      for name in f.keys():
        if name in where:
          raise ValueError(f"Tensor {name!r} appears in both {where[name]!r} and {full!r}.")
        where[name] = full
  return where


def from_pretrained(
    path: str, *, dtype: Any = jnp.float32, compute_dtype: Any = None, mesh: Any = None, rules: Any = None
) -> Decoder:
  """Builds a `Decoder` from a transformers checkpoint directory (config.json + safetensors).

  `dtype` is the parameter dtype; `compute_dtype` defaults to it. No random init is run: the model is
  built abstractly (`nnx.eval_shape`) and every parameter is filled from the checkpoint. With a
  `mesh` the parameters are then placed on it by their logical axes (`rljax.sharding.shard_model`,
  `rules` defaulting to `rljax.sharding.DEFAULT_RULES`).
  """
  from safetensors import safe_open

  with open(os.path.join(path, "config.json")) as f:
    cfg = DecoderConfig.from_hf(json.load(f), param_dtype=dtype, compute_dtype=compute_dtype)
  model = nnx.eval_shape(lambda: Decoder(cfg, rngs=nnx.Rngs(0)))
  entries = _entries(cfg)
  where = _safetensor_files(path)
  expected = {e.hf_name for e in entries}
  missing = [e.hf_name for e in entries if e.hf_name not in where]
  if missing:
    raise KeyError(f"Checkpoint {path!r} is missing tensor(s) {missing} for a {cfg.family} model.")
  extra = [name for name in where if name not in expected and not name.endswith(_IGNORED_SUFFIXES)
           # Tied checkpoints may still store a copy of the head; the embedding is authoritative.
           and not (cfg.tie_word_embeddings and name == "lm_head.weight")]
  if extra:
    raise KeyError(f"Checkpoint {path!r} has unexpected tensor(s) {sorted(extra)} for a "
                   f"{cfg.family} model.")

  by_file: dict[str, list[_Entry]] = {}
  for e in entries:
    by_file.setdefault(where[e.hf_name], []).append(e)
  for fname, file_entries in by_file.items():
    with safe_open(fname, framework="flax") as f:
      for e in file_entries:
        tensor = f.get_tensor(e.hf_name)
        want = _expected_hf_shape(model, e)
        if tuple(tensor.shape) != want:
          raise ValueError(f"Tensor {e.hf_name!r} has shape {tuple(tensor.shape)}, expected {want} "
                           f"from config.json.")
        for p, value in zip(e.paths, e.to_jax(tensor)):
          _get(model, p).set_value(jnp.asarray(value, dtype))
  # Guards the name map itself: a parameter no entry fills would otherwise stay abstract.
  unfilled = [jax.tree_util.keystr(k) for k, x in jax.tree_util.tree_leaves_with_path(nnx.state(model))
              if isinstance(x, jax.ShapeDtypeStruct)]
  if unfilled:
    raise RuntimeError(f"No checkpoint tensor maps to parameter(s) {unfilled}.")
  if mesh is not None:
    from rljax import sharding

    sharding.shard_model(model, mesh, sharding.DEFAULT_RULES if rules is None else rules)
  return model


def save_pretrained(model: Decoder, path: str) -> None:
  """Writes config.json + model.safetensors that `transformers.AutoModelForCausalLM` loads."""
  from safetensors.flax import save_file

  os.makedirs(path, exist_ok=True)
  tensors = {}
  for e in _entries(model.cfg):
    values = [_get(model, p)[...] for p in e.paths]
    # safetensors needs dense host-backed arrays; jnp.asarray also gathers sharded params.
    tensors[e.hf_name] = jnp.asarray(e.to_hf(*values))
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(model.cfg.to_hf(), f, indent=2)
  # transformers refuses safetensors without format metadata.
  save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
