"""Groupwise regret with sleeping experts over per-group online ridge learners (Acharya et al., 2023).

    python -m rljax.run --config configs/groupwise.py --workdir results/groupwise        # cpu preset, ~1 min
    python -m rljax.run --config configs/groupwise.py:full --workdir results/groupwise
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.env_seed = 7  # one instance (cell models β_c) shared by every seed
  c.dim = 10
  c.scale = 1.0
  c.noise = 0.1
  c.lam = 1.0
  c.metas = ("hedge", "anh")
  c.horizon = 20_000
  c.n_checkpoints = 100
  c.seeds = 32
  c.x64 = True
  c.out_dir = "results/groupwise"

  if preset == "cpu":
    c.horizon = 10_000
    c.seeds = 12
  elif preset == "smoke":
    c.horizon = 3_000
    c.n_checkpoints = 30
    c.seeds = 3
    c.metas = ("hedge",)
    c.out_dir = "results/groupwise_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
