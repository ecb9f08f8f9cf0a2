"""Every RLVR advantage estimator and aggregation mode from one SFT start (Srivastava & Aggarwal 2025, §1).

    python -m rljax.run --config configs/rl_survey.py:cpu --workdir results/rl_survey   # 37 min, loaded 2 cores
    python -m rljax.run --config configs/rl_survey.py:smoke --workdir /tmp/rl_survey    # the tests' size

The testbed fields (task, model, SFT, RL sizes, evaluation) are `rljax.training.testbed.testbed_config`'s;
the fields below are this experiment's. Every preset keeps its own loss, clip range, KL and aggregation,
but samples `rl.group_size` responses per prompt (the testbed's n, not the preset's G) and runs at the
testbed's learning rate; DAPO's overlong shaping is rescaled to the toy's response width (below).
"""

import ml_collections

from rljax.training.testbed import testbed_config

ESTIMATORS = ("grpo", "dr_grpo", "dapo", "gspo", "rloo", "reinforce_pp", "reinforce_pp_baseline", "remax", "ppo")
AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  if preset not in ("smoke", "cpu", "gpu"):
    raise ValueError(f"unknown preset {preset!r}; use smoke, cpu or gpu")
  c = testbed_config(preset)
  c.out_dir = f"results/rl_survey_{preset}"
  # The algorithm presets compared (rljax.algorithms names), then the aggregation sweep: the `agg_estimator`
  # preset with each `agg_modes` mode and its KL term off, so that only the aggregation differs.
  c.estimators = ESTIMATORS
  c.agg_estimator = "grpo"
  c.agg_modes = AGG_MODES
  # DAPO's overlong shaping at the toy's scale: L_max = the response width, L_cache = this fraction of it
  # (the paper's 4096 / 20480 = 0.2); refills capped at `dapo_max_gen_batches` batches (paper: 10) for time.
  c.dapo_cache_fraction = 0.2
  c.dapo_max_gen_batches = 3
  # Length growth = count-weighted mean length of the incorrect training responses over the last
  # `length_window` of the steps minus over the first.
  c.length_window = 0.25
  c.log_every = 1  # every rollout's correct/incorrect lengths are logged
  # The exact length toy (rljax.theory.pg.length_bandit), trained through the same kernels.
  c.toy = ml_collections.ConfigDict(dict(n_prompts=64, n_answers=4, width=16, stop_prob=0.2, logit_scale=1.0,
                                         group_size=8, steps=200, lr=0.05, seeds=4,
                                         arms=("grpo", "dr_grpo", "token-mean")))
  if preset == "cpu":
    # 40 RL steps × 13 arms × 3 seeds (~0.25 s per step on 2 idle cores, plus one compile per arm and seed);
    # held-out evaluation at the SFT start and after the last step only.
    c.rl.update(steps=40, eval_every=40)
    c.ckpt_every = 40
  elif preset == "smoke":
    # The claims need grpo, dr_grpo and dapo, and the two aggregation modes they compare; a compile per arm
    # dominates the smoke run, so only those run. The smoke decoder (30 SFT steps) is right almost never,
    # so its RL arms barely move: the smoke run checks that every arm runs and logs; the trend tested at
    # this size is the toy's (robust from 100 steps on 16 prompts).
    c.estimators = ("grpo", "dr_grpo", "dapo")
    c.agg_modes = ("seq-mean-token-mean", "seq-mean-token-sum-norm")
    c.rl.update(steps=4, eval_every=4)
    c.ckpt_every = 4
    c.toy.update(n_prompts=16, steps=100, seeds=2, arms=("grpo", "dr_grpo"))
  elif preset == "gpu":
    c.rl.eval_every = 50  # 300 steps (the testbed's)
    c.ckpt_every = 50
    c.toy.update(n_prompts=256, steps=400, seeds=8)
  return c
