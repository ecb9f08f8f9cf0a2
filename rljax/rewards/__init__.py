"""Host-side rewards: rule-based verifiers and a process pool that runs them with timeouts.

    from rljax import rewards
    pool = rewards.RewardPool({"correct": "math_equivalence", "format": (rewards.answer_format, 0.1)},
                              workers=4, timeout=10.0)
    total, metrics = pool(prompts, completions, rows)   # f32[B]; rows[b] = the dataset row's other columns
    pool.close()                                        # or `with rewards.RewardPool(...) as pool:`

`verifiers`: answer extraction, format/length/math-equivalence rewards and their registry (`get`, `names`).
`pool`: `RewardPool`, the worker processes, timeouts and failure accounting.
`text_reward`: `TextReward`, the online loop's host reward (decode, then the pool); imported on first
use, because every pool worker imports this package and must not pay for `transformers`.
"""

from __future__ import annotations

from rljax.rewards.pool import RewardPool
from rljax.rewards.verifiers import (
    answer_format,
    extract_answer,
    get,
    length_limit,
    math_equivalence,
    names,
    register,
)



def __getattr__(name):
  if name == "TextReward":
    from rljax.rewards.text_reward import TextReward
    return TextReward
  raise AttributeError(f"module 'rljax.rewards' has no attribute {name!r}")


__all__ = ["RewardPool", "TextReward", "answer_format", "extract_answer", "get", "length_limit", "math_equivalence",
           "names", "register"]
