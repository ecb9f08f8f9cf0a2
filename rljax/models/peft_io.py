"""LoRA adapters in Hugging Face PEFT's format: `adapter_config.json` + `adapter_model.safetensors`.

`save_adapter` writes what `peft.PeftModel.from_pretrained(transformers_model, path)` loads, and
`load_adapter` reads an adapter PEFT wrote. For a decoder layer i and a target t (q_proj, ..., down_proj) the
tensors are

  base_model.model.model.layers.{i}.{self_attn|mlp}.{t}.lora_A.weight   [r, in]    = A [in..., r] flattened, transposed
  base_model.model.model.layers.{i}.{self_attn|mlp}.{t}.lora_B.weight   [out, r]   = B [r, out...] flattened, transposed

with in/out the kernel's axes flattened in the order of the transformers weight (q_proj: out = n_heads·head_dim,
head-major; o_proj: in = n_heads·head_dim), and PEFT's update is the same s·B(A(drop(x))) with
s = lora_alpha / r (/ sqrt(r) with use_rslora). Families: llama, qwen2, qwen3 (all name their projections
alike); GPT-2's fused c_attn has no per-projection adapter in PEFT and is refused.

The adapter goes with its base model: `rljax.models.save_pretrained(model, path)` writes the base weights of an
adapted model; `save_pretrained(merge_lora(model), path)` writes the merged model instead.
"""

from __future__ import annotations

import json
import math
import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

from rljax.models import lora
from rljax.models.decoder import Decoder

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
_PARENT = {"attn": "self_attn", "mlp": "mlp"}
# adapter_config.json options with no counterpart here, and the value that means "off".
_UNSUPPORTED = {"use_dora": False, "bias": "none", "lora_bias": False, "fan_in_fan_out": False,
                "modules_to_save": None, "rank_pattern": {}, "alpha_pattern": {}, "layers_to_transform": None,
                "layer_replication": None, "exclude_modules": None, "target_parameters": None,
                "trainable_token_indices": None}


def _check_family(model: Decoder) -> None:
  if model.cfg.family == "gpt2":
    raise ValueError("PEFT adapters are not supported for gpt2: its q/k/v are one fused c_attn (Conv1D) in "
                     "transformers, with no per-projection adapter.")


def _hf_name(path: tuple, target: str) -> str:
  """Module path ("layers", i, "attn") + target -> PEFT's name of that module's adapter."""
  layers, i, block = path
  if layers != "layers" or block not in _PARENT:
    raise ValueError(f"An adapter at {path} is not on a decoder layer's attention or MLP.")
  return f"base_model.model.model.layers.{i}.{_PARENT[block]}.{target}"


def save_adapter(model: Decoder, path: str, *, base_model_name_or_path: str | None = None) -> None:
  """Writes the adapters of `model` (a `Decoder` after `apply_lora`) as a PEFT LoRA adapter directory."""
  from safetensors.numpy import save_file

  _check_family(model)
  cfg = lora.lora_config(model)
  if cfg is None:
    raise ValueError("`model` has no LoRA adapters (see `rljax.models.lora.apply_lora`).")
  tensors = {}
  for module_path, target, adapter in lora.adapters(model):
    name = _hf_name(module_path, target)
    a, b = np.asarray(adapter.a[...]), np.asarray(adapter.b[...])
    tensors[f"{name}.lora_A.weight"] = np.ascontiguousarray(a.reshape(-1, cfg.rank).T)
    tensors[f"{name}.lora_B.weight"] = np.ascontiguousarray(b.reshape(cfg.rank, -1).T)
  config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model_name_or_path,
            "r": cfg.rank, "lora_alpha": cfg.alpha, "lora_dropout": cfg.dropout, "target_modules": list(cfg.targets),
            "use_rslora": cfg.use_rslora, "bias": "none", "fan_in_fan_out": False, "init_lora_weights": True,
            "inference_mode": True, "modules_to_save": None}
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, CONFIG_FILE), "w") as f:
    json.dump(config, f, indent=2)
  # transformers/PEFT refuse safetensors without format metadata.
  save_file(tensors, os.path.join(path, WEIGHTS_FILE), metadata={"format": "pt"})


def read_config(path: str) -> lora.LoRAConfig:
  """The `LoRAConfig` of a PEFT adapter directory; options this decoder cannot express raise."""
  with open(os.path.join(path, CONFIG_FILE)) as f:
    hf = json.load(f)
  if hf.get("peft_type") != "LORA":
    raise ValueError(f"{path!r} holds a {hf.get('peft_type')!r} adapter; only LORA is supported.")
  bad = {k: hf[k] for k, off in _UNSUPPORTED.items() if hf.get(k, off) not in (off, None, {}, [], False)}
  if bad:
    raise ValueError(f"Unsupported PEFT options in {path!r}: {bad}.")
  targets = hf["target_modules"]
  if targets == "all-linear":
    targets = lora.ALL_TARGETS
  elif isinstance(targets, str):
    raise ValueError(f"`target_modules` as a pattern ({targets!r}) is not supported; list the module names.")
  return lora.LoRAConfig(rank=hf["r"], alpha=hf["lora_alpha"], dropout=hf.get("lora_dropout", 0.0),
                         targets=tuple(targets), use_rslora=bool(hf.get("use_rslora", False)))


def load_adapter(model: Decoder, path: str, *, rngs: nnx.Rngs | None = None) -> Decoder:
  """Attaches the PEFT adapter in `path` to `model` (in place, via `apply_lora`) and returns it.

  Loading is strict: a missing or unexpected tensor, or a shape mismatch, raises naming the tensor.
  """
  from safetensors import safe_open

  _check_family(model)
  cfg = read_config(path)
  lora.apply_lora(model, cfg, rngs=rngs or nnx.Rngs(0))
  with safe_open(os.path.join(path, WEIGHTS_FILE), framework="flax") as f:
    names = set(f.keys())
    for module_path, target, adapter in lora.adapters(model):
      name = _hf_name(module_path, target)
      a_shape, b_shape = tuple(adapter.a.get_value().shape), tuple(adapter.b.get_value().shape)
      for var, key, hf_shape in ((adapter.a, f"{name}.lora_A.weight", (cfg.rank, math.prod(a_shape[:-1]))),
                                 (adapter.b, f"{name}.lora_B.weight", (math.prod(b_shape[1:]), cfg.rank))):
        if key not in names:
          raise KeyError(f"Adapter {path!r} is missing tensor {key!r}.")
        names.remove(key)
        w = f.get_tensor(key)
        if tuple(w.shape) != hf_shape:
          raise ValueError(f"Tensor {key!r} has shape {tuple(w.shape)}, expected {hf_shape}.")
        var.set_value(jnp.asarray(w, jnp.float32).T.reshape(var.get_value().shape))
  if names:
    raise KeyError(f"Adapter {path!r} has unexpected tensor(s) {sorted(names)}.")
  return model


__all__ = ["load_adapter", "read_config", "save_adapter"]
