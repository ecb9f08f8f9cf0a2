"""Byte-level BPE training, Hugging Face save/load parity, special ids and the default chat template."""

from __future__ import annotations

import json
import os

import pytest
import transformers

from rljax import text
from rljax.text.tokenizer import SPECIAL_TOKENS

from .conftest import CORPUS

ROUND_TRIP = [
    "What is 12 + 36?",
    "  leading and trailing spaces  ",
    "tabs\tand\nnew\r\nlines\n\n",
    "a , b . c ! ( d )",  # the clean-up HF applies by default would turn " ," into ","
    "0123456789 3.14159 -42 1e-9",
    "Ünïcode ñ 日本語 emoji 🙂👍🏽 never seen in training: Ωж",
    "",
]


def test_special_token_ids_and_vocab(tok):
  assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
  assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
  assert 261 < len(tok) <= 400  # 5 specials + 256 bytes + merges
  # The role markers are atomic: text containing them splits around them.
  assert tok.encode("<|user|>hi<|assistant|>") == [3] + tok.encode("hi") + [4]


@pytest.mark.parametrize("s", ROUND_TRIP)
def test_round_trip(tok, s):
  ids = tok.encode(s, add_special_tokens=False)
  assert all(i >= len(SPECIAL_TOKENS) for i in ids)  # plain text never yields a special token
  assert tok.decode(ids) == s


def test_merges_compress(tok):
  s = CORPUS[17]
  assert len(tok.encode(s)) < len(s.encode("utf-8")) / 2


def test_saved_dir_loads_through_auto_tokenizer(tmp_path):
  trained = text.train_bpe_tokenizer(CORPUS, vocab_size=300, out_dir=str(tmp_path))
  assert {"tokenizer.json", "tokenizer_config.json"} <= set(os.listdir(tmp_path))
  auto = transformers.AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)
  loaded = text.load_tokenizer(str(tmp_path))
  assert len(trained) == len(auto) == len(loaded) <= 300
  for s in ROUND_TRIP + CORPUS[:5]:
    assert trained.encode(s) == auto.encode(s) == loaded.encode(s)
  assert auto.chat_template == loaded.chat_template == text.DEFAULT_CHAT_TEMPLATE
  assert (auto.pad_token, auto.bos_token, auto.eos_token) == ("<|pad|>", "<|bos|>", "<|eos|>")


def test_no_chat_template(tmp_path):
  tok = text.train_bpe_tokenizer(CORPUS[:50], vocab_size=280, out_dir=str(tmp_path), chat_template=None)
  assert text.load_tokenizer(str(tmp_path)).chat_template is None and tok.chat_template is None


def test_chat_template_strings(tok):
  user = [{"role": "user", "content": "What is 2+3?"}]
  prompt = tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
  assert prompt == "<|user|>What is 2+3?<|assistant|>"
  assert tok.apply_chat_template(user, tokenize=False) == "<|user|>What is 2+3?"
  dialog = user + [{"role": "assistant", "content": "5"}, {"role": "user", "content": "And 2+4?"}]
  assert (tok.apply_chat_template(dialog, tokenize=False, add_generation_prompt=True)
          == "<|user|>What is 2+3?<|assistant|>5<|eos|><|user|>And 2+4?<|assistant|>")
  with pytest.raises(Exception, match="unsupported chat role: system"):
    tok.apply_chat_template([{"role": "system", "content": "x"}] + user, tokenize=False)


def test_real_model_directory(tok, tmp_path):
  """A model directory as the Hub ships it (config.json + a model-specific tokenizer class, ChatML
  template) loads offline to the same class and ids."""
  bpe = json.loads(tok.backend_tokenizer.to_str())["model"]
  qwen = transformers.Qwen2Tokenizer(vocab=bpe["vocab"], merges=[tuple(m) for m in bpe["merges"]])
  qwen.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
  qwen.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
  transformers.Qwen2Config(vocab_size=len(qwen), hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                           intermediate_size=8).save_pretrained(str(tmp_path))
  qwen.save_pretrained(str(tmp_path))
  loaded = text.load_tokenizer(str(tmp_path))
  assert type(loaded) is transformers.Qwen2Tokenizer
  for s in ROUND_TRIP:
    assert loaded.encode(s) == qwen.encode(s)
  chat = [{"role": "user", "content": "hi"}]
  assert loaded.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == (
      "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_load_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="no tokenizer files"):
    text.load_tokenizer(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="no local tokenizer"):
    text.load_tokenizer(str(tmp_path / "missing"))


def test_train_errors(tmp_path):
  with pytest.raises(ValueError, match="vocab_size"):
    text.train_bpe_tokenizer(CORPUS, vocab_size=100, out_dir=str(tmp_path))
  with pytest.raises(ValueError, match="texts"):
    text.train_bpe_tokenizer("a single string", vocab_size=300, out_dir=str(tmp_path))
