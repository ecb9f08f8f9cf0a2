"""R2PVI vs PEVI on the simplex-feature d-rectangular linear MDP under test-time perturbation (Tang, Liu & Xu,
ICML 2025).

    python -m rljax.run --config configs/r2pvi.py --workdir results/r2pvi        # cpu preset, < 1 min
    python -m rljax.run --config configs/r2pvi.py:full --workdir results/r2pvi
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.x64 = True
  c.seed = 0
  c.delta, c.xi_scale, c.fail_prob = 0.3, 0.2, 1e-3
  c.methods = ("none", "tv", "kl", "chi2", "drpvi", "drvi_l")  # "none" is PEVI; drpvi / drvi_l: constrained baselines
  c.n_episodes = 100  # offline episodes from the uniform behaviour policy (nominal env)
  c.replications = 20
  c.lam_r = 0.1  # ridge
  c.lam = 0.1  # regularisation λ
  c.beta = 1.0  # pessimism
  c.n_alpha = 64  # grid of the inner searches (χ², DRPVI, DRVI-L)
  c.rho = 0.1  # radius of the TV / KL uncertainty balls of DRPVI / DRVI-L
  c.qs = tuple(round(0.1 * i, 1) for i in range(11))  # test-time perturbations
  c.time_ns = (100, 1000, 10000, 100000)  # dataset sizes for the wall-clock of one fit (fastest of time_repeats)
  c.time_repeats = 10
  c.out_dir = "results/r2pvi"

  if preset == "cpu":
    c.time_ns = (100, 1000)
  elif preset == "smoke":
    c.replications = 8
    c.methods = ("none", "tv", "kl", "chi2")
    c.qs = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    c.time_ns = ()  # no timing: each size costs one compile per method
    c.out_dir = "results/r2pvi_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
