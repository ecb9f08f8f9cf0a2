"""Rollout backends: the engine that turns prompts into sampled tokens and their log-probabilities.

An online-RL iteration needs two things from its sampler: responses y ~ π_θ(· | x), and, after each
update, a sampler that follows the new θ. A `RolloutBackend` is exactly that:

    generate(prompt_tokens, prompt_mask, key, *, max_new_tokens, **sampling) -> Rollout
    update_weights(params)        # the policy's new parameters (nnx.Param state of the trained model)

`NativeBackend`, rljax's own KV-cache sampler (`rljax.sampling.generate`) on the trained module, is the
default of `rljax.training.online.make_online_rl`; another engine (vLLM, SGLang, an exported model in
transformers) plugs in through the same two methods. A backend that keeps its own copy of the weights
receives them through `update_weights` before the first rollout drawn from new parameters.

The training forward pass is the reference. Whatever engine samples, the RL batch's `old_logp` is
recomputed by the trainer's forward on the parameters that sampled it, so an engine's numerical
differences (kernels, precision, batching) change which tokens are drawn, never the importance ratio.
What the engine reports, `Rollout.model_logprobs = log π(y_t | x, y_<t)` at temperature 1, is checked
against that reference:

    gap_t = |model_logprobs_t − reference_logprobs_t|,   reported as max_t gap_t and mean_t gap_t

over the generated tokens (`reference_logprobs`, `logprob_agreement`); rljax's sampler agrees to float
rounding (1e-5 in float32), and `make_online_rl` reports the gap of every rollout of another backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from flax import nnx

from rljax.models.heads import model_token_logps
from rljax.sampling.generate import Rollout, generate


@runtime_checkable
class RolloutBackend(Protocol):
  """A sampling engine for online RL.

  `generate` samples `max_new_tokens` continuations of left-padded prompts `[B, P]`, a deterministic
  function of `key`, and returns a `Rollout` whose columns are the `max_new_tokens` response positions
  (pad id and mask 0 after a row stops; `model_logprobs` the raw policy's log-probs at temperature 1).
  `sampling` holds `temperature`, `eos_token_id`, `pad_token_id` and, for a greedy baseline (ReMax),
  `greedy=True`. `update_weights(params)` installs the trained model's parameters.
  """

  def generate(self, prompt_tokens, prompt_mask, key, *, max_new_tokens: int, **sampling) -> Rollout:
    ...

  def update_weights(self, params) -> None:
    ...


class NativeBackend:
  """`rljax.sampling.generate` on `nnx.merge(graphdef, params)`: the default backend and the reference.

  `policy` picks the sampling `Decoder` out of the merged module (e.g. an `ActorCritic`'s policy).
  `update_weights` keeps the arrays it is given (no copy), so a train step that donates them needs a new
  `update_weights` before the next `generate`. `sample` is the same with explicit parameters, a pure
  function of its arguments (`make_online_rl` calls it under `jax.jit`).
  """

  def __init__(self, graphdef, params: Any = None, *, policy: Callable[[nnx.Module], nnx.Module] = lambda m: m):
    self.graphdef, self.params, self.policy = graphdef, params, policy

  def update_weights(self, params) -> None:
    self.params = params

  def generate(self, prompt_tokens, prompt_mask, key, *, max_new_tokens: int, **sampling) -> Rollout:
    if self.params is None:
      raise ValueError("NativeBackend has no parameters yet: call `update_weights(params)` first.")
    return self.sample(self.params, prompt_tokens, prompt_mask, key, max_new_tokens=max_new_tokens, **sampling)

  def sample(self, params, prompt_tokens, prompt_mask, key, *, max_new_tokens: int, **sampling) -> Rollout:
    """`generate` from `params` (any keyword of `rljax.sampling.generate`, e.g. NLPO's `mask_model`)."""
    model = self.policy(nnx.merge(self.graphdef, params))
    return generate(model, prompt_tokens, prompt_mask, key=key, max_new_tokens=max_new_tokens, **sampling)


def reference_logprobs(model: nnx.Module, prompt_tokens, prompt_mask, rollout: Rollout) -> jax.Array:
  """`f32[B, N]`: log π(y_t | x, y_<t) of the rollout's tokens by the training forward pass of `model`
  (the fused LM head, as the trainer computes `old_logp`); 0 where `rollout.mask` is 0."""
  tokens = jnp.concatenate([jnp.asarray(prompt_tokens, jnp.int32), jnp.asarray(rollout.tokens, jnp.int32)], 1)
  mask = jnp.concatenate([jnp.asarray(prompt_mask, bool), jnp.asarray(rollout.mask, bool)], 1)
  n = rollout.tokens.shape[1]
  logp = model_token_logps(model, tokens[:, :-1], tokens[:, 1:], attention_mask=mask[:, :-1])[:, -n:]
  return jnp.where(rollout.mask, logp, 0.0)


def logprob_agreement(logps, reference_logps, mask) -> dict[str, jax.Array]:
  """`{"max_abs", "mean_abs"}` of |logps − reference_logps| over the tokens where `mask` is 1 (0 for an
  empty mask): e.g. a backend's `Rollout.model_logprobs` against `reference_logprobs` of its tokens."""
  mask = jnp.asarray(mask, bool)
  gap = jnp.where(mask, jnp.abs(jnp.asarray(logps, jnp.float32) - jnp.asarray(reference_logps, jnp.float32)), 0.0)
  return {"max_abs": jnp.max(gap), "mean_abs": jnp.sum(gap) / jnp.maximum(jnp.sum(mask), 1)}


__all__ = ["NativeBackend", "RolloutBackend", "logprob_agreement", "reference_logprobs"]
