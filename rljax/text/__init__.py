"""Tokenizers, chat templates and prompt datasets for language-model RL on real text (host side).

Usage:

    from rljax import text
    tok = text.train_bpe_tokenizer(corpus, vocab_size=512, out_dir="/tmp/tok")  # or text.load_tokenizer(dir)
    ids, mask = text.encode_prompts(tok, ["What is 2+3?"], max_len=64)          # LEFT-padded NumPy
    sft = text.encode_sft(tok, prompts, completions, max_len=128)               # tokens/mask/loss_mask
    completions = text.decode_completions(tok, sampled_tokens, sampled_mask)    # up to the first EOS
    data = text.PromptDataset(text.load_prompt_dataset("train.jsonl"), tok, batch_size=64, max_prompt_len=256)
    batch = data.batch(pos)                                                     # PromptBatch, resumable by pos

`tokenizer`: byte-level BPE training and loading. `batching`: padding layouts and decoding.
`datasets`: file/generator loading and the deterministic, process-sharded batch stream.
"""

from __future__ import annotations

from rljax.text.batching import decode_completions, encode_prompts, encode_sft
from rljax.text.datasets import PromptBatch, PromptDataset, load_prompt_dataset
from rljax.text.tokenizer import DEFAULT_CHAT_TEMPLATE, SPECIAL_TOKENS, load_tokenizer, train_bpe_tokenizer

__all__ = [
    "DEFAULT_CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "PromptBatch",
    "PromptDataset",
    "decode_completions",
    "encode_prompts",
    "encode_sft",
    "load_prompt_dataset",
    "load_tokenizer",
    "train_bpe_tokenizer",
]
