"""Martingale policy evaluation on an OU process (Jia & Zhou, JMLR 2022).

    python -m rljax.run --config configs/martingale_pe.py --workdir results/martingale_pe        # cpu
    python -m rljax.run --config configs/martingale_pe.py:full --workdir results/martingale_pe
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.kappa, c.sigma, c.horizon, c.x0_std = 1.0, 0.5, 1.0, 1.0
  c.log2_dt = (2, 3, 4, 5, 6, 7, 8)  # mesh Δt = 2^-k
  c.log2_dt_ref = 10  # finest mesh: Brownian increments live here; the continuous-time proxy is fitted here
  c.n_paths = 2048
  c.log2_paths = (6, 7, 8, 9, 10, 11)  # path-count sweep at the finest Δt of `log2_dt`
  c.lam = 0.5  # TD(λ) test function, λ per unit time
  c.gtd_iters = 2000
  c.seeds = 8
  c.x64 = True
  c.out_dir = "results/martingale_pe"

  if preset == "cpu":
    c.n_paths = 1024
    c.log2_paths = (6, 7, 8, 9, 10)
    c.seeds = 4
  elif preset == "smoke":
    c.log2_dt = (2, 3, 4, 5, 6)
    c.log2_dt_ref = 8
    c.n_paths = 256
    c.log2_paths = ()  # one compile only; the path sweep runs in the cpu/full presets
    c.gtd_iters = 500
    c.seeds = 4
    c.out_dir = "results/martingale_pe_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
