"""Demonstration-regularised RL on random tabular MDPs (Tiapkin et al., ICLR 2024).

    python -m rljax.run --config configs/demo_regularized_rl.py --workdir results/demo_regularized_rl   # cpu, ~1 min
    python -m rljax.run --config configs/demo_regularized_rl.py:full --workdir results/demo_regularized_rl
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  # Random MDP per seed. Dense U[0,1] rewards and Dirichlet(1) transitions: the myopic part of Q is
  # known, the future part is small and noisy, so learning is variance-bound (the regime of the
  # 1/(λε) rate of regularised RL) rather than coverage-bound.
  c.n_states = 6
  c.n_actions = 3
  c.horizon = 4
  c.concentration = 1.0
  c.reward_density = 1.0
  c.eps_frac = 0.01  # ε = eps_frac · V*(s0), per MDP
  # N^E ∈ {2^k}: up to where pure BC is itself ε-optimal (episodes → 0 there).
  c.log2_demos_min = 3
  c.log2_demos_max = 9
  c.kappa = 1.0  # BC regulariser: π^BC = (n + κ)/(n_h(s) + κA)
  # λ(N^E) = ε / (2·KL bound), KL bound = kl_constant·(A−1)·S·H/N^E: the Õ(SAH/N^E) shape of the
  # BC guarantee, so that λ·KL(π^E‖π^BC) ≤ ε/2 and the regularised optimum stays ε/2-optimal.
  c.kl_constant = 1.0
  c.bonus_scale = 0.1
  c.episodes = 4000  # online budget T; a run that never settles is censored at T
  # RLHF variant: preferences between π^BC trajectories, N^E fixed, m pairs (one stream, prefixes);
  # λ from the same rule at the looser target rlhf_eps_frac·V*.
  c.rlhf_eps_frac = 0.1
  c.rlhf_demos = 64
  c.rlhf_pairs = (50, 200, 1000)
  c.rlhf_ridge = 1.0
  c.seeds = 16
  c.fit_decades = 1.0  # slope fitted on the last decade of N^E
  c.x64 = True
  c.out_dir = "results/demo_regularized_rl"

  if preset == "cpu":
    c.seeds = 12
    c.episodes = 3000
  elif preset == "smoke":
    c.seeds = 6
    c.episodes = 1500
    c.log2_demos_min, c.log2_demos_max = 4, 8
    c.rlhf_pairs = (50, 1000)
    c.out_dir = "results/demo_regularized_rl_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
