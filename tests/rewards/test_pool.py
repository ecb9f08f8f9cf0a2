"""RewardPool: weighted totals and metrics, and failure isolation (hang, segfault, exception, NaN, exit).

The pool's workers import the rewards by reference, so the misbehaving ones live in
`tests.rewards.verifiers_for_tests`. One module-scoped pool (two workers, 0.5 s timeout) serves the tests
that break workers, so each test after them also checks that the replacements work.
"""

from __future__ import annotations

import functools
import gc
import time

import numpy as np
import pytest

from rljax.rewards import RewardPool, answer_format
from tests.rewards.verifiers_for_tests import behave, broken_warmup, scaled

TIMEOUT = 0.5
WORDS = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "ggggggg", "hhhhhhhh"]


@pytest.fixture(scope="module")
def pool():
  with RewardPool({"len": behave}, workers=2, timeout=TIMEOUT) as p:
    yield p


def _alive(pids):
  """The pids that are running children of this process (a zombie is not running)."""
  psutil = pytest.importorskip("psutil")  # installed with the test extras (ipykernel depends on it)
  children = {c.pid: c for c in psutil.Process().children()}
  return [p for p in pids if p in children and children[p].status() != psutil.STATUS_ZOMBIE]


def _with(failure: str, at: int) -> list[str]:
  completions = list(WORDS)
  completions[at] = failure
  return completions


def _expected(completions):
  return np.array([len(c) if c in WORDS else 0 for c in completions], np.float32)


def test_weighted_sum_and_metrics_match_inline():
  """Σ weight·r per item and per-name means, equal inline and in workers (where math-verify's signal-based
  timeouts run in the workers' main threads)."""
  completions = ["<answer>0.5</answer>", "1/2", "<answer>1+2x</answer> <answer>2x+2</answer>", "<answer>1+2x</answer>"]
  rows = [{"scale": s, "answer": a} for s, a in ((1.0, "\\frac{1}{2}"), (2.0, "0.5"), (0.5, "2x+1"), (-1.0, "2x+1"))]
  spec = {"len": (behave, 2.0), "fmt": (answer_format, -0.5), "scaled": scaled, "math": ("math_equivalence", 3.0)}
  lengths = np.array([len(c) for c in completions], np.float64)
  fmt = np.array([1.0, 0.0, 0.0, 1.0])
  math = np.array([1.0, 0.0, 0.0, 1.0])
  scaled_ = lengths * [1.0, 2.0, 0.5, -1.0]
  with RewardPool(spec, workers=0) as inline, RewardPool(spec, workers=1, timeout=5.0) as pooled:
    for p in (inline, pooled):
      total, metrics = p(["q"] * 4, completions, rows)
      assert total.dtype == np.float32 and total.shape == (4,)
      np.testing.assert_allclose(total, 2.0 * lengths - 0.5 * fmt + scaled_ + 3.0 * math, rtol=1e-6)
      assert metrics["reward/len"] == pytest.approx(lengths.mean())
      assert metrics["reward/fmt"] == metrics["reward/math"] == 0.5
      assert metrics["reward/scaled"] == pytest.approx(scaled_.mean())
      assert metrics["reward/timeouts"] == metrics["reward/errors"] == 0.0
      assert metrics["reward/seconds"] > 0


def test_workers_are_reused(pool):
  pids = pool.worker_pids
  for _ in range(3):
    total, _ = pool(["q"] * 8, WORDS)
    np.testing.assert_array_equal(total, _expected(WORDS))
  assert pool.worker_pids == pids and len(_alive(pids)) == 2


def test_hang_zeroes_only_that_item(pool):
  completions = _with("hang", at=1)  # the items after it in its chunk are retried on another worker
  start = time.monotonic()
  total, metrics = pool(["q"] * 8, completions)
  elapsed = time.monotonic() - start
  np.testing.assert_array_equal(total, _expected(completions))
  assert metrics["reward/timeouts"] == 1.0 and metrics["reward/errors"] == 0.0
  assert TIMEOUT <= elapsed < 2 * TIMEOUT
  assert metrics["reward/len"] == pytest.approx(_expected(completions).mean())


def test_more_hangs_than_workers(pool):
  """Three hangs on two workers: two waves of timeouts (plus a replacement's start), never a stall."""
  completions = ["hang", "a", "hang", "bb", "hang", "ccc"]
  start = time.monotonic()
  total, metrics = pool(["q"] * 6, completions)
  elapsed = time.monotonic() - start
  np.testing.assert_array_equal(total, _expected(completions))
  assert metrics["reward/timeouts"] == 3.0
  assert elapsed < 2 * TIMEOUT + 3.0


def test_segfault_is_an_error_and_the_worker_is_replaced(pool):
  before = pool.worker_pids
  completions = _with("segfault", at=2)
  total, metrics = pool(["q"] * 8, completions)
  np.testing.assert_array_equal(total, _expected(completions))
  assert metrics["reward/errors"] == 1.0 and metrics["reward/timeouts"] == 0.0
  after = pool.worker_pids
  assert len(set(after) - set(before)) == 1 and len(_alive(after)) == 2
  total, metrics = pool(["q"] * 8, WORDS)  # the next call still works
  np.testing.assert_array_equal(total, _expected(WORDS))
  assert metrics["reward/errors"] == 0.0 and len(_alive(pool.worker_pids)) == 2


@pytest.mark.parametrize("failure", ["raise", "nan", "inf", "none", "exit"])
def test_bad_values_are_errors(pool, failure):
  """Exceptions (sys.exit included) and non-finite or non-numeric values: 0 and an error; the worker lives."""
  pids = pool.worker_pids
  completions = _with(failure, at=0)
  total, metrics = pool(["q"] * 8, completions)
  np.testing.assert_array_equal(total, _expected(completions))
  assert metrics["reward/errors"] == 1.0 and metrics["reward/timeouts"] == 0.0
  assert pool.worker_pids == pids


@pytest.mark.parametrize("failure", ["raise", "nan", "none", "exit"])
def test_bad_values_are_errors_inline(failure):
  with RewardPool({"len": behave}, workers=0) as p:
    completions = _with(failure, at=3)
    total, metrics = p(["q"] * 8, completions)
  np.testing.assert_array_equal(total, _expected(completions))
  assert metrics["reward/errors"] == 1.0


def test_no_processes_left_after_close_or_collection():
  p = RewardPool({"len": behave, "half": functools.partial(scaled, scale=0.5)}, workers=1, timeout=5.0)
  pids = p.worker_pids
  assert len(_alive(pids)) == 1
  p.close()
  p.close()  # idempotent
  assert _alive(pids) == [] and p.worker_pids == []
  with pytest.raises(RuntimeError, match="closed"):
    p(["q"], ["a"])
  p = RewardPool({"len": behave}, workers=1, timeout=5.0)
  pids = p.worker_pids
  del p
  gc.collect()
  assert _alive(pids) == []


def test_bad_arguments():
  with pytest.raises(ValueError, match="`workers`"):
    RewardPool({"len": behave}, workers=-1)
  with pytest.raises(ValueError, match="`timeout`"):
    RewardPool({"len": behave}, timeout=0)
  with pytest.raises(ValueError, match="`rewards`"):
    RewardPool({})
  with pytest.raises(ValueError, match="names"):
    RewardPool({"errors": behave}, workers=0)
  with pytest.raises(ValueError, match="finite"):
    RewardPool({"len": (behave, float("nan"))}, workers=0)
  with pytest.raises(TypeError, match="callable"):
    RewardPool({"len": 3}, workers=0)
  with pytest.raises(ValueError, match="picklable"):
    RewardPool({"len": lambda p, c, **_: 1.0})

  def in_main(prompt, completion, **_):
    return 0.0

  in_main.__module__ = "__main__"
  with pytest.raises(ValueError, match="__main__"):
    RewardPool({"x": functools.partial(in_main)})
  with RewardPool({"fmt": "answer_format"}, workers=0) as p:
    with pytest.raises(ValueError, match="`completions` has 1 entries, expected 2"):
      p(["q", "q"], ["a"])
    with pytest.raises(ValueError, match="`rows`"):
      p(["q"], ["a"], [{"prompt": "q"}])


def test_a_worker_that_cannot_start_is_an_error():
  with pytest.raises(RuntimeError, match="(?s)failed to load the rewards.*warmup exploded"):
    RewardPool({"bad": broken_warmup}, workers=1)
