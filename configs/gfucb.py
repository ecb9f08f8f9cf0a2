"""GFUCB multitask representation learning with a finite class Φ (Lu, Zhao, Du, Huang, NeurIPS 2022).

    python -m rljax.run --config configs/gfucb.py --workdir results/gfucb        # cpu preset, about a minute
    python -m rljax.run --config configs/gfucb.py:full --workdir results/gfucb
    python -m rljax.run --config configs/gfucb.py:smoke --workdir results/gfucb --config.seeds=2
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.seeds = 16
  c.n = 20  # raw context dimension
  c.k = 3  # representation dimension
  c.n_arms = 10
  c.n_phi = 64  # |Φ|: φ* plus 63 perturbed nets
  c.phi_scales = (0.1, 1.0)  # W_j = W* + s_j G_j, s_j log-spaced: near-misses up to unrelated nets
  c.noise_std = 1.0
  c.tasks = (1, 2, 4, 8, 16)  # M
  c.horizon = 2000  # T
  c.n_grid = 16  # log-spaced t at which cumulative regret is recorded
  c.lam = 1.0
  c.delta = 0.05
  c.beta_scale = 1.0
  c.radius_scale = 1.0
  c.heads_term = False  # β_t without the M k log t head term (Θ's uncertainty sits in the per-task ellipsoids)
  c.independent = True  # also run one single-task GFUCB per task (the baseline)
  c.x64 = True
  c.out_dir = "results/gfucb"

  if preset == "cpu":
    c.seeds = 8
    c.horizon = 1000
  elif preset == "smoke":
    c.seeds = 4
    c.tasks = (1, 8)
    c.horizon = 300
    c.n_grid = 10
    c.out_dir = "results/gfucb_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
