"""GRPO-D (OThink-MR1) on the toy-suite testbed: the notebook at the smoke preset, and its config checks.

The schedule kernel itself is tested in tests/losses/test_grpo_d.py. At the smoke size accuracy does not move,
so the fast tests check the mechanism: the β the loss used at every step is the schedule's, and the KL term
holds the policy near its start.
"""


import numpy as np
import pytest

from configs.grpo_d import get_config
from experiments import grpo_d as ex
from rljax.losses.grpo_d import grpo_d_kl_schedule
from tests.helpers import assert_fails_before_compute, assert_smoke_claims


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_logged_beta_is_the_schedule_of_each_arm(smoke):
  cfg = smoke.summary["config"]
  steps = cfg["rl"]["steps"]
  assert set(smoke.results["arms"]) == set(cfg["arm_names"])
  for name, arm in smoke.results["arms"].items():
    c = arm["curves"]
    # Logged at loop step t, the update ran at optimizer step t − 1 (one update per iteration).
    expected = [float(grpo_d_kl_schedule(t - 1, steps, kind=arm["kind"], beta_max=arm["beta_max"],
                                         warmup_frac=cfg["warmup_frac"])) for t in c["step"][0]]
    np.testing.assert_allclose(c["kl_coef"], np.broadcast_to(expected, c["kl_coef"].shape), rtol=1e-5, atol=1e-7)
  ramp = smoke.results["arms"]["ramp"]["curves"]["kl_coef"][0]
  assert ramp[0] < ramp[-1] and np.all(np.diff(ramp) >= 0)


def test_kl_term_holds_the_policy_near_its_start(smoke):
  final = {name: float(ex._final_kl(arm).mean()) for name, arm in smoke.results["arms"].items()}
  assert final["beta0"] > 3 * final["constant"]
  assert final["beta0"] > 3 * final["ramp"]
  rows = {r["arm"]: r for r in smoke.summary["metrics"]["table"]}
  assert rows["beta0"]["beta_mean"] == 0 and rows["constant"]["beta_mean"] == pytest.approx(1.0)
  assert 0 < rows["ramp"]["beta_mean"] < 1


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.arms.ramp.update(kind="linear"), "kind"),
    (lambda c: c.rl.update(steps=10, eval_every=4), "multiple"),
    (lambda c: setattr(c, "arm_names", ("beta0", "ramp")), "constant"),
    (lambda c: setattr(c, "task_b", "add"), "differ"),
    (lambda c: setattr(c, "task_a", "sort"), "family"),
])
def test_bad_config_fails_before_compute(tmp_path, edit, match):
  cfg = get_config("smoke")
  edit(cfg)
  assert_fails_before_compute(ex, cfg, tmp_path, ValueError, match)


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
