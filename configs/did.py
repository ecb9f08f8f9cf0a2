"""Differential information and DPO on a finite response set (Won et al. 2025, arXiv 2505.23761).

    python -m rljax.run --config configs/did.py --workdir results/did           # cpu preset, about a minute
    python -m rljax.run --config configs/did.py:full --workdir results/did
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.x64 = True
  c.seed = 0
  c.n_responses = 100  # |Y|
  c.n_pairs = 20_000
  c.beta = 1.0
  # q = softmax(z/T): T = 0.2 a low-entropy DID, T = 5 a high-entropy one.
  c.temperatures = (0.2, 5.0)
  # Data designs (chosen ~ π_w, rejected ~ π_l): "encode" π_w = π*, π_l = π_ref (encodes DID(π*/π_ref));
  # "uniform" π_w = π*, π_l uniform (does not; power-law optimum π_ref·π*); "paper" π_w = π_ref,
  # π_l ∝ π_ref²/π* (the paper's closed-form rejected distribution, also encoding).
  c.designs = ("encode", "uniform", "paper")
  c.lr = 0.05  # Adam on the tabular logits
  c.steps = 2000
  c.record_every = 50
  c.seeds = 8
  c.out_dir = "results/did"
  if preset == "cpu":
    c.steps, c.seeds = 1000, 4
  elif preset == "smoke":
    c.n_responses, c.n_pairs, c.steps, c.record_every, c.seeds = 30, 5000, 400, 20, 2
    c.out_dir = "results/did_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
