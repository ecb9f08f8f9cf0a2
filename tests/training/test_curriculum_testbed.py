"""The curricula testbed's configuration: arms, levels, options filled from the run, bad configs."""

import numpy as np
import pytest

from rljax.training import curriculum_testbed as ct


def test_train_arms_and_levels_and_filled_options():
  cfg = ct.curriculum_testbed_config("cpu")
  assert cfg.task.difficulties == 4 and tuple(cfg.curricula.train_levels) == (0, 1, 2)
  train = ct._arm_ids(cfg, cfg.curricula.train_levels)
  assert train == [0, 1, 2, 4, 5, 6]  # two families × levels 0..2 of 4
  c = ct.build(cfg, {"curriculum": {"name": "easy_to_hard"}}, len(train), [a % 4 for a in train])
  assert c.config["total_steps"] == cfg.rl.steps and c.config["levels"] == (0, 1, 2, 0, 1, 2)
  u = ct.build(cfg, {"curriculum": {"name": "uniform"}}, len(train), [a % 4 for a in train])
  assert "total_steps" not in u.config


def test_bad_configs_fail_before_compute(tmp_path):
  cfg = ct.curriculum_testbed_config("smoke")
  cfg.out_dir = str(tmp_path)
  with pytest.raises(ValueError, match="curriculum"):
    ct.run(cfg, {"x": {"preset": "grpo"}})
  with pytest.raises(ValueError, match="unknown curriculum"):
    ct.run(cfg, {"x": {"curriculum": {"name": "nope"}}})
  cfg.curricula.train_levels = (0, 5)
  with pytest.raises(ValueError, match="train_levels"):
    ct.run(cfg, {"x": {"curriculum": {"name": "uniform"}}})
  assert not list(tmp_path.iterdir())  # nothing was written


def test_a_smoke_run_records_accuracy_probabilities_and_rows(tmp_path):
  cfg = ct.curriculum_testbed_config("smoke")
  cfg.out_dir = str(tmp_path)
  cfg.rl.steps = cfg.rl.eval_every = 2
  res = ct.run(cfg, {"uniform": {"curriculum": {"name": "uniform"}},
                     "e2h": {"curriculum": {"name": "easy_to_hard"}}})
  e2h = res["runs"]["e2h/seed0"]
  assert e2h["probs"].shape == (2, 4)  # steps × training arms (two families × levels 0, 1)
  np.testing.assert_allclose(e2h["probs"][0], [0.5, 0, 0.5, 0])  # level 0 first
  np.testing.assert_allclose(e2h["probs"][1], [0, 0.5, 0, 0.5])  # then level 1
  assert ct.mean_depth_drift(res, "e2h") == 1.0 and ct.mean_depth_drift(res, "uniform") == 0.0
  rows = {r["arm"]: r for r in ct.table_rows(res)}
  assert set(rows) == {"uniform", "e2h"} and rows["uniform"]["batches"] == 1.0
  assert ct.gain(res, "e2h", "e2h") == 0.0
  assert [s for s, _ in e2h["accuracy"]] == [2] and 0 <= e2h["final"]["harder"] <= 1
