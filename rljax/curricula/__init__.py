"""Curricula and data selection for RL with verifiable rewards: pure, checkpointable policies over task arms.

`make(name_or_config, num_arms)` builds one by name (`names()` lists them); see `rljax.curricula.base` for the
interface and `rljax.training.online` for how the online loop draws prompts from one and feeds it back.
"""

from rljax.curricula.base import Curriculum, Feedback, make, names, register
from rljax.curricula import bandit, difficulty, dump, fixed, ghpo, length_budget, sec  # noqa: E402 (registers)

__all__ = ["Curriculum", "Feedback", "bandit", "difficulty", "dump", "fixed", "ghpo", "length_budget", "make", "names",
           "register", "sec"]
