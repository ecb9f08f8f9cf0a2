"""rljax.models against transformers' torch implementations on tiny random checkpoints (offline)."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rljax import models  # noqa: E402
from tests.helpers import VOCAB, hf_model

TOL = 1e-4


def _batch(left: bool):
  rng = np.random.default_rng(1)
  tokens = rng.integers(3, VOCAB, size=(3, 9))
  lengths = [9, 6, 2]
  mask = np.zeros((3, 9), np.int64)
  for b, n in enumerate(lengths):
    if left:
      mask[b, 9 - n:] = 1
    else:
      mask[b, :n] = 1
  tokens = np.where(mask == 1, tokens, 0)
  return tokens, mask


def _torch_logits(hf, tokens, mask):
  # HF's plain forward numbers positions 0..T-1 regardless of the mask; pass the same
  # cumsum(mask) - 1 positions rljax uses so left-padded rows are comparable.
  positions = np.maximum(np.cumsum(mask, axis=-1) - 1, 0)
  with torch.no_grad():
    out = hf(input_ids=torch.tensor(tokens), attention_mask=torch.tensor(mask),
             position_ids=torch.tensor(positions))
  return out.logits.float().numpy()


def _assert_close_unmasked(ours, theirs, mask):
  keep = mask.astype(bool)
  diff = np.abs(np.asarray(ours)[keep] - theirs[keep]).max()
  assert diff <= TOL, f"max |logit diff| over unmasked positions = {diff}"


CASES = [("llama", False), ("llama", True), ("qwen2", True), ("qwen2", False), ("qwen3", False), ("qwen3", True),
         ("gpt2", True)]


@pytest.fixture(scope="module", params=CASES, ids=[f"{f}-{'tied' if t else 'untied'}" for f, t in CASES])
def checkpoint(request, tmp_path_factory):
  family, tied = request.param
  hf = hf_model(family, tied)
  path = tmp_path_factory.mktemp(f"{family}_{tied}")
  hf.save_pretrained(path)
  return family, hf, str(path)


@pytest.mark.parametrize("left", [False, True], ids=["right_pad", "left_pad"])
def test_logits_match_transformers(checkpoint, left):
  family, hf, path = checkpoint
  model = models.from_pretrained(path)
  assert model.cfg.family == family
  tokens, mask = _batch(left)
  ours = model(jnp.asarray(tokens), jnp.asarray(mask))
  assert ours.dtype == jnp.float32 and ours.shape == (3, 9, VOCAB)
  _assert_close_unmasked(ours, _torch_logits(hf, tokens, mask), mask)


def test_round_trip_through_transformers(checkpoint, tmp_path):
  _, hf, path = checkpoint
  model = models.from_pretrained(path)
  models.save_pretrained(model, str(tmp_path))
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
  tokens, mask = _batch(left=True)
  _assert_close_unmasked(_torch_logits(reloaded, tokens, mask), _torch_logits(hf, tokens, mask), mask)
  again = models.from_pretrained(str(tmp_path))
  _assert_close_unmasked(again(jnp.asarray(tokens), jnp.asarray(mask)),
                         model(jnp.asarray(tokens), jnp.asarray(mask)), mask)


def test_param_sharding_metadata():
  hf = hf_model("llama")
  cfg = models.DecoderConfig.from_hf(hf.config.to_dict())
  import flax.nnx as nnx
  model = models.Decoder(cfg, rngs=nnx.Rngs(0))
  q = model.layers[0].attn.q_proj_dnh
  assert q[...].shape == (48, 3, 16)
  assert q.get_metadata()["out_sharding"] == ("embed", "heads", "head_dim")


def _rewrite(src: str, dst, edit):
  from safetensors.numpy import load_file, save_file
  tensors = load_file(os.path.join(src, "model.safetensors"))
  edit(tensors)
  os.makedirs(dst, exist_ok=True)
  save_file(tensors, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
  with open(os.path.join(src, "config.json")) as f:
    cfg = json.load(f)
  with open(os.path.join(dst, "config.json"), "w") as f:
    json.dump(cfg, f)
  return str(dst)


@pytest.fixture(scope="module")
def llama_path(tmp_path_factory):
  path = tmp_path_factory.mktemp("llama_err")
  hf_model("llama").save_pretrained(path)
  return str(path)


def test_missing_tensor_is_named(llama_path, tmp_path):
  name = "model.layers.1.mlp.up_proj.weight"
  path = _rewrite(llama_path, tmp_path, lambda t: t.pop(name))
  with pytest.raises(KeyError, match=name.replace(".", r"\.")):
    models.from_pretrained(path)


def test_extra_tensor_is_named(llama_path, tmp_path):
  path = _rewrite(llama_path, tmp_path,
                  lambda t: t.update({"model.layers.0.mystery.weight": np.zeros(3, np.float32)}))
  with pytest.raises(KeyError, match=r"model\.layers\.0\.mystery\.weight"):
    models.from_pretrained(path)


def test_wrong_shape_is_named(llama_path, tmp_path):
  name = "model.layers.0.self_attn.k_proj.weight"
  path = _rewrite(llama_path, tmp_path, lambda t: t.update({name: np.zeros((32, 48), np.float32)}))
  with pytest.raises(ValueError, match=name.replace(".", r"\.")):
    models.from_pretrained(path)


def test_unknown_architecture_raises(llama_path, tmp_path):
  def edit_config(dst):
    with open(os.path.join(dst, "config.json")) as f:
      cfg = json.load(f)
    cfg["model_type"], cfg["architectures"] = "mamba", ["MambaForCausalLM"]
    with open(os.path.join(dst, "config.json"), "w") as f:
      json.dump(cfg, f)
  path = _rewrite(llama_path, tmp_path, lambda t: None)
  edit_config(path)
  with pytest.raises(ValueError, match="mamba"):
    models.from_pretrained(path)


def test_sharded_index_loads(llama_path, tmp_path):
  """A checkpoint split over two files with a model.safetensors.index.json loads the same."""
  from safetensors.numpy import load_file, save_file
  tensors = load_file(os.path.join(llama_path, "model.safetensors"))
  names = sorted(tensors)
  shards = {"model-00001-of-00002.safetensors": names[::2],
            "model-00002-of-00002.safetensors": names[1::2]}
  weight_map = {}
  for fname, part in shards.items():
    save_file({n: tensors[n] for n in part}, os.path.join(tmp_path, fname), metadata={"format": "pt"})
    weight_map.update({n: fname for n in part})
  with open(os.path.join(tmp_path, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {}, "weight_map": weight_map}, f)
  with open(os.path.join(llama_path, "config.json")) as f:
    cfg = f.read()
  with open(os.path.join(tmp_path, "config.json"), "w") as f:
    f.write(cfg)
  tokens, mask = _batch(left=False)
  a = models.from_pretrained(str(tmp_path))(jnp.asarray(tokens), jnp.asarray(mask))
  b = models.from_pretrained(llama_path)(jnp.asarray(tokens), jnp.asarray(mask))
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_llama3_rope_scaling(tmp_path):
  torch.manual_seed(0)
  rope = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
  cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=48, intermediate_size=80,
                                 num_hidden_layers=2, num_attention_heads=3, num_key_value_heads=1,
                                 max_position_embeddings=64, bos_token_id=1, eos_token_id=2,
                                 pad_token_id=0, rope_parameters=rope)
  hf = transformers.LlamaForCausalLM(cfg).eval()
  with torch.no_grad():  # larger q/k so the rotation angles visibly change the logits
    for name, p in hf.named_parameters():
      if "q_proj" in name or "k_proj" in name:
        p.mul_(10.0)
  hf.save_pretrained(tmp_path)
  model = models.from_pretrained(str(tmp_path))
  assert model.cfg.rope_type == "llama3"
  tokens = np.random.default_rng(0).integers(3, VOCAB, size=(2, 40))
  mask = np.ones_like(tokens)
  ref = _torch_logits(hf, tokens, mask)
  _assert_close_unmasked(model(jnp.asarray(tokens)), ref, mask)
  # The same weights with unscaled RoPE must differ, or the check above proves nothing.
  import dataclasses
  model.cfg = dataclasses.replace(model.cfg, rope_type="default")
  for layer in model.layers:
    layer.attn.cfg = model.cfg
  assert np.abs(np.asarray(model(jnp.asarray(tokens))) - ref).max() > 100 * TOL


def test_from_pretrained_places_params_on_a_mesh(llama_path):
  from rljax import sharding

  mesh = sharding.make_mesh((1, 1, 1))
  tokens, mask = _batch(left=True)
  placed = models.from_pretrained(llama_path, mesh=mesh)
  q = placed.layers[0].attn.q_proj_dnh[...]
  assert q.sharding.mesh.shape == mesh.shape
  np.testing.assert_array_equal(np.asarray(placed(jnp.asarray(tokens), jnp.asarray(mask))),
                                np.asarray(models.from_pretrained(llama_path)(jnp.asarray(tokens), jnp.asarray(mask))))
