"""The partial-credit true score of toy-suite completions (rljax.tasks.partial_credit), on exact cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.tasks import toy_suite as T
from rljax.tasks.partial_credit import solution_credit


@pytest.fixture(scope="module")
def case():
  suite = T.make_suite(("add", "modchain"), 3)
  batch = suite.sample(jax.random.key(3), jnp.arange(6, dtype=jnp.int32).repeat(2))
  t = suite.sft_targets(batch)
  return suite, batch, np.asarray(t["completion"]), np.asarray(t["completion_mask"])


def _completion(parts, width):
  """Left-aligned tokens of `parts` (lists of ids), padded to `width`."""
  ids = [i for p in parts for i in p]
  return ids + [T.PAD_ID] * (width - len(ids))


def _build(batch, width, make):
  trace, answer = np.asarray(batch.trace).tolist(), np.asarray(batch.answer).tolist()
  rows = [make(trace[b][:int(batch.trace_len[b])], answer[b][:int(batch.answer_len[b])])
          for b in range(len(trace))]
  c = np.asarray([_completion(r, width) for r in rows], np.int32)
  return c, c != T.PAD_ID


def test_reference_completion_scores_one_and_nothing_scores_zero(case):
  suite, batch, completion, mask = case
  np.testing.assert_array_equal(solution_credit(batch, completion, mask), 1.0)
  np.testing.assert_array_equal(solution_credit(batch, np.zeros_like(completion), np.zeros_like(mask)), 0.0)


def test_counts_matching_positions_over_the_longer_of_reference_and_response(case):
  suite, batch, completion, _ = case
  W = completion.shape[1] + 8  # room for the longest case
  T_len, A_len = np.asarray(batch.trace_len, float), np.asarray(batch.answer_len, float)
  wrong = lambda x: [T.DIGIT0 + (x[0] - T.DIGIT0 + 1) % 10] + x[1:]  # first digit changed
  cases = {
      # one trace step wrong
      "trace_step": (lambda t, a: [[T.THINK_ID], wrong(t), [T.THINK_END_ID, T.ANSWER_ID], a,
                                   [T.ANSWER_END_ID, T.EOS_ID]], (T_len - 1 + A_len) / (T_len + A_len)),
      # one extra answer digit: every reference position matches, the denominator grows by one
      "extra_digit": (lambda t, a: [[T.THINK_ID], t, [T.THINK_END_ID, T.ANSWER_ID], a, [T.DIGIT0],
                                    [T.ANSWER_END_ID, T.EOS_ID]], (T_len + A_len) / (T_len + A_len + 1)),
      # the think block never closes: no trace credit
      "unclosed_think": (lambda t, a: [[T.THINK_ID], t, [T.ANSWER_ID], a, [T.ANSWER_END_ID, T.EOS_ID]],
                         A_len / (T_len + A_len)),
      # no leading <think>: the trace is read from position 0
      "no_think_tag": (lambda t, a: [t, [T.THINK_END_ID, T.ANSWER_ID], a, [T.ANSWER_END_ID, T.EOS_ID]],
                       np.ones_like(T_len)),
      # the answer after <eos> is not read
      "after_eos": (lambda t, a: [[T.THINK_ID], t, [T.THINK_END_ID, T.EOS_ID, T.ANSWER_ID], a, [T.ANSWER_END_ID]],
                    T_len / (T_len + A_len)),
      # the last complete answer block counts
      "two_answers": (lambda t, a: [[T.THINK_ID], t, [T.THINK_END_ID, T.ANSWER_ID], wrong(a),
                                    [T.ANSWER_END_ID, T.ANSWER_ID], a, [T.ANSWER_END_ID, T.EOS_ID]],
                      np.ones_like(T_len)),
  }
  for name, (make, expected) in cases.items():
    c, m = _build(batch, W, make)
    np.testing.assert_allclose(solution_credit(batch, c, m), expected, rtol=1e-6, err_msg=name)


def test_full_credit_implies_the_suite_reward(case):
  suite, batch, completion, mask = case
  rng = np.random.default_rng(0)
  noisy = np.where(rng.random(completion.shape) < 0.15, rng.integers(T.DIGIT0, T.DIGIT0 + 10, completion.shape),
                   completion)
  noisy = np.where(mask, noisy, T.PAD_ID).astype(np.int32)
  s = np.asarray(solution_credit(batch, noisy, mask))
  reward = np.asarray(suite.reward_fn(np.concatenate([np.asarray(batch.ids), noisy], 1),
                                      np.concatenate([np.zeros_like(batch.mask), mask], 1)))
  assert 0 < (s == 1).sum() < len(s)  # both cases occur
  assert np.all(reward[s == 1] == 1) and np.all((s >= 0) & (s <= 1))


def test_bad_shapes_raise(case):
  _, batch, completion, mask = case
  with pytest.raises(ValueError, match="rows"):
    solution_credit(batch, completion[:3], mask[:3])
  with pytest.raises(ValueError):
    solution_credit(batch, completion, mask[:, :-1])
