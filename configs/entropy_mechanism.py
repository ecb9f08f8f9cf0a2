"""Entropy collapse and covariance-based interventions on a softmax answer bandit (Cui et al. 2025).

    python -m rljax.run --config configs/entropy_mechanism.py --workdir results/entropy_mechanism   # cpu = full, 30 s
    python -m rljax.run --config configs/entropy_mechanism.py:full --workdir results/entropy_mechanism
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.n_prompts = 256
  c.n_answers = 32  # K
  c.dim = 16  # shared linear features: updates on one prompt move the others
  c.group_size = 8  # n answers per prompt per step
  c.steps = 400
  c.updates_per_batch = 4  # optimizer steps per sampled batch (off-policy after the first)
  c.lr = 0.05  # Adam
  c.seeds = 8
  # Arms, in plotting order: a policy loss name in rljax.losses and its keyword arguments. The
  # paper's defaults are Clip-Cov ratio 2e-4 (bounds 1, 5) and KL-Cov ratio 2e-3 for ~10⁶-token LLM
  # batches; on 256·8 = 2048 one-token responses they select one token, so the ratios are scaled
  # (Clip-Cov 1e-2 ≈ 20 tokens; at 2e-2 it detaches so many positive tokens that learning stalls).
  c.arm_names = ("grpo", "clip_higher", "clip_cov", "kl_cov")
  c.arms = ml_collections.ConfigDict({
      "grpo": {"loss": "ppo_clip", "clip_high": 0.2},
      "clip_higher": {"loss": "ppo_clip", "clip_high": 0.28},
      "clip_cov": {"loss": "clip_cov", "clip_ratio": 1e-2, "cov_lb": 1.0, "cov_ub": 5.0},
      "kl_cov": {"loss": "kl_cov", "kl_ratio": 2e-2, "kl_coef": 1.0},
  })
  c.fit_fraction = 1 / 3  # fit R = −a·e^H + b on the first third of the GRPO run, predict the end
  c.out_dir = "results/entropy_mechanism"
  if preset == "smoke":
    c.n_prompts, c.n_answers, c.steps, c.seeds = 64, 16, 120, 2
    c.out_dir = "results/entropy_mechanism_smoke"
  elif preset not in ("cpu", "full"):  # the full run is small enough for the cpu preset to be it
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
