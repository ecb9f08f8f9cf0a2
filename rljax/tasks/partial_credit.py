"""An exact partial-credit score of toy-suite completions: the fraction of the reference solution reproduced.

`rljax.tasks.toy_suite` rewards a completion 1 when its answer is right. A graded "true score" s ∈ [0, 1]
(PF-PPO's actual score behind a learned reward model, spec §11) compares the completion with the problem's
reference solution position by position:

    s = (Σ_j<min(T, T̂) 1[t̂_j = t_j] + Σ_j<min(A, Â) 1[â_j = a_j]) / (max(T, T̂) + max(A, Â))

with t (length T) and a (length A) the reference trace and answer, t̂ the think block of the completion (the
tokens between its leading <think> and its first </think>; T̂ = 0 when the block never closes) and â the
content of its last complete <answer> … </answer> block (Â = 0 when there is none), everything read up to
the first <eos> as `Suite.verify` reads it. Extra or missing tokens count against the score through the
max in the denominator, so s = 1 exactly when the trace and the answer both equal the reference (then the
suite's reward is 1 too), and s = 0 when no position matches. For `add` the trace is the column sums, for
`modchain` the running values: s counts the correct steps. (For `countdown` the reference is one solution
among many, so s there measures agreement with that solution, not correctness.)

    s = solution_credit(batch, completion, completion_mask)      # f32[B], batch = Suite.sample(...)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.tasks import toy_suite as ts
from rljax.tasks import toy_tokens as tt


def solution_credit(batch: ts.PromptBatch, completion: jax.Array, completion_mask: jax.Array) -> jax.Array:
  """`f32[B]` partial credit s (module docstring) of the completions `i32[B, L]` (`completion_mask`: True on
  generated tokens, left-aligned, as `rljax.sampling.generate` returns them) to the problems of `batch`."""
  B, _ = checks.check_same_shape(2, completion=completion, completion_mask=completion_mask)
  if B != batch.ids.shape[0]:
    raise ValueError(f"`completion` has {B} rows, `batch` has {batch.ids.shape[0]}.")
  return _credit(batch.trace, batch.trace_len, batch.answer, batch.answer_len, jnp.asarray(completion, jnp.int32),
                 jnp.asarray(completion_mask, bool))


def _matches(c: jax.Array, start: jax.Array, n: jax.Array, ref: jax.Array, ref_len: jax.Array) -> jax.Array:
  """Positions j < min(n, ref_len) with c[start + j] = ref[j]."""
  j = jnp.arange(ref.shape[0])
  got = jnp.take(c, start + j, mode="fill", fill_value=ts.PAD_ID)
  return jnp.sum((j < jnp.minimum(n, ref_len)) & (got == ref))


@jax.jit
def _credit(trace, trace_len, answer, answer_len, completion, mask):
  def row(t, t_len, a, a_len, c, m):
    i = jnp.arange(c.shape[0])
    valid = m & (jnp.cumsum(c == ts.EOS_ID) == 0)  # up to the first <eos>
    has = lambda tok: valid & (c == tok)
    lead = (valid[0] & (c[0] == ts.THINK_ID)).astype(jnp.int32)
    think_end = tt.first(has(ts.THINK_END_ID))
    n_trace = jnp.where(think_end < c.shape[0], think_end - lead, 0)
    close = tt.last(has(ts.ANSWER_END_ID))
    open_ = tt.last(has(ts.ANSWER_ID) & (i < close))
    n_answer = jnp.where((close >= 0) & (open_ >= 0), close - open_ - 1, 0)
    hits = _matches(c, lead, n_trace, t, t_len) + _matches(c, open_ + 1, n_answer, a, a_len)
    total = jnp.maximum(t_len, n_trace) + jnp.maximum(a_len, n_answer)
    return hits.astype(jnp.float32) / jnp.maximum(total, 1).astype(jnp.float32)

  return jax.vmap(row)(trace, trace_len, answer, answer_len, completion, mask)


__all__ = ["solution_credit"]
