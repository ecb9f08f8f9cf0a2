"""No-regret baselines and the regret-loss LSA (Park, Liu, Ozdaglar & Zhang, 2024).

    python -m rljax.run --config configs/llm_regret.py --workdir results/llm_regret     # cpu preset, about a minute
    python -m rljax.run --config configs/llm_regret.py:full --workdir results/llm_regret
    python -m rljax.run --config configs/llm_regret.py --workdir results/llm_regret --config.seeds=16 --config.lsa_steps=200
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  # Plot 1: regret vs T of Hedge, FTPL and FTL on four sequences, T log-spaced in [10, 10^log10_t_max].
  c.sequences = ("iid", "linear_trend", "sine_trend", "alternating")
  c.n_actions = 4  # K of the random sequences (the alternating one has K = 2)
  c.log10_t_max = 4.0
  c.n_horizons = 13
  c.seeds = 32
  c.ftpl_noise = "exponential"  # Kalai–Vempala; "gumbel" makes FTPL's play distribution Hedge's
  c.ftpl_samples = 16  # perturbations averaged per round: FTPL's pseudo-regret, 1/16 of the variance
  # Plot 2: a single-layer linear self-attention policy trained on the regret-loss, one restart per seed.
  # The paper's 2000 Adam steps at lr 1e-3 on 4096 sequences do not fit the CPU budget; full-batch Adam at
  # lr 1e-2 converges in a few hundred steps. About a third of the restarts reach the FTRL map, the rest
  # a rank-one local minimum with a higher regret-loss; the lowest held-out regret-loss restart is reported.
  c.lsa_n_actions = (2, 3)
  c.lsa_horizon = 25
  c.lsa_n_train = 1024
  c.lsa_steps = 600
  c.lsa_lr = 1e-2
  c.lsa_k = 10.0
  c.lsa_init_scale = 0.1
  c.lsa_seeds = 12
  c.lsa_n_test = 2048
  c.x64 = True
  c.out_dir = "results/llm_regret"

  if preset == "cpu":  # about a minute on 2 cores
    c.log10_t_max = 3.5
    c.n_horizons = 11
    c.seeds = 16
    c.lsa_n_train = 512
    c.lsa_steps = 400
    c.lsa_seeds = 8
  elif preset == "smoke":  # tests and the notebook's small run
    c.sequences = ("iid", "alternating")  # the compile time of the FTPL sampler dominates at this size
    c.log10_t_max = 3.0
    c.n_horizons = 9
    c.seeds = 8
    c.ftpl_samples = 64
    c.lsa_n_actions = (3,)
    c.lsa_n_train = 256
    c.lsa_steps = 200
    c.lsa_seeds = 10
    c.lsa_n_test = 512
    c.out_dir = "results/llm_regret_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
