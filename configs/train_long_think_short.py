"""Train Long, Think Short (Hammoud et al. 2025): a length-budget curriculum for GRPO.

    python -m rljax.run --config configs/train_long_think_short.py:cpu --workdir results/train_long_think_short
    python -m rljax.run --config configs/train_long_think_short.py:smoke --workdir /tmp/train_long_think_short

Presets: `smoke` (the tests, a few seconds of compute), `cpu` (the reported run: 32 seeds, well under a minute on
2 cores), `gpu` (256 seeds). Part A (`chain`) is the spec's strategy toy (`rljax.theory.curricula.strategy_toy`),
not the skill chain; the transformer comparison on the toy suite is part B below.
"""

import ml_collections

from rljax.theory.curricula.strategy_toy import toy_config
from rljax.training.curriculum_testbed import curriculum_testbed_config


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  # Part A: three strategies (220, 140, 70) ± 10 think tokens, P(correct | k) = σ(θ − h_k), softmax policy over
  # k, GRPO advantages (G = 8, B = 64), 400 SGD steps on θ and the logits.
  t = toy_config()
  t.arms = ("exponential", "linear", "fixed")  # 256 → 87 step-wise (γ ≈ 0.7, T_d = 100), 256 → 87 linear, 87
  t.b0 = 256
  t.b_final = 87
  t.n_decays = 3  # budgets change at steps 100, 200, 300 of 400
  t.shape = "triangular"
  # Reward weightings (w_c, w_l, w_f): rljax's default (correctness-heavy, the main setting) and the paper's
  # length-heavy ablation (§4.3). The main-run weights of the paper are not known (reference code not stored).
  t.weightings = ml_collections.ConfigDict({"correctness_heavy": (0.6, 0.3, 0.1), "length_heavy": (0.3, 0.6, 0.1)})
  t.headline_weighting = "correctness_heavy"
  # h_short sweep: the spec's h = (−1, 1, 3) and its documented remedy "if the gap does not appear, increase
  # h_short" (4, 5); the headline reads the spec's value and the largest one.
  t.h_short = (3.0, 4.0, 5.0)
  t.seeds = 32
  c.chain = t
  c.x64 = False
  c.out_dir = "results/train_long_think_short"

  if preset == "smoke":
    t.seeds = 8
    t.h_short = (3.0, 5.0)
    t.weightings = ml_collections.ConfigDict({"correctness_heavy": (0.6, 0.3, 0.1)})
    c.out_dir = "results/train_long_think_short_smoke"
  elif preset == "gpu":
    t.seeds = 256
  elif preset != "cpu":
    raise ValueError(f"unknown preset {preset!r}; use smoke, cpu or gpu")
  # Part B, the toy-suite transformer (rljax.training.curriculum_testbed; not at smoke): GRPO from one SFT start
  # on the budget reward of the response length (about 10 tokens from the SFT start), correctness-heavy weights;
  # the budget goes 12 → 6 in three step-wise decays (the paper's 256 → 87 is about the base model's length → a
  # third), against a fixed budget of 6. 3 seeds, held-out on levels 0-3. (Rounded to whole tokens, the linear
  # schedule 12 → 6 is the same 12/10/8/6 as the exponential one, so it is not a separate arm here.)
  c.transformer = None
  if preset != "smoke":
    c.transformer = curriculum_testbed_config(preset)
    budget = lambda b0: dict(curriculum=dict(name="length_budget", b0=b0, b_final=6, kind="exponential"))
    c.transformer.arms = dict(fixed=budget(6), exponential=budget(12))
  return c
