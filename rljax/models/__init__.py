"""Decoder-only language models in Flax NNX, loadable from and savable to HF transformers checkpoints.

Families: llama, qwen2, gpt2 (see `DecoderConfig`). Entry points: `Decoder`, `from_pretrained`,
`save_pretrained`; `model_token_logps` (fused LM head, never materialises `[B, T, V]` logits),
`ValueHead`, `RewardHead` and `RewardModel` on the same backbone; `KVCache` for incremental decoding.
"""

from rljax.models.config import DecoderConfig
from rljax.models.decoder import Decoder
from rljax.models.cache import KVCache
from rljax.models.heads import RewardHead, RewardModel, ValueHead, lm_head_token_logps, model_token_logps
from rljax.models.hf_io import from_pretrained, save_pretrained

__all__ = [
    "Decoder", "DecoderConfig", "KVCache", "RewardHead", "RewardModel", "ValueHead", "from_pretrained",
    "lm_head_token_logps", "model_token_logps", "save_pretrained",
]
