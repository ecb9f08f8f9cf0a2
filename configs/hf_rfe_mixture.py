"""Horizon-free reward-free exploration in linear mixture MDPs (Zhang, Zhang & Gu, ICML 2023).

    python -m rljax.run --config configs/hf_rfe_mixture.py --workdir results/hf_rfe_mixture        # cpu preset, under a minute
    python -m rljax.run --config configs/hf_rfe_mixture.py:full --workdir results/hf_rfe_mixture
    python -m rljax.run --config configs/hf_rfe_mixture.py --workdir results/hf_rfe_mixture --config.seeds=8 --config.beta_scale=1.0
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  # Plot 1: max-over-rewards suboptimality vs K at fixed H, for two feature dimensions.
  c.dims = (4, 8)  # d; the hard instance has 2^(d-1) actions
  c.horizon = 20
  c.n_episodes = 30_000  # K
  c.n_checkpoints = 16  # log-spaced from 100 to K
  c.compare_at = 10_000  # K at which the d = 8 / d = 4 ratio is read
  c.seeds = 32  # one hard instance (random μ) and one exploration run per seed
  # Plot 2: the same at fixed K vs H, weighted VTR against the unweighted ablation (σ̄ ≡ 1).
  c.h_dim = 4
  c.horizons = (10, 100, 1000)
  c.h_episodes = 3_000
  c.h_seeds = 32
  c.variants = ("weighted", "unweighted")  # unweighted: the VTR ablation with σ̄ ≡ 1
  c.n_rewards = 20  # test rewards, each with Σ_h r_h ≤ 1
  c.spread = 1000.0  # |μ_i| log-stratified over a factor `spread`
  c.beta_scale = 1.0  # β = beta_scale · 0.15 √(d log(1 + K/d))
  c.x64 = True
  c.out_dir = "results/hf_rfe_mixture"

  if preset == "cpu":
    c.n_episodes = 10_000
    c.compare_at = 5_000
    c.seeds = 16
    c.h_episodes = 1_000
    c.h_seeds = 16
  elif preset == "smoke":
    # Two compiles, each costing more than its run: the H sweep's H = 10 run is the K sweep's, reused.
    c.dims = (4,)
    c.horizon = 10
    c.n_episodes = 3_000
    c.n_checkpoints = 10
    c.compare_at = 3_000
    c.seeds = 32
    c.horizons = (10, 40)
    c.variants = ("weighted",)
    c.h_episodes = 3_000
    c.h_seeds = 32
    c.n_rewards = 8
    c.out_dir = "results/hf_rfe_mixture_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
