"""Off-policy evaluation under realizability only: LSTD and FQE (Zanette, ICML 2023).

    python -m rljax.run --config configs/realizability_ope.py --workdir results/realizability_ope   # cpu preset, about a minute
    python -m rljax.run --config configs/realizability_ope.py:full --workdir results/realizability_ope
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.n_states, c.n_actions, c.dim, c.gamma = 6, 2, 3, 0.9
  c.mu_concentration = 0.5  # behaviour μ ~ Dirichlet(0.5) over pairs
  c.reward_noise = 0.0
  # Plot 1: LSTD error vs n on one instance, for each misalignment α.
  c.alphas = (0.0, 0.5, 0.9)
  c.log10_n_min, c.log10_n_max, c.n_per_decade = 2.0, 5.0, 4
  # Plot 2: √n·error at n_fixed vs ‖A_μ^{-1}‖ over n_points (instance, α) pairs.
  c.n_points = 20
  c.n_fixed = 10_000
  c.fqe_iters = 300
  c.seeds = 64
  c.x64 = True
  c.out_dir = "results/realizability_ope"

  if preset == "cpu":
    c.seeds = 32
    c.log10_n_max = 4.5
  elif preset == "smoke":
    c.log10_n_max, c.n_per_decade = 4.0, 3
    c.n_points = 8
    c.n_fixed = 2000
    c.fqe_iters = 100
    c.seeds = 16
    c.out_dir = "results/realizability_ope_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
