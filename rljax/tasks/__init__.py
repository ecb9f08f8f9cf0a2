"""Verifiable language-model tasks and their evaluation (host side).

Usage:

    from rljax import tasks
    train = tasks.reasoning_gym_task(["chain_sum", "countdown"], size=4000, seed=0, difficulties=(0, 1))
    test = tasks.reasoning_gym_task(["chain_sum", "countdown"], size=400, seed=1, difficulties=(0, 1),
                                    exclude=train["prompt"])
    reward = tasks.task_reward(prompt, completion, **row)        # reasoning-gym's own scorer, in [0, 1]
    table = tasks.accuracy_table(rows, rewards, lengths)         # "acc/<family>/d<level>/pass@k", ...

`reasoning_gym`: reasoning-gym families with difficulty tables, short prompts, worked solutions and the
reward (host side). `evaluation`: unbiased pass@k and per-family / per-level accuracy tables.
`toy_suite`: the jittable toy token tasks (add, modchain, countdown, sort, reverse, parity) with
difficulty arms, reference traces and an exact token-level reward, for curricula.
"""

from __future__ import annotations

from rljax.tasks.evaluation import CORRECT_AT, accuracy_table, pass_at_k
from rljax.tasks.reasoning_gym import (
    ANSWER_INSTRUCTION,
    DIFFICULTY,
    FAMILIES,
    noisy_solutions,
    reasoning_gym_task,
    render_entry,
    solution_text,
    task_reward,
)



def __getattr__(name):
  # The jittable toy suite imports JAX; reward-pool workers import this package for `task_reward` and
  # should not pay for it.
  if name == "toy_suite":
    import importlib
    return importlib.import_module("rljax.tasks.toy_suite")
  raise AttributeError(f"module 'rljax.tasks' has no attribute {name!r}")


__all__ = [
    "ANSWER_INSTRUCTION",
    "CORRECT_AT",
    "DIFFICULTY",
    "FAMILIES",
    "accuracy_table",
    "noisy_solutions",
    "pass_at_k",
    "reasoning_gym_task",
    "render_entry",
    "solution_text",
    "task_reward",
    "toy_suite",
]
