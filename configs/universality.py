"""Regret of a Bayes mixture over an over-parametrised Bernoulli class ("The Universality Lens", 2025).

    python -m rljax.run --config configs/universality.py --workdir results/universality   # cpu preset, well under a minute
    python -m rljax.run --config configs/universality.py:full --workdir results/universality
    python -m rljax.run --config configs/universality.py --workdir results/universality --config.ms="(10,100,1000)" --config.seeds=64
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  # Class: w ∈ {−1,0,1}^m, p_w = 0.5 + 0.45·mean(w), uniform prior over all 3^m vectors (m even).
  c.ms = (10, 30, 100, 300, 1000)
  c.targets = (0.0, 0.5)  # mean(w) of the "simple" and the "complex" target
  c.log10_n_max = 5.0  # n log-spaced in [10, 10^log10_n_max]
  c.n_points = 17
  c.seeds = 512  # Monte-Carlo sequences, checked against the exact expectation
  c.x64 = True
  c.out_dir = "results/universality"

  if preset == "cpu":
    c.seeds = 128
  elif preset == "smoke":
    c.ms = (10, 30, 100)
    c.log10_n_max = 4.0
    c.n_points = 9
    c.seeds = 64
    c.out_dir = "results/universality_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
