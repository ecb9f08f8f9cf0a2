"""Horizon-free, variance-dependent optimistic planning in latent MDPs (Zhou, Wang & Du, 2023).

    python -m rljax.run --config configs/lmdp_hf.py --workdir results/lmdp_hf          # cpu preset, about a minute
    python -m rljax.run --config configs/lmdp_hf.py:full --workdir results/lmdp_hf
    python -m rljax.run --config configs/lmdp_hf.py --workdir results/lmdp_hf --config.seeds=8 --config.bonus_scale=0.5
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.n_contexts = 2  # M
  c.n_states = 3  # S
  c.n_actions = 2  # A; Γ = 2 next states per (m,s,a)
  c.horizons = (3, 5)  # H; rewards only at the last step, total reward ≤ 1
  c.variants = ("deterministic", "noisy")  # transition masses {0.95, 0.05} and 0/1 rewards vs Dirichlet(1), U[0,1]
  c.n_episodes = 10_000  # K, logged at n_checkpoints evenly spaced episode counts
  c.n_checkpoints = 100
  c.compare_at = 5_000  # K at which the variance and horizon ratios are read
  c.seeds = 32  # one random LMDP per seed and variant (the same instance for every H)
  c.delta = 0.05
  c.bonus_scale = 1.0  # c in the Bernstein bonuses c(√(2 Var L/n) + L/n)
  c.x64 = True
  c.out_dir = "results/lmdp_hf"

  if preset == "cpu":
    c.seeds = 12
  elif preset == "smoke":
    c.horizons = (3, 4)
    c.n_episodes = 4_000
    c.n_checkpoints = 80
    c.compare_at = 4_000
    c.seeds = 8
    c.out_dir = "results/lmdp_hf_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
