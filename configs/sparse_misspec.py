"""Sparsity in misspecified linear bandits (Dong & Yang, ICML 2023).

    python -m rljax.run --config configs/sparse_misspec.py --workdir results/sparse_misspec        # cpu preset
    python -m rljax.run --config configs/sparse_misspec.py:full --workdir results/sparse_misspec
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.ds = (8, 16, 32, 64)
  c.s = 2
  c.eps = 0.05  # misspecification budget ‖b‖_∞
  c.kappa = 0.5  # ‖θ*‖ = κ ε √(d − s) on the adversarial instance
  c.noise_std = 0.1
  c.eps_net = 0.2  # coarse net (the spec's CPU choice); the d^s query slope does not depend on it
  c.r_rep = 256  # queries per candidate: noise σ/√r_rep well below the gaps O(ε)
  c.n_ls = 4096  # pulls of the G-optimal design
  c.seeds = 16
  c.x64 = True
  c.out_dir = "results/sparse_misspec"

  if preset == "cpu":
    c.ds = (8, 16, 32)
  elif preset == "smoke":
    c.ds = (8, 32)
    c.eps_net = 0.5
    c.n_ls = 1024
    c.seeds = 4
    c.out_dir = "results/sparse_misspec_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
