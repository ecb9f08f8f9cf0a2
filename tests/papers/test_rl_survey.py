"""Every RLVR estimator and aggregation mode from one SFT start, and GRPO's length bias (Srivastava &
Aggarwal 2025, spec §1).

The length toy and the host reward that splits lengths by correctness are tested in
tests/losses/test_rl_survey.py; the kernels in tests/losses/test_advantages.py and test_aggregation.py. This
file runs the paper's notebook at the smoke preset: a decoder that is right almost never, so its arms are
checked to run and log, and the toy carries the trend.
"""

import math
import time

import numpy as np
import pytest

from configs.rl_survey import get_config
from experiments import rl_survey as ex
from tests.helpers import assert_fails_before_compute, assert_smoke_claims


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_every_arm_ran_from_the_sft_start_and_logged_lengths(smoke):
  cfg = get_config("smoke")
  res = smoke.results
  expected = set(cfg.estimators) | {ex.agg_arm(m) for m in cfg.agg_modes}
  assert set(res["arms"]) == expected
  width = res["width"]
  for name, arm in res["arms"].items():
    assert len(arm["seeds"]) == len(cfg.rl.seeds)
    for seed in arm["seeds"]:
      acc = seed["accuracy"]
      assert 0.0 <= acc["mean"] <= acc["pass"] <= 1.0, name
      assert 1.0 <= acc["length"] <= width, name
      curves = seed["curves"]
      assert [s for s, _ in curves["reward_mean"]] == list(range(1, cfg.rl.steps + 1)), name  # logged every step
      for step_n, (_, n_cor), (_, n_inc) in zip(curves["reward_mean"], curves["n_correct"], curves["n_incorrect"]):
        # the LengthSplit counts cover the batch (DAPO: its first drawn batch) and match its reward
        assert n_cor + n_inc == cfg.rl.prompts * cfg.rl.group_size
        assert step_n[1] == pytest.approx(n_cor / (n_cor + n_inc), abs=1e-6), name
      for (_, n), (_, length) in zip(curves["n_incorrect"], curves["length_incorrect"]):
        assert (length == 0) if n == 0 else 1 <= length <= width
  rows = {r["arm"]: r for r in smoke.summary["metrics"]["table"]}
  assert rows["SFT start"]["gain"] == 0 and set(rows) == expected | {"SFT start"}


def test_toy_lengthens_wrong_answers_under_grpo_only(smoke):
  toy = smoke.results["toy"]
  grpo, dr = toy["grpo"], toy["dr_grpo"]
  assert grpo["reward"].mean(0)[-1] > 0.9 and dr["reward"].mean(0)[-1] > 0.9  # both learn the answers
  # exact E[L | wrong] rises under 1/|o| by more than 3 tokens in every seed, and barely under Dr. GRPO
  assert np.all(grpo["length_wrong"][:, -1] - grpo["length_wrong"][:, 0] > 3.0)
  assert np.all(np.abs(dr["length_wrong"][:, -1] - dr["length_wrong"][:, 0]) < 1.5)
  # ... while the right answers get shorter under GRPO and not under Dr. GRPO
  assert np.all(grpo["length_right"][:, -1] < grpo["length_right"][:, 0] - 2.0)
  assert np.all(np.abs(dr["length_right"][:, -1] - dr["length_right"][:, 0]) < 1.0)


def test_length_growth_reads_count_weighted_windows():
  curves = {"length_incorrect": [(1, 4.0), (2, 6.0), (3, 9.0), (4, 0.0)],
            "n_incorrect": [(1, 1.0), (2, 3.0), (3, 2.0), (4, 0.0)]}
  results = {"steps": 4, "length_window": 0.5, "arms": {"a": {"seeds": [{"curves": curves}]}}}
  start, end, growth = ex.length_change(results, "a")
  assert start == pytest.approx((4 + 18) / 4) and end == pytest.approx(9.0)  # step 4 has no incorrect response
  assert growth == pytest.approx(9.0 - 5.5)


@pytest.mark.parametrize("field, value, match", [
    ("estimators", ("grpo", "dr_grpo", "dapo", "grpoo"), "grpoo"),
    ("estimators", ("grpo", "dapo"), "dr_grpo"),
    ("agg_modes", ("seq-mean-token-mean", "seq-mean-token-sum-norm", "token-means"), "token-means"),
    ("length_window", 0.9, "length_window"),
    ("dapo_cache_fraction", 1.5, "dapo_cache_fraction"),
])
def test_bad_config_fails_before_compute(tmp_path, field, value, match):
  cfg = get_config("smoke")
  setattr(cfg, field, value)
  t = time.perf_counter()
  assert_fails_before_compute(ex, cfg, tmp_path, (KeyError, ValueError), match)
  assert time.perf_counter() - t < 5.0


def test_bad_toy_arm_fails_before_compute(tmp_path):
  cfg = get_config("smoke")
  cfg.out_dir = str(tmp_path / "run")
  cfg.toy.arms = ("grpo", "dr_grpo", "gspo")
  with pytest.raises(ValueError, match="toy.arms"):
    ex.run(cfg)
  assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")


def test_presets_fit_their_budgets():
  cpu, gpu = get_config("cpu"), get_config("gpu")
  arms = len(cpu.estimators) + len(cpu.agg_modes)
  assert arms == 13 and len(cpu.rl.seeds) == 3
  # ~0.25 s per RL step on 2 idle cores plus a compile per arm and seed: 40 steps keep it under 15 minutes
  assert arms * len(cpu.rl.seeds) * cpu.rl.steps * 0.25 < 450
  assert gpu.model.d_model > cpu.model.d_model and gpu.rl.steps > cpu.rl.steps
  assert math.isclose(cpu.dapo_cache_fraction, 4096 / 20480)
