"""Adversarial linear-Q MDPs: log-barrier FTRL, magnitude-reduced exponential weights and the
explore-mix baseline (Dai, Luo, Wei, Zimmert, ICML 2023).

    python -m rljax.run --config configs/adv_linear_q.py --workdir results/adv_linear_q       # cpu preset, about a minute
    python -m rljax.run --config configs/adv_linear_q.py:full --workdir results/adv_linear_q
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.seeds = 16
  # Tabular MDP seen as a linear-Q MDP (one-hot φ, d = S·A), S states per layer, H layers; the first
  # A of max(actions) actions are available, so one compiled learner covers the A sweep.
  c.n_states = 3
  c.horizon = 3
  c.actions = (2, 4, 8)
  c.k_sweep_actions = 4  # A of the regret-vs-K curve
  c.log2_k_min = 6  # regret read at K = 2^j, the ends of the adversary's doubling phases
  c.log2_k_max = 12
  c.log2_k_actions = 11  # K of the regret-vs-A comparison
  c.noise = 0.1
  # Learning-rate scales c per algorithm (logbarrier, magred, explore_mix), from a grid ×{0.3, 1, 3}.
  c.etas = (1000.0, 300.0, 300.0)
  c.gamma = 0.1  # ridge γ_k = gamma/√k
  c.x64 = True
  c.out_dir = "results/adv_linear_q"

  if preset == "full":  # A = 16 would make d = 48 for every row (masked actions): over the 5-minute budget
    c.seeds = 24
    c.log2_k_max = 13
  elif preset == "smoke":
    c.seeds = 4
    c.actions = (2, 4)
    c.k_sweep_actions = 4
    c.log2_k_min = 5
    c.log2_k_max = 9
    c.log2_k_actions = 9
    c.out_dir = "results/adv_linear_q_smoke"
  elif preset != "cpu":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
