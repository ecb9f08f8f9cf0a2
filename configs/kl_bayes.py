"""KL-regularised RL vs pure RL vs DPG on an enumerable Markov LM (Korbak, Perez & Buckley 2022).

    python -m rljax.run --config configs/kl_bayes.py --workdir results/kl_bayes        # cpu preset, about a minute
    python -m rljax.run --config configs/kl_bayes.py:full --workdir results/kl_bayes
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.x64 = True
  c.seed = 0
  c.vocab = 4
  c.length = 6  # 4^6 = 4096 sequences, enumerated exactly
  c.prior_scale = 1.0  # π_0 logits ~ scale·N(0, 1)
  c.token_reward = (1.0, 0.0, 0.0, 0.0)  # r(y) = number of "a" tokens
  c.beta = 0.5  # KL strength of KL-RL and temperature of the posterior π* = π_0·exp(r/β)/Z
  c.methods = ("rl", "kl_rl", "dpg")
  # Gradient modes: batch 0 = exact expected gradients on the enumeration, B > 0 = B rollouts per step.
  c.batches = (0, 64)
  c.lr = 0.05  # Adam on the tabular Markov logits
  c.steps = 1000
  c.record_every = 25
  c.seeds = 4
  c.out_dir = "results/kl_bayes"
  if preset == "cpu":
    c.steps, c.seeds = 600, 2
  elif preset == "smoke":
    c.vocab, c.length, c.token_reward = 3, 4, (1.0, 0.0, 0.0)
    c.steps, c.record_every, c.seeds, c.batches = 400, 20, 2, (0, 32)
    c.out_dir = "results/kl_bayes_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
