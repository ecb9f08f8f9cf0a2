"""The online loop's host reward over text: decode the sampled tokens, score them in a `RewardPool`.

    reward = TextReward(tokenizer, RewardPool({"correct": task_reward, "format": (answer_format, 0.1)}))
    algo = make_online_rl("grpo", graphdef=..., reward_fn=reward, ...)   # reward.on_host is True

`rljax.training.online` calls `reward(prompt_ids, prompt_mask, completion_ids, completion_mask, rows)`
with NumPy arrays after sampling (one device→host transfer per rollout batch). Each row's "prompt"
column is the prompt text handed to the verifiers (the chat-templated ids are not decoded back);
its other columns are the verifiers' keyword arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from rljax.rewards.pool import RewardPool
from rljax.text import decode_completions


class TextReward:
  """Host reward `(prompt_ids, prompt_mask, completion_ids, completion_mask, rows) -> (f32[B], metrics)`."""

  on_host = True

  def __init__(self, tokenizer, pool: RewardPool):
    self.tokenizer = tokenizer
    self.pool = pool

  def __call__(self, prompt_ids: np.ndarray, prompt_mask: np.ndarray, completion_ids: np.ndarray,
               completion_mask: np.ndarray, rows: Sequence[Mapping]) -> tuple[np.ndarray, dict[str, float]]:
    del prompt_ids, prompt_mask
    if len(rows) != len(completion_ids):
      raise ValueError(f"`rows`: {len(rows)} rows for {len(completion_ids)} completions.")
    completions = decode_completions(self.tokenizer, completion_ids, completion_mask)
    prompts = [str(r.get("prompt", "")) for r in rows]
    columns = [{k: v for k, v in r.items() if k != "prompt"} for r in rows]
    rewards, metrics = self.pool(prompts, completions, columns)
    return np.asarray(rewards, np.float32), metrics
