"""DUMP (Wang et al. 2025) on the skill chain (part A).

The kernel (UCB scores, ring-buffer window, parity with a NumPy port of the reference controller) is tested in
tests/curricula/test_dump.py; this file runs the paper's notebook at the smoke preset once and checks what it
measured.
"""

import numpy as np
import pytest

from configs.dump import get_config
from experiments import dump as ex
from tests.helpers import assert_fails_before_compute, assert_smoke_claims


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_dump_mass_leaves_the_shallow_depths_it_starts_on(smoke):
  """P starts uniform, moves to shallow depths (learnable first), then deeper: the minimum of E_P[depth] comes
  early and the run ends deeper than that minimum; the pool arm's P never moves."""
  r = smoke.results
  md = ex.mean_depth(r, "dump").mean(0)
  np.testing.assert_allclose(r["arms"]["dump"]["probs"][:, 0], 1 / 12, atol=1e-6)
  t = md.shape[0]
  assert np.argmin(md) < t // 2 and md[-t // 4:].mean() > md.min() + 1.0
  pool = ex.mean_depth(r, "pool")
  np.testing.assert_allclose(pool, np.average(r["train_depths"], weights=r["pool_sizes"]), rtol=1e-5)


def test_learning_reaches_the_deep_depths(smoke):
  for name in smoke.results["arm_names"]:
    s = ex.deep_success(smoke.results, name).mean(0)
    assert s[-1] > s[0] + 0.1


@pytest.mark.parametrize("field, value, match", [
    ("arm_names", ("uniform", "dump"), "arm_names"),
    ("arm_names", ("pool", "dump", "nope"), "arms"),
    ("pool_sizes", (3, 1), "pool_sizes"),
    ("deep_depths", (13,), "deep_depths"),
    ("early_fraction", 0.0, "early_fraction"),
])
def test_bad_config_fails_before_compute(field, value, match, tmp_path):
  cfg = get_config("smoke")
  cfg[field] = value
  assert_fails_before_compute(ex, cfg, tmp_path, ValueError, match)


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
