"""rDPO on a log-linear contextual bandit with flipped labels (Chowdhury et al., ICML 2024).

    python -m rljax.run --config configs/rdpo_loglinear.py --workdir results/rdpo_loglinear   # cpu preset
    python -m rljax.run --config configs/rdpo_loglinear.py:full --workdir results/rdpo_loglinear
    python -m rljax.run --config configs/rdpo_loglinear.py --workdir results/rdpo_loglinear \
        --config.seeds=32 --config.epsilons="(0.0,0.3)"
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.dim = 8  # d
  c.n_actions = 8  # K responses per prompt
  c.n_prompts = 256  # prompts the pairs are drawn from
  c.n_test_prompts = 4096  # fresh prompts for the exact suboptimality of the greedy policy
  c.theta_norm = 3.0  # ‖θ*‖
  c.beta = 1.0
  c.losses = ("dpo", "cdpo", "rdpo")
  c.epsilons = (0.0, 0.1, 0.2, 0.3, 0.4)
  # n ∈ {2^log2_n_min, ..., 2^log2_n_max}; smaller n use a prefix of the same stream of pairs.
  c.log2_n_min = 8
  c.log2_n_max = 15
  c.seeds = 128
  # Ridge λ/2·‖θ‖² with λ = ridge/n: rDPO's loss is unbounded below on small noisy samples
  # (slope −εβ/(1−2ε)), and λ ∝ 1/n keeps the shrinkage bias below the √(d/n) rate.
  c.ridge = 1.0
  c.max_iters = 100
  c.x64 = True
  c.out_dir = "results/rdpo_loglinear"

  if preset == "cpu":  # the embedded main-job default: under 2 minutes on 2 cores
    c.log2_n_max = 14
    c.seeds = 24
  elif preset == "smoke":  # tests and the notebook's small run
    c.n_test_prompts = 512
    c.epsilons = (0.0, 0.2)
    c.log2_n_min, c.log2_n_max = 9, 12
    c.seeds = 8
    c.out_dir = "results/rdpo_loglinear_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
