"""Qwen3 specifics: attention bias on q/k/v and o, rope_theta, config round trip and the unsupported options.

The shared parity and checkpoint round-trip tests (tied and untied, left and right padding) run Qwen3
in tests/models/test_models.py; packing and KV-cache decoding in tests/models/test_decoder_features.py.
"""

import json

import jax.numpy as jnp
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rljax import models  # noqa: E402
from tests.helpers import VOCAB  # noqa: E402
from tests.models.test_models import _assert_close_unmasked, _batch, _torch_logits  # noqa: E402


def _qwen3_config(**kw):
  base = dict(vocab_size=VOCAB, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
              rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0)
  return transformers.Qwen3Config(**{**base, **kw})


def test_attention_bias_and_rope_theta_match_transformers(tmp_path):
  torch.manual_seed(0)
  hf = transformers.Qwen3ForCausalLM(_qwen3_config(
      attention_bias=True, rope_parameters={"rope_type": "default", "rope_theta": 1e6})).eval()
  with torch.no_grad():  # biases and QK-norm scales away from their init, so their mapping is visible
    for name, p in hf.named_parameters():
      if name.endswith(".bias") or "norm" in name:
        p.add_(0.3 * torch.randn_like(p))
  hf.save_pretrained(tmp_path)
  model = models.from_pretrained(str(tmp_path))
  cfg = model.cfg
  assert (cfg.family, cfg.head_dim, cfg.rope_theta, cfg.qkv_bias, cfg.o_bias) == ("qwen3", 8, 1e6, True, True)
  assert model.layers[0].attn.o_bias_d is not None and model.layers[0].attn.q_norm_h[...].shape == (8,)
  tokens, mask = _batch(left=True)
  _assert_close_unmasked(model(jnp.asarray(tokens), jnp.asarray(mask)), _torch_logits(hf, tokens, mask), mask)


@pytest.mark.parametrize("rope", [{"rope_type": "default", "rope_theta": 1e6},
                                  {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0, "low_freq_factor": 1.0,
                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 16}])
def test_to_hf_reads_back_through_autoconfig(rope, tmp_path):
  cfg = models.DecoderConfig.from_hf(_qwen3_config(rope_parameters=rope, tie_word_embeddings=True).to_dict())
  (tmp_path / "config.json").write_text(json.dumps(cfg.to_hf()))
  hf = transformers.AutoConfig.from_pretrained(str(tmp_path))
  assert isinstance(hf, transformers.Qwen3Config) and hf.head_dim == 8 and hf.rope_parameters["rope_theta"] == \
      rope["rope_theta"]
  assert models.DecoderConfig.from_hf(hf.to_dict()) == cfg


def test_unsupported_options_raise():
  with pytest.raises(ValueError, match="sliding"):
    models.DecoderConfig.from_hf(_qwen3_config(use_sliding_window=True, max_window_layers=1).to_dict())
  with pytest.raises(ValueError, match="sliding"):
    models.DecoderConfig.from_hf({**_qwen3_config().to_dict(), "layer_types": ["full_attention", "sliding_attention"]})
  with pytest.raises(ValueError, match="rope_type 'yarn'"):
    models.DecoderConfig.from_hf(_qwen3_config(rope_parameters={"rope_type": "yarn", "rope_theta": 1e6,
                                                                "factor": 4.0}).to_dict())


def test_head_dim_defaults_to_128_when_absent():
  hf = _qwen3_config(hidden_size=64, num_attention_heads=2).to_dict()
  del hf["head_dim"]
  assert models.DecoderConfig.from_hf(hf).head_dim == 128
