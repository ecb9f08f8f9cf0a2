"""Policy optimisation as least-squares regression of relative rewards: REBEL and REFUEL.

For two responses a, b to the same prompt (or state), both sampled from the current iterate π_t,

    Δℓ = (log π_θ(a) − log π_t(a)) − (log π_θ(b) − log π_t(b)),    Δr = r(a) − r(b)
    L  = (Δℓ − η·Δr)²

η > 0 is the mirror-descent step size. Over a tabular policy that sees every pair the minimiser is
π_{t+1}(y) ∝ π_t(y)·exp(η·r(y)): L = 0 exactly when log π_θ/π_t − η·r is constant across responses.
This is the natural-policy-gradient step of REBEL's analysis.

Gradients flow into the policy log-probabilities only; the π_t log-probs and the rewards are
constants of the objective.

Metrics (stop-gradient batch means): `sign_align`, the fraction with sign(Δℓ) == sign(Δr);
`reg_residual`, the mean residual Δℓ − η·Δr; `reward_diff_mean`, mean Δr; and from `pairwise_loss`:
`margin_mean` (mean Δℓ), `reward_acc` (fraction Δℓ > 0), `chosen_reward` / `rejected_reward` (the
implicit rewards (1/η)·log π_θ/π_t of a and b) and `grad_weight_mean` (mean −∂L/∂Δℓ = −2·residual).
The reference code logs `sign_align` as mean(Δℓ > 0) with a the higher-reward ("chosen") response:
that is `reward_acc` here, and it equals `sign_align` whenever every Δr > 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.losses.preference import pairwise_loss
from rljax.losses.registry import register

Metrics = dict[str, jax.Array]


def _relative_regression(pa, pb, oa, ob, ra, rb, eta, reduction, names):
  checks.check_positive("eta", eta)
  checks.check_same_shape(1, **dict(zip(names, (pa, pb, oa, ob, ra, rb))))
  pa, pb, oa, ob, ra, rb = checks.as_compute(pa, pb, oa, ob, ra, rb)
  oa, ob, ra, rb = (jax.lax.stop_gradient(x) for x in (oa, ob, ra, rb))
  log_ratio_a, log_ratio_b = pa - oa, pb - ob
  delta_logratio = log_ratio_a - log_ratio_b
  target = eta * (ra - rb)
  # Implicit rewards (1/η)·log π_θ/π_t: at the optimum they equal r up to a per-prompt constant.
  loss, metrics = pairwise_loss(
      lambda h: (h - target) ** 2, delta_logratio, log_ratio_a / eta, log_ratio_b / eta, reduction
  )
  extra = {
      "sign_align": jnp.mean((jnp.sign(delta_logratio) == jnp.sign(ra - rb)).astype(pa.dtype)),
      "reg_residual": jnp.mean(delta_logratio - target),
      "reward_diff_mean": jnp.mean(ra - rb),
  }
  return loss, {**metrics, **checks.stop_metrics(extra)}


@register("rebel", kind="regression", reads=("logps_a", "logps_b", "old_logps_a", "old_logps_b", "rewards_a", "rewards_b"))
def rebel_loss(
    policy_logps_a: jax.Array,
    policy_logps_b: jax.Array,
    old_logps_a: jax.Array,
    old_logps_b: jax.Array,
    rewards_a: jax.Array,
    rewards_b: jax.Array,
    *,
    eta: float,
    reduction: str = "mean",
) -> tuple[jax.Array, Metrics]:
  """REBEL (Gao et al., "REBEL: Reinforcement Learning via Regressing Relative Rewards", 2024):

      L = ((log π_θ(a)/π_t(a) − log π_θ(b)/π_t(b)) − η·(r(a) − r(b)))²

  η is the step size of π_{t+1} ∝ π_t·exp(η·r). The reference code (ZhaolinGao/REBEL, REFUEL)
  writes `reg_diff = ratio_logprob − eta * (chosen_reward − reject_reward)`, so its `eta` is this η
  (default 1.0). The paper's form ((1/η)·Δℓ − Δr)² is this loss divided by η²: same minimiser,
  gradients scaled by 1/η².

  Args:
    policy_logps_a, policy_logps_b: `f[B]` log π_θ(y|x) of the two responses (summed over tokens).
    old_logps_a, old_logps_b: `f[B]` log π_t(y|x) under the sampling iterate; stop-gradient.
    rewards_a, rewards_b: `f[B]` rewards; stop-gradient. Only Δr matters, so any per-prompt
      baseline cancels.
    eta: step size η > 0.
    reduction: "mean" (default), "sum" or "none" (per-example `f[B]`).
  """
  names = ("policy_logps_a", "policy_logps_b", "old_logps_a", "old_logps_b", "rewards_a", "rewards_b")
  return _relative_regression(
      policy_logps_a, policy_logps_b, old_logps_a, old_logps_b, rewards_a, rewards_b, eta, reduction, names
  )


@register("refuel", kind="regression", reads=("logps_a", "logps_b", "old_logps_a", "old_logps_b", "q_a", "q_b"))
def refuel_loss(
    policy_logps_a: jax.Array,
    policy_logps_b: jax.Array,
    old_logps_a: jax.Array,
    old_logps_b: jax.Array,
    q_a: jax.Array,
    q_b: jax.Array,
    *,
    eta: float,
    reduction: str = "mean",
) -> tuple[jax.Array, Metrics]:
  """REFUEL (Gao et al., "Regressing the Relative Future: Efficient Policy Optimization for
  Multi-turn RLHF", 2024): the REBEL kernel at a turn h, with Monte-Carlo Q-values as rewards.

      Δℓ_h = log π_θ(a_h|s_h)/π_t(a_h|s_h) − log π_θ(a′_h|s_h)/π_t(a′_h|s_h)
      L = (Δℓ_h − η·(Q̂(s_h, a_h) − Q̂(s_h, a′_h)))²

  The log-probs cover only the turn-h response tokens (mask the rest with `sequence_logps`), both
  branches share the state s_h rolled in by π_t, and Q̂ is the Monte-Carlo return of each branch
  completed by π_t and the user simulator. `eta` is the code's `refuel.eta` (default 1.0).

  Args:
    policy_logps_a, policy_logps_b: `f[B]` turn-h log π_θ(a|s_h).
    old_logps_a, old_logps_b: `f[B]` turn-h log π_t(a|s_h); stop-gradient.
    q_a, q_b: `f[B]` Monte-Carlo Q-value estimates; stop-gradient.
    eta: step size η > 0.
    reduction: "mean" (default), "sum" or "none".
  """
  names = ("policy_logps_a", "policy_logps_b", "old_logps_a", "old_logps_b", "q_a", "q_b")
  return _relative_regression(
      policy_logps_a, policy_logps_b, old_logps_a, old_logps_b, q_a, q_b, eta, reduction, names
  )

