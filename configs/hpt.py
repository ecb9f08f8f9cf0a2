"""HPT against SFT, GRPO and SFT→GRPO on the toy suite with a task subset unsolvable at the start (Lv et al. 2025).

    python -m rljax.run --config configs/hpt.py:cpu --workdir results/hpt        # 4 arms × 3 seeds
    python -m rljax.run --config configs/hpt.py:gpu --workdir results/hpt_gpu

Presets: `smoke` (the tests), `cpu` (the main table), `gpu` (the testbed's gpu sizes).
"""

import ml_collections

from rljax.training.testbed import testbed_config

ARMS = ("sft_only", "grpo", "sft_grpo", "hpt")


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = testbed_config(preset)  # raises ValueError on an unknown preset
  c.out_dir = f"results/hpt_{preset}"
  # Families add, modchain and reverse at 2 levels (arm = family_index · difficulties + level). The SFT start
  # never sees `hard_arms`, the reverse family (an unseen task tag), and then solves it with probability 0;
  # RL trains and evaluates on every arm, each RL prompt with its reference completion as the demonstration.
  c.task.update(families=("add", "modchain", "reverse"), difficulties=2)
  c.hard_arms = (4, 5)
  c.arm_names = ARMS
  # The HPT preset (rljax.algorithms "hpt": the authors' code values) for every arm, differing only in the gate:
  # sft_only = every prompt to SFT (γ = n, no entropy bonus), grpo = none (γ = −1: the preset's RL loss alone),
  # hpt = γ, sft_grpo = sft_only for a fraction `sft_first` of the steps, then grpo.
  c.hpt = ml_collections.ConfigDict(dict(gamma=0, sft_coef=1.0, sft_first=0.5))
  c.rl.update(steps=100, eval_every=25)
  if preset == "smoke":
    c.sft.steps = 300
    c.rl.update(steps=16, prompts=8, group_size=4, eval_every=16, seeds=(0,))
    c.eval.update(k=2, per_arm=8)
    c.log_every, c.ckpt_every = 2, 16
  elif preset == "gpu":
    c.task.difficulties = 5
    c.hard_arms = (10, 11, 12, 13, 14)
    c.rl.steps = 300
  return c
