"""Decoder-only language models in Flax NNX, loadable from and savable to HF transformers checkpoints.

Families: llama, qwen2, gpt2 (see `DecoderConfig`). Entry points: `Decoder`, `from_pretrained`,
`save_pretrained`.
"""

from rljax.models.config import DecoderConfig
from rljax.models.decoder import Decoder
from rljax.models.hf_io import from_pretrained, save_pretrained

__all__ = ["Decoder", "DecoderConfig", "from_pretrained", "save_pretrained"]
