"""Vanilla PG, N-PG-IGT, HARPG and N-HARPG on the discounted scalar LQR (Fatkhullin et al., ICML 2023).

    python -m rljax.run --config configs/npg_harpg.py --workdir results/npg_harpg         # cpu preset, ~1 min
    python -m rljax.run --config configs/npg_harpg.py:full --workdir results/npg_harpg
    python -m rljax.run --config configs/npg_harpg.py:smoke --workdir results/npg_harpg_smoke --config.seeds=4
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.x64 = True
  c.seed = 0
  # Scalar LQR s' = a s + b u + w, reward −(q s² + r u²), Gaussian policy u = θ s + σ ξ.
  c.a, c.b, c.noise_std, c.s0_std, c.q, c.r = 0.9, 0.5, 0.1, 1.0, 1.0, 0.1
  c.gamma = 0.9
  c.policy_std = 0.5
  c.horizon = 50  # H_tr: γ^H ≈ 5e-3
  c.theta0 = 0.0
  # Per method: (gamma0, step_power, eta_power, normalized); γ_t = γ0 (2/(t+2))^step_power,
  # η_t = (2/(t+2))^eta_power. pg = SGD with γ_t ∝ t^{-1/2}; harpg = HARPG with the same anytime step.
  c.methods = ("pg", "npg_igt", "harpg", "nharpg")
  c.schedules = ml_collections.ConfigDict({
      "pg": (0.02, 0.5, 0.0, False),
      "npg_igt": (0.3, 1.0, 0.8, True),
      "harpg": (0.02, 0.5, 1.0, False),
      "nharpg": (0.1, 1.0, 1.0, True),
  })
  c.max_trajectories = 30_000  # every method gets the same trajectory budget
  c.n_points = 40  # log-spaced checkpoints of J* − J(θ_t)
  c.seeds = 48
  c.out_dir = "results/npg_harpg"

  if preset == "cpu":
    c.max_trajectories = 10_000
    c.seeds = 24
  elif preset == "smoke":
    c.horizon = 20  # a shorter truncation keeps the test's compile and run small; J* is for this H
    c.max_trajectories = 1_000
    c.seeds = 6
    c.n_points = 16
    c.out_dir = "results/npg_harpg_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
