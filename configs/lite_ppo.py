"""Lite PPO's tricks on the toy suite + small decoder (Liu, Wang et al. 2025, "Tricks or Traps?").

    python -m rljax.run --config configs/lite_ppo.py:cpu --workdir results/lite_ppo    # ≤ 7 min on 2 idle cores
    python -m rljax.run --config configs/lite_ppo.py:gpu --workdir results/lite_ppo_gpu

Presets: `smoke` (the tests: one tier, two steps), `cpu` (the main table: the sweep at ONE seed and 30 RL
steps per cell, 27 arms; the Lite PPO / GRPO / PPO comparison at 3 seeds and 60 steps) and `gpu` (tiers at
levels 0, 2, 4 of the 5-level suite, 3 seeds everywhere, 150 / 300 steps). The recorded cpu run took 381 s
of CPU time (user + sys), i.e. at most ~6.5 minutes on 2 idle cores (21 minutes of wall time on the shared,
loaded machine); the sweep's single seed is what the 15-minute budget was sized for, so its cells resolve
only differences of about one standard error (the table prints it).
"""

import ml_collections

from rljax.training.testbed import testbed_config


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = testbed_config(preset)  # ValueError on an unknown preset
  c.out_dir = f"results/lite_ppo_{preset}"
  # SFT checkpoints every 250 steps (the testbed's 20 would write 75 checkpoints); an RL phase saves at its end.
  c.ckpt_every = 250
  c.rl_log_every = 1  # every RL step is logged: the max gradient norm is over all of them
  # The sweep: normalisation × difficulty tier × reward scale, then the aggregation trick. A tier trains on
  # level `levels[i]` of every family (the arms of that level) from the shared SFT start; held-out accuracy
  # is read on the same level. Normalisations (experiments.lite_ppo.NORMS): group (GRPO: group mean and
  # std), batch (batch mean and std), group_mean (group mean, no std: Dr. GRPO), lite (group mean, batch
  # std: Lite PPO). Scales (experiments.lite_ppo.SCALES): "01" the verifier's {0, 1}, "pm1" 2r − 1 ∈ {−1, 1}.
  # Every sweep arm is the lite_ppo preset (PPO-clip, no KL) with the normalisation swapped in; the
  # aggregation arms are Lite PPO with `aggs[1:]` instead of token-mean, at scale "01".
  c.sweep = ml_collections.ConfigDict(dict(
      tiers=("easy", "medium", "hard"), levels=(0, 1, 2), norms=("group", "batch", "group_mean", "lite"),
      scales=("01", "pm1"), aggs=("token-mean", "seq-mean-token-mean"), steps=30, seeds=(0,),
      tie_se=1.0))  # "tied with the best": within tie_se standard errors of the difference of two accuracies
  # The headline comparison: presets of rljax.algorithms (ppo trains an ActorCritic), on all training arms.
  c.compare = ml_collections.ConfigDict(dict(algorithms=("lite_ppo", "grpo", "ppo"), steps=60, seeds=(0, 1, 2),
                                             eval_every=20))
  if preset == "smoke":
    # 300 SFT steps: the 1-layer decoder then gets some level-0 problems right, so the first RL batch (8
    # prompts × 4) has mixed groups, i.e. non-zero advantages, in every arm. One tier, no group_mean arm
    # (its scaling with the reward is checked on the kernel): every RL arm costs its own compilation.
    c.sft.update(steps=300, batch=32, lr=3e-3)
    c.rl.update(prompts=8, group_size=4)
    c.sweep.update(tiers=("easy",), levels=(0,), norms=("group", "batch", "lite"), steps=2)
    c.compare.update(steps=1, seeds=(0,), eval_every=1)
    c.ckpt_every = 100
  elif preset == "gpu":
    c.sweep.update(tiers=("easy", "medium", "hard"), levels=(0, 2, 4), steps=150, seeds=(0, 1, 2))
    c.compare.update(steps=300, seeds=(0, 1, 2), eval_every=25)
  return c
