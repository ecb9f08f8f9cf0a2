"""SEC: Self-Evolving Curriculum (Chen, Lu, Kim, Zhang, Tang, Piché, Gontier, Bengio, Kamalloo 2025; arXiv 2505.14970).

The K problem categories (difficulty levels, domains, or their cells) are the arms of a non-stationary bandit.
Each step the batch's B prompt slots draw their arm i.i.d. from a Boltzmann policy over the values Q, and after
the rollouts every arm's value moves towards the mean absolute advantage its prompts produced:

    π_t(c)    = exp(Q_t(c)/τ) / Σ_c' exp(Q_t(c')/τ)                             (Q_0 = 0: uniform)
    r_t(c)    = (1/|I_c|) Σ_{i∈I_c} (1/G) Σ_j |A_{i,j}|      I_c: valid prompts of arm c in the batch
    Q_{t+1}(c) = α·r_t(c) + (1 − α)·Q_t(c)                   absent="decay": r_t(c) := 0 when I_c = ∅
    Q_{t+1}(c) = Q_t(c)                    for I_c = ∅,      absent="keep"

TD(0) on a single-state bandit has no bootstrap term, so the update is an exponential moving average with
step α. For binary rewards with k of G correct, p̂ = k/G, and GRPO's Bessel-corrected std (ε = 0),
(1/G) Σ_j |A_j| = 2·sqrt((G−1)/G)·sqrt(p̂(1−p̂)) for 0 < k < G and 0 otherwise: SEC favours the categories the
policy currently solves about half the time. `reward="mean_abs_adv_unnormalised"` uses A = r − mean_g r instead
(Dr.GRPO / RLOO style; group mean of |A| = 2p̂(1−p̂), same argmax), computed here from `Feedback.rewards`.

Options and defaults (`make("sec", K, alpha=..., ...)`):
  alpha = 0.5         `bandit.lr` of every reported run (the config file's default 0.1 is always overridden)
  temperature = 1.0   Countdown; the paper uses 0.4 for MATH and 0.2 for the 2-D (domain × difficulty) runs
  reward = "mean_abs_adv" | "mean_abs_adv_unnormalised"     (`bandit.objective=adv` in every reported run)
  absent = "decay" | "keep"

What the reference code confirms (Vincent-La/cofa, `sec/verl/verl/utils/auto_curriculum/priority.py`,
`BanditPriority.update` / `update_q_values`, read for this module):
  * Q starts at `np.zeros(num_arms)`; probabilities are `exp(q/τ)/Σ exp(q/τ)`; arms are drawn with
    `np.random.choice(K, size=B, p=π)`.
  * The arm reward is the mean over all of the category's responses of each response's token-masked mean
    |advantage|; with G responses per prompt this equals the per-prompt mean above.
  * Every arm is updated every step: `new_qs = np.zeros(K)` is filled only for the categories in the batch and
    `q = (1 − lr)·q + lr·new_qs`, so an absent arm decays by (1 − α). `absent="decay"` (the default) is this rule
    bit for bit (`tests/curricula/test_sec.py` replays a NumPy port of it); `absent="keep"` is the alternative
    reading of "update the sampled arms". The paper body was not available here: its own wording for absent
    arms stays unverified (spec open item); the code is what produced the reported numbers.
  * `objective=unnormalized_adv` takes the trainer's un-normalised advantage r − mean_g r.
Differences kept on purpose: the reference draws each category's problems without replacement from a shuffled
queue; the rljax loops draw them with replacement. `Feedback.valid` drops padded or filtered prompts from r_t(c).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import losses
from rljax.curricula import bandit, base

REWARDS = ("mean_abs_adv", "mean_abs_adv_unnormalised")
ABSENT = ("decay", "keep")


def init(num_arms: int) -> dict[str, jax.Array]:
  """`{"q": f32[K] zeros, "counts": i32[K] zeros (updates each arm received), "step": i32[]}`."""
  return {**base.step_state(), "q": jnp.zeros((num_arms,), jnp.float32), "counts": jnp.zeros((num_arms,), jnp.int32)}


def probs(state: dict, temperature: float = 1.0) -> jax.Array:
  """π(c) = softmax(Q/τ)(c)."""
  return bandit.boltzmann_probs(state["q"], temperature)


def signal(feedback: base.Feedback, reward: str = "mean_abs_adv") -> jax.Array:
  """`f32[B, G]` the advantages whose |·| the arms earn: `Feedback.advantages` (the trainer's, e.g. GRPO), or
  r − mean_g r from `Feedback.rewards` for "mean_abs_adv_unnormalised"."""
  if reward == "mean_abs_adv":
    return feedback.advantages
  if reward == "mean_abs_adv_unnormalised":
    b, g = feedback.rewards.shape
    return losses.grpo_advantages(feedback.rewards.reshape(-1), group_size=g, scale="none").reshape(b, g)
  raise ValueError(f"`reward` must be one of {REWARDS}, got {reward!r}.")


def arm_rewards(advantages: jax.Array, arm_ids: jax.Array, num_arms: int,
                valid: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """`(r f32[K], present bool[K])`: r_t(c), the mean over arm c's valid prompts of each prompt's mean |A| over
  its G responses (0 where the arm has no valid prompt), and which arms had one.

  advantages: `f[B, G]`; arm_ids: `i32[B]` in [0, K); valid: `bool[B]` or None (all valid)."""
  advantages = jnp.asarray(advantages)
  arm_ids = jnp.asarray(arm_ids, jnp.int32)
  if advantages.ndim != 2 or arm_ids.shape != advantages.shape[:1]:
    raise ValueError(f"need advantages f[B, G] and arm_ids i32[B]; got {advantages.shape} and {arm_ids.shape}.")
  per_prompt = bandit.mean_abs_advantage(advantages)
  r, count = bandit.scatter_mean(per_prompt, arm_ids, num_arms, weights=valid)
  return r, count > 0


def update(state: dict, feedback: base.Feedback, *, alpha: float = 0.5, reward: str = "mean_abs_adv",
           absent: str = "decay") -> dict:
  """One TD(0) step of every arm's value (module docstring); `counts` += 1 for the arms present."""
  num_arms = state["q"].shape[0]
  r, present = arm_rewards(signal(feedback, reward), feedback.arm_ids, num_arms, feedback.valid)
  q = state["q"]
  # The reference's order of operations, so absent="decay" gives (1 − α)·Q exactly (r = 0 there).
  moved = (1.0 - alpha) * q + alpha * r
  if absent == "decay":
    q_new = moved
  elif absent == "keep":
    q_new = jnp.where(present, moved, q)
  else:
    raise ValueError(f"`absent` must be one of {ABSENT}, got {absent!r}.")
  return base.next_step({**state, "q": q_new.astype(jnp.float32),
                         "counts": state["counts"] + present.astype(jnp.int32)})


def sec(num_arms: int, *, alpha: float = 0.5, temperature: float = 1.0, reward: str = "mean_abs_adv",
        absent: str = "decay") -> base.Curriculum:
  """The SEC curriculum over `num_arms` categories (options: module docstring)."""
  if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha <= 1.0:
    raise ValueError(f"`alpha` must be in (0, 1], got {alpha!r}.")
  if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
    raise ValueError(f"`temperature` must be > 0, got {temperature!r}.")
  if reward not in REWARDS:
    raise ValueError(f"`reward` must be one of {REWARDS}, got {reward!r}.")
  if absent not in ABSENT:
    raise ValueError(f"`absent` must be one of {ABSENT}, got {absent!r}.")
  alpha, temperature = float(alpha), float(temperature)
  config = {"alpha": alpha, "temperature": temperature, "reward": reward, "absent": absent}
  return base.Curriculum(
      "sec", num_arms, config, lambda: init(num_arms), lambda state: probs(state, temperature),
      lambda state, fb: update(state, fb, alpha=alpha, reward=reward, absent=absent))


base.register("sec", sec)
