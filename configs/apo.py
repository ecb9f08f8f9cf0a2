"""APO (View-R1): STCR and DADS against GRPO + KL, RL on one family, another from the SFT mixture held out.

    python -m rljax.run --config configs/apo.py:cpu --workdir results/apo     # 415 CPU-seconds: ≈ 7 min on 2 idle cores
    python -m rljax.run --config configs/apo.py:smoke --workdir /tmp/apo      # the tests
    python -m rljax.run --config configs/apo.py:gpu --workdir results/apo_gpu
"""

import ml_collections

from rljax.training.testbed import testbed_config


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = testbed_config(preset)  # ValueError for an unknown preset
  c.out_dir = f"results/apo_{preset}"
  # SFT on both families (the noisy start), RL on `task_rl` only; `heldout_task` is the untouched "general"
  # skill. STCR acts only on wrong answers longer than the right ones of their group, and this testbed has
  # few: every family's trace length is fixed by the prompt, the model learns it exactly, and the SFT noise
  # answers are as long as the right ones (1500 SFT steps: under 1% of the judged wrong answers are longer, on
  # add, modchain, sort or parity). Only an undertrained start overruns its traces: 250–300 mixed steps leave
  # 9–17% of `sort`'s wrong answers at levels 0–1 running 2–4 tokens long, but `add` then stays near 0.1.
  # The compromise here: `heldout_sft_steps` on the held-out family alone (a skill worth keeping), then 300 steps
  # on the mixture (`sft_weights` draws per arm of each family); the cpu start has 2% longer wrong answers.
  c.task.families = ("sort", "add")
  c.task_rl = "sort"
  c.heldout_task = "add"
  c.heldout_sft_steps = 1200
  c.sft_weights = ml_collections.ConfigDict({"sort": 1, "add": 1})
  c.sft.steps = 300
  # Arms: the `apo` preset with STCR / DADS switched on or off (grpo_kl = both off: GRPO with a k3 KL loss).
  c.arm_names = ("grpo_kl", "dads", "stcr", "apo")
  c.arms = ml_collections.ConfigDict({
      "grpo_kl": {"stcr": False, "dads": False},
      "dads": {"stcr": False, "dads": True},
      "stcr": {"stcr": True, "dads": False},
      "apo": {"stcr": True, "dads": True},
  })
  # Ours, not View-R1's: β = 1 (View-R1's 1e-3 changes nothing measurable on this testbed, and DADS only
  # reweights the KL term), and the STCR base b = 1.2 (View-R1's 1.00001 is sized for excess lengths of
  # thousands of tokens: at Δ = 4096 it gives s = 1.04; here Δ is a few tokens, and b = 1.2 gives s(3) = 1.42).
  c.beta = 1.0
  c.stcr_base = 1.2
  c.length_samples = 8  # samples per held-out prompt for the length / entropy statistics
  c.rl.steps = 100
  c.rl.eval_every = 50
  if preset == "smoke":
    c.arm_names = ("grpo_kl", "dads", "stcr", "apo")
    c.heldout_sft_steps = 0
    c.sft.update(steps=120, batch=32, lr=3e-3)
    c.rl.update(steps=12, prompts=8, group_size=8, lr=1e-3, eval_every=12)
    c.eval.update(k=2, per_arm=4)
    c.length_samples = 4
    c.log_every = 3
    c.ckpt_every = 100
  elif preset == "gpu":
    c.rl.update(steps=300, eval_every=50)  # sft.steps = 300 is the cpu model's overrunning point, unchecked here
  return c
