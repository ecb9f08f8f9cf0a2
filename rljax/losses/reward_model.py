"""Reward-model training losses on scalar reward-model outputs.

Both losses are the Bradley–Terry negative log-likelihood of the pairwise `pairwise_loss` kernel,

    L = −log σ(r_c − r_r − m) = softplus(−(r_c − r_r − m)),

applied to rewards r_φ produced by the model being trained: gradients flow into both reward inputs
(∂L/∂r_c = −σ(−(r_c − r_r − m)) = −∂L/∂r_r); the margin m is a constant.

Metrics (stop-gradient batch means): `reward_acc`, the accuracy (fraction with r_c > r_r, margin not
applied); `margin_mean`, the mean reward margin r_c − r_r; `chosen_reward` and `rejected_reward`,
the mean rewards; `grad_weight_mean`, mean σ(−(r_c − r_r − m)).
"""

from __future__ import annotations

import jax

from rljax import checks
from rljax.losses.preference import pairwise_loss
from rljax.losses.registry import register

Metrics = dict[str, jax.Array]


@register("bt_reward", kind="reward_model", reads=("chosen_rewards", "rejected_rewards"))
def bt_reward_loss(
    chosen_rewards: jax.Array,
    rejected_rewards: jax.Array,
    *,
    margin: jax.Array | None = None,
    reduction: str = "mean",
) -> tuple[jax.Array, Metrics]:
  """Bradley–Terry reward-model loss (Bradley & Terry 1952; Ouyang et al., "Training language models
  to follow instructions with human feedback", 2022), with the optional per-pair margin of Touvron et
  al., "Llama 2: Open Foundation and Fine-Tuned Chat Models", 2023:

      L = softplus(−(r_c − r_r − m))

  Same value as TRL's `RewardTrainer` (`-logsigmoid(r_c - r_r - margin)`).

  Args:
    chosen_rewards, rejected_rewards: `f[B]` scalar rewards r_φ(x, y) of the preferred and the
      dispreferred response; both receive gradients.
    margin: optional `f[B]` margin m (e.g. from graded preference strength), stop-gradient; 0 if None.
    reduction: "mean" (default), "sum" or "none" (per-example `f[B]`).
  """
  checks.check_same_shape(1, chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards)
  if margin is None:
    rc, rr = checks.as_compute(chosen_rewards, rejected_rewards)
    m = 0.0
  else:
    checks.check_same_shape(1, chosen_rewards=chosen_rewards, margin=margin)
    rc, rr, m = checks.as_compute(chosen_rewards, rejected_rewards, margin)
    m = jax.lax.stop_gradient(m)
  # The margin enters the link, not h, so `margin_mean` and `reward_acc` describe the rewards alone.
  return pairwise_loss(lambda h: jax.nn.softplus(m - h), rc - rr, rc, rr, reduction)


@register("polar", kind="reward_model", reads=("same_rewards", "diff_rewards"))
def polar_loss(
    r_same: jax.Array, r_diff: jax.Array, *, reduction: str = "mean"
) -> tuple[jax.Array, Metrics]:
  """POLAR policy-discriminative pre-training (Dou et al., "Pre-Trained Policy Discriminators are
  General Reward Models", InternLM, 2025): `bt_reward_loss` with "same policy" as the chosen side.

      L = softplus(−(r_φ(x, y_A, y_A′) − r_φ(x, y_A, y_B)))

  The reward model is conditioned on a reference trajectory y_A from policy A; y_A′ is a second
  sample from A and y_B a sample from another policy B ≠ A. Minimising L trains r_φ(x, y_ref, y) to
  score how likely y is to come from the policy that produced y_ref, i.e. a learned policy distance.
  Preference fine-tuning uses the same kernel on (reference, chosen, rejected) triples, and in RFT
  r_φ(x, y*, y) with a reference answer y* is the reward.

  Args:
    r_same: `f[B]` r_φ(x, y_A, y_A′), the candidate drawn from the reference's policy.
    r_diff: `f[B]` r_φ(x, y_A, y_B), the candidate drawn from a different policy.
    reduction: "mean" (default), "sum" or "none".

  Metrics as `bt_reward_loss`; `reward_acc` is the same-vs-different discrimination accuracy.
  """
  return bt_reward_loss(r_same, r_diff, reduction=reduction)
