"""RLGF roll-in / roll-out mixing: which tokens a guide writes and which ones the PPO update sees.

Chang, Brantley, Ramamurthy, Misra & Sun, "Learning to Generate Better Than Your LLM" (RLGF), 2023.
A black-box guide π_g and the learner π_θ share one trajectory: a prefix of length k is written by the
roll-in policy (teacher-forced from a full sequence that policy generated first), the rest by the
roll-out policy.

    PPO++       roll-in π_g, roll-out π_θ; update on the roll-out tokens (positions ≥ k), policy critic
    AggreVaTeD  roll-in π_θ, roll-out π_g; update on the roll-in tokens (positions < k), whose return
                is then a Monte-Carlo estimate of Q^{π_g}
    D²LOLS      AggreVaTeD (guide critic) for iterations < τ, PPO++ (policy critic) from iteration τ on
    LOLS        each iteration PPO++ with probability τ, else AggreVaTeD

Roll-in length k, per sequence, given the length n of the roll-in policy's full generation:
with probability β, k ~ U{1, …, n−1} (k = 0 when n < 2); otherwise k = 0 (no roll-in). With k = 0
PPO++ is plain PPO and AggreVaTeD updates nothing.

Checked against the released code (Cornell-RL/tril, commit 045d036):
* `src/tril/utils/logit_processors.py`, `RollinProcessor.create_mask`: the Bernoulli(β) mix-in
  `rng.choice([True, False], p=[beta, 1 - beta])`, then a uniform row of `np.tril(ones)[: n - 1]`
  (a prefix of 1..n−1 ones), no roll-in for n < 2; the prefix is teacher-forced in `__call__`.
* `src/tril/algorithms/ppo_pp.py` / `aggrevated.py`: n is the non-pad length of the roll-in
  policy's own generation (guide for PPO++, learner for AggreVaTeD). AggreVaTeD flips the mask
  (`rollin_mask = ~rollin_mask`); `buffers/online_buffer.py` stores `~rollin_mask`, and
  `algorithms/ppo.py` trains on `masks * rollin_masks`, so the update sees the learner's tokens in
  both modes (after PPO++'s roll-in, or AggreVaTeD's roll-in itself).
* `d2lols.py` / `lols.py`, `choose_alg`: `value_fn = "policy" if iteration >= tau else "guide"` and
  `"policy" if rng2.random() < tau else "guide"`; "policy" ↦ PPO++, "guide" ↦ AggreVaTeD.
* Released-code details not reproduced here: the stand-alone `AGGREVATED` class uses the *policy*
  critic (`value_fn = "policy"`, and `cfgs/alg/aggrevated.yaml` sets no `create_guide_critic`); only
  D²LOLS/LOLS train a guide critic. `LOLS.collect_rollouts` calls an undefined `CPI` in its PPO++
  branch. β per config (`cfgs/alg/*.yaml`): PPO++ 0.6 (IMDB), 0.8 (CommonGen, TL;DR); AggreVaTeD
  0.8 (IMDB, CommonGen), 1.0 (TL;DR); D²LOLS and LOLS 0.8 in both modes, D²LOLS τ = 20 (IMDB),
  100 (CommonGen), LOLS τ = 0.8.

The roll-in *length* is a sampling rule and the update mask a loss-side one; both are pure functions
of arrays here, next to the PPO kernels that consume `update_mask` (`ppo_clip_loss(..., mask=...)`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks

MODES = ("ppo_pp", "aggrevated")
SCHEDULES = ("d2lols", "lols")


def rlgf_rollin_lengths(key: jax.Array, seq_lens: jax.Array, *, beta) -> jax.Array:
  """Roll-in length k per sequence, `int32[B]`: with probability β, k ~ U{1..n−1}; else 0.

  Args:
    key: PRNG key.
    seq_lens: `int[B]` length n of the roll-in policy's full generation (non-pad tokens); k = 0
      whenever n < 2.
    beta: mixing probability β ∈ [0, 1] (may be traced).
  """
  (batch,) = checks.check_same_shape(1, seq_lens=seq_lens)
  checks.check_in_range("beta", beta, 0.0, 1.0)
  n = jnp.asarray(seq_lens, jnp.int32)
  k_mix, k_len = jax.random.split(key)
  mixed = jax.random.uniform(k_mix, (batch,)) < beta
  # U{1..n−1} for n ≥ 2; the maxval is clamped so that n < 2 still draws a (discarded) valid value.
  length = jax.random.randint(k_len, (batch,), 1, jnp.maximum(n, 2), dtype=jnp.int32)
  return jnp.where(mixed & (n >= 2), length, 0).astype(jnp.int32)


def rlgf_masks(rollin_len: jax.Array, response_mask: jax.Array, *, mode: str) -> tuple[jax.Array, jax.Array]:
  """`(rollin_mask, update_mask)`, both `bool[B, T]`, from the roll-in lengths.

  `rollin_mask` is True on the first k response tokens of each row (the teacher-forced roll-in;
  counted along `response_mask`, so prompt tokens or left padding before the response are allowed).
  `update_mask` is what the PPO/GAE loss sees: the learner's tokens, i.e. the response tokens after
  the roll-in for "ppo_pp" and the roll-in tokens themselves for "aggrevated".
  """
  checks.check_choice("mode", mode, MODES)
  batch, _ = checks.check_same_shape(2, response_mask=response_mask)
  checks.check_same_shape(1, rollin_len=rollin_len)
  if jnp.shape(rollin_len) != (batch,):
    raise ValueError(f"`rollin_len` has shape {jnp.shape(rollin_len)}, expected ({batch},) (one per row).")
  mask = jnp.asarray(response_mask, bool)
  position = jnp.cumsum(mask, axis=-1) - 1  # index among the response tokens
  rollin = mask & (position < jnp.asarray(rollin_len)[:, None])
  update = mask & ~rollin if mode == "ppo_pp" else rollin
  return rollin, update


def rlgf_schedule(iteration, *, kind: str, tau, key: jax.Array | None = None) -> jax.Array:
  """True where the iteration runs PPO++ (policy critic), False for AggreVaTeD (guide critic).

      d2lols  iteration ≥ τ  (τ an iteration count)
      lols    u < τ with u ~ U[0, 1) drawn from `key` (τ a probability)
  """
  checks.check_choice("kind", kind, SCHEDULES)
  if kind == "d2lols":
    checks.check_nonnegative("tau", tau)
    return jnp.asarray(iteration) >= tau
  checks.check_in_range("tau", tau, 0.0, 1.0)
  if key is None:
    raise ValueError("`key` is required for the 'lols' schedule (it draws PPO++ with probability tau).")
  return jax.random.uniform(key) < tau
