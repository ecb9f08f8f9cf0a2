"""PR-LSVI on a linear dueling bandit and a small linear MDP (Wu & Sun, ICLR 2024).

    python -m rljax.run --config configs/pr_lsvi.py --workdir results/pr_lsvi         # cpu, about a minute
    python -m rljax.run --config configs/pr_lsvi.py:full --workdir results/pr_lsvi
    python -m rljax.run --config configs/pr_lsvi.py --workdir results/pr_lsvi --config.seeds=4 --config.epsilons="(0.0,0.3)"
"""

from __future__ import annotations

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.seeds = 10
  c.epsilons = (0.0, 0.1, 0.3, 1.0)  # query threshold on ‖Δφ‖_{Σ^{-1}}
  c.greedy = True  # also run the greedy MLE baseline (σ_r = σ_p = 0, ε = 0)
  c.lam = 1.0
  c.sigma_r = 1.0  # reward perturbation θ̃ ~ N(θ̂, σ_r² Σ^{-1})
  c.sigma_p = 0.5  # RLSVI value perturbation N(0, σ_p² Λ^{-1})
  c.baseline = "independent"  # comparator trajectory: second perturbed model, or "reference" (uniform policy)
  c.newton_iters = 1  # warm-started Newton steps on the BT MLE per round
  c.n_grid = 30  # log-spaced t at which cumulative regret / queries are recorded
  # (a) H = 1 linear dueling bandit
  c.bandit = ml_collections.ConfigDict(dict(n_arms=100, dim=5, theta_norm=1.0, rounds=3000))
  # (b) one-hot features of a random tabular MDP: d = S·A = 15
  c.mdp = ml_collections.ConfigDict(dict(n_states=5, n_actions=3, horizon=5, rounds=2000))
  c.x64 = True
  c.out_dir = "results/pr_lsvi"

  if preset == "cpu":
    c.seeds = 8
    c.bandit.rounds, c.mdp.rounds = 2000, 1000
  elif preset == "smoke":
    c.seeds = 5
    c.epsilons = (0.0, 0.3, 1.0)
    c.bandit.rounds, c.mdp.rounds = 600, 150
    c.n_grid = 20
    c.out_dir = "results/pr_lsvi_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
