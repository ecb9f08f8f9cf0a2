"""HPT against SFT, GRPO and SFT→GRPO with a subset unsolvable at the start (Lv et al. 2025).

The kernels (UPGE's instances, HPT's gate) are tested exactly in tests/losses/test_hpt.py; this file runs the
paper's notebook at the smoke preset and checks what the whole online loop does with the gate.
"""

import numpy as np
import pytest

from configs.hpt import get_config
from experiments import hpt as ex
from tests.helpers import assert_fails_before_compute, assert_smoke_claims


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_unseen_subset_is_unsolvable_at_the_start_and_under_grpo(smoke):
  res = smoke.results
  assert res["start"]["hard"]["mean"] == 0.0 and res["start"]["hard"]["pass"] == 0.0
  assert res["start"]["seen"]["mean"] > 0.0  # the start solves part of what it was SFT'd on
  assert all(run["hard"]["pass"] == 0.0 for run in res["final"]["grpo"])


def test_gate_routes_every_prompt_as_configured(smoke):
  """Through the online loop: γ = −1 never SFTs, γ = n always does, SFT→GRPO switches at its stage boundary,
  and HPT (γ = 0) SFTs a fraction in between, the unsolvable prompts included."""
  res, steps = smoke.results, smoke.results["steps"]
  cfg = get_config("smoke")
  boundary = round(cfg.hpt.sft_first * steps)
  for seed in res["seeds"]:
    frac = lambda arm: np.array(res["curves"][f"{arm}/seed{seed}"]["frac_sft"])
    assert np.all(frac("grpo")[:, 1] == 0.0) and np.all(frac("sft_only")[:, 1] == 1.0)
    two = frac("sft_grpo")
    np.testing.assert_array_equal(two[:, 1], (two[:, 0] <= boundary).astype(float))
    hpt = frac("hpt")[:, 1]
    assert 0.0 < hpt.mean() < 1.0
    # a uniform share of prompts comes from the unsolvable arms, and every one of them is SFT'd
    assert hpt.mean() >= len(res["hard_arms"]) / (len(res["hard_arms"]) + len(res["seen_arms"])) - 0.1


def test_demonstration_nll_is_trained_where_the_gate_sends_prompts(smoke):
  """SFT only lowers its demonstrations' NLL; HPT reports a demonstration NLL exactly when it SFTs some prompt,
  GRPO never."""
  for seed in smoke.results["seeds"]:
    curve = lambda arm, key: np.array(smoke.results["curves"][f"{arm}/seed{seed}"][key])[:, 1]
    nll = curve("sft_only", "sft_nll")
    assert nll[-3:].mean() < 0.9 * nll[:3].mean(), nll
    np.testing.assert_array_equal(curve("hpt", "sft_nll") > 0, curve("hpt", "frac_sft") > 0)
    assert np.all(curve("grpo", "sft_nll") == 0.0)


@pytest.mark.parametrize("field, value, match", [
    ("arm_names", ("grpo", "hpt"), "arm_names"),
    ("hpt.gamma", 4, "hpt.gamma"),  # γ ≥ n: HPT would be SFT only
    ("hpt.sft_coef", 0.0, "sft_coef"),
    ("hpt.sft_first", 1.0, "sft_first"),
    ("hard_arms", (0, 1, 2, 3, 4, 5), "hard_arms"),
    ("hard_arms", (7,), "hard_arms"),
])
def test_bad_config_fails_before_compute(field, value, match, tmp_path):
  cfg = get_config("smoke")
  section, _, name = field.rpartition(".")
  (cfg[section] if section else cfg)[name] = value
  assert_fails_before_compute(ex, cfg, tmp_path, ValueError, match)


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
