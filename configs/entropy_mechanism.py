"""The entropy mechanism (Cui et al. 2025) on the toy-suite transformer (part B) and the softmax answer bandit (part A).

    python -m rljax.run --config configs/entropy_mechanism.py:cpu --workdir results/entropy_mechanism
    python -m rljax.run --config configs/entropy_mechanism.py:smoke --workdir /tmp/entropy_mechanism
    python -m rljax.run --config configs/entropy_mechanism.py:gpu --workdir results/entropy_mechanism_gpu

Presets: `smoke` (the tests, about 30 s), `cpu` (the main table: 3 seeds, under 15 minutes on 2 idle cores),
`gpu` (the testbed's larger decoder and batches).
"""

import ml_collections

from rljax.training.testbed import testbed_config


def _bandit(preset: str) -> ml_collections.ConfigDict:
  """Part A: GRPO and the interventions on the softmax answer bandit (`rljax.theory.pg.answer_bandit`)."""
  b = ml_collections.ConfigDict()
  b.n_prompts = 256
  b.n_answers = 32  # K
  b.dim = 16  # shared linear features: updates on one prompt move the others
  b.group_size = 8  # n answers per prompt per step
  b.steps = 400
  b.updates_per_batch = 4  # optimizer steps per sampled batch (off-policy after the first)
  b.lr = 0.05  # Adam
  b.seeds = 8
  # Arms, in plotting order: a policy loss name in rljax.losses and its keyword arguments. The paper's
  # Clip-Cov ratio 2e-4 (bounds 1, 5) and KL-Cov ratio 2e-3 are for ~10⁶-token LLM batches; on 256·8 = 2048
  # one-token responses they select one token, so the ratios are scaled (Clip-Cov 1e-2 ≈ 20 tokens; at 2e-2
  # it detaches so many positive tokens that learning stalls). Clip-Cov keeps the kernel's ε = 1 (the authors';
  # ε = 0.2 gives the same curves to within 0.05 nats here).
  # "grpo_sgd" is the theory's setting for ΔH ≈ −η·Cov: a fixed step (SGD) and one on-policy update per batch
  # (Adam rescales each coordinate's step, which breaks the proportionality but not the sign).
  b.arm_names = ("grpo", "clip_higher", "clip_cov", "kl_cov", "grpo_sgd")
  b.arms = ml_collections.ConfigDict({
      "grpo": {"loss": "ppo_clip", "clip_high": 0.2},
      "clip_higher": {"loss": "ppo_clip", "clip_high": 0.28},
      "clip_cov": {"loss": "clip_cov", "clip_ratio": 1e-2, "cov_lb": 1.0, "cov_ub": 5.0},
      "kl_cov": {"loss": "kl_cov", "kl_ratio": 2e-2, "kl_coef": 1.0},
      "grpo_sgd": {"loss": "ppo_clip", "clip_high": 0.2, "sgd_lr": 2.0},
  })
  if preset == "smoke":
    b.arm_names = ("grpo", "clip_cov", "kl_cov", "grpo_sgd")
    b.n_prompts, b.n_answers, b.steps, b.seeds = 64, 16, 120, 2
  return b


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = testbed_config(preset)  # raises on an unknown preset
  c.out_dir = "results/entropy_mechanism" + ("_smoke" if preset == "smoke" else "")
  # Part B: the arms on the toy-suite decoder, in plotting order. "grpo" is the authors' baseline recipe
  # (GRPO advantages, PPO-clip ε = 0.2, token-mean, no KL, no entropy bonus); "clip_higher" raises ε_high to 0.28
  # (DAPO); "clip_cov" and "kl_cov" are the presets of the same names with the ratios below.
  c.arm_names = ("grpo", "clip_cov", "kl_cov")  # + "clip_higher" at the gpu preset (the cpu budget fits three)
  c.clip_high = 0.28  # the clip_higher arm's ε_high
  # Clip-Cov: the paper detaches r = 2e-4 of the tokens with Cov in (1, 5) (ε_low = ε_high = 1). An update here sees
  # ~1300 tokens (16 prompts × 8 responses × ~10; r = 2e-4 would pick 1), so r = 2e-2 (~26 tokens) and the band is
  # the [90th, 99.9th] percentiles of the token covariances of the first rollouts from the SFT start (spec §3.4).
  c.clip_cov = ml_collections.ConfigDict(dict(ratio=2e-2, percentiles=(90.0, 99.9)))
  # KL-Cov: the paper penalises the top κ = 2e-3 (7B; 2e-4 for 32B) with β = 1; κ = 2e-2 here (~26 tokens).
  c.kl_cov = ml_collections.ConfigDict(dict(ratio=2e-2, coef=1.0))
  # Updates per rollout: `epochs` passes over `minibatches` group-aligned minibatches. KL-Cov's |log r| has gradient
  # sign(log r), and log r = 0 exactly at a rollout's first update, so its penalty needs a second one; the same for
  # every arm here. (The authors' recipes: 1 update per rollout for the baseline and KL-Cov, 8 for Clip-Cov, 4 in
  # 32b_kl_cov_mininbsz.sh. On this toy, 4 minibatches of 4 prompts learn less than whole-batch updates.)
  c.epochs = 2
  c.minibatches = 1
  c.fit_fraction = 1 / 3  # fit R = −a·e^H + b on the first third of the GRPO run's evaluations, predict the end
  c.log_every = 1  # every step's (ΔH, Cov) pair
  # Two whole-batch updates per rollout at 1.5e-4 learn as fast as one at 3e-4 (the testbed's); 1e-3 breaks the policy.
  c.rl.update(steps=80, lr=1.5e-4)
  c.bandit = _bandit(preset)
  if preset == "smoke":
    # The easiest arms, so that the tiny decoder starts right ~20 % of the time (sampled) after 300 SFT steps.
    c.task.update(families=("parity", "add"), difficulties=1)
    c.sft.update(steps=300, lr=3e-3)
    c.rl.update(steps=16, prompts=8, group_size=8, eval_every=4, lr=1e-3)
    c.eval.update(k=2, per_arm=8)
  elif preset == "gpu":
    c.arm_names = ("grpo", "clip_higher", "clip_cov", "kl_cov")
    c.rl.update(steps=300, group_size=8, lr=5e-5)  # the paper's n = 8; half the testbed's gpu lr for two updates
  return c
