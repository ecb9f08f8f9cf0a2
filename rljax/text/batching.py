"""Host-side encoding of prompts and SFT pairs into padded NumPy batches, and decoding of sampled tokens.

Usage:

    ids, mask = encode_prompts(tok, ["What is 2+3?", "Name a prime."], max_len=64)   # left-padded
    batch = encode_sft(tok, prompts, completions, max_len=128)   # tokens/mask/loss_mask, right-padded
    texts = decode_completions(tok, sampled_tokens, sampled_mask)

Layouts (B rows; `mask` is True on real tokens):

    encode_prompts  [pad ... pad p_1 ... p_n]              LEFT-padded: every prompt ends in the last
                                                           column, where sampling continues.
    encode_sft      [p_1 ... p_n c_1 ... c_m EOS pad ...]  RIGHT-padded; loss_mask = 1 on c_1..c_m, EOS.

With `chat=True` a prompt is `tokenizer.apply_chat_template(messages, add_generation_prompt=True)`
(a `str` prompt is the single user message); with `chat=False` it is the plain text encoded with the
tokenizer's own special tokens (e.g. a BOS). The pad id is the tokenizer's pad token, or its EOS when
it has none (many base models); the mask, not the id, tells padding apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rljax import checks


def padding_id(tokenizer) -> int:
  pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
  if pad is None:
    raise ValueError("`tokenizer` has neither a pad nor an eos token to pad with.")
  return int(pad)


def _eos_id(tokenizer) -> int:
  if tokenizer.eos_token_id is None:
    raise ValueError("`tokenizer` has no eos token.")
  return int(tokenizer.eos_token_id)


def _as_messages(prompt: Any, row: int) -> list[Mapping]:
  if isinstance(prompt, str):
    return [{"role": "user", "content": prompt}]
  if isinstance(prompt, Sequence) and prompt and all(isinstance(m, Mapping) for m in prompt):
    return list(prompt)
  raise ValueError(f"`prompts[{row}]` must be a str or a non-empty list of message dicts, got {type(prompt)}.")


def prompt_token_ids(tokenizer, prompts: Sequence[str | list[dict]], *, chat: bool = True) -> list[list[int]]:
  """Unpadded token ids of each prompt (chat-templated with the generation prompt when `chat`)."""
  if not prompts:
    return []
  if chat:
    if tokenizer.chat_template is None:
      raise ValueError("`tokenizer` has no chat_template; pass chat=False to encode plain text.")
    conversations = [_as_messages(p, i) for i, p in enumerate(prompts)]
    out = tokenizer.apply_chat_template(conversations, tokenize=True, add_generation_prompt=True)
    if isinstance(out, Mapping):  # transformers >= 5 returns a BatchEncoding by default
      out = out["input_ids"]
    return [list(ids) for ids in out]
  for i, p in enumerate(prompts):
    if not isinstance(p, str):
      raise ValueError(f"`prompts[{i}]` must be a str when chat=False, got {type(p)}.")
  return [list(ids) for ids in tokenizer(list(prompts), add_special_tokens=True)["input_ids"]]


def pad_rows(rows: Sequence[Sequence[int]], *, max_len: int, pad_id: int, left: bool, name: str = "max_len",
             offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Pads id lists into `(tokens i32[B, max_len], mask bool[B, max_len])`; a row longer than `max_len`
  raises ValueError naming its index (`offset + i`, e.g. a dataset row) and the limit `name`."""
  checks.check_positive(name, max_len)
  tokens = np.full((len(rows), max_len), pad_id, np.int32)
  mask = np.zeros((len(rows), max_len), bool)
  for i, ids in enumerate(rows):
    n = len(ids)
    if n > max_len:
      raise ValueError(f"row {offset + i} has {n} tokens, more than `{name}`={max_len}.")
    cols = slice(max_len - n, max_len) if left else slice(0, n)
    tokens[i, cols] = ids
    mask[i, cols] = True
  return tokens, mask


def encode_prompts(tokenizer, prompts: Sequence[str | list[dict]], *, max_len: int,
                   chat: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """LEFT-padded prompt ids `i32[B, max_len]` and mask `bool[B, max_len]`; a longer prompt raises."""
  return pad_rows(prompt_token_ids(tokenizer, prompts, chat=chat), max_len=max_len, pad_id=padding_id(tokenizer),
                  left=True)


def encode_sft(tokenizer, prompts: Sequence[str | list[dict]], completions: Sequence[str], *, max_len: int,
               chat: bool = True) -> dict[str, np.ndarray]:
  """prompt + completion + EOS, RIGHT-padded: `tokens i32[B, L]`, `mask bool[B, L]` (real tokens) and
  `loss_mask bool[B, L]` (completion tokens and the EOS only), L = max_len.

  The completion is encoded on its own (no special tokens) and appended to the templated prompt, so the
  prompt part is exactly what `encode_prompts` gives at sampling time.
  """
  if len(prompts) != len(completions):
    raise ValueError(f"`completions` has {len(completions)} items, `prompts` has {len(prompts)}.")
  for i, c in enumerate(completions):
    if not isinstance(c, str):
      raise ValueError(f"`completions[{i}]` must be a str, got {type(c)}.")
  eos = _eos_id(tokenizer)
  prompt_ids = prompt_token_ids(tokenizer, prompts, chat=chat)
  completion_ids = tokenizer(list(completions), add_special_tokens=False)["input_ids"] if completions else []
  rows = [list(p) + list(c) + [eos] for p, c in zip(prompt_ids, completion_ids)]
  tokens, mask = pad_rows(rows, max_len=max_len, pad_id=padding_id(tokenizer), left=False)
  positions = np.arange(max_len)
  starts = np.array([len(p) for p in prompt_ids], np.int64)[:, None]
  loss_mask = (positions >= starts) & mask
  return {"tokens": tokens, "mask": mask, "loss_mask": loss_mask}


def decode_completions(tokenizer, tokens: np.ndarray, mask: np.ndarray) -> list[str]:
  """Text of each row's tokens where `mask` is True, up to (not including) the first EOS, special tokens
  skipped. `tokens`/`mask` are `[B, N]` (NumPy or JAX; one host transfer each)."""
  tokens, mask = np.asarray(tokens), np.asarray(mask, bool)
  checks.check_same_shape(2, tokens=tokens, mask=mask)
  eos = tokenizer.eos_token_id
  rows = []
  for t, m in zip(tokens, mask):
    ids = t[m]
    if eos is not None:
      stop = np.flatnonzero(ids == eos)
      ids = ids[:stop[0]] if stop.size else ids
    rows.append(ids.tolist())
  return tokenizer.batch_decode(rows, skip_special_tokens=True)
