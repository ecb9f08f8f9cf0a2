"""GHPO (arXiv 2507.10628), part A on the skill chain: the notebook at the smoke preset, once, and its trends.

The kernel (all_wrong, hint lengths, the staged resampling, the token prompts) is tested in
tests/curricula/test_ghpo.py.
"""

import numpy as np
import pytest

from configs.ghpo import get_config
from experiments import ghpo as ex
from tests.helpers import assert_fails_before_compute, assert_smoke_claims


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def _rows(smoke):
  return {r["arm"]: r for r in smoke.summary["metrics"]["arms"]}


def test_baselines_see_only_all_wrong_groups_and_ghpo_does_not(smoke):
  """The mechanism: at init every un-hinted group fails, so GRPO's groups are zero-advantage and the filter keeps
  almost nothing; GHPO's hinted groups carry signal from the first steps."""
  rows = _rows(smoke)
  assert rows["grpo"]["zero_adv_early"] > 0.99 and rows["grpo"]["zero_adv_late"] > 0.99
  assert rows["balanced"]["kept"] < 0.01
  assert rows["ghpo"]["zero_adv_early"] < 0.9
  assert rows["ghpo"]["success"] > rows["grpo"]["success"] + 0.4
  assert rows["ghpo"]["success"] > rows["balanced"]["success"] + 0.4


def test_ghpo_hints_fade_stage_by_stage(smoke):
  g = smoke.results["ghpo"]
  hinted = ex.hinted_per_stage(g["stage_frac"]).mean(0)  # [T, 3]
  assert np.all(hinted[:10].mean(0) > 0.9)  # at first nearly every group needs the ω = 0.75 stage
  assert np.all(hinted[-10:].mean(0) < 0.2)
  assert np.all(np.diff(hinted, axis=-1) <= 1e-6)  # resampled at stage k+1 ⊆ still wrong after stage k
  assert np.allclose(g["stage_frac"].sum(-1), 1.0, atol=1e-5)
  cum = np.cumsum(g["rollouts"], 1)
  grpo = np.cumsum(smoke.results["grpo"]["rollouts"], 1)
  assert np.all(cum[:, -1] > grpo[:, -1])  # the hinted stages cost rollouts, at most 4× GRPO's
  assert np.all(cum[:, -1] <= 4 * grpo[:, -1])


def test_config_errors():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")


def test_unknown_arm_fails_before_compute(tmp_path):
  cfg = get_config("smoke")
  cfg.arm_names = ("grpo", "sft")
  assert_fails_before_compute(ex, cfg, tmp_path, match="sft")
