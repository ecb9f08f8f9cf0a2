"""Policy generations of a regression-oracle CB on a payment-routing simulator (Vangara & Egg, Adyen
2024, arXiv 2412.00569).

    python -m rljax.run --config configs/adyen_generations.py --workdir results/adyen_generations  # cpu, ~1 min
    python -m rljax.run --config configs/adyen_generations.py:full --workdir results/adyen_generations
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.env_seed = 101  # one routing instance shared by every seed, so trajectories are comparable
  c.dim = 8
  c.n_actions = 5
  c.p_avail = 0.8
  # Route 0's quality lives in the interaction κ x1 x2 (linear part off, bias 0.5): a linear model
  # fitted where route 0 was played extrapolates badly elsewhere, which degrades later generations.
  c.route0_w_scale = 0.0
  c.route0_bias = 0.5
  c.kappa_realizable = 0.0
  c.kappa_misspecified = 4.0
  c.epsilon = 0.2
  c.gamma_c = 1.0  # γ = c·sqrt(|A| N)
  c.memory = 1
  c.l2 = 1.0
  c.newton_iters = 20
  c.n_generations = 30
  c.batch = 5000
  c.seeds = 32
  c.burn_in = 4  # generations dropped before the stationary-regime statistics
  c.x64 = True
  c.out_dir = "results/adyen_generations"

  if preset == "cpu":
    c.n_generations = 20
    c.batch = 2000
    c.seeds = 16
  elif preset == "smoke":  # the cost is the two compiles; 30 generations keep the autocorrelations meaningful
    c.batch = 1500
    c.seeds = 8
    c.newton_iters = 10
    c.out_dir = "results/adyen_generations_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
