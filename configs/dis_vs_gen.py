"""Naive Bayes vs logistic regression sample complexity (Zheng et al., ICML 2023).

    python -m rljax.run --config configs/dis_vs_gen.py --workdir results/dis_vs_gen        # cpu preset, about a minute
    python -m rljax.run --config configs/dis_vs_gen.py:full --workdir results/dis_vs_gen
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.mode = "easy"
  c.num_classes = (2,)  # K; for K ≥ 3 the Bayes error itself moves with n, which blurs m*(n)
  c.dims = (20, 40, 80, 160, 320)  # n
  c.m_points = 16  # geometric grid of training sizes from 2K to m_max_factor·n
  c.m_max_factor = 6
  c.n_test = 4000
  c.n_bayes = 200_000  # Monte-Carlo draws for the Bayes error of the true LDA rule
  c.tol = 0.01  # m* = first m with mean error ≤ Bayes error + tol (the reference's stopping rule)
  c.c = 1.0  # logistic regression's C (sklearn convention)
  c.max_iters = 400
  c.solver_tol = 1e-6
  c.pad = False  # zero-pad every n to the largest: one compile, but each fit costs the largest size
  c.seeds = 12
  c.x64 = True
  c.out_dir = "results/dis_vs_gen"

  if preset == "cpu":
    c.dims = (20, 40, 80)
    c.seeds = 8
  elif preset == "smoke":
    c.dims = (32, 64, 128)
    c.m_points = 12
    c.m_max_factor = 4
    c.n_test = 1000
    c.n_bayes = 20_000
    c.max_iters = 100
    c.pad = True
    c.seeds = 6
    c.out_dir = "results/dis_vs_gen_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
