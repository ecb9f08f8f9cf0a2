"""KDRL on the toy suite: GRPO, pure on-policy KD and KDRL variants from one noisy student, a larger clean
teacher (Xu et al. 2025).

The kernel (the k2/k3 KD term, the reward-guided mask, the β schedule, c_PG = 0 for pure KD) is tested
exactly in tests/losses/test_kdrl.py; this file runs the paper's notebook at the smoke preset and checks
the experiment's wiring and trends there.
"""

import numpy as np
import pytest

from configs.kdrl import get_config
from experiments import kdrl as ex
from rljax.losses.kdrl import kdrl_kl_schedule
from tests.helpers import assert_fails_before_compute, assert_smoke_claims


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_teacher_is_stronger_and_distillation_pulls_the_student_to_it(smoke):
  r = smoke.results
  assert set(r["arms"]) == set(ex.HEADLINE_ARMS)
  assert r["teacher"]["mean"] > r["start"]["mean"] + 0.1  # the teacher has room above the student
  for name in ("kd", "kdrl_k2", "kdrl_mask"):
    kd = [v for _, v in r["curves"][f"{name}/seed0"]["kd_loss"]]
    assert len(kd) >= 3 and np.all(np.isfinite(kd))
  assert r["curves"]["grpo/seed0"]["kd_loss"] == []  # GRPO has no teacher term


def test_arm_presets():
  cfg = get_config("smoke")
  grpo = ex.arm_preset(cfg, "grpo")
  assert (grpo.loss, grpo.agg, grpo.kl.where) == ("ppo_clip", "token-mean", "none")
  kd = ex.arm_preset(cfg, "kd")
  assert (kd.loss, kd.loss_kwargs.pg_coef, kd.kl.coef, kd.kl.schedule) == ("kdrl", 0.0, cfg.kdrl.kd_beta, None)
  k3 = ex.arm_preset(cfg, "kdrl_k3")
  assert (k3.kl.kind, k3.loss_kwargs.pg_coef, k3.kl.coef) == ("k3", 1.0, cfg.kdrl.beta)
  assert ex.arm_preset(cfg, "kdrl_mask").loss_kwargs.kd_mask == "response"
  s = ex.arm_preset(cfg, "kdrl_anneal").kl.schedule.to_dict()
  beta = lambda t: float(kdrl_kl_schedule(t, **{k: v for k, v in s.items() if k != "name"}))
  end = cfg.kdrl.anneal_frac * cfg.rl.steps  # β0 at step 0, β_min from anneal_frac of the run on
  assert beta(0) == pytest.approx(cfg.kdrl.beta0)
  assert beta(end / 2) == pytest.approx((cfg.kdrl.beta0 + cfg.kdrl.beta_min) / 2, rel=1e-5)
  assert beta(end) == pytest.approx(cfg.kdrl.beta_min, rel=1e-5) and beta(cfg.rl.steps) == beta(end)


@pytest.mark.parametrize("edit, error, match", [
    (lambda c: c.arms.kdrl_k3.update(kind="k5"), ValueError, "kind"),
    (lambda c: c.arms.kdrl_mask.update(kd_mask="tokens"), ValueError, "kd_mask"),
    (lambda c: c.kdrl.update(beta=-0.1), ValueError, "beta"),
    (lambda c: c.kdrl.update(beta_min=1.0), ValueError, "decay"),
    (lambda c: c.arms.grpo.update(reward=False), ValueError, "neither"),
    (lambda c: setattr(c, "arm_names", ("grpo", "kd")), ValueError, "arm_names"),
    (lambda c: setattr(c, "arm_names", ex.HEADLINE_ARMS + ("kdrl_k4",)), KeyError, "kdrl_k4"),
    (lambda c: c.teacher.model.update(n_heads=3), ValueError, "teacher.model"),
])
def test_bad_config_fails_before_compute(tmp_path, edit, error, match):
  cfg = get_config("smoke")
  edit(cfg)
  assert_fails_before_compute(ex, cfg, tmp_path, error, match)


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
