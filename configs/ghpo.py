"""GHPO — Guided Hybrid Policy Optimization (arXiv 2507.10628) on the skill chain (part A).

    python -m rljax.run --config configs/ghpo.py:cpu --workdir results/notebooks/ghpo_cpu
    python -m rljax.run --config configs/ghpo.py:smoke --workdir /tmp/ghpo
    python -m rljax.run --config configs/ghpo.py:gpu --workdir results/ghpo_gpu

Presets: `smoke` (the tests: 4 seeds, 150 steps), `cpu` (the reported run: 16 seeds, 300 steps, about two
minutes on 2 idle cores), `gpu` (64 seeds, 600 steps).
"""

import ml_collections

from rljax.theory.curricula.chain_rl import chain_config
from rljax.training.curriculum_testbed import curriculum_testbed_config


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  if preset not in ("smoke", "cpu", "gpu"):
    raise ValueError(f"unknown preset {preset!r}; use smoke, cpu or gpu")
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seeds = 16
  # Arms, in plotting order: plain GRPO (uniform over the depths), GRPO + balanced online difficulty filtering
  # (keep groups with 0 < p̂ < 1, refill from a pool of refill_factor·B candidates; rljax.curricula.difficulty)
  # and GHPO (stages ω = 0.25, 0.5, 0.75, hard-coded in the reference trainer; start_hint_step = 0).
  c.arm_names = ("grpo", "balanced", "ghpo")
  c.curricula = ml_collections.ConfigDict({
      "grpo": {"name": "uniform"},
      "balanced": {"name": "balanced"},
      "ghpo": {"name": "ghpo", "omegas": (0.25, 0.5, 0.75)},
  })
  # Part A, the skill chain (spec §4.4): only deep problems (depths 6..10) in the training pool, θ_s = −2 at init
  # (σ = 0.12, P(solved | d = 6) = 3·10⁻⁶: no un-hinted group ever succeeds). At θ0 = −1 (P ≈ 4·10⁻⁴) plain GRPO
  # escapes within ~100 steps: Adam turns one lucky success into a full-size step on every skill.
  c.chain = chain_config(train_depths=(6, 7, 8, 9, 10), eval_depths=(6, 7, 8, 9, 10), theta0=-2.0,
                         prompts=32, group_size=8, lr=0.05, steps=300, refill_factor=4)
  c.window = 0.1  # early / late averages over the first / last 10 % of the steps
  # "Deep first": skills 0..2 are forced at every ω ≥ 0.5 stage (⌊0.5·6⌋ = 3), so only the un-hinted and ω = 0.25
  # rollouts train them; skills 4..9 are the model's own even at ω = 0.75 (⌊0.75·6⌋ = 4), where hard groups start.
  c.early_skills = (0, 1, 2)
  c.deep_skills = (4, 5, 6, 7, 8, 9)
  c.out_dir = "results/ghpo"
  if preset == "smoke":
    c.seeds = 4
    c.chain.steps = 150
    c.out_dir = "results/ghpo_smoke"
  elif preset == "gpu":
    c.seeds = 64
    c.chain.steps = 600
    c.out_dir = "results/ghpo_gpu"
  # Part B, the toy-suite transformer (rljax.training.curriculum_testbed; not at smoke): SFT on add + modchain levels
  # 0-1 only, then GRPO on levels 2-3 only (the too-hard pool), 3 seeds; held-out un-hinted on levels 0-3. GHPO's
  # hinted prompts put ⌊ω·|trace|⌋ reference-trace tokens after <think> (Suite.hinted).
  c.transformer = None
  if preset != "smoke":
    c.transformer = curriculum_testbed_config(preset)
    top = c.transformer.task.difficulties
    c.transformer.curricula.update(sft_levels=tuple(range(top // 2)), train_levels=tuple(range(top // 2, top)))
    c.transformer.arms = {arm: dict(curriculum=c.curricula[arm].to_dict()) for arm in ("grpo", "balanced", "ghpo")}
  return c
