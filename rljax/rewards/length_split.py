"""A jittable reward run on the host, reporting the lengths of the correct and incorrect responses.

The online loop logs a host reward's metrics with every rollout (`rljax.training.online`), so wrapping
the verifier of a toy task in `LengthSplit` puts the mean length of the correct and of the incorrect
responses of each training batch in the run's metrics: what the length bias of an aggregation mode
(GRPO's 1/|o_i|, Liu et al. 2025, arXiv 2503.20783) acts on.

    reward = LengthSplit(suite.reward_fn)
    algo = testbed.online("grpo", reward_fn=reward)    # metrics: length_correct, length_incorrect, n_correct, ...

Metrics per batch: `length_correct` / `length_incorrect` (mean response length, 0 when the batch has
none), `n_correct` / `n_incorrect` (their counts: average the means over steps weighted by these).
A response is correct when its reward is at least `correct_at` (`rljax.tasks.evaluation.CORRECT_AT`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax
import numpy as np

from rljax.tasks.evaluation import CORRECT_AT


class LengthSplit:
  """Host reward `(prompt_ids, prompt_mask, completion_ids, completion_mask, rows) -> (f32[B], metrics)` of a
  jittable `reward_fn(tokens, response_mask) -> f32[B]`; the rewards are `reward_fn`'s, unchanged."""

  on_host = True

  def __init__(self, reward_fn: Callable, *, correct_at: float = CORRECT_AT):
    self.correct_at = float(correct_at)
    self._reward = jax.jit(reward_fn)

  def __call__(self, prompt_ids: np.ndarray, prompt_mask: np.ndarray, completion_ids: np.ndarray,
               completion_mask: np.ndarray, rows: Sequence[Mapping] | None = None) -> tuple[np.ndarray, dict]:
    del rows  # the wrapped reward reads the tokens only
    prompt_ids, completion_ids = np.asarray(prompt_ids), np.asarray(completion_ids)
    prompt_mask, completion_mask = np.asarray(prompt_mask, bool), np.asarray(completion_mask, bool)
    if prompt_ids.shape[0] != completion_ids.shape[0]:
      raise ValueError(f"{prompt_ids.shape[0]} prompts for {completion_ids.shape[0]} completions.")
    tokens = np.concatenate([prompt_ids, completion_ids], 1)
    response_mask = np.concatenate([np.zeros_like(prompt_mask), completion_mask], 1)
    rewards = np.asarray(self._reward(tokens, response_mask), np.float32)
    lengths = completion_mask.sum(-1).astype(np.float64)
    correct = rewards >= self.correct_at
    metrics = {}
    for name, sel in (("correct", correct), ("incorrect", ~correct)):
      metrics[f"n_{name}"] = float(sel.sum())
      metrics[f"length_{name}"] = float(lengths[sel].mean()) if sel.any() else 0.0
    return rewards, metrics


__all__ = ["LengthSplit"]
