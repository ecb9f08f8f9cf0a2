"""Decoder-only language models in Flax NNX, loadable from and savable to HF transformers checkpoints.

Families: llama, qwen2, qwen3, gpt2 (see `DecoderConfig`). Entry points: `Decoder`, `from_pretrained`,
`save_pretrained`; `model_token_logps` (fused LM head, never materialises `[B, T, V]` logits),
`ValueHead`, `RewardHead` and `RewardModel` on the same backbone; `KVCache` for incremental decoding.
LoRA: `LoRAConfig`, `apply_lora`, `merge_lora` (rljax.models.lora); PEFT-format adapters: `save_adapter`,
`load_adapter` (rljax.models.peft_io).
"""

from rljax.models.config import DecoderConfig
from rljax.models.decoder import Decoder
from rljax.models.cache import KVCache
from rljax.models.heads import RewardHead, RewardModel, ValueHead, lm_head_token_logps, model_token_logps
from rljax.models.hf_io import from_pretrained, save_pretrained
from rljax.models.lora import LoRAConfig, apply_lora, merge_lora
from rljax.models.peft_io import load_adapter, save_adapter

__all__ = [
    "Decoder", "DecoderConfig", "KVCache", "LoRAConfig", "RewardHead", "RewardModel", "ValueHead", "apply_lora",
    "from_pretrained", "lm_head_token_logps", "load_adapter", "merge_lora", "model_token_logps", "save_adapter",
    "save_pretrained",
]
