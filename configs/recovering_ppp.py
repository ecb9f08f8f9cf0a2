"""Purely periodic policies under recovering rewards (Simchi-Levi, Zheng & Zhu, arXiv 2106.14813).

    python -m rljax.run --config configs/recovering_ppp.py --workdir results/recovering_ppp       # cpu preset
    python -m rljax.run --config configs/recovering_ppp.py:full --workdir results/recovering_ppp
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.d_max = 10
  c.sigma = 0.1
  # Offline: 1 − value(rounded periodic)/LP vs K with N = 4K arms.
  c.ks = (1, 2, 4, 8, 16, 32, 64)
  c.offline_horizon = 2000  # periods simulated per rounding (the first d_max are burn-in)
  c.offline_seeds = 16  # instances × roundings
  # Online: periodic UCB with N = 8, K = 2, regret against the offline rounded policy's value.
  c.online_arms = 8
  c.online_k = 2
  c.log10_online_horizon = 4.5
  c.n_checkpoints = 13
  c.online_seeds = 16
  c.x64 = True
  c.out_dir = "results/recovering_ppp"

  if preset == "cpu":
    c.ks = (1, 2, 4, 8, 16, 32)
    c.log10_online_horizon = 4.0
  elif preset == "smoke":
    c.ks = (1, 4, 16)
    c.offline_horizon = 300
    c.offline_seeds = 8
    c.log10_online_horizon = 4.0  # the cost is the compiles: T = 10^4 reaches the full run's online slope
    c.n_checkpoints = 9
    c.online_seeds = 4
    c.out_dir = "results/recovering_ppp_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
