"""DUMP: distribution-level curriculum with UCB (Wang et al. 2025, arXiv 2504.09710) on the skill chain (part A).

    python -m rljax.run --config configs/dump.py:cpu --workdir results/dump
    python -m rljax.run --config configs/dump.py:smoke --workdir /tmp/dump

Presets: `smoke` (the tests), `cpu` (the reported run: 16 seeds, under 5 minutes on 2 idle cores), `gpu` (64 seeds,
a longer run). The transformer comparison on the toy suite is part B below.
"""

import ml_collections

from rljax.theory.curricula.chain_rl import chain_config
from rljax.training.curriculum_testbed import curriculum_testbed_config

DEPTHS = tuple(range(1, 13))  # 12 distributions, as K&K's 3–14 characters

# The arms, in plotting order: a curriculum config for `rljax.curricula.make` over the 12 depth arms. "pool" draws a
# prompt uniformly from the mixed pool (p ∝ pool size; `pool_sizes` below); "uniform" draws a distribution uniformly.
# "dump" has the paper's W = 300, τ = 0.1, c = 1 and the released code's count unit. "sec" (α = 0.5, τ = 0.2, the
# SEC-2D temperature: its default τ = 1 is near-uniform over 12 arms whose |A| differ by < 1) is run when
# `rljax.curricula.sec` is present.
ARMS = {
    "pool": {"name": "uniform"},  # weights = pool_sizes (added by experiments/dump.py)
    "uniform": {"name": "uniform"},
    "dump": {"name": "dump", "window": 300, "temperature": 0.1, "exploration": 1.0, "count_unit": "responses"},
    "sec": {"name": "sec", "alpha": 0.5, "temperature": 0.2},
}


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  if preset not in ("cpu", "gpu", "smoke"):
    raise ValueError(f"unknown preset {preset!r}; use cpu, gpu or smoke")
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seeds = {"cpu": 16, "gpu": 64, "smoke": 4}[preset]
  # The pool: depths 1–6 three times as many prompts as depths 7–12 (real mixtures over-represent easy data).
  c.pool_sizes = (3,) * 6 + (1,) * 6
  # Part A: GRPO (G = 8, B = 16, Adam 0.02) on the 12-step chain, one arm per depth. θ0 = 1 (σ = 0.73) starts the
  # policy like an instruct model on K&K: shallow depths mostly solved (P = 0.73 at depth 1), deep ones rarely
  # (0.15 at depth 6, 0.02 at depth 12). At θ0 = 0 (the SEC target's start) every depth-1 group is a coin flip and
  # DUMP spends its first steps there; see the module docstring of experiments/dump.py.
  c.chain = chain_config(num_skills=12, train_depths=DEPTHS, eval_depths=DEPTHS, theta0=1.0, prompts=16,
                         group_size=8, lr=0.02, steps={"cpu": 300, "gpu": 600, "smoke": 120}[preset],
                         record_feedback=True)
  c.arm_names = ("pool", "dump") if preset == "smoke" else tuple(ARMS)
  c.arms = ml_collections.ConfigDict(ARMS)
  c.deep_depths = (8, 9, 10, 11, 12)  # the headline's "hard" distributions
  # The mass sweep: E_P[depth] over the last `late_fraction` of the steps minus over the first `early_fraction`.
  c.early_fraction = 0.1
  c.late_fraction = 0.25
  # float64 scores (the window stays float32): the parity with the float64 reference port is then limited by
  # the float32 softmax (~1e-7) rather than by float32 sums (~5e-7).
  c.x64 = True
  c.out_dir = "results/dump" + {"cpu": "", "gpu": "_gpu", "smoke": "_smoke"}[preset]
  # Part B, the toy-suite transformer (rljax.training.curriculum_testbed; not at smoke): GRPO from one SFT start on
  # add + modchain levels 0-2 (the distributions), held-out on levels 0-3, 3 seeds; DUMP at its defaults
  # (W = 300, τ = 0.1, c = 1, responses counted) against a uniform mixture. Runs in float32 (x64 is off for it).
  c.transformer = None
  if preset != "smoke":
    c.transformer = curriculum_testbed_config(preset)
    c.transformer.arms = dict(uniform=dict(curriculum=dict(name="uniform")), dump=dict(curriculum=dict(name="dump")))
  return c
