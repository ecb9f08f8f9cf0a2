"""PF-PPO: policy filtration by reward rank, and the R² criterion that picks the filter.

Shen & Zhang, "Policy Filtration in RLHF to Fine-Tune LLM for Code Generation", 2024 (arXiv 2409.06957;
later versions, ICML 2025: Zhang, Shen, Zhao, … & Bian). A learned reward model is reliable only in some reward ranges (for
code, the extremes), so PF-PPO samples N responses per prompt and trains PPO only on a rank-based
subset F, i.e. with weights w_i = 1[i ∈ F]/|F| (`filter_weights`):

    none         all N
    bon          {argmax r}                                   (best-of-N)
    best_random  {argmax r} ∪ {one uniformly random other}     (BR)
    best_worst   {argmax r, argmin over the others}           (BW)

Ties go to the lowest index. The filter is chosen by R² = 1 − Σ(s − ŝ)²/Σ(s − s̄)² of a least-squares
fit of the true score s on the reward r over the kept samples of held-out prompts (`choose_filter`).
The exact filter set and the R² protocol details are [M] in the spec; the names follow the paper.

`pf_ppo_resample` is verl's batch-level variant (`compute_pf_ppo_reweight_data`): B indices drawn
with replacement with probability ∝ weight + 1e-8, where weight is |r|^k ("pow"), 1 at the batch
max and min ("max_min"), or 0.4 at the max and 0.1 elsewhere ("max_random").

All outputs are index sets, masks or weights: constants of the PPO objective.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from rljax import checks

STRATEGIES = ("none", "bon", "best_random", "best_worst")
RESAMPLE_METHODS = ("pow", "max_min", "max_random")


def pf_ppo_filter(
    rewards: jax.Array, key: jax.Array | None = None, *, strategy: str, valid: jax.Array | None = None
) -> jax.Array:
  """Keep-mask `bool[G, N]` of PF-PPO's per-prompt filter (strategies in the module docstring).

  Args:
    rewards: `f[G, N]` reward-model scores of N responses to each of G prompts.
    key: PRNG key; required by "best_random" only.
    strategy: one of `STRATEGIES`.
    valid: optional `bool[G, N]`; invalid responses are never kept (ragged groups). A group keeps
      min(count, #valid) responses, count being N, 1, 2, 2 for the four strategies.
  """
  checks.check_choice("strategy", strategy, STRATEGIES)
  if valid is None:
    checks.check_same_shape(2, rewards=rewards)
    valid = jnp.ones(jnp.shape(rewards), bool)
  else:
    checks.check_same_shape(2, rewards=rewards, valid=valid)
    valid = jnp.asarray(valid, bool)
  if strategy == "best_random" and key is None:
    raise ValueError("`key` is required for strategy 'best_random'.")
  (r,) = checks.as_compute(rewards)
  r = jax.lax.stop_gradient(r)
  if strategy == "none":
    return valid
  n = r.shape[-1]
  best = jax.nn.one_hot(jnp.argmax(jnp.where(valid, r, -jnp.inf), axis=-1), n, dtype=bool)
  others = valid & ~best
  if strategy == "bon":
    second = jnp.zeros_like(best)
  elif strategy == "best_worst":
    # The worst is taken among the others, so a group of equal rewards still keeps two.
    second = jax.nn.one_hot(jnp.argmin(jnp.where(others, r, jnp.inf), axis=-1), n, dtype=bool)
  else:
    u = jax.random.uniform(key, r.shape)
    second = jax.nn.one_hot(jnp.argmax(jnp.where(others, u, -1.0), axis=-1), n, dtype=bool)
  return (best & valid) | (second & others)


def filter_weights(keep: jax.Array) -> jax.Array:
  """Per-group loss weights w_i = 1[i ∈ F]/|F| `f[G, N]` (0 for a group that keeps nothing)."""
  checks.check_same_shape(2, keep=keep)
  keep = jnp.asarray(keep, bool)
  count = jnp.sum(keep, axis=-1, keepdims=True, dtype=jnp.float32)
  return jnp.where(keep, 1.0 / jnp.maximum(count, 1), 0.0)


def pf_ppo_resample_weights(rewards: jax.Array, *, method: str = "pow", power: float = 2.0) -> jax.Array:
  """verl's unnormalised resampling weights `f[B]` before the +1e-8 floor (see module docstring)."""
  checks.check_choice("method", method, RESAMPLE_METHODS)
  checks.check_same_shape(1, rewards=rewards)
  checks.check_nonnegative("power", power)
  (r,) = checks.as_compute(rewards)
  r = jax.lax.stop_gradient(r)
  if method == "pow":
    return jnp.abs(r) ** power
  is_max = r == jnp.max(r)
  if method == "max_min":
    return jnp.where(is_max | (r == jnp.min(r)), 1.0, 0.0).astype(r.dtype)
  return jnp.where(is_max, 0.4, 0.1).astype(r.dtype)


def pf_ppo_resample(rewards: jax.Array, key: jax.Array, *, method: str = "pow", power: float = 2.0) -> jax.Array:
  """`i32[B]` indices drawn with replacement, P(i) ∝ max(w_i + 1e-8, 1e-8) (verl's PF-PPO reweighting).

  Gather every per-example array of the batch with these indices before the PPO update.
  """
  w = pf_ppo_resample_weights(rewards, method=method, power=power)
  w = jnp.maximum(w + 1e-8, 1e-8)
  return jax.random.categorical(key, jnp.log(w), shape=w.shape).astype(jnp.int32)


def r2_score(x: jax.Array, y: jax.Array, valid: jax.Array | None = None) -> jax.Array:
  """R² of the least-squares fit y ≈ a·x + b over the valid entries: Cov(x, y)² / (Var x · Var y).

  That equals 1 − SSR/SST for a fit with intercept, is invariant to affine maps of x (and of y), and
  is 1 for exactly linear data. Returns 0 when x or y has no variance over the valid entries (nothing
  is explained), so a degenerate filter never wins `choose_filter`.
  """
  if valid is None:
    checks.check_same_shape(1, x=x, y=y)
    valid = jnp.ones(jnp.shape(x), bool)
  else:
    checks.check_same_shape(1, x=x, y=y, valid=valid)
  x, y = checks.as_compute(x, y)
  x, y = jax.lax.stop_gradient(x), jax.lax.stop_gradient(y)
  valid = jnp.asarray(valid, bool)
  n = jnp.maximum(jnp.sum(valid, dtype=x.dtype), 1)
  xc = jnp.where(valid, x - jnp.sum(jnp.where(valid, x, 0)) / n, 0)
  yc = jnp.where(valid, y - jnp.sum(jnp.where(valid, y, 0)) / n, 0)
  sxx, syy, sxy = jnp.sum(xc * xc), jnp.sum(yc * yc), jnp.sum(xc * yc)
  denom = sxx * syy
  return jnp.where(denom > 0, sxy * sxy / jnp.where(denom > 0, denom, 1), 0.0)


def choose_filter(
    rewards: jax.Array, scores: jax.Array, key: jax.Array, strategies: Sequence[str] = STRATEGIES
) -> dict[str, jax.Array]:
  """R² of true `scores` on `rewards` (both `f[G, N]`) over each strategy's kept samples.

  Pick the strategy with the largest value. Randomised strategies use `jax.random.fold_in(key, i)`.
  """
  checks.check_same_shape(2, rewards=rewards, scores=scores)
  if len(strategies) == 0:
    raise ValueError("`strategies` must name at least one strategy.")
  out = {}
  for i, name in enumerate(strategies):
    keep = pf_ppo_filter(rewards, jax.random.fold_in(key, i), strategy=name)
    out[name] = r2_score(jnp.ravel(rewards), jnp.ravel(scores), jnp.ravel(keep))
  return out
