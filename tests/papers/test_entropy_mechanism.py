"""The entropy mechanism (Cui et al. 2025) on the toy-suite transformer (part B) and the answer bandit (part A).

The kernels (Clip-Cov, KL-Cov, the covariance, the R = −a·e^H + b fit) are tested in
tests/losses/test_entropy_mechanism.py and the per-update probe in tests/training/test_entropy_probe.py; this file
runs the paper's notebook at the smoke preset once and checks what it measured.
"""

import numpy as np
import pytest

from configs.entropy_mechanism import get_config
from experiments import entropy_mechanism as ex
from rljax.training.metrics import read_metrics
from tests.helpers import assert_fails_before_compute, assert_smoke_claims


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def _rows(smoke, table):
  return {r["arm"]: r for r in smoke.summary["metrics"][table]}


def test_transformer_grpo_entropy_falls_as_covariance_predicts(smoke):
  tr = smoke.results["transformer"]
  cfg = smoke.summary["config"]
  assert set(tr["arms"]) == set(cfg["arm_names"])
  grpo = tr["arms"]["grpo"]
  steps = cfg["rl"]["steps"]
  assert grpo["entropy"].shape == (len(cfg["rl"]["seeds"]), steps)
  h = grpo["entropy"].mean(0)
  assert h[-steps // 4:].mean() < 0.8 * h[: steps // 4].mean()  # the rollouts' entropy falls
  row = _rows(smoke, "transformer")["grpo"]
  # The mechanism: the batch covariance of log π and A stays positive and the updates lower the entropy of their
  # states (the proportionality ΔH ∝ −Cov is weak with Adam: asserted on the bandit with SGD below).
  assert row["cov_positive"] > 0.8 and np.mean(grpo["entropy_change"] < 0) > 0.6
  assert row["eta"] > 0 and grpo["entropy_change"].sum() < 0
  lo, hi = tr["cov_band"]
  assert 0 < lo < hi  # Clip-Cov's band: upper percentiles of the step-0 token covariances


def test_interventions_act_on_the_tokens_they_select(smoke):
  """Clip-Cov detaches tokens in every update; KL-Cov's |log r| is exactly 0 at a rollout's first update (on-policy)
  and acts from the second one on."""
  cfg = smoke.summary["config"]
  clip = read_metrics(str(smoke.workdir), phase="clip_cov/seed0")
  assert len(clip) == cfg["rl"]["steps"]
  assert np.mean([r["num_selected"] >= 1 for r in clip]) > 0.75  # (no candidate when a batch has no reward spread)
  assert np.mean([r["frac_selected"] for r in clip]) <= 2 * cfg["clip_cov"]["ratio"] + 1 / 50
  kl = read_metrics(str(smoke.workdir), phase="kl_cov/seed0")
  assert all(r["first_abs_kl"] == 0 for r in kl)
  assert np.mean([r["abs_kl"] for r in kl]) > 0 and all(r["num_selected"] >= 1 for r in kl)
  # ... and keeps the entropy above GRPO's by the end (the smoke claim `intervention_entropy_ratio` bounds the smaller)
  rows = _rows(smoke, "transformer")
  assert max(rows[n]["H_end"] for n in ex.INTERVENTIONS) > rows["grpo"]["H_end"]


def test_bandit_entropy_collapses_and_interventions_keep_it_higher(smoke):
  arms = smoke.results["bandit"]
  rows = _rows(smoke, "bandit")
  assert set(arms) == set(smoke.summary["config"]["bandit"]["arm_names"])
  grpo = rows["grpo"]
  h = arms["grpo"]["entropy"].mean(0)
  assert grpo["H_end"] < 0.3 * grpo["H_start"]  # collapse ...
  assert np.all(np.diff(h[::10]) < 0)  # ... monotone at this resolution
  assert grpo["R_end"] > grpo["R_start"] + 0.1  # while the reward rises
  for arm in ex.INTERVENTIONS:
    assert rows[arm]["H_quarter"] > rows["grpo"]["H_quarter"] + 0.1
  assert grpo["r2"] > 0.7 and grpo["a"] > 0
  # ΔH ≈ −η·Cov: proportional with a fixed step and one on-policy update per batch; Adam keeps only the sign.
  assert rows["grpo_sgd"]["dh_cov_corr"] > 0.95
  assert rows["grpo"]["dh_sign"] > 0.8 and rows["grpo"]["dh_cov_corr"] < rows["grpo_sgd"]["dh_cov_corr"] - 0.3


@pytest.mark.parametrize("field, value, match", [
    ("arm_names", ("grpo", "clip_cov", "kl_covv"), "arm_names"),
    ("arm_names", ("grpo", "clip_cov"), "arm_names"),
    ("clip_cov.ratio", 0.0, "clip_cov.ratio"),
    ("kl_cov.ratio", 1.5, "kl_cov.ratio"),
    ("clip_cov.percentiles", (99.9, 90.0), "percentiles"),
    ("minibatches", 3, "minibatches"),
    ("fit_fraction", 1.0, "fit_fraction"),
    ("log_every", 5, "log_every"),
])
def test_bad_config_fails_before_compute(field, value, match, tmp_path):
  cfg = get_config("smoke")
  node, *path = [cfg] + field.split(".")
  for part in path[:-1]:
    node = node[part]
  node[path[-1]] = value
  assert_fails_before_compute(ex, cfg, tmp_path, ValueError, match)


def test_unknown_bandit_loss_fails_before_compute():
  cfg = get_config("smoke")
  cfg.bandit.arms.grpo.loss = "ppo_clipp"
  with pytest.raises(KeyError, match="ppo_clipp"):
    ex.run(cfg)


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
