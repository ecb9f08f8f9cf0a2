"""pass@k against subset enumeration and exact binomials; accuracy tables against hand counts."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from rljax.tasks import CORRECT_AT, accuracy_table, pass_at_k


def _brute_pass_at_k(n: int, c: int, k: int) -> float:
  """The fraction of k-subsets of n samples (the first c correct) that hold a correct sample."""
  subsets = list(itertools.combinations(range(n), k))
  return sum(any(i < c for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_matches_subset_enumeration():
  for n in range(1, 8):
    for c in range(n + 1):
      for k in range(1, n + 1):
        assert pass_at_k(n, c, k) == pytest.approx(_brute_pass_at_k(n, c, k), abs=1e-12), (n, c, k)


def test_pass_at_k_closed_forms_and_large_n():
  for n, c in [(1, 0), (1, 1), (5, 0), (5, 5), (9, 4)]:
    assert pass_at_k(n, c, 1) == pytest.approx(c / n)             # pass@1 is the fraction correct
    assert pass_at_k(n, c, n) == (1.0 if c else 0.0)              # all n samples: any correct one
  assert pass_at_k(4, 0, 2) == 0.0 and pass_at_k(4, 4, 2) == 1.0
  # Large n, where C(n, k) overflows floats: the product form against exact rational arithmetic.
  n, c, k = 2000, 37, 300
  exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
  assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12)


@pytest.mark.parametrize("n, c, k", [(0, 0, 1), (3, 4, 1), (3, -1, 1), (3, 1, 0), (3, 1, 4), (3.0, 1, 1)])
def test_pass_at_k_rejects_bad_arguments(n, c, k):
  with pytest.raises(ValueError):
    pass_at_k(n, c, k)


def _rows_and_samples():
  rows = [{"family": "a", "difficulty": 0}, {"family": "a", "difficulty": 1}, {"family": "a", "difficulty": 1},
          {"family": "b", "difficulty": 0}]
  rewards = np.array([[1.0, 0.0, 1.0, 0.99],      # 2 correct; 0.99 is partial credit, not correct
                      [0.5, 0.5, 0.05, 0.0],      # 0 correct
                      [1.0, 1.0, 1.0, 1.0],       # 4 correct
                      [0.0, 1 - 1e-7, 0.0, 0.0]], np.float32)  # 1 correct (float32 rounding of 1.0)
  lengths = np.arange(16).reshape(4, 4)
  return rows, rewards, lengths


def test_accuracy_table_counts_full_credit_only():
  rows, rewards, lengths = _rows_and_samples()
  table = accuracy_table(rows, rewards, lengths)
  assert table["acc/all/mean@4"] == pytest.approx(7 / 16)
  assert table["acc/a/mean@4"] == pytest.approx(6 / 12)
  assert table["acc/a/d1/mean@4"] == pytest.approx(4 / 8)
  assert table["acc/b/d0/mean@4"] == pytest.approx(1 / 4)
  # pass@4: a prompt counts when any of its 4 samples is correct.
  assert table["acc/all/pass@4"] == pytest.approx(3 / 4)
  assert table["acc/a/d1/pass@4"] == pytest.approx(1 / 2)
  assert table["acc/a/reward"] == pytest.approx(rewards[:3].mean())
  assert table["acc/a/d1/length"] == pytest.approx(lengths[1:3].mean())
  assert table["acc/a/n"] == 3 and table["acc/all/n"] == 4
  scopes = {"all", "a", "a/d0", "a/d1", "b", "b/d0"}
  assert set(table) == {f"acc/{s}/{m}" for s in scopes for m in ("mean@4", "pass@1", "pass@4", "reward", "length", "n")}
  for s in scopes:  # pass@1 is the fraction of correct samples, in every scope
    assert table[f"acc/{s}/pass@1"] == pytest.approx(table[f"acc/{s}/mean@4"])


def test_accuracy_table_ks_and_threshold():
  rows, rewards, lengths = _rows_and_samples()
  table = accuracy_table(rows, rewards, lengths, ks=(2, 3))
  assert "acc/all/pass@1" not in table
  # row 0 (c=2): 1 - C(2,2)/C(4,2) = 5/6; row 1: 0; row 2: 1; row 3 (c=1): 1 - C(3,2)/C(4,2) = 1/2
  assert table["acc/all/pass@2"] == pytest.approx((5 / 6 + 0 + 1 + 1 / 2) / 4)
  assert table["acc/all/pass@2"] <= table["acc/all/pass@3"]
  lenient = accuracy_table(rows, rewards, lengths, correct_at=0.5)
  assert lenient["acc/all/mean@4"] == pytest.approx(10 / 16)
  assert CORRECT_AT == pytest.approx(1 - 1e-6)


def test_accuracy_table_rejects_bad_inputs():
  rows, rewards, lengths = _rows_and_samples()
  with pytest.raises(ValueError, match="ks"):
    accuracy_table(rows, rewards, lengths, ks=(5,))
  with pytest.raises(ValueError, match="lengths"):
    accuracy_table(rows, rewards, lengths[:, :3])
  with pytest.raises(ValueError, match="rows"):
    accuracy_table(rows[:3], rewards, lengths)
  with pytest.raises(ValueError, match="rank"):
    accuracy_table(rows, rewards[:, 0], lengths[:, 0])
