"""Byte-level BPE tokenizers trained in seconds, and loading any Hugging Face tokenizer directory.

Usage:

    from rljax.text import train_bpe_tokenizer, load_tokenizer
    tok = train_bpe_tokenizer(texts, vocab_size=512, out_dir="/tmp/tok")   # saved in HF format
    tok = load_tokenizer("/tmp/tok")              # == AutoTokenizer.from_pretrained("/tmp/tok")
    tok = load_tokenizer("/models/Qwen2.5-0.5B")  # a real model directory works the same way

The trained tokenizer is byte-level (GPT-2 style): every string maps to bytes, so encoding never
produces an unknown token and `decode(encode(s)) == s` for any unicode `s`. The special tokens come
first in the vocabulary, so their ids are fixed whatever the corpus:

    <|pad|> = 0, <|bos|> = 1, <|eos|> = 2, <|user|> = 3, <|assistant|> = 4.

`DEFAULT_CHAT_TEMPLATE` renders a conversation as `<|user|>question<|assistant|>answer<|eos|>...`;
with `add_generation_prompt=True` it ends with `<|assistant|>`, so a prompt is exactly the prefix of
the templated prompt + completion + EOS that SFT trains on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

PAD, BOS, EOS, USER, ASSISTANT = "<|pad|>", "<|bos|>", "<|eos|>", "<|user|>", "<|assistant|>"
SPECIAL_TOKENS = (PAD, BOS, EOS, USER, ASSISTANT)  # ids 0..4, in this order

# Roles other than user/assistant raise: a silently dropped system message would change the task.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}" + USER + "{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}" + ASSISTANT + "{{ message['content'] }}" + EOS +
    "{% else %}{{ raise_exception('unsupported chat role: ' + message['role']) }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + "{% endif %}")

# Any of these marks a directory as holding a tokenizer (fast, sentencepiece, GPT-2 or WordPiece files).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "vocab.txt",
                    "spiece.model")


def train_bpe_tokenizer(texts: Iterable[str], *, vocab_size: int, out_dir: str,
                        chat_template: str | None = DEFAULT_CHAT_TEMPLATE,
                        added_tokens: Sequence[str] = ()) -> transformers.PreTrainedTokenizerFast:
  """Trains a byte-level BPE tokenizer on `texts` and saves it in Hugging Face format in `out_dir`.

  `added_tokens` (e.g. the answer tags `<answer>`, `</answer>`) become single ordinary tokens after
  the learned vocabulary: decoded like text, never split (a byte-level BPE spends three tokens on
  `<answer>` otherwise).

  The vocabulary holds the 5 special tokens, the 256 byte symbols and up to
  `vocab_size - 261` merges (fewer when the corpus runs out of pairs to merge). The tokenizer adds no
  special tokens when encoding plain text; the chat template supplies the role markers and EOS.
  """
  if isinstance(texts, str):
    raise ValueError("`texts` must be an iterable of strings, got a single string.")
  min_size = len(SPECIAL_TOKENS) + len(pre_tokenizers.ByteLevel.alphabet())
  if vocab_size < min_size:
    raise ValueError(f"`vocab_size` must be >= {min_size} (special tokens + 256 bytes), got {vocab_size}.")
  backend = Tokenizer(models.BPE())
  # No prefix space: "a b" and "a" + " b" tokenize alike, so a completion encoded after its prompt
  # gives the same ids as the prompt and completion encoded together.
  backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  backend.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  backend.train_from_iterator(texts, trainer)
  tokenizer = transformers.PreTrainedTokenizerFast(
      tokenizer_object=backend, pad_token=PAD, bos_token=BOS, eos_token=EOS,
      additional_special_tokens=[USER, ASSISTANT],
      clean_up_tokenization_spaces=False)  # the clean-up rewrites " ," to ",": decode must invert encode
  if chat_template is not None:
    tokenizer.chat_template = chat_template
  if added_tokens:
    tokenizer.add_tokens(list(added_tokens))
  tokenizer.save_pretrained(out_dir)
  return tokenizer


def load_tokenizer(path: str) -> transformers.PreTrainedTokenizerBase:
  """`AutoTokenizer.from_pretrained(path, local_files_only=True)`, with a clear error when `path` is a
  directory without tokenizer files or names nothing that is available offline."""
  if os.path.isdir(path) and not any(os.path.exists(os.path.join(path, name)) for name in _TOKENIZER_FILES):
    raise FileNotFoundError(f"`path` {path!r} holds no tokenizer files (expected one of {_TOKENIZER_FILES}).")
  try:
    return transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
  except OSError as e:  # transformers raises OSError for a name that is neither a directory nor cached
    raise FileNotFoundError(f"`path` {path!r}: no local tokenizer found ({e})") from e
