"""Padding layouts of encode_prompts / encode_sft against the tokenizer's own chat template, and decoding."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
import transformers

from rljax import text

PROMPTS = ["What is 2 + 3?", "Ünïcode question with a longer text, 日本 12345?", "x"]
COMPLETIONS = ["The answer is 5.", " leading space , and 🙂", ""]


def _chat_ids(tok, messages, **kwargs):
  out = tok.apply_chat_template(messages, tokenize=True, **kwargs)
  return list(out["input_ids"] if isinstance(out, Mapping) else out)  # transformers 5: a BatchEncoding


def test_encode_prompts_left_padding(tok):
  ids, mask = text.encode_prompts(tok, PROMPTS, max_len=40)
  assert ids.shape == mask.shape == (3, 40) and ids.dtype == np.int32 and mask.dtype == bool
  assert mask[:, -1].all()  # every prompt ends in the last column
  for row, prompt in enumerate(PROMPTS):
    ref = _chat_ids(tok, [{"role": "user", "content": prompt}], add_generation_prompt=True)
    n = len(ref)
    np.testing.assert_array_equal(mask[row], np.arange(40) >= 40 - n)  # padding is one block on the left
    assert ids[row, -n:].tolist() == ref and ref[0] == 3 and ref[-1] == 4
    assert (ids[row, :40 - n] == tok.pad_token_id).all()


def test_encode_prompts_messages_and_plain(tok):
  messages = [[{"role": "user", "content": p}] for p in PROMPTS]
  for a, b in zip(text.encode_prompts(tok, PROMPTS, max_len=40), text.encode_prompts(tok, messages, max_len=40)):
    np.testing.assert_array_equal(a, b)
  ids, mask = text.encode_prompts(tok, PROMPTS, max_len=40, chat=False)
  for row, prompt in enumerate(PROMPTS):
    assert ids[row][mask[row]].tolist() == tok(prompt)["input_ids"]


def test_encode_prompts_errors(tok):
  n = len(text.encode_prompts(tok, PROMPTS[1:2], max_len=64)[1][0].nonzero()[0])
  text.encode_prompts(tok, PROMPTS[1:2], max_len=n)  # exactly max_len fits
  with pytest.raises(ValueError, match=r"row 1 has \d+ tokens, more than `max_len`"):
    text.encode_prompts(tok, PROMPTS, max_len=n - 1)
  with pytest.raises(ValueError, match=r"prompts\[1\]"):
    text.encode_prompts(tok, ["a", 3], max_len=8)
  with pytest.raises(ValueError, match="chat=False"):
    text.encode_prompts(tok, [[{"role": "user", "content": "a"}]], max_len=8, chat=False)
  with pytest.raises(ValueError, match="max_len"):
    text.encode_prompts(tok, ["a"], max_len=0)


def test_encode_sft_loss_mask(tok):
  out = text.encode_sft(tok, PROMPTS, COMPLETIONS, max_len=64)
  tokens, mask, loss_mask = out["tokens"], out["mask"], out["loss_mask"]
  assert tokens.shape == (3, 64) and tokens.dtype == np.int32
  assert not (loss_mask & ~mask).any()
  prompt_ids, prompt_mask = text.encode_prompts(tok, PROMPTS, max_len=64)
  for row, (prompt, completion) in enumerate(zip(PROMPTS, COMPLETIONS)):
    n = int(mask[row].sum())
    np.testing.assert_array_equal(mask[row], np.arange(64) < n)  # right padded
    assert (tokens[row, n:] == tok.pad_token_id).all()
    # Loss exactly on completion + EOS; the rest is the sampling-time prompt.
    assert tokens[row][loss_mask[row]].tolist() == tok(completion, add_special_tokens=False)["input_ids"] + [2]
    assert tokens[row][mask[row] & ~loss_mask[row]].tolist() == prompt_ids[row][prompt_mask[row]].tolist()
    # The whole row is the template's rendering of the finished conversation.
    dialog = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    assert tokens[row, :n].tolist() == _chat_ids(tok, dialog)
  assert loss_mask[2].sum() == 1  # an empty completion still learns to stop


def test_encode_sft_errors(tok):
  with pytest.raises(ValueError, match="completions"):
    text.encode_sft(tok, PROMPTS, COMPLETIONS[:2], max_len=64)
  with pytest.raises(ValueError, match=r"row 1 has"):
    text.encode_sft(tok, PROMPTS[:2], COMPLETIONS[:2], max_len=20)


def test_decode_stops_at_eos(tok):
  out = text.encode_sft(tok, PROMPTS, COMPLETIONS, max_len=64)
  assert text.decode_completions(tok, out["tokens"], out["loss_mask"]) == COMPLETIONS
  body = tok.encode("12 apples")
  after = tok.encode("garbage")
  tokens = np.array([[0, 0] + body + [2] + after, body + [2, 2] + after + [0]], np.int32)
  mask = tokens != 0  # padding (left in row 0, right in row 1) is ignored
  assert text.decode_completions(tok, tokens, mask) == ["12 apples", "12 apples"]
  no_eos = np.array([body + [3]], np.int32)  # no EOS: everything; special tokens skipped
  assert text.decode_completions(tok, no_eos, np.ones_like(no_eos, bool)) == ["12 apples"]
  with pytest.raises(ValueError, match="mask"):
    text.decode_completions(tok, tokens, mask[:, :-1])


def test_pad_falls_back_to_eos(tok, tmp_path):
  """A base-model tokenizer without a pad token pads with its EOS; the mask tells them apart."""
  tok.save_pretrained(str(tmp_path))
  nopad = transformers.AutoTokenizer.from_pretrained(str(tmp_path), pad_token=None)
  assert nopad.pad_token_id is None
  ids, mask = text.encode_prompts(nopad, ["hi"], max_len=8)
  assert (ids[~mask] == 2).all() and mask.sum() == len(_chat_ids(tok, [{"role": "user", "content": "hi"}],
                                                                  add_generation_prompt=True))
