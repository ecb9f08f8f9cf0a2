"""NeuSquareCB / NeuFastCB regret on a realizable neural contextual bandit (Deb et al., ICLR 2024).

    python -m rljax.run --config configs/neucb.py --workdir results/neucb        # cpu preset, ~1 min
    python -m rljax.run --config configs/neucb.py:full --workdir results/neucb
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.env_seed = 7
  c.n_arms = 4
  c.dim = 10
  c.width = 32
  c.sharpness = (1.0, 4.0)  # high-L* and low-L* variants
  c.algos = ("square", "fast")
  c.lr_scale = 3.0
  c.gamma_scale = 1.0
  c.n_steps = 8
  c.window = 2048
  c.horizon = 20_000
  c.n_checkpoints = 50
  c.seeds = 8
  c.x64 = True
  c.out_dir = "results/neucb"

  if preset == "cpu":
    c.horizon = 5_000
    c.seeds = 4
  elif preset == "smoke":
    c.horizon = 640
    c.n_checkpoints = 16
    c.seeds = 2
    c.width = 16
    c.n_steps = 2
    c.window = 256
    c.sharpness = (4.0,)
    c.out_dir = "results/neucb_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
