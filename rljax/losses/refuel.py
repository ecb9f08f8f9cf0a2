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

REFUEL's data protocol (where the two branches split, how Q̂ is formed) is documented on
`refuel_loss`; `refuel_branch_points` and `refuel_q_values` are its sampling and scoring rules.
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


@register("rebel", kind="regression",
          reads=("logps_a", "logps_b", "old_logps_a", "old_logps_b", "rewards_a", "rewards_b"))
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

  The log-probs cover only the turn-h assistant tokens (mask the rest with `sequence_logps`). Data
  protocol of the released code (ZhaolinGao/REFUEL; `refuel_branch_points` and `refuel_q_values`):
  * Roll-in: both dialogues of a pair share the conversation up to and including the user message
    of turn h (0-based), generated by π_t (and the user simulator); from there each branch is
    generated by π_t independently. Setting one (`setting_one/generate.py`): a full H-turn dialogue
    A, then L ~ U{0..H−1}, h ~ U{0..L}, and branch B = A[:2h+1] regenerated to H turns under another
    seed. Setting two (`setting_two/*/refuel.py`, `second_generate`): h ~ U{0..n−1} for a dialogue
    with n user turns (taken from the dataset), the second generation regenerating turns h..n−1.
  * Q̂: setting one (`setting_one/rank.py`, `tokenize_mask.py`) scores each branch *once*, with the
    ArmoRM score of the dialogue truncated after turn L (`reward[L] = rm(dialogue[:2(L+1)])`), not a
    sum of per-turn rewards; the pair is ordered chosen = higher Q̂ (ties: branch B), and dropped when
    a reward is invalid (−99999), the turn-h responses are identical, or a dialogue exceeds 2048
    tokens. Setting two scores the full conversation with the RM, replaces the score by
    `penalty_reward_value` when a response never emitted EOS (code default −2; README −10 for HH,
    −4 for UltraInteract), and subtracts `kl_coef`·Σ_turn-h (log π_t − log π_ref) (README 0.05 for
    HH, 0 for UltraInteract); pairs stay in generation order (the loss is a ↔ b symmetric).
  * All log-probs (π_θ and π_t) are of temperature-scaled logits, logits / T with T the sampling
    temperature (`task.temperature`: 0.8 in setting one, 1.0 by default in setting two).
  * η: `eta` is the code's `refuel.eta` (`REFUELHParams.eta = 1.0` in both settings), applied as
    `ratio_logprob − eta * (chosen_reward − reject_reward)`. The README's setting-one command passes
    `--rebel.eta 1e3`, a flag the script's `Args` does not define (its field is `refuel.eta`; tyro
    refuses unknown flags), and the setting-two commands pass `--rebel.eta 1.0`. Which η the paper's
    runs used is not confirmed [M], so `eta` has no default here.
  * Optional reward whitening (`refuel.whiten_rewards`, default False) is not part of this kernel.

  Args:
    policy_logps_a, policy_logps_b: `f[B]` turn-h log π_θ(a|s_h).
    old_logps_a, old_logps_b: `f[B]` turn-h log π_t(a|s_h); stop-gradient.
    q_a, q_b: `f[B]` Monte-Carlo Q-value estimates (`refuel_q_values`); stop-gradient.
    eta: step size η > 0.
    reduction: "mean" (default), "sum" or "none".
  """
  names = ("policy_logps_a", "policy_logps_b", "old_logps_a", "old_logps_b", "q_a", "q_b")
  return _relative_regression(
      policy_logps_a, policy_logps_b, old_logps_a, old_logps_b, q_a, q_b, eta, reduction, names
  )



def refuel_branch_points(
    key: jax.Array, num_turns, *, setting: str = "one", shape: tuple[int, ...] = ()
) -> tuple[jax.Array, jax.Array]:
  """REFUEL's roll-in point: `(L, h)` int32, the scored dialogue length index and the branch turn.

      setting "one"  L ~ U{0, …, H−1},  h ~ U{0, …, L}       (`setting_one/generate.py`:
                     `np.random.choice(num_turns)`, then `np.random.randint(0, sampled_len + 1)`)
      setting "two"  h ~ U{0, …, n−1},  L = n − 1              (`setting_two/*/refuel.py`:
                     `torch.randint(high=num_turn)`; the whole conversation is scored)

  Turns are 0-based: the shared prefix is the conversation up to and including the user message of
  turn h (messages[:2h+1]); the regressed response is the assistant message of turn h.

  Args:
    key: PRNG key.
    num_turns: H (an int, setting one) or the per-dialogue number of user turns n (an int or an int
      array, setting two); must be ≥ 1.
    setting: "one" or "two".
    shape: batch shape when `num_turns` is a scalar (an array `num_turns` sets the shape itself).
  """
  checks.check_choice("setting", setting, ("one", "two"))
  n = jnp.asarray(num_turns, jnp.int32)
  n_np = checks.concrete_array(n)
  if n_np is not None and n_np.size and n_np.min() < 1:
    raise ValueError(f"`num_turns` must be >= 1, got {n_np.min()}.")
  if setting == "one" and n.ndim != 0:
    raise ValueError("`num_turns` must be a scalar H in setting 'one' (every dialogue has H turns).")
  shape = tuple(shape) if n.ndim == 0 else n.shape
  k_len, k_turn = jax.random.split(key)
  if setting == "one":
    length = jax.random.randint(k_len, shape, 0, n, dtype=jnp.int32)
  else:
    length = jnp.broadcast_to(n - 1, shape).astype(jnp.int32)
  turn = jax.random.randint(k_turn, shape, 0, length + 1, dtype=jnp.int32)
  return length, turn


def refuel_q_values(
    scores: jax.Array,
    *,
    truncated: jax.Array | None = None,
    penalty: float | None = None,
    turn_logps: jax.Array | None = None,
    turn_ref_logps: jax.Array | None = None,
    kl_coef: float = 0.0,
) -> jax.Array:
  """Q̂ of each REFUEL branch, `f[B]` (stop-gradient), from its reward-model score.

      Q̂ = where(truncated, penalty, score) − kl_coef · (Σ_turn-h log π_t − Σ_turn-h log π_ref)

  Setting one passes only `scores` (the ArmoRM score of the branch truncated after turn L): Q̂ is that
  score. Setting two (`setting_two/*/refuel.py`, steps 3–5 after the rollouts) passes `truncated`
  (the response never emitted EOS), `penalty` (`task.penalty_reward_value`) and the turn-h summed
  log-probs of π_t and π_ref with `kl_coef` (`reward.kl_coef`).
  """
  checks.check_nonnegative("kl_coef", kl_coef)
  checks.check_same_shape(1, scores=scores)
  (q,) = checks.as_compute(scores)
  if truncated is not None:
    if penalty is None:
      raise ValueError("`penalty` is required with `truncated` (the score given to truncated responses).")
    checks.check_same_shape(1, scores=scores, truncated=truncated)
    q = jnp.where(truncated, jnp.asarray(penalty, q.dtype), q)
  if (turn_logps is None) != (turn_ref_logps is None):
    raise ValueError("`turn_logps` and `turn_ref_logps` go together (the turn-h KL to π_ref).")
  if turn_logps is not None:
    checks.check_same_shape(1, scores=scores, turn_logps=turn_logps, turn_ref_logps=turn_ref_logps)
    lp, ref_lp = checks.as_compute(turn_logps, turn_ref_logps)
    q = q - kl_coef * (lp - ref_lp).astype(q.dtype)
  return jax.lax.stop_gradient(q)
