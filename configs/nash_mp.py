"""Tabular rates of Nash-MP (Tiapkin et al., 2025, arXiv 2505.19731) on random intransitive preference
games, against constant-η Nash-MD.

    python -m rljax.run --config configs/nash_mp.py --workdir results/nash_mp           # cpu preset
    python -m rljax.run --config configs/nash_mp.py:full --workdir results/nash_mp
    python -m rljax.run --config configs/nash_mp.py:full --workdir results/nash_mp --config.seeds=8
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.x64 = True
  c.seed = 0  # the same seed draws the same games as configs/nash_md.py
  c.seeds = 32  # random games (P intransitive, μ ~ Dirichlet(1), π_0 = μ)
  c.n_actions = 16  # K for R3–R5 and R7
  c.tau = 0.1  # β for R6, R7 and the comparison with Nash-MD (its τ)
  # R3–R5: Nash-MP at the mirror-prox step η = 1/L = 2 (L = ½: Lipschitz constant of π ↦ P(·≻π)).
  c.mp_eta = 2.0
  c.betas = (0.01, 0.1, 1.0)
  c.mp_T = 400
  c.mp_sizes = (4, 64, 512)  # R6: K for the action-space-independence check, at β = tau
  # The baseline: constant-η Nash-MD over the same number of preference queries (2·mp_T).
  c.md_etas = (0.25, 0.5, 1.0, 2.0)
  # R7: Nash-MP with each prox solved by M natural-PG steps on sampled preferences.
  c.inner_steps = (1, 4, 16)
  c.n_samples = 100
  c.approx_T = 120
  c.out_dir = "results/nash_mp"

  if preset == "cpu":
    c.seeds = 16
    c.mp_sizes = (4, 32, 128)
  elif preset == "smoke":
    c.seeds = 6
    c.n_actions = 10
    c.md_etas = (0.5, 1.0, 2.0)
    c.betas = (0.1, 1.0)
    c.mp_T = 150
    c.mp_sizes = (5, 20, 80)
    c.approx_T = 60
    c.out_dir = "results/nash_mp_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
