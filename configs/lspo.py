"""LSPO (Xu et al., ICML 2025) on Kuhn poker and the cheap-talk game.

    python -m rljax.run --config configs/lspo.py --workdir results/lspo          # cpu preset, about a minute
    python -m rljax.run --config configs/lspo.py:full --workdir results/lspo
    python -m rljax.run --config configs/lspo.py --workdir results/lspo --config.seeds=8 --config.lspo_iters=3
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.x64 = True
  # Kuhn poker: CFR+ exploitability of the linear average after every iteration.
  c.kuhn_iters = 10_000
  # The cheap-talk game (one game per seed: embeddings, meanings and the prior are resampled).
  c.n_utterances = 200
  c.n_types = 3
  c.emb_dim = 8
  c.seeds = 32
  c.lspo_iters = 6
  c.n_states = 64  # S decisions per iteration
  c.n_candidates = 8  # N utterances proposed per decision
  c.n_clusters = 6  # K latent strategies
  c.kmeans_iters = 20
  c.cfr_iters = 200
  c.dpo_steps = 20
  c.dpo_lr = 0.02
  c.beta = 1.0
  c.margin = 0.1
  # Direct RL gets as many sampled games per iteration as LSPO evaluates: S·N candidates, each
  # against every receiver card and both receiver actions; split over rl_steps_per_iter Adam steps.
  # Two learning rates (vmapped): the larger one climbs faster at first, the smaller one goes further.
  c.rl_steps_per_iter = 20
  c.rl_lrs = (0.05, 0.2)
  c.equilibrium_cfr_iters = 3000
  c.out_dir = "results/lspo"

  if preset == "cpu":
    c.kuhn_iters = 3000
    c.seeds = 16
    c.lspo_iters = 5
  elif preset == "smoke":
    c.kuhn_iters = 1000
    c.seeds = 6
    c.lspo_iters = 4
    c.cfr_iters = 100
    c.equilibrium_cfr_iters = 1000
    c.out_dir = "results/lspo_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
