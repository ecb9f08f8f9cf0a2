"""A small byte-level BPE tokenizer shared by the text tests (trained once per module in well under a second)."""

from __future__ import annotations

import pytest

from rljax import text

# Digits, punctuation, whitespace runs and non-ASCII letters, so merges form across all of them.
CORPUS = [f"What is {i} + {3 * i}?  The answer is {4 * i}. Ünïcode, ñ, 日本 {i % 7}\t!" for i in range(400)]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("bpe")
  text.train_bpe_tokenizer(CORPUS, vocab_size=400, out_dir=str(out))
  return str(out)


@pytest.fixture(scope="module")
def tok(tokenizer_dir):
  return text.load_tokenizer(tokenizer_dir)
