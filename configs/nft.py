"""NFT against GRPO, RFT and DAPO's clip-higher on the toy suite, off-policy (4 minibatch updates per rollout
batch), from one noisy SFT start (Chen et al. 2025); plus the on-policy NFT ≡ GRPO gradient identity on the
decoder.

    python -m rljax.run --config configs/nft.py:cpu --workdir results/nft       # 4 arms × 3 seeds
    python -m rljax.run --config configs/nft.py:gpu --workdir results/nft_gpu

Presets: `smoke` (the tests), `cpu` (the main table), `gpu` (the testbed's gpu sizes).
"""

import ml_collections

from rljax.training.testbed import testbed_config

ARMS = ("nft", "grpo", "rft", "dapo")


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = testbed_config(preset)  # raises ValueError on an unknown preset
  c.out_dir = f"results/nft_{preset}"
  # Off-policy: each rollout batch is split into `minibatches` group-aligned minibatches, one update each
  # (the released scripts: 512 prompts per rollout, minibatches of 32 prompts, 1 epoch).
  c.minibatches = 4
  c.epochs = 1
  # Four Adam updates per rollout batch at the testbed's on-policy lr (3e-4) move the policy ~4× as far per
  # batch: at cpu size every arm then lost its greedy accuracy within 10 steps (0.77 → ~0.5) and none gained.
  # The per-update lr is scaled down accordingly.
  c.rl.lr = 1e-4
  # Arms: a preset of rljax.algorithms and overrides of its fields (nested dicts merge into the preset).
  # Every arm is KL-free and draws one prompt batch per step (the experiment sets
  # dynamic_sampling.max_num_gen_batches = 1: no refill), so all see the same prompts and compute; dynamic
  # sampling (NFT, DAPO) then only masks the groups whose rewards are all equal.
  c.arm_names = ARMS
  c.arms = ml_collections.ConfigDict({
      "nft": dict(preset="nft", overrides={}),  # the released scripts' values (see the preset's notes)
      "grpo": dict(preset="grpo", overrides=dict(kl=dict(coef=0.0, where="none"))),
      # RFT as the released scripts define it: NFT with neg_weight = 0 (positives only, ratio-weighted).
      "rft": dict(preset="nft", overrides=dict(loss_kwargs=dict(neg_weight=0.0))),
      "dapo": dict(preset="dapo", overrides=dict(kl=dict(coef=0.0, where="none"))),  # clip-higher ε_high 0.28
  })
  # The on-policy identity is checked on `identity_prompts` prompts of the SFT start's rollouts.
  c.identity_prompts = 16
  c.rl.steps = 100
  if preset == "smoke":
    c.sft.steps = 300
    c.rl.update(steps=12, prompts=8, group_size=4, eval_every=4, seeds=(0,))
    c.eval.update(k=2, per_arm=16)
    c.log_every, c.ckpt_every = 2, 12
    c.identity_prompts = 8
  elif preset == "gpu":
    c.sft.steps = 1500
    c.rl.steps = 300
    c.identity_prompts = 64
  return c
