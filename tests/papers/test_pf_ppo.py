"""PF-PPO on the toy suite: PPO with rank filters against a noisy learned reward model (Zhang, Shen et al.).

The filter kernels and R² are tested exactly in tests/losses/test_pf_ppo.py, the partial-credit score in
tests/tasks/test_partial_credit.py and the reward model in tests/training/test_reward_regression.py; this
file runs the paper's notebook at the smoke preset once and checks what it measured.
"""

import numpy as np
import pytest

from configs.pf_ppo import get_config
from experiments import pf_ppo as ex
from tests.helpers import assert_fails_before_compute, assert_smoke_claims


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_each_arm_trains_on_its_filters_share_of_the_responses(smoke):
  n = smoke.summary["config"]["rl"]["group_size"]
  kept = {"none": n, "bon": 1, "best_random": 2, "best_worst": 2}
  arms = smoke.results["arms"]
  assert set(arms) == set(kept)
  for name, arm in arms.items():
    for curve in arm["curves"].values():
      fracs = [v for _, v in curve["keep_frac"]]
      assert fracs, name
      np.testing.assert_allclose(fracs, kept[name] / n, err_msg=name)


def test_reward_model_tracks_the_true_score_at_init(smoke):
  res = smoke.results
  key = f"{res['sigma0']:g}"
  init = res["init"]
  assert res["rm_corr"][key] > 0.1  # the fitted RM ranks responses better than chance
  assert abs(init["rm_reward"] - init["true_score"]) < 0.1  # least squares on unbiased labels: calibrated
  # R² over every sample (filter "none") is the squared correlation, computed independently.
  np.testing.assert_allclose(res["r2"][key]["none"], res["rm_corr"][key] ** 2, rtol=1e-3)
  for f in res["filters"]:
    assert 0 <= res["r2"][key][f] <= 1
  finals = [v for arm in res["arms"].values() for v in arm["final"]["true_score"]]
  assert all(0 <= v <= 1 for v in finals)


def test_bad_config_values_fail_before_compute(tmp_path):
  for field, value, match in (("filters", ("none", "top2"), "filters"), ("filters", (), "filters"),
                              ("rm.sigma0", -0.5, "noise"), ("rm.batch", 10**6, "batch"),
                              ("rl.group_size", 1, "group_size"), ("rl.kl_coef", -0.1, "kl_coef")):
    cfg = get_config("smoke")
    section, _, name = field.rpartition(".")
    (cfg[section] if section else cfg)[name] = value
    assert_fails_before_compute(ex, cfg, tmp_path / name, ValueError, match)


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
