"""SEC, Self-Evolving Curriculum (Chen et al. 2025): part A, GRPO on the skill chain with five curricula.

    python -m rljax.run --config configs/sec.py:cpu --workdir results/sec          # about a minute on 2 cores
    python -m rljax.run --config configs/sec.py:gpu --workdir results/sec_gpu
    python -m rljax.run --config configs/sec.py:smoke --workdir /tmp/sec_smoke      # the tests' size
"""

import ml_collections

from rljax.theory.curricula.chain_rl import chain_config
from rljax.training.curriculum_testbed import curriculum_testbed_config


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.seeds = 32  # vmapped; seed s uses PRNGKey(seed + s), the same keys for every curriculum
  # Part A (spec §1.4): arms are depths 1..8, OOD evaluation at depths 9..12; G = 8, B = 32, Adam lr 0.05,
  # 400 steps, θ ∈ R^12 at 0 (P(solved | d) = 2^-d).
  c.chain = chain_config()
  c.ood_depths = (9, 10, 11, 12)
  # The curricula compared: the fixed ones (rljax.curricula.fixed, total_steps = chain.steps) and SEC at each τ.
  c.baselines = ("uniform", "easy_to_hard", "hard_to_easy")
  c.sec_alpha = 0.5  # `bandit.lr` of every reported run
  c.sec_temperatures = (0.2, 1.0)  # 2-D runs / Countdown
  c.sec_absent = "decay"  # the reference code's rule
  # Every curriculum again with plain SGD at this lr (0: Adam only). Adam rescales each skill's gradient, so one
  # informative group moves θ as far as many: it hides the learning-signal differences a curriculum creates.
  c.sgd_lr = 0.5
  # The stationary toy (spec §1.3): five arms with fixed success probabilities, 16 prompts × G = 8 per step.
  c.stationary = ml_collections.ConfigDict(dict(
      success_probs=(0.02, 0.2, 0.5, 0.8, 0.98), steps=300, prompts=16, group_size=8, seeds=64,
      temperature=0.2))
  c.out_dir = "results/sec"
  # Part B, the toy-suite transformer (rljax.training.curriculum_testbed; not at smoke): GRPO from one SFT start on
  # add + modchain levels 0-2, held-out on levels 0-3 (3 is harder than any trained), 3 seeds, per curriculum. SEC at
  # τ = 0.4 (the paper's MATH runs): the mean |A| of GRPO groups spans [0, ~0.9], which τ = 1 barely separates.
  c.transformer = None
  if preset != "smoke":
    c.transformer = curriculum_testbed_config(preset)
    c.transformer.arms = dict(uniform=dict(curriculum=dict(name="uniform")),
                              sec=dict(curriculum=dict(name="sec", temperature=0.4)),
                              easy_to_hard=dict(curriculum=dict(name="easy_to_hard")),
                              hard_to_easy=dict(curriculum=dict(name="hard_to_easy")))

  if preset == "cpu":  # the reported run: the spec's 32 seeds
    pass
  elif preset == "smoke":  # tests and the notebook's small run
    c.seeds = 8
    c.chain.steps = 200
    c.stationary.seeds = 32
    c.stationary.steps = 200
    c.out_dir = "results/sec_smoke"
  elif preset == "gpu":  # more seeds, the same horizon (the claims compare curricula at equal steps)
    c.seeds = 256
    c.stationary.seeds = 1024
  else:
    raise ValueError(f"unknown preset {preset!r}; use smoke, cpu or gpu")
  return c
