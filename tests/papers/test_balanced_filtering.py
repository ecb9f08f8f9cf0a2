"""Balanced online difficulty filtering (Bae et al. 2025) on the skill chain.

The kernels (the filter, the tilt-KL identities, the curriculum) are tested in
tests/curricula/test_balanced_filtering.py; this file runs the paper's notebook at the smoke preset once and checks
what it measured.
"""

import numpy as np
import pytest

from configs.balanced_filtering import get_config
from experiments import balanced_filtering as ex
from tests.helpers import assert_fails_before_compute, assert_smoke_claims


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_filters_keep_what_they_promise(smoke):
  arms, cfg = smoke.results["arms"], smoke.summary["config"]
  b, g = cfg["chain"]["prompts"], cfg["chain"]["group_size"]
  n = b * cfg["chain"]["refill_factor"]
  assert set(arms) == set(ex.REQUIRED)
  np.testing.assert_array_equal(arms["none"]["rollouts"], b * g)  # no filter: one rollout batch per step
  for name in ("balanced", "narrow", "drop_easy", "drop_hard"):
    r = arms[name]["rollouts"]
    assert np.all(r >= b * g) and np.all(r <= n * g)
  # A two-sided filter with a full batch never trains on a zero-advantage group; plain GRPO does.
  for name in ("balanced", "narrow"):
    full = arms[name]["batch"] == b
    assert full.mean() > 0.9 and np.all(arms[name]["zero_adv"][full] == 0)
  assert arms["none"]["zero_adv"].mean() > 0.1
  # Step 0 starts every arm from the same θ and keys: the bands nest, narrow ⊂ balanced ⊂ each one-sided filter.
  k0 = {name: arms[name]["kept"][:, 0] for name in arms}
  assert np.all(k0["narrow"] <= k0["balanced"])
  assert np.all(k0["balanced"] <= k0["drop_easy"]) and np.all(k0["balanced"] <= k0["drop_hard"])
  assert np.all(k0["balanced"] < 0.6)  # at θ = 0 most deep groups are all-wrong


def test_every_arm_learns_and_filters_cost_rollouts(smoke):
  res = smoke.results
  for name in res["variants"]:
    s = ex.train_success(res, name)
    assert s[:, -1].mean() > s[:, 0].mean() + 0.2
  rows = {r["variant"]: r for r in smoke.summary["metrics"]["chain"]}
  assert rows["narrow"]["rpp"] > rows["balanced"]["rpp"] > rows["none"]["rpp"] == res["group_size"]
  # Per rollout, filtering is behind plain GRPO early on (it spent several rollout batches per step).
  assert rows["balanced"]["s_budget"] < rows["none"]["s_budget"]


@pytest.mark.parametrize("field, value, match", [
    ("variant_names", ("none", "balanced", "narrow", "drop_easy"), "variant_names"),
    ("compare_fraction", 0.0, "compare_fraction"),
    ("seeds", 0, "seeds"),
])
def test_bad_config_fails_before_compute(field, value, match, tmp_path):
  cfg = get_config("smoke")
  cfg[field] = value
  assert_fails_before_compute(ex, cfg, tmp_path, ValueError, match)


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
