"""LOOP (tabular model-based, extended value iteration + doubling trigger) on RiverSwim (He, Zhong &
Yang, ICLR 2024).

    python -m rljax.run --config configs/loop_amdp.py --workdir results/loop_amdp      # cpu preset, about a minute
    python -m rljax.run --config configs/loop_amdp.py:full --workdir results/loop_amdp
    python -m rljax.run --config configs/loop_amdp.py --workdir results/loop_amdp --config.seeds=4 --config.radius_scale=0.5
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.n_states = 6  # RiverSwim-S (2 actions)
  c.horizon = 1_000_000  # T; regret is logged at n_checkpoints evenly spaced times of one run
  c.n_checkpoints = 1000
  c.t_min = 1000  # fits and plots use checkpoints t >= t_min
  c.seeds = 16
  c.delta = 0.05
  c.radius_scale = 1.0  # 1 = the theory's confidence radii; the baseline uses 0 (certainty equivalence)
  c.x64 = True
  c.out_dir = "results/loop_amdp"

  if preset == "cpu":
    c.horizon = 300_000
    c.seeds = 8
  elif preset == "smoke":
    c.n_states = 4
    c.horizon = 20_000
    c.n_checkpoints = 200
    c.t_min = 300
    c.seeds = 4
    c.out_dir = "results/loop_amdp_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
