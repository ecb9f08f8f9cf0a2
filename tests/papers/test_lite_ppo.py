"""Lite PPO's tricks on the toy suite + small decoder (Liu, Wang et al. 2025), at the smoke preset.

The advantage kernel (group / batch centring and std, against alibaba/ROLL's `reward_norm`) is tested in
tests/losses/test_lite_ppo.py; this file runs the paper's notebook once and checks what it measured. At
smoke size (a 1-layer decoder, two RL steps) no accuracy difference is meaningful: the checks here are
that the sweep's reward scale and normalisations reach the update as they should.
"""

import numpy as np
import pytest

from configs.lite_ppo import get_config
from experiments import lite_ppo as ex
from rljax import algorithms
from tests.helpers import assert_fails_before_compute, assert_smoke_claims


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def _cells(smoke):
  return {(r["scale"], r["norm"]): r for r in smoke.results["sweep"] if r["agg"] == "token-mean"}


def test_reward_scale_reaches_the_update_and_std_normalisations_ignore_it(smoke):
  """The {−1,1} arm sees the same first batch as the {0,1} one, its rewards mapped by 2r − 1; a std-normalised
  arm then takes the same first gradient, group-mean-only twice it (its advantages double)."""
  cells = _cells(smoke)
  for norm in smoke.results["norms"]:
    r01, rpm = cells["01", norm], cells["pm1", norm]
    assert rpm["reward"][0] == pytest.approx(2 * r01["reward"][0] - 1, abs=1e-6)
    assert r01["first_grad_norm"] > 0  # the first batch has mixed groups
    factor = 2.0 if norm == "group_mean" else 1.0
    assert rpm["first_grad_norm"] == pytest.approx(factor * r01["first_grad_norm"], rel=1e-3)


def test_normalisations_give_different_updates(smoke):
  """Same first batch, different advantages: group, batch and Lite PPO's first gradients all differ."""
  cells = _cells(smoke)
  first = [cells["01", n]["first_grad_norm"] for n in ("group", "batch", "lite")]
  assert len({round(g, 6) for g in first}) == 3


def test_sweep_and_comparison_cover_every_arm(smoke):
  res = smoke.results
  assert {(r["scale"], r["norm"], r["agg"]) for r in res["sweep"]} == (
      {(s, n, "token-mean") for s in res["scales"] for n in res["norms"]} | {("01", "lite", "seq-mean-token-mean")})
  assert sorted({r["algorithm"] for r in res["compare"]}) == sorted(ex.COMPARED)
  ppo = next(r for r in res["compare"] if r["algorithm"] == "ppo")
  assert ppo["max_grad_norm"] > 0  # its value head trains even when every group is all-wrong
  for r in res["sweep"] + res["compare"]:
    assert np.isfinite(r["max_grad_norm"]) and 0 <= r["acc"] <= 1


def test_lite_arm_is_the_lite_ppo_preset():
  kw = algorithms.get("lite_ppo").advantage_kwargs
  assert {"center": kw.center, "scale": kw.scale} == ex.NORMS["lite"]


@pytest.mark.parametrize("field,value,error", [
    ("sweep.norms", ("group", "batch", "lite", "median"), ValueError),
    ("sweep.norms", ("group", "lite"), ValueError),
    ("sweep.levels", (7,), ValueError),
    ("sweep.aggs", ("token-mean", "token-max"), ValueError),
    ("sweep.steps", 0, ValueError),
    ("compare.algorithms", ("lite_ppo", "grpo"), ValueError),
    ("compare.algorithms", ("lite_ppo", "grpo", "ppo", "lite_ppoo"), KeyError),
])
def test_bad_config_fails_before_compute(tmp_path, field, value, error):
  cfg = get_config("smoke")
  section, name = field.split(".")
  cfg[section][name] = value
  assert_fails_before_compute(ex, cfg, tmp_path, error)


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
