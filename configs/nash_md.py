"""Tabular rates of Nash-MD (Munos et al., ICML 2024, arXiv 2312.00886) on random intransitive
preference games.

    python -m rljax.run --config configs/nash_md.py --workdir results/nash_md           # cpu preset
    python -m rljax.run --config configs/nash_md.py:full --workdir results/nash_md
    python -m rljax.run --config configs/nash_md.py:full --workdir results/nash_md --config.tau=0.5
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.x64 = True
  c.seed = 0  # the same seed draws the same games as configs/nash_mp.py
  c.seeds = 32  # random games (P intransitive, μ ~ Dirichlet(1), π_0 = μ)
  c.n_actions = 16  # K
  c.tau = 0.1  # Nash-MD regularisation τ
  # R1: constant-η Nash-MD; the last iterate sits on a floor that grows with η.
  c.md_etas = (0.25, 0.5, 1.0, 2.0)
  c.md_T = 2048
  # R2: anytime schedule η_t = 2/(τ(t+2)) over md_T steps, and the horizon-tuned η = log T/(τT).
  c.horizons = (64, 128, 256, 512, 1024, 2048)
  c.mwu_T = 600  # self-play MWU (τ = 0, no mixture) on rock–paper–scissors with η = mwu_eta
  c.mwu_eta = 0.1
  c.out_dir = "results/nash_md"

  if preset == "cpu":
    c.seeds = 16
  elif preset == "smoke":
    c.seeds = 6
    c.n_actions = 10
    c.md_etas = (0.5, 1.0, 2.0)
    c.md_T = 600
    c.horizons = (32, 64, 128, 256, 512)
    c.out_dir = "results/nash_md_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
