"""Entropy collapse and the covariance interventions on the softmax answer bandit (Cui et al. 2025).

The loss kernels themselves (Clip-Cov, KL-Cov, the covariance and the R = −a·e^H + b fit) are tested
in tests/losses/test_entropy_mechanism.py; this file runs the paper's notebook at the smoke preset.
"""

import numpy as np
import pytest

from configs.entropy_mechanism import get_config
from experiments import entropy_mechanism as ex
from tests.helpers import assert_smoke_claims


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_entropy_collapses_and_interventions_keep_it_higher(smoke):
  arms = smoke.results["arms"]
  rows = {r["arm"]: r for r in smoke.summary["metrics"]["table"]}
  assert set(arms) == {"grpo", "clip_higher", "clip_cov", "kl_cov"}
  grpo = rows["grpo"]
  h = arms["grpo"]["entropy"].mean(0)
  assert grpo["H_end"] < 0.3 * grpo["H_start"]  # collapse ...
  assert np.all(np.diff(h[::10]) < 0)  # ... monotone at this resolution
  assert grpo["R_end"] > grpo["R_start"] + 0.1  # while the reward rises
  for arm in ex.INTERVENTIONS:
    assert rows[arm]["H_quarter"] > rows["grpo"]["H_quarter"] + 0.1
  assert grpo["r2"] > 0.7 and grpo["a"] > 0


def test_unknown_loss_fails_before_compute():
  cfg = get_config("smoke")
  cfg.arms.grpo.loss = "ppo_clipp"
  with pytest.raises(KeyError, match="ppo_clipp"):
    ex.run(cfg)


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
