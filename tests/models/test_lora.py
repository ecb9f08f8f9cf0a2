"""LoRA on the decoder (`rljax.models.lora`) and its PEFT-format import/export (`rljax.models.peft_io`): exact
equality with the base at initialisation, merging, the sampler on an adapted model, dropout only in training,
and round trips through `peft.PeftModel` and transformers."""

import dataclasses
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rljax import losses, models, sampling
from rljax.models import lora, peft_io
from rljax.models.config import DecoderConfig
from rljax.models.decoder import Decoder

from tests.helpers import VOCAB, hf_model

TOL = 1e-4


def _tiny(family="llama", seed=0, n_layers=2):
  gpt2 = family == "gpt2"
  cfg = DecoderConfig(family=family, vocab_size=61, d_model=32, n_layers=n_layers, n_heads=4,
                      n_kv_heads=4 if gpt2 else 2, head_dim=8, d_ff=48, max_positions=64, norm_eps=1e-6,
                      activation="gelu_new" if gpt2 else "silu", tie_word_embeddings=gpt2,
                      qkv_bias=family in ("qwen2", "gpt2"))
  model = Decoder(cfg, rngs=nnx.Rngs(seed))
  # Larger weights than the 0.02 init, so logits (and sampled distributions) are far from uniform.
  nnx.update(model, jax.tree.map(lambda x: 8 * x, nnx.state(model, nnx.Param)))
  return model


def _randomise_b(model, scale=0.3, seed=0):
  """Nonzero B (A·B ≠ 0), as after some training."""
  for i, (_, _, adapter) in enumerate(lora.adapters(model)):
    adapter.b.set_value(scale * jax.random.normal(jax.random.key(seed + i), adapter.b.get_value().shape))
  return model


def _tokens(vocab=61, shape=(3, 9), seed=1):
  return jnp.asarray(np.random.default_rng(seed).integers(3, vocab, shape), jnp.int32)


def _prompts():
  tokens = jnp.array([[0, 0, 0, 7, 8], [0, 11, 12, 13, 14], [5, 6, 7, 8, 9]], jnp.int32)
  return tokens, tokens > 0


GPT2_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj")


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3", "gpt2"])
def test_adapted_logits_equal_base_at_init(family):
  model = _tiny(family)
  tokens, mask = _prompts()
  base = np.asarray(model(tokens, mask))
  targets = GPT2_TARGETS if family == "gpt2" else lora.ALL_TARGETS
  lora.apply_lora(model, lora.LoRAConfig(rank=4, alpha=8.0, dropout=0.1, targets=targets), rngs=nnx.Rngs(1))
  assert lora.is_lora(model) and len(lora.adapters(model)) == 2 * len(targets)
  np.testing.assert_array_equal(np.asarray(model(tokens, mask)), base)
  with lora.dropout_rng(jax.random.key(0)):  # B = 0: even the training forward is the base model
    np.testing.assert_array_equal(np.asarray(model(tokens, mask)), base)


def test_adapter_shapes_axes_and_frozen_base():
  model = _tiny()
  base_axes = {jax.tree_util.keystr(p): v.get_metadata()["out_sharding"]
               for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
  lora.apply_lora(model, lora.LoRAConfig(rank=3, alpha=6.0, targets=("q_proj", "o_proj", "down_proj")),
                  rngs=nnx.Rngs(0))
  attn = model.layers[0].attn
  assert attn.q_proj_lora.a.get_value().shape == (32, 3) and attn.q_proj_lora.b.get_value().shape == (3, 4, 8)
  assert attn.o_proj_lora.a.get_value().shape == (4, 8, 3) and attn.o_proj_lora.b.get_value().shape == (3, 32)
  assert attn.q_proj_lora.a.get_metadata()["out_sharding"] == ("embed", None)
  assert attn.q_proj_lora.b.get_metadata()["out_sharding"] == (None, "heads", "head_dim")
  assert attn.o_proj_lora.a.get_metadata()["out_sharding"] == ("heads", "head_dim", None)
  assert not hasattr(attn, "k_proj_lora") and not hasattr(model.layers[0].mlp, "up_proj_lora")
  # PEFT's kaiming-uniform(a=√5) bound 1/√fan_in, B = 0.
  a = np.asarray(model.layers[1].mlp.down_proj_lora.a[...])
  assert np.abs(a).max() <= 1 / np.sqrt(48) and np.abs(a).max() > 0.8 / np.sqrt(48)
  assert not np.asarray(model.layers[1].mlp.down_proj_lora.b[...]).any()
  # Every base weight is frozen and keeps its logical axes; only the adapters are trainable.
  params = nnx.state(model, nnx.Param)
  trainable, frozen = lora.split_frozen(params)
  assert all(isinstance(v, nnx.LoRAParam) for _, v in nnx.to_flat_state(trainable))
  assert {jax.tree_util.keystr(p): v.get_metadata()["out_sharding"] for p, v in nnx.to_flat_state(frozen)} == base_axes
  assert len(jax.tree.leaves(lora.lora_params(model))) == 2 * 3 * 2
  assert lora.lora_config(model).scale == 2.0
  assert lora.LoRAConfig(rank=4, alpha=8.0, use_rslora=True).scale == 4.0


def test_bad_configs_raise():
  for kw in (dict(rank=0), dict(rank=2.0), dict(rank=True), dict(alpha=0.0), dict(dropout=1.0), dict(dropout=-0.1),
             dict(targets=("q_proj", "lm_head")), dict(targets=()), dict(targets=("q_proj", "q_proj"))):
    with pytest.raises(ValueError):
      lora.LoRAConfig(**{"rank": 4, "alpha": 8.0, **kw})
  with pytest.raises(ValueError, match="gate_proj"):
    lora.apply_lora(_tiny("gpt2"), lora.LoRAConfig(rank=2, alpha=2.0), rngs=nnx.Rngs(0))
  model = lora.apply_lora(_tiny(), lora.LoRAConfig(rank=2, alpha=2.0), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="already"):
    lora.apply_lora(model, lora.LoRAConfig(rank=2, alpha=2.0), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="no Decoder"):
    lora.apply_lora(models.ValueHead(8, rngs=nnx.Rngs(0)), lora.LoRAConfig(rank=2, alpha=2.0), rngs=nnx.Rngs(0))


def test_merge_lora_is_a_plain_decoder_with_the_adapted_logits():
  model = _randomise_b(lora.apply_lora(_tiny("qwen2"), lora.LoRAConfig(rank=4, alpha=8.0), rngs=nnx.Rngs(1)))
  tokens, mask = _prompts()
  adapted = np.asarray(model(tokens, mask))
  merged = lora.merge_lora(model)
  assert {type(v) for _, v in nnx.to_flat_state(nnx.state(merged))} == {nnx.Param}
  assert nnx.graphdef(merged) == nnx.graphdef(_tiny("qwen2"))
  np.testing.assert_allclose(np.asarray(merged(tokens, mask)), adapted, atol=TOL, rtol=TOL)
  assert np.abs(adapted - np.asarray(_tiny("qwen2")(tokens, mask))).max() > 0.1  # the adapters do something
  np.testing.assert_array_equal(np.asarray(model(tokens, mask)), adapted)  # the adapted model is unchanged


def test_sampler_on_adapted_model_matches_training_forward():
  model = _randomise_b(lora.apply_lora(_tiny(n_layers=1), lora.LoRAConfig(rank=4, alpha=8.0), rngs=nnx.Rngs(1)))
  prompt, mask = _prompts()
  r = sampling.generate(model, prompt, mask, key=jax.random.PRNGKey(3), max_new_tokens=9, eos_token_id=(4, 17))
  tokens = jnp.concatenate([prompt, r.tokens], 1)
  logits = model(tokens, attention_mask=jnp.concatenate([mask, r.mask], 1))
  ref = losses.token_logps(logits[:, prompt.shape[1] - 1:-1], r.tokens)
  np.testing.assert_allclose(np.where(r.mask, r.model_logprobs, 0), np.where(r.mask, ref, 0), atol=1e-5)


def test_dropout_only_inside_the_training_scope():
  cfg = lora.LoRAConfig(rank=4, alpha=8.0, dropout=0.5)
  model = _randomise_b(lora.apply_lora(_tiny(n_layers=1), cfg, rngs=nnx.Rngs(1)))
  no_dropout = _randomise_b(lora.apply_lora(_tiny(n_layers=1), dataclasses.replace(cfg, dropout=0.0), rngs=nnx.Rngs(1)))
  tokens, mask = _prompts()
  plain = np.asarray(no_dropout(tokens, mask))
  np.testing.assert_array_equal(np.asarray(model(tokens, mask)), plain)
  forward = jax.jit(lambda key: _scoped(model, key, tokens, mask))
  a, b, c = (np.asarray(forward(jax.random.key(k))) for k in (0, 0, 1))
  np.testing.assert_array_equal(a, b)  # a pure function of the key
  assert np.abs(a - plain).max() > 1e-2 and np.abs(a - c).max() > 1e-2
  # The sampler never enters the scope: the dropout model samples exactly as the dropout-free one.
  key = jax.random.PRNGKey(5)
  r, r0 = (sampling.generate(m, tokens, mask, key=key, max_new_tokens=6) for m in (model, no_dropout))
  np.testing.assert_array_equal(r.tokens, r0.tokens)
  np.testing.assert_array_equal(r.model_logprobs, r0.model_logprobs)


def _scoped(model, key, tokens, mask):
  with lora.dropout_rng(key):
    return model(tokens, mask)


# ------------------------------------------------------------------------------------------------
# PEFT format

peft = pytest.importorskip("peft")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _torch_logits(hf, tokens):
  with torch.no_grad():
    return hf(input_ids=torch.tensor(np.asarray(tokens))).logits.float().numpy()


@pytest.fixture(scope="module", params=["llama", "qwen2", "qwen3"])
def base(request, tmp_path_factory):
  """(family, transformers model, its checkpoint directory)."""
  hf = hf_model(request.param)
  path = tmp_path_factory.mktemp(request.param)
  hf.save_pretrained(path)
  return request.param, hf, str(path)


def test_exported_adapter_loads_in_peft_with_equal_logits(base, tmp_path):
  _, _, path = base
  model = models.from_pretrained(path)
  cfg = lora.LoRAConfig(rank=4, alpha=6.0, dropout=0.1, targets=("q_proj", "v_proj", "o_proj", "gate_proj",
                                                                   "down_proj"), use_rslora=True)
  _randomise_b(lora.apply_lora(model, cfg, rngs=nnx.Rngs(2)))
  tokens = _tokens(VOCAB)
  # `save_pretrained` of an adapted model writes its base; the adapter goes beside it.
  models.save_pretrained(model, str(tmp_path / "base"))
  models.save_adapter(model, str(tmp_path / "adapter"), base_model_name_or_path=str(tmp_path / "base"))
  hf = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "base")).eval()
  adapted = peft.PeftModel.from_pretrained(hf, str(tmp_path / "adapter")).eval()
  assert adapted.peft_config["default"].use_rslora and adapted.peft_config["default"].r == 4
  np.testing.assert_allclose(_torch_logits(adapted, tokens), np.asarray(model(tokens)), atol=TOL, rtol=TOL)
  # And back: our import of our export is the same model.
  again = models.load_adapter(models.from_pretrained(str(tmp_path / "base")), str(tmp_path / "adapter"))
  np.testing.assert_array_equal(np.asarray(again(tokens)), np.asarray(model(tokens)))


def test_peft_written_adapter_imports_with_equal_logits(base, tmp_path):
  _, hf, path = base
  torch.manual_seed(0)
  # init_lora_weights=False: B random too, so the update is nonzero.
  config = peft.LoraConfig(r=3, lora_alpha=5, target_modules=["k_proj", "o_proj", "up_proj", "down_proj"],
                           init_lora_weights=False, task_type="CAUSAL_LM")
  theirs = peft.get_peft_model(hf, config).eval()
  theirs.save_pretrained(str(tmp_path))
  tokens = _tokens(VOCAB)
  expected = _torch_logits(theirs, tokens)
  theirs.unload()  # restores the shared base model for the next test
  model = models.load_adapter(models.from_pretrained(path), str(tmp_path))
  assert lora.lora_config(model).rank == 3 and set(lora.lora_config(model).targets) == {"k_proj", "o_proj", "up_proj",
                                                                                         "down_proj"}
  np.testing.assert_allclose(np.asarray(model(tokens)), expected, atol=TOL, rtol=TOL)
  assert np.abs(expected - _torch_logits(hf, tokens)).max() > 1e-2  # the adapter changes the logits


def test_merged_export_loads_in_transformers(base, tmp_path):
  _, _, path = base
  model = _randomise_b(lora.apply_lora(models.from_pretrained(path), lora.LoRAConfig(rank=2, alpha=4.0),
                                       rngs=nnx.Rngs(3)))
  models.save_pretrained(lora.merge_lora(model), str(tmp_path))
  hf = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
  tokens = _tokens(VOCAB)
  np.testing.assert_allclose(_torch_logits(hf, tokens), np.asarray(model(tokens)), atol=TOL, rtol=TOL)


def test_adapter_io_errors(tmp_path):
  gpt2 = lora.apply_lora(_tiny("gpt2"), lora.LoRAConfig(rank=2, alpha=2.0, targets=GPT2_TARGETS), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="gpt2"):
    models.save_adapter(gpt2, str(tmp_path / "gpt2"))
  with pytest.raises(ValueError, match="no LoRA"):
    models.save_adapter(_tiny(), str(tmp_path / "none"))
  model = lora.apply_lora(_tiny(), lora.LoRAConfig(rank=2, alpha=2.0, targets=("q_proj",)), rngs=nnx.Rngs(0))
  models.save_adapter(model, str(tmp_path / "ok"))
  wider = lora.apply_lora(_tiny(), lora.LoRAConfig(rank=2, alpha=2.0, targets=("q_proj", "v_proj")), rngs=nnx.Rngs(0))
  models.save_adapter(wider, str(tmp_path / "wider"))
  # A config naming more targets than the tensors hold, an unsupported option.
  shutil.copy(tmp_path / "ok" / peft_io.WEIGHTS_FILE, tmp_path / "wider" / peft_io.WEIGHTS_FILE)
  with pytest.raises(KeyError, match="missing tensor .*v_proj"):
    models.load_adapter(_tiny(), str(tmp_path / "wider"))
  config = json.loads((tmp_path / "ok" / peft_io.CONFIG_FILE).read_text())
  (tmp_path / "ok" / peft_io.CONFIG_FILE).write_text(json.dumps({**config, "use_dora": True}))
  with pytest.raises(ValueError, match="use_dora"):
    models.load_adapter(_tiny(), str(tmp_path / "ok"))
