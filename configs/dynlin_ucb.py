"""DynLin-UCB vs myopic LinUCB on the paper's synthetic dynamical linear bandit (Mussi et al., ICML 2023,
arXiv 2211.08997).

    python -m rljax.run --config configs/dynlin_ucb.py --workdir results/dynlin_ucb       # cpu, about a minute
    python -m rljax.run --config configs/dynlin_ucb.py:full --workdir results/dynlin_ucb
    python -m rljax.run --config configs/dynlin_ucb.py --workdir results/dynlin_ucb --config.seeds=16 --config.beta_scale=1.0
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.sigma = 0.01  # the paper's testcase_synt_sigma0dot01
  c.log10_horizon = 5.0  # T = 10^5 (the paper runs 10^6)
  c.n_checkpoints = 21  # t log-spaced in [10, T] for the regret curves
  c.seeds = 64
  # The paper's radius has a drift term (c2/√λ)·log(e(t+1)) ≈ 28 at t = 10^5 against a best-arm gap
  # of 1/32, so with beta_scale = 1 both learners still explore at T = 10^5 (DynLin slope ≈ 0.75).
  # Both learners use the same multiplier on their radius.
  c.beta_scale = 0.05
  c.lam = 1.0
  # Extra: regret at T vs the spectral radius, A = diag(0.2, 0, 0.1)·(ρ/0.2).
  c.rhos = (0.2, 0.5, 0.8)
  c.x64 = True
  c.out_dir = "results/dynlin_ucb"

  if preset == "cpu":
    c.log10_horizon = 4.5
    c.seeds = 24
  elif preset == "smoke":
    c.log10_horizon = 4.0
    c.n_checkpoints = 13
    c.seeds = 8
    c.rhos = (0.2, 0.8)
    c.out_dir = "results/dynlin_ucb_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
