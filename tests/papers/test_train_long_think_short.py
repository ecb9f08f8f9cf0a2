"""Train Long, Think Short (Hammoud et al. 2025) on the strategy toy (part A).

The kernels (schedules, length rewards, the budget reward, the curriculum) are tested in
tests/curricula/test_train_long_think_short.py; this file runs the paper's notebook at the smoke preset once and
checks what it measured.
"""

import numpy as np
import pytest

from configs.train_long_think_short import get_config
from experiments import train_long_think_short as ex
from tests.helpers import assert_fails_before_compute, assert_smoke_claims


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def _run(smoke, arm, h=0):
  return {k: v[h] for k, v in smoke.results["runs"][smoke.results["headline_weighting"]][arm].items()}


def test_budgets_follow_the_schedules(smoke):
  b = smoke.results["budget"]
  T = len(b["fixed"])
  q = [0, T // 4, T // 2, 3 * T // 4, T - 1]
  np.testing.assert_array_equal(b["exponential"][q], [256, 179, 125, 87, 87])
  np.testing.assert_array_equal(b["linear"][q], [256, 200, 143, 87, 87])
  assert np.all(b["fixed"] == 87)


def test_curriculum_explores_long_then_compresses(smoke):
  """Under the exponential curriculum the policy first moves to the long strategy (budget 256), then its length
  falls as the budget shrinks; θ grows throughout."""
  r = _run(smoke, "exponential")
  T = r["length"].shape[-1]
  pi_long = r["pi"][:, T // 4 - 1, 0].mean()
  assert pi_long > 0.5 and pi_long > r["pi"][:, T // 4 - 1, 2].mean()
  assert r["length"][:, -1].mean() < r["length"][:, T // 4 - 1].mean() - 30
  assert np.all(r["theta"][:, -1] > r["theta"][:, T // 4 - 1])


def test_fixed_budget_ends_shorter_than_the_curricula(smoke):
  """At the spec's h_short the fixed budget compresses the most; the exponential decay ends shorter than the
  linear one."""
  fixed, exp, lin = (_run(smoke, a)["length"][:, -1].mean() for a in ("fixed", "exponential", "linear"))
  assert fixed < exp < lin


def test_larger_h_short_slows_the_fixed_budget_early(smoke):
  """The harder the short strategy, the slower fixed-87's skill θ grows in the first quarter (rarer successes)."""
  theta = smoke.results["runs"][smoke.results["headline_weighting"]]["fixed"]["theta"]
  T = theta.shape[-1]
  assert theta[-1, :, T // 4 - 1].mean() < theta[0, :, T // 4 - 1].mean()


@pytest.mark.parametrize("field, value, match", [
    ("chain.arms", ("exponential", "cosine"), "arms"),
    ("chain.h_short", (), "h_short"),
    ("chain.headline_weighting", "balanced", "headline_weighting"),
])
def test_bad_config_fails_before_compute(field, value, match, tmp_path):
  cfg = get_config("smoke")
  node, *path = [cfg] + field.split(".")
  for part in path[:-1]:
    node = node[part]
  node[path[-1]] = value
  assert_fails_before_compute(ex, cfg, tmp_path, ValueError, match)


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
