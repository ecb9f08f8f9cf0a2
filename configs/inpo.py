"""INPO (Zhang et al., 2024, arXiv 2407.00617) on random intransitive preference games: exact vs sampled
iterations.

    python -m rljax.run --config configs/inpo.py --workdir results/inpo           # cpu preset, under a minute
    python -m rljax.run --config configs/inpo.py:full --workdir results/inpo
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.x64 = True
  c.seed = 0
  c.seeds = 32  # random games (P intransitive, π_ref ~ Dirichlet(1), π_0 = π_ref)
  c.n_actions = 16
  c.tau = 0.1
  c.eta_taus = (0.1, 1.0 / 3.0)  # ητ; η = ητ/τ
  c.n_pairs = (100, 1000, 10000)
  c.T = 80
  c.floor_window = 20  # sampled floor = mean KL over the last iterations
  c.out_dir = "results/inpo"

  if preset == "cpu":
    c.seeds = 16
  elif preset == "smoke":
    c.seeds = 6
    c.n_actions = 10
    c.eta_taus = (1.0 / 3.0,)
    c.n_pairs = (100, 1000)
    c.out_dir = "results/inpo_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
