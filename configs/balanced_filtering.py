"""Balanced online difficulty filtering (Bae et al. 2025, arXiv 2504.03380) on the skill chain (part A).

    python -m rljax.run --config configs/balanced_filtering.py:cpu --workdir results/balanced_filtering
    python -m rljax.run --config configs/balanced_filtering.py:smoke --workdir /tmp/balanced_filtering

Presets: `smoke` (the tests), `cpu` (the reported run: 32 seeds, under 5 minutes on 2 idle cores), `gpu` (128 seeds,
longer run). The transformer comparison on the toy suite is part B below.
"""

import ml_collections

from rljax.theory.curricula.chain_rl import chain_config
from rljax.training.curriculum_testbed import curriculum_testbed_config

# The filters, in plotting order: a curriculum config for `rljax.curricula.make` (uniform arms over the pool).
# "none" is plain GRPO; the others are `balanced` with the band of the spec's §3.4 comparison.
VARIANTS = {
    "none": {"name": "uniform"},
    "balanced": {"name": "balanced", "low": 0.0, "high": 1.0, "inclusive": (False, False)},   # 0 < p̂ < 1
    "narrow": {"name": "balanced", "low": 0.25, "high": 0.75, "inclusive": (True, True)},     # [0.25, 0.75]
    "drop_easy": {"name": "balanced", "low": 0.0, "high": 1.0, "inclusive": (True, False)},   # p̂ < 1
    "drop_hard": {"name": "balanced", "low": 0.0, "high": 1.0, "inclusive": (False, True)},   # p̂ > 0
}


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  if preset not in ("cpu", "gpu", "smoke"):
    raise ValueError(f"unknown preset {preset!r}; use cpu, gpu or smoke")
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seeds = {"cpu": 32, "gpu": 128, "smoke": 4}[preset]
  # Part A: GRPO (G = 8, B = 32, Adam 0.05) on a uniform pool over depths 1–10 of the 12-step chain. Every filter
  # draws a fixed pool of refill_factor·B candidates per step and trains on the first B kept ones (chain_rl);
  # 8·B keeps the narrow band's batch full at init (about 20 % of the candidates pass it there).
  c.chain = chain_config(train_depths=tuple(range(1, 11)), eval_depths=tuple(range(1, 13)), refill_factor=8,
                         steps={"cpu": 200, "gpu": 400, "smoke": 60}[preset])
  c.variant_names = tuple(VARIANTS)
  c.variants = ml_collections.ConfigDict(VARIANTS)
  # The per-step comparison is read at compare_fraction·steps (mid-run, before every arm saturates) and the
  # per-rollout one at the rollouts plain GRPO spent by then; the table also shows a quarter and the end.
  c.compare_fraction = 0.5
  # The KL identities (f64): base success rates × inverse temperatures λ = 1/β on which the closed forms are checked.
  c.kl = ml_collections.ConfigDict(dict(n_p=200, lam_min=1e-3, lam_max=20.0, n_lam=50, lam_small=0.01,
                                        lam_plot=(0.1, 1.0, 2.0)))
  c.out_dir = "results/balanced_filtering" + {"cpu": "", "gpu": "_gpu", "smoke": "_smoke"}[preset]
  # Part B, the toy-suite transformer (rljax.training.curriculum_testbed; not at smoke): GRPO from one SFT start on
  # add + modchain levels 0-2, held-out on levels 0-3, 3 seeds: no filter, balanced (0, 1) and the narrow band
  # [0.25, 0.75], each filter refilling its batch from up to 4 prompt batches per step.
  c.transformer = None
  if preset != "smoke":
    c.transformer = curriculum_testbed_config(preset)
    c.transformer.arms = dict(
        none=dict(curriculum=dict(name="uniform")), balanced=dict(curriculum=dict(name="balanced")),
        narrow=dict(curriculum=dict(name="balanced", low=0.25, high=0.75, inclusive=(True, True))))
  return c
