"""OREAL on the toy suite: RFT vs GRPO vs OREAL without and with its token-level reward model (Lyu et al. 2025).

    python -m rljax.run --config configs/oreal.py:cpu --workdir results/oreal      # the table, 3 seeds
    python -m rljax.run --config configs/oreal.py:gpu --workdir results/oreal_gpu

Presets: `smoke` (the tests), `cpu` (the shared testbed's cpu sizes: add + modchain at 3 levels, a d = 64
decoder, 100 RL steps of 16 prompts × 8 samples, 3 seeds) and `gpu` (the testbed's gpu sizes).
"""

import ml_collections

from rljax.training.testbed import testbed_config


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = testbed_config(preset)  # ValueError for an unknown preset
  c.out_dir = "results/oreal"
  # Arms, in table order: an algorithm preset of rljax.algorithms, overrides merged into it, and whether
  # the token-level reward model (rljax.training.token_rm) trains alongside and weights the loss.
  # RFT is OREAL's kernel reduced to behaviour cloning on the correct responses (token-mean NLL, no
  # negatives, no KL, no filter); responses of all-correct groups have A = 0 under RLOO and are left out.
  c.arm_names = ("rft", "grpo", "oreal", "oreal_rm")
  c.arms = ml_collections.ConfigDict({
      "rft": dict(preset="oreal", token_rm=False, overrides=dict(
          loss_kwargs=dict(neg_factor=0.0, pg_weight=0.0, sft_mult_adv=False), kl=dict(coef=0.0),
          filter_trajectory=False)),
      "grpo": dict(preset="grpo", token_rm=False, overrides=dict()),
      "oreal": dict(preset="oreal", token_rm=False, overrides=dict()),
      "oreal_rm": dict(preset="oreal", token_rm=True, overrides=dict()),
  })
  # The token RM (a copy of the SFT policy with a scalar head). The released trainer: RM lr 4 × the actor's
  # (2e-6 vs 5e-7; here 4 × rl.lr), actor frozen for the first 10 of 90 steps, thresholds 0.5, weight decay
  # 0.01, and the RM trains on the kept pairs. Ours: it trains on every sampled response (`rm_data="all"`):
  # the release's 64 prompts per step give its RM 128 labels a step; our 16 prompts × 8 samples give 128 only
  # when all count (on the kept pairs alone it stays at chance within 100 steps here).
  c.token_rm = ml_collections.ConfigDict(dict(lr=4 * c.rl.lr, threshold=0.5, freeze_steps=10, weight_decay=0.01,
                                              rm_data="all"))
  # Localisation: k samples per held-out problem of `family` (its reference completion is unique, so the
  # first wrong step of a wrong response is where it leaves the reference).
  c.loc = ml_collections.ConfigDict(dict(family="modchain", k=8))
  # The exact best-of-N check: K answers, pass rates and N values (enumerated exhaustively up to `enum_max`).
  c.bon = ml_collections.ConfigDict(dict(answers=5, correct=2, n=(1, 2, 3, 4, 6, 8, 16), enum_max=6))
  if preset == "smoke":
    # The pipeline at the smallest size: a little SFT, three RL steps per arm (the trends are the cpu run's).
    c.sft.steps = 150
    c.rl.update(steps=3, prompts=8, group_size=4, eval_every=3)
    c.token_rm.freeze_steps = 1
    c.loc.k = 4
    c.bon.n = (1, 2, 4, 8)
    c.bon.enum_max = 4
  elif preset == "gpu":
    c.token_rm.freeze_steps = 30
  return c
