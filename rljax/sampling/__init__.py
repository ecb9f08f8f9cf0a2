"""Sampling with the training modules: `generate` and its logits processors."""

from rljax.sampling.generate import Rollout, generate
from rljax.sampling.processors import (
    SamplingParams,
    geometric_mixture,
    min_p_logits,
    nlpo_mask,
    process_logits,
    sampling_params,
    temperature_logits,
    token_mask_logits,
    top_k_logits,
    top_p_logits,
)

__all__ = [
    "Rollout", "SamplingParams", "generate", "geometric_mixture", "min_p_logits", "nlpo_mask",
    "process_logits", "sampling_params", "temperature_logits", "token_mask_logits", "top_k_logits",
    "top_p_logits",
]
