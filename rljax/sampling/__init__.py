"""Sampling with the training modules: `generate`, its logits processors, and the rollout-backend interface
(`RolloutBackend`, `NativeBackend`) through which online RL samples."""

from rljax.sampling.backend import NativeBackend, RolloutBackend, logprob_agreement, reference_logprobs
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
    "NativeBackend", "Rollout", "RolloutBackend", "SamplingParams", "generate", "geometric_mixture",
    "logprob_agreement", "min_p_logits", "nlpo_mask", "process_logits", "reference_logprobs", "sampling_params",
    "temperature_logits", "token_mask_logits", "top_k_logits", "top_p_logits",
]
