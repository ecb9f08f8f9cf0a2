"""Advantage estimators for RL on LLM responses: GAE, group baselines, REINFORCE++, ReMax, OPO.

Array conventions:

* Token arrays are right-padded `f[B, T]` with `mask: bool[B, T]` marking response tokens; prompt,
  padding and interior tool-output tokens are False. Token-level outputs are 0 outside the mask.
* Token-level recursions (`gae`, reward-to-go in `reinforce_pp_advantages` and `remax_advantages`)
  *skip* masked steps: the running value and advantage pass through them unchanged, so tool tokens
  inserted inside a response do not change the other tokens' advantages (verl's convention;
  OpenRLHF instead zeroes r and V there and keeps discounting; all peers agree on right-padded rows).
  The value after the last valid token is 0 (the episode ends at EOS).
* Group estimators take outcome rewards `f[B]` in contiguous groups of `group_size` responses:
  rows g·n, …, g·n + n − 1 belong to prompt g (TRL and OpenRLHF's `view(-1, n)`; verl's `index`
  allows any order, so sort a verl-style batch by prompt first). They reshape to `[G, n]`.
* A group of one response has no baseline to compare with: every group estimator gives it 0.
  (verl `grpo` gives s/(1 + ε), verl `rloo` and `opo` the raw score s, TRL's unbiased std is NaN.)
* An all-equal group gives exact zeros: rewards are centred after shifting by a member of their
  group, so e.g. 0.7 − mean(0.7, 0.7, 0.7) is 0, not a rounding error that a std of 0 + ε would
  blow up to O(1). Mathematically this is the plain mean.

Nothing is stop-gradiented: these are targets, computed outside the differentiated function (the
policy losses stop-gradient their `advantages` argument); `jax.grad` through them is exact.
"""

from __future__ import annotations

import numbers
from typing import Literal

import jax
import jax.numpy as jnp
from jax import lax

from rljax import checks
from rljax.ops.masks import at_last_token

SCALES = ("group", "batch", "none")
CENTERS = ("group", "batch")
BASELINES = ("none", "group")


# ----------------------------------------------------------------------------------------------
# Validation and shared pieces


def _token_inputs(**arrays) -> tuple[int, int]:
  """`[B, T]` float arrays plus a trailing `mask` of the same shape; returns (B, T)."""
  return checks.check_same_shape(2, **arrays)


def _check_group_size(group_size, batch: int, minimum: int = 1) -> int:
  # A Python int: it fixes the [G, n] reshape, so it must be static under jit.
  if isinstance(group_size, bool) or not isinstance(group_size, numbers.Integral):
    raise ValueError(f"`group_size` must be a Python int, got {group_size!r}.")
  if group_size < minimum:
    raise ValueError(f"`group_size` must be >= {minimum}, got {group_size}.")
  if batch % group_size:
    raise ValueError(f"`group_size` ({group_size}) must divide the batch size B = {batch}.")
  return int(group_size)


def _grouped(rewards, group_size, valid, *, minimum: int = 1, name: str = "rewards"):
  """`(R: f[G, n], valid: bool[G, n])` from `f[B]` rewards; invalid entries are set to 0."""
  if jnp.ndim(rewards) != 1:
    raise ValueError(f"`{name}` must have rank 1 [B], got shape {jnp.shape(rewards)}.")
  batch = jnp.shape(rewards)[0]
  n = _check_group_size(group_size, batch, minimum)
  (r,) = checks.as_compute(rewards)
  if valid is None:
    v = jnp.ones(r.shape, bool)
  else:
    checks.check_same_shape(1, **{name: rewards, "valid": valid})
    v = jnp.asarray(valid, bool)
  # where(), not a product: a filtered sample may carry a NaN reward.
  r = jnp.where(v, r, 0)
  return r.reshape(-1, n), v.reshape(-1, n)


def _center(x: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Row-wise `(x − masked mean, count)` over `valid` entries of `x: f[G, n]`; 0 where invalid."""
  first = jnp.argmax(valid, axis=-1)[:, None]  # 0 for a row without valid entries
  # Shifting by a member first makes an all-equal row centre to exact zeros (see the module doc).
  shifted = jnp.where(valid, x - jnp.take_along_axis(x, first, axis=-1), 0)
  count = jnp.sum(valid, axis=-1, keepdims=True, dtype=x.dtype)
  mean = jnp.sum(shifted, axis=-1, keepdims=True) / jnp.maximum(count, 1)
  return jnp.where(valid, shifted - mean, 0), count


def _std(centered: jax.Array, count: jax.Array, ddof: int) -> jax.Array:
  """Row-wise std of centred values; 0 (not NaN, also in the gradient) for a constant row."""
  var = jnp.sum(centered**2, axis=-1, keepdims=True) / jnp.maximum(count - ddof, 1)
  positive = var > 0
  # Double where: sqrt'(0) = inf would turn the zero cotangent of a constant row into NaN.
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, var, 1)), 0)


def _safe_div(num: jax.Array, den: jax.Array) -> jax.Array:
  """num / den, with 0 where den == 0 (then num is 0 too: a constant group with eps = 0)."""
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1), 0)


def _gae_scan(rewards, values, mask, gamma, lam) -> jax.Array:
  """Reverse GAE recursion over T on sanitised `[B, T]` inputs; 0 outside the mask."""

  def step(carry, xs):
    next_value, next_adv = carry
    r, v, m = xs
    adv = r + gamma * next_value - v + gamma * lam * next_adv
    # A masked step is skipped: what the next valid token sees passes through it unchanged.
    return (jnp.where(m, v, next_value), jnp.where(m, adv, next_adv)), adv

  zeros = jnp.zeros(rewards.shape[:1], rewards.dtype)
  _, adv = lax.scan(step, (zeros, zeros), (rewards.T, values.T, mask.T), reverse=True)
  return jnp.where(mask, adv.T, 0)


def _reward_to_go(token_rewards, mask, gamma) -> jax.Array:
  """G_t = r_t + γ·G_{t+1} over valid tokens (masked steps skipped); GAE with V = 0, λ = 1."""
  return _gae_scan(token_rewards, jnp.zeros_like(token_rewards), mask, gamma, 1.0)


# ----------------------------------------------------------------------------------------------
# Token-level estimators


def gae(
    rewards: jax.Array, values: jax.Array, mask: jax.Array, *, gamma: float, lam: float
) -> tuple[jax.Array, jax.Array]:
  """Generalized advantage estimation (Schulman et al. 2016) over right-padded token rows.

      δ_t = r_t + γ·V_{t+1} − V_t,     A_t = δ_t + γλ·A_{t+1},     returns_t = A_t + V_t,

  computed right to left with `lax.scan`. V_{t+1} and A_{t+1} are those of the next *valid* token
  (masked steps are skipped, as in verl's `compute_gae_advantage_return`), and both are 0 after the
  last valid token. Rewards and values at masked positions are ignored (even NaN).

  No whitening is applied (verl and TRL-PPO whiten the advantages next: use `whiten`).
  `gamma = lam = 1` is verl's LLM default; TRL-PPO uses λ = 0.95. Matches
  `rlax.truncated_generalized_advantage_estimation` row by row with discount_t = γ·mask_t and a 0
  bootstrap value, for right-padded rows.

  Args:
    rewards: `f[B, T]` token rewards (typically the score at EOS minus a per-token KL penalty).
    values: `f[B, T]` critic values V(s_t).
    mask: `bool[B, T]` response mask.
    gamma: discount γ ∈ [0, 1].
    lam: GAE λ ∈ [0, 1].

  Returns:
    `(advantages, returns)`, both `f[B, T]` and 0 outside the mask. Differentiable in both inputs
    (use them as constants: stop-gradient or compute outside the loss).
  """
  _token_inputs(rewards=rewards, values=values, mask=mask)
  checks.check_in_range("gamma", gamma, 0.0, 1.0)
  checks.check_in_range("lam", lam, 0.0, 1.0)
  mask = jnp.asarray(mask, bool)
  rewards, values = checks.as_compute(rewards, values)
  # where(), not a product: NaN or garbage at masked positions must not reach values or gradients.
  rewards = jnp.where(mask, rewards, 0)
  values = jnp.where(mask, values, 0)
  advantages = _gae_scan(rewards, values, mask, gamma, lam)
  return advantages, jnp.where(mask, advantages + values, 0)


def whiten(x: jax.Array, mask: jax.Array, *, shift_mean: bool = True, eps: float = 1e-8) -> jax.Array:
  """Masked whitening over all valid entries: (x − μ)·rsqrt(σ² + eps), with μ added back if not `shift_mean`.

      μ = Σ m·x / N,     σ² = Σ m·(x − μ)² / (N − 1),     N = Σ m

  The unbiased variance and rsqrt(σ² + eps) are verl's `masked_whiten` and TRL's; OpenRLHF whitens
  with the biased variance (÷N) and rsqrt(max(σ², eps)), a factor sqrt((N − 1)/N) smaller.
  Statistics are over the whole array given (the local batch; gather first for a global batch).

  Degenerate masks give finite values: one valid entry has σ² = 0 and gives 0 (x itself when
  `shift_mean=False`), where verl and TRL raise; an empty mask gives all zeros.

  Args:
    x: floating array of any shape.
    mask: `bool`, same shape as `x`.
    shift_mean: False keeps the mean (scales the spread only: TRL's `whiten_rewards`).
    eps: added to the variance, >= 0.

  Returns:
    The whitened array, 0 outside the mask, in the compute dtype. Differentiable in `x`.
  """
  checks.check_same_shape(x=x, mask=mask)
  checks.check_nonnegative("eps", eps)
  mask = jnp.asarray(mask, bool)
  (x,) = checks.as_compute(x)
  flat_x = jnp.where(mask, x, 0).reshape(1, -1)
  flat_m = mask.reshape(1, -1)
  centered, count = _center(flat_x, flat_m)
  var = jnp.sum(centered**2) / jnp.maximum(count[0, 0] - 1, 1)
  scale = var + eps
  inv_std = jnp.where(scale > 0, lax.rsqrt(jnp.where(scale > 0, scale, 1)), 0)
  out = centered.reshape(x.shape) * inv_std
  if not shift_mean:
    out = out + jnp.sum(flat_x) / jnp.maximum(count[0, 0], 1)
  return jnp.where(mask, out, 0)


def reinforce_pp_advantages(
    rewards: jax.Array,
    mask: jax.Array,
    *,
    token_kl: jax.Array | None = None,
    kl_coef: float | None = None,
    gamma: float = 1.0,
    baseline: Literal["none", "group"] = "none",
    group_size: int | None = None,
    eps: float = 1e-8,
) -> tuple[jax.Array, jax.Array]:
  """REINFORCE++ and REINFORCE++-baseline advantages (Hu 2025, arXiv 2501.03262).

      s'_i   = s_i                        (baseline="none")
             = s_i − mean_{g(i)} s        (baseline="group": REINFORCE++-baseline)
      r_t    = s'_i·1[t = last valid token] − β·kl_t      (valid t)
      G_t    = r_t + γ·G_{t+1}            (reward-to-go over valid tokens, 0 after EOS)
      A      = whiten(G, mask)            (unbiased, eps inside the rsqrt; see `whiten`)

  No critic and no per-group std: the whitening over all tokens of the batch sets the scale.

  Peers: verl `reinforce_plus_plus` is the "none" case (its token rewards already carry the KL).
  For "group" with a KL term this follows OpenRLHF (`reinforce_baseline`: the group mean of the
  scores is subtracted before the per-token KL is added, then reward-to-go); verl's
  `reinforce_plus_plus_baseline` instead subtracts the group mean of Σ_t r_t and broadcasts it
  without reward-to-go. All three agree when there is no KL term and γ = 1. verl gives a singleton
  group its raw score; here, as in OpenRLHF, a singleton group's score is centred to 0. Both peers
  use γ = 1 with a baseline; OpenRLHF whitens with the biased variance.

  Args:
    rewards: `f[B]` outcome scores s_i (in contiguous groups for baseline="group").
    mask: `bool[B, T]` response mask.
    token_kl: optional `f[B, T]` per-token KL estimate (e.g. `kl.kl_penalty(old_logp, ref_logp,
      kind="k1")`); requires `kl_coef`.
    kl_coef: β >= 0, only with `token_kl`.
    gamma: discount γ ∈ [0, 1] of the reward-to-go (1 in both peers).
    baseline: "none" (REINFORCE++) or "group" (REINFORCE++-baseline; needs `group_size`).
    group_size: responses per prompt, only for baseline="group"; must divide B.
    eps: whitening epsilon.

  Returns:
    `(advantages, returns)`, `f[B, T]`, 0 outside the mask; `returns` is the un-whitened G.
  """
  B, T = _token_inputs(mask=mask)
  if jnp.ndim(rewards) != 1 or jnp.shape(rewards)[0] != B:
    raise ValueError(f"`rewards` must have shape [B] = ({B},) (the B of `mask`), got {jnp.shape(rewards)}.")
  checks.check_choice("baseline", baseline, BASELINES)
  checks.check_in_range("gamma", gamma, 0.0, 1.0)
  if (token_kl is None) != (kl_coef is None):
    raise ValueError("`token_kl` and `kl_coef` must be given together (the KL penalty is kl_coef·token_kl).")
  mask = jnp.asarray(mask, bool)
  if baseline == "group":
    if group_size is None:
      raise ValueError("baseline='group' needs `group_size`.")
    scores = grpo_advantages(rewards, group_size=group_size, scale="none")
  else:
    if group_size is not None:
      raise ValueError("`group_size` is only used with baseline='group'.")
    (scores,) = checks.as_compute(rewards)
  token_rewards = at_last_token(scores, mask)
  if token_kl is not None:
    checks.check_same_shape(mask=mask, token_kl=token_kl)
    checks.check_nonnegative("kl_coef", kl_coef)
    token_rewards, token_kl = checks.as_compute(token_rewards, token_kl)
    token_rewards = token_rewards - kl_coef * jnp.where(mask, token_kl, 0)
  returns = _reward_to_go(token_rewards, mask, gamma)
  return whiten(returns, mask, eps=eps), returns


def remax_advantages(
    rewards: jax.Array, greedy_rewards: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """ReMax (Li et al. 2023, arXiv 2310.10505): reward-to-go minus the greedy response's reward.

      G_t = Σ_{s ≥ t, valid} r_s,     A_t = G_t − s_greedy      (valid t)

  With outcome rewards `f[B]` (the score at EOS) G_t = s for every valid token, so A = s − s_greedy
  broadcast. Matches verl `compute_remax_outcome_advantage` (undiscounted, no whitening).

  Args:
    rewards: `f[B]` outcome scores, or `f[B, T]` token rewards (e.g. `kl_penalized_rewards`).
    greedy_rewards: `f[B]` reward of the greedy decoding for the same prompt (the baseline).
    mask: `bool[B, T]` response mask.

  Returns:
    `(advantages, returns)`, `f[B, T]`, 0 outside the mask.
  """
  B, T = _token_inputs(mask=mask)
  if jnp.shape(greedy_rewards) != (B,):
    raise ValueError(f"`greedy_rewards` has shape {jnp.shape(greedy_rewards)}, expected ({B},) (the B of `mask`).")
  mask = jnp.asarray(mask, bool)
  if jnp.ndim(rewards) == 1:
    if jnp.shape(rewards) != (B,):
      raise ValueError(f"`rewards` has shape {jnp.shape(rewards)}, expected ({B},) or {(B, T)}.")
    rewards, greedy = checks.as_compute(rewards, greedy_rewards)
    token_rewards = at_last_token(rewards, mask)
  else:
    checks.check_same_shape(2, rewards=rewards, mask=mask)
    rewards, greedy = checks.as_compute(rewards, greedy_rewards)
    token_rewards = jnp.where(mask, rewards, 0)
  returns = _reward_to_go(token_rewards, mask, 1.0)
  return jnp.where(mask, returns - greedy[:, None], 0), returns


def broadcast_to_tokens(advantages: jax.Array, mask: jax.Array) -> jax.Array:
  """Per-response advantages `f[B]` → `f[B, T]`: A_i on valid tokens, 0 elsewhere (via where)."""
  B, _ = _token_inputs(mask=mask)
  if jnp.shape(advantages) != (B,):
    raise ValueError(f"`advantages` has shape {jnp.shape(advantages)}, expected ({B},) (the B of `mask`).")
  (advantages,) = checks.as_compute(advantages)
  return jnp.where(jnp.asarray(mask, bool), advantages[:, None], 0)


# ----------------------------------------------------------------------------------------------
# Group (outcome-reward) estimators: f[B] -> f[B]


def grpo_advantages(
    rewards: jax.Array,
    *,
    group_size: int,
    scale: Literal["group", "batch", "none"] = "group",
    center: Literal["group", "batch"] = "group",
    eps: float = 1e-6,
    std_ddof: int = 1,
    valid: jax.Array | None = None,
) -> jax.Array:
  """GRPO group-normalised advantages (Shao et al. 2024) and their Dr.GRPO / Lite PPO variants.

      scale="group":  A_i = (R_i − mean_g R) / (std_g R + eps)     GRPO (verl, TRL default)
      scale="batch":  A_i = (R_i − mean_g R) / (std_B R + eps)     Lite PPO (Liu et al. 2025), TRL "batch"
      scale="none":   A_i =  R_i − mean_g R                         Dr.GRPO (Liu et al. 2025)
      center="batch": mean_B R replaces mean_g R; with scale="batch" this is batch-level
                      normalisation (R_i − mean_B R) / (std_B R + eps)   (REINFORCE++-style)

  g is the contiguous group of `group_size` responses containing i; std_B is the std of the raw
  rewards over the whole batch (not of the group-centred ones): alibaba/ROLL's `reward_norm`, whose
  `norm_mean_type` / `norm_std_type` are `center` / `scale` here. With center="group" each group's
  advantages sum to 0 (with "batch", the whole batch's do). std is unbiased (`std_ddof=1`,
  verl and TRL), so a non-constant group's "group" advantages have population std
  sqrt((n−1)/n)·std_g/(std_g + eps); `std_ddof=0` (population std) makes it 1 up to eps.

  eps: verl 1e-6 (the default here), TRL 1e-4, OpenRLHF 1e-9. A constant group gives exact zeros
  (no NaN, even with eps = 0). A singleton group gives 0 with center="group" (verl: R/(1 + eps); TRL:
  NaN).

  Args:
    rewards: `f[B]` outcome rewards, B = G·group_size, grouped contiguously.
    group_size: n, a Python int dividing B.
    scale: "group", "batch" or "none".
    center: "group" (default) or "batch": the mean subtracted.
    eps: added to the std, >= 0.
    std_ddof: 1 (unbiased, default) or 0 (population std).
    valid: optional `bool[B]`; False entries (filtered samples) are left out of every mean and std
      and get advantage 0. A group then has its number of valid members as n.

  Returns:
    `f[B]` advantages (broadcast with `broadcast_to_tokens`).
  """
  checks.check_choice("scale", scale, SCALES)
  checks.check_choice("center", center, CENTERS)
  checks.check_nonnegative("eps", eps)
  if std_ddof not in (0, 1):
    raise ValueError(f"`std_ddof` must be 0 or 1, got {std_ddof!r}.")
  r, v = _grouped(rewards, group_size, valid)
  centered, count = _center(r, v)
  batch_centered, batch_count = _center(r.reshape(1, -1), v.reshape(1, -1))
  num = centered if center == "group" else batch_centered.reshape(r.shape)
  if scale == "none":
    return num.reshape(-1)
  if scale == "group":
    std = _std(centered, count, std_ddof)
  else:
    std = _std(batch_centered, batch_count, std_ddof)
  return _safe_div(num, std + eps).reshape(-1)


def rloo_advantages(rewards: jax.Array, *, group_size: int, valid: jax.Array | None = None) -> jax.Array:
  """REINFORCE leave-one-out (Kool et al. 2019; Ahmadian et al. 2024).

      A_i = R_i − (1/(n−1))·Σ_{j ∈ g, j ≠ i} R_j = n/(n−1)·(R_i − mean_g R)

  The baseline of i does not depend on R_i, so it is unbiased. Equals n/(n−1) times the Dr.GRPO
  advantage. A singleton group gives 0 (verl `rloo_vectorized`, TRL; verl `rloo` gives the raw R).

  Args:
    rewards: `f[B]`, contiguous groups of `group_size`.
    group_size: n, a Python int dividing B.
    valid: optional `bool[B]`; invalid entries are excluded (n = valid members) and get 0.
  """
  r, v = _grouped(rewards, group_size, valid)
  centered, count = _center(r, v)
  factor = jnp.where(count > 1, count / jnp.maximum(count - 1, 1), 0)
  return (factor * centered).reshape(-1)


def passk_advantages(
    rewards: jax.Array, *, group_size: int, eps: float = 1e-6, scale_by_std: bool = True
) -> jax.Array:
  """Pass@k GRPO advantages (verl `grpo_passk`; Chen et al. 2025, "Pass@k training").

      A_{i*} = (R_max − R_2nd) / (std_g R + eps),   i* = argmax_g R;    A_i = 0 for i ≠ i*

  Only the best sample of each group is reinforced, by its margin over the runner-up; with
  `scale_by_std=False` the margin is not divided (verl `norm_adv_by_std_in_grpo=False`). std is
  unbiased. Ties: if the maximum is shared, R_max − R_2nd = 0 and every sample gets 0, so which
  index counts as the argmax (the first here; torch.topk's choice in verl) does not matter.

  Args:
    rewards: `f[B]`, contiguous groups of `group_size` >= 2 (verl raises for a singleton group too).
    group_size: n, a Python int >= 2 dividing B.
    eps: added to the std, >= 0.
    scale_by_std: divide the margin by std_g + eps.
  """
  checks.check_nonnegative("eps", eps)
  r, v = _grouped(rewards, group_size, None, minimum=2)
  top2 = lax.top_k(r, 2)[0]
  margin = top2[:, :1] - top2[:, 1:]
  if scale_by_std:
    centered, count = _center(r, v)
    margin = _safe_div(margin, _std(centered, count, 1) + eps)
  winner = jnp.arange(r.shape[-1]) == jnp.argmax(r, axis=-1)[:, None]
  return jnp.where(winner, margin, 0).reshape(-1)


def opo_advantages(rewards: jax.Array, lengths: jax.Array, *, group_size: int) -> jax.Array:
  """On-Policy RL with Optimal reward baseline (OPO; Hao et al. 2025): a length-weighted group mean.

      b_g = Σ_{j ∈ g} |o_j|·R_j / Σ_{j ∈ g} |o_j|,     A_i = R_i − b_g

  The optimal baseline for a sequence-level policy gradient when the gradient norm grows with the
  response length. The length-weighted sum Σ_j |o_j|·A_j is 0 in each group (the plain sum is not).
  A singleton group gives 0 (verl gives the raw score); a group whose lengths are all 0 falls back
  to the plain mean.

  Args:
    rewards: `f[B]`, contiguous groups of `group_size`.
    lengths: `[B]` response lengths |o_i| >= 0 (e.g. `mask.sum(-1)`); int or float.
    group_size: n, a Python int dividing B.
  """
  r, _ = _grouped(rewards, group_size, None)
  checks.check_same_shape(1, rewards=rewards, lengths=lengths)
  dtype = checks.compute_dtype(rewards, lengths)
  r = r.astype(dtype)
  w = jnp.asarray(lengths, dtype).reshape(r.shape)
  first = r[:, :1]
  shifted = r - first  # exact zeros for a constant group, as in `_center`
  total = jnp.sum(w, axis=-1, keepdims=True)
  weighted = _safe_div(jnp.sum(w * shifted, axis=-1, keepdims=True), total)
  plain = jnp.mean(shifted, axis=-1, keepdims=True)
  baseline = jnp.where(total > 0, weighted, plain)
  return (shifted - baseline).reshape(-1)


def overlong_penalty(
    lengths: jax.Array, *, max_len: int = 20480, cache_len: int = 4096, factor: float = 1.0
) -> jax.Array:
  """DAPO's soft overlong punishment (Yu et al., "DAPO: An Open-Source LLM Reinforcement Learning
  System at Scale", 2025), added to the outcome reward:

      R_len(L) = 0                                  L ≤ L_max − L_cache
               = ((L_max − L_cache) − L) / L_cache   L_max − L_cache < L ≤ L_max
               = −1                                 L > L_max

  and returns factor·R_len, `f[B]`, continuous at both knots. Defaults are the paper's recipe
  (L_max = 20480, L_cache = 4096, factor 1).
  """
  checks.check_positive("cache_len", cache_len)
  if cache_len > max_len:
    raise ValueError(f"`cache_len` ({cache_len}) must not exceed `max_len` ({max_len}).")
  (length,) = checks.as_compute(lengths)
  start = max_len - cache_len
  r_len = jnp.where(length <= start, 0.0, jnp.where(length <= max_len, (start - length) / cache_len, -1.0))
  return factor * r_len


def dynamic_sampling_mask(rewards: jax.Array, *, group_size: int) -> jax.Array:
  """DAPO dynamic sampling: `bool[B]`, True where the response's group holds at least two distinct
  rewards (std_g > 0). All-correct and all-wrong groups give zero group-normalised advantages and
  no gradient; DAPO drops them and samples more prompts to refill the batch."""
  r, _ = _grouped(rewards, group_size, None)
  return jnp.repeat(jnp.any(r != r[:, :1], axis=-1), group_size)
