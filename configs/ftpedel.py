"""FTPedel on the hard-direction linear bandit with offline data (Wagenmaker & Pacchiano, ICML 2023).

    python -m rljax.run --config configs/ftpedel.py --workdir results/ftpedel       # cpu preset, about a minute
    python -m rljax.run --config configs/ftpedel.py:full --workdir results/ftpedel
    python -m rljax.run --config configs/ftpedel.py --workdir results/ftpedel --config.seeds=4 --config.n_offline="(0,1000)"
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.seeds = 64
  c.dim = 4  # arms e_1..e_4 and x' = cos(ω)e_1 + sin(ω)e_2
  c.omega = 0.1
  c.epsilon = 0.05
  c.delta = 0.05
  c.sigma = 1.0
  c.n_offline = (0, 100, 1000, 10000)  # offline samples, all on e_2 (the hard direction)
  # N* constant: an arm with gap Δ leaves in the round where 2ε_l < Δ, i.e. ‖y‖² ≤ ε_l²/β ≈ Δ²/(4β).
  c.c_complexity = 4.0
  c.design_iters = 40
  c.n_bisect = 16
  c.x64 = True
  c.out_dir = "results/ftpedel"

  if preset == "cpu":
    c.seeds = 16
  elif preset == "smoke":
    c.seeds = 4
    c.design_iters = 20
    c.n_bisect = 14
    c.out_dir = "results/ftpedel_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
