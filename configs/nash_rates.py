"""Tabular rates of Nash-MD (Munos et al., ICML 2024) and Nash-MP (Tiapkin et al., 2025) on random
intransitive preference games.

    python -m experiments.nash_rates                                  # CPU default, about a minute
    python -m experiments.nash_rates --config=configs/nash_rates.py:full
    python -m experiments.nash_rates --config.seeds=8 --config.tau=0.5
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.seeds = 32  # random games (P intransitive, μ ~ Dirichlet(1), π_0 = μ)
  c.n_actions = 16  # K for R1–R5 and R7
  c.tau = 0.1  # Nash-MD regularisation τ (R1, R2) and Nash-MP β for R6, R7
  # R1: constant-η Nash-MD; the last iterate sits on a floor that grows with η.
  c.md_etas = (0.25, 0.5, 1.0, 2.0)
  c.md_T = 2048
  # R2: anytime schedule η_t = 2/(τ(t+2)) over md_T steps, and the horizon-tuned η = log T/(τT).
  c.horizons = (64, 128, 256, 512, 1024, 2048)
  c.mwu_T = 600  # self-play MWU (τ = 0, no mixture) on rock–paper–scissors with η = mwu_eta
  c.mwu_eta = 0.1
  # R3–R5: Nash-MP at the mirror-prox step η = 1/L = 2 (L = ½: Lipschitz constant of π ↦ P(·≻π)).
  c.mp_eta = 2.0
  c.betas = (0.01, 0.1, 1.0)
  c.mp_T = 400
  c.mp_sizes = (4, 64, 512)  # R6: K for the action-space-independence check, at β = tau
  # R7: Nash-MP with each prox solved by M natural-PG steps on sampled preferences.
  c.inner_steps = (1, 4, 16)
  c.n_samples = 100
  c.approx_T = 120
  c.x64 = True
  c.out_dir = "results/nash_rates"

  if preset == "cpu":
    c.seeds = 16
    c.mp_sizes = (4, 32, 128)
  elif preset == "smoke":
    c.seeds = 6
    c.n_actions = 10
    c.md_etas = (0.5, 1.0, 2.0)
    c.md_T = 600
    c.horizons = (32, 64, 128, 256, 512)
    c.betas = (0.1, 1.0)
    c.mp_T = 150
    c.mp_sizes = (5, 20, 80)
    c.inner_steps = (1, 4, 16)
    c.approx_T = 60
    c.out_dir = "results/nash_rates_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
