"""Exact checks of the policy-gradient kernels on the softmax answer bandit (a kernel check, not a paper).

    python -m rljax.run --config configs/bandit_pg_checks.py --workdir results/bandit_pg_checks        # ~1 min
    python -m rljax.run --config configs/bandit_pg_checks.py:smoke --workdir results/bandit_pg_checks_smoke
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.x64 = True  # the checks compare to closed forms at float64 precision
  c.seed = 0
  c.n_prompts = 16
  c.n_answers = 8
  c.dim = 8
  c.group_size = 4
  c.n_batches = 200_000  # Monte-Carlo batches for (a)
  c.etas = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)  # step sizes for (b)
  c.n_policies = 64  # random policies for (d)
  c.steps, c.lr = 200, 0.05  # training run for (e)
  c.out_dir = "results/bandit_pg_checks"
  if preset == "smoke":
    c.n_batches, c.n_policies, c.steps = 5_000, 4, 10
    c.out_dir = "results/bandit_pg_checks_smoke"
  elif preset not in ("cpu", "full"):  # the recorded run is small enough for the cpu preset to be it
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
