"""GHPO: Guided Hybrid Policy Optimization (arXiv 2507.10628; github.com/hkgc-1/GHPO).

A group whose G rollouts all fail is resampled from its prompt followed by a prefix of the reference solution,
stage by stage with growing hint ratios ω_1 < ω_2 < ... (0.25, 0.5, 0.75 in the released trainer): at stage k
the groups still all-wrong get h_k = round(ω_k·|solution|) solution tokens and G fresh rollouts, which replace
the group's; a group that succeeds at some stage keeps that stage's rollouts and is never touched again. With
stage 0 the un-hinted rollout (ω_0 = 0) and S stages of hints, group i keeps stage

    k*(i) = min{k ≤ S : some rollout of stage k succeeds}    (k*(i) = S when none does: it stays all-wrong)

and "all-wrong" is all_g r_{i,g} ≤ 0 on the accuracy reward (the format reward is not consulted). The loss is
GRPO on the merged batch, (r − mean_g r)/(std_g r + ε) per group, with the hinted prompt as the context: the
hint tokens are never trained on, the model's own continuation is. Hints are used only once
`global_step ≥ start_hint_step` (0 in the released recipe).

Pieces here (everything jittable; the online loop and `rljax.theory.curricula.chain_rl` pick each group's
stage with `first_success_stage`; `staged_rollout` is the same rule as one scan, for a fully jitted sampler):

    all_wrong(acc_rewards f[B, G]) -> bool[B]                   all(r ≤ 0) per group
    hint_prefix_len(solution_len i32[B], ω) -> i32[B]            round(ω·len), half to even (see below)
    first_success_stage(any_success bool[S+1, B]) -> i32[B]       k* above
    merge_groups(base, hinted, replace bool[B]) -> pytree        rows of `hinted` where `replace`
    staged_rollout(key, sample, omegas, enabled) -> (rewards, aux, stage, metrics)   the staged loop
    ghpo(num_arms, omegas=...)                                   the registered curriculum: uniform arms + hints

Resolved against the reference code (hkgc-1/GHPO, `src/ghpo/ghpo_trainer.py`, `_generate_and_score_completions`):
  * The hint is a *character* prefix `solution_hint[:round(len(solution_hint)·ω)]` of the reference solution,
    appended to the user message after the sentence "The following text is the beginning part of the answer,
    which you can refer to for solving the problem:"; the system message is unchanged. rljax hints with a
    *token* prefix; the toy suite writes one token per digit or symbol, so there it is a character prefix of the
    trace, opened by "<think>" in place of the instruction sentence (`Suite.hinted`).
  * Python's `round` rounds half to even; `hint_prefix_len` does the same (`jnp.round`): 0.5·3 → 2 and
    0.75·2 → 2 (⌊·⌋ gives 1), 0.25·10 → 2 (half up would give 3). `rounding="floor"` gives ⌊ω·len⌋, the
    convention of the spec's skill chain (T.1: a hint ω on a depth-d problem forces ⌊ω·d⌋ steps) and of
    `rljax.tasks.toy_suite.Suite.hinted` (which takes ⌊ω·trace_len⌋, not the reference's rounding).
  * The ω schedule is hard-coded to three stages 0.25 → 0.5 → 0.75 in the trainer (the config's
    `hint_ratio: 0.5` is unused by the staged trainer); the all-wrong set is recomputed after every stage from
    the first reward function (accuracy), `≤ 0`. After the 0.75 stage a still-all-wrong group is kept as it is.
  * `start_hint_step` (GHPOConfig, 0 in `recipes/Qwen2.5-Math-7B/ghpo/config_ghpo.yaml`): before it the
    trainer runs the un-hinted path. This is the code's form of the paper's "cold start".
  * Two quirks not copied: when no group is all-wrong the code regenerates one group with its original prompt
    (keeps distributed generation calls in lock-step), and when a later stage runs it scores every group
    that succeeded at an earlier *hinted* stage under the original prompt. Here a group keeps the prompt of
    the stage whose rollouts it keeps.
Still open (paper text not read): whether the paper's hint is described as a character, token or sentence
prefix, and the Appendix B.3 ω schedule; the code's fixed (0.25, 0.5, 0.75) is the default here.

Static shapes: `staged_rollout` samples all S + 1 stages for every group (lax.scan) and keeps, per group, the
rollouts of the stage the sequential loop would have kept; stage k's rollouts of a group that succeeded
earlier are drawn and discarded, which does not change the distribution of what is kept (the stages use
independent keys). Its `rollouts` metric counts only the responses the sequential loop generates,
G·(B + Σ_k |H_k|), H_k the groups all-wrong before stage k.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax import checks
from rljax.curricula import base, fixed

ROUNDINGS = ("half_even", "floor")


def all_wrong(acc_rewards: jax.Array) -> jax.Array:
  """`bool[B]`: the groups whose G accuracy rewards (`f[B, G]`) are all ≤ 0 (GHPO's "too hard" test)."""
  r = jnp.asarray(acc_rewards)
  if r.ndim != 2:
    raise ValueError(f"`acc_rewards` must be f[B, G], got shape {r.shape}.")
  return jnp.all(r <= 0, axis=1)


def hint_prefix_len(solution_len: jax.Array, omega, *, rounding: str = "half_even") -> jax.Array:
  """`i32[B]`: how many solution tokens a hint of ratio `omega` (scalar or `f[B]`, in [0, 1]) reveals:
  round(ω·len) rounded half to even as the reference's Python `round` (default), or ⌊ω·len⌋ with
  `rounding="floor"`; always within [0, len]."""
  if rounding not in ROUNDINGS:
    raise ValueError(f"`rounding` must be one of {ROUNDINGS}, got {rounding!r}.")
  n = jnp.asarray(solution_len, jnp.int32)
  w = jnp.asarray(omega, jnp.float32)
  if w.ndim > 1:
    raise ValueError(f"`omega` must be a scalar or f[B], got shape {w.shape}.")
  # Concrete inputs are checked; traced ones (inside a scan over stages) are only clipped below.
  wv, nv = checks.concrete_array(w), checks.concrete_array(n)
  if (wv is not None and np.any((wv < 0) | (wv > 1))) or (nv is not None and np.any(nv < 0)):
    raise ValueError(f"`omega` must lie in [0, 1] and `solution_len` be ≥ 0, got {omega} and {solution_len}.")
  x = w * n.astype(jnp.float32)
  h = jnp.round(x) if rounding == "half_even" else jnp.floor(x)
  return jnp.clip(h.astype(jnp.int32), 0, n)


def first_success_stage(any_success: jax.Array) -> jax.Array:
  """`i32[B]`: the stage whose rollouts a group keeps, given `any_success` (`bool[S + 1, B]`: stage 0 is the
  un-hinted rollout, stage k ≥ 1 the rollout with hint ratio ω_k): the first stage with a success, or the
  last stage when none succeeds (the group stays all-wrong)."""
  any_success = jnp.asarray(any_success, bool)
  if any_success.ndim != 2:
    raise ValueError(f"`any_success` must be bool[stages, B], got shape {any_success.shape}.")
  last = any_success.shape[0] - 1
  return jnp.where(jnp.any(any_success, axis=0), jnp.argmax(any_success, axis=0), last).astype(jnp.int32)


def merge_groups(base_batch: Any, hinted: Any, replace: jax.Array) -> Any:
  """The pytree whose rows (leading axis B of every leaf) come from `hinted` where `replace` (`bool[B]`) and
  from `base_batch` elsewhere. Both pytrees have the same structure and shapes (static across stages)."""
  replace = jnp.asarray(replace, bool)
  if replace.ndim != 1:
    raise ValueError(f"`replace` must be bool[B], got shape {replace.shape}.")

  def pick(a, b):
    if a.shape != b.shape or a.shape[:1] != replace.shape:
      raise ValueError(f"leaves must share the shape [B={replace.shape[0]}, ...], got {a.shape} and {b.shape}.")
    return jnp.where(replace.reshape(replace.shape + (1,) * (a.ndim - 1)), b, a)

  return jax.tree.map(pick, base_batch, hinted)


def staged_rollout(key: jax.Array, sample: Callable[[jax.Array, jax.Array], tuple[jax.Array, Any]],
                   omegas: Sequence[float], enabled=True) -> tuple[jax.Array, Any, jax.Array, dict]:
  """GHPO's staged resampling of all-wrong groups.

  `sample(key, omega f32[]) -> (acc_rewards f[B, G], aux)` draws G rollouts of each of the B prompts with a
  hint of ratio `omega` (0.0: none); `aux` is any pytree with leading axis B (completions, log-probabilities,
  hinted prompts). Stage k = 1..S (ω_k = `omegas[k-1]`) replaces the groups still all-wrong. `enabled`
  (bool scalar, may be traced: `step >= start_hint_step`) switches the hints off, leaving stage 0's rollouts.

  Returns `(acc_rewards f[B, G], aux, stage i32[B], metrics)`: the kept rollouts, the stage each group kept
  (`first_success_stage` of the per-stage successes), and `metrics`: `hinted f32[S]` the fraction of the B
  groups resampled at each stage, `still_wrong` the fraction all-wrong at the end, `rollouts` the number of
  responses the sequential loop generates (module docstring)."""
  om = _check_omegas(omegas)
  keys = jax.random.split(key, len(om) + 1)
  rewards, aux = sample(keys[0], jnp.zeros((), jnp.float32))
  wrong = all_wrong(rewards)
  stage = jnp.zeros(wrong.shape, jnp.int32)
  enabled = jnp.asarray(enabled, bool)

  def body(carry, xs):
    (rewards, aux, stage), (k, omega, key) = carry, xs
    replace = all_wrong(rewards) & enabled
    hinted = sample(key, omega)
    rewards, aux = merge_groups((rewards, aux), hinted, replace)
    return (rewards, aux, jnp.where(replace, k, stage)), jnp.mean(replace.astype(jnp.float32))

  xs = (jnp.arange(1, len(om) + 1, dtype=jnp.int32), jnp.asarray(om, jnp.float32), keys[1:])
  (rewards, aux, stage), hinted = jax.lax.scan(body, (rewards, aux, stage), xs)
  b, g = rewards.shape
  metrics = {"hinted": hinted, "still_wrong": jnp.mean(all_wrong(rewards).astype(jnp.float32)),
             "rollouts": g * b * (1.0 + jnp.sum(hinted))}
  return rewards, aux, stage, metrics


def _check_omegas(omegas: Sequence[float]) -> tuple[float, ...]:
  om = tuple(float(w) for w in omegas)
  if not om or any(not 0.0 < w <= 1.0 for w in om) or any(a >= b for a, b in zip(om, om[1:])):
    raise ValueError(f"`omegas` must be strictly increasing hint ratios in (0, 1], got {omegas}.")
  return om


def ghpo(num_arms: int, *, omegas: Sequence[float] = (0.25, 0.5, 0.75),
         arms: Sequence[int] | None = None) -> base.Curriculum:
  """Uniform arms (`arms`, default all) with GHPO's staged hints `omegas` (strictly increasing, in (0, 1])."""
  om = _check_omegas(omegas)
  u = fixed.uniform(num_arms, arms=arms)
  return u._replace(name="ghpo", config={**u.config, "omegas": om}, hints=om)


base.register("ghpo", ghpo)
