"""Lite PPO's advantage normalisation (Liu, Wang et al. 2025) against alibaba/ROLL's `reward_norm`.

The open item of spec §2 (which std Lite PPO divides by) was settled in ROLL's code: `reward_norm` with
norm_mean_type="group", norm_std_type="batch" divides the group-centred rewards by the unbiased std of the
*raw* rewards over the batch, plus 1e-6. `grpo_advantages(center=..., scale=...)` is that function.
"""

import numpy as np
import pytest

from rljax import algorithms
from rljax.losses import advantages as A


def _roll_reward_norm(r, n, mean_type, std_type):
  """ROLL roll/utils/functionals.py `reward_norm` (commit 41422373), in NumPy (torch.std is unbiased)."""
  grouped = r.reshape(-1, n)
  mean = {"batch": r.mean(), "group": grouped.mean(-1, keepdims=True)}[mean_type]
  rewards = grouped if mean_type == "group" else r
  if std_type is None:
    return (rewards - mean).reshape(-1)
  std = {"batch": r.std(ddof=1), "group": grouped.std(-1, ddof=1, keepdims=True)}[std_type]
  return ((rewards - mean) / (std + 1e-6)).reshape(-1)


def _binary_batch(seed, groups=6, n=8):
  rng = np.random.default_rng(seed)
  p = rng.uniform(size=(groups, 1))  # a pass rate per prompt: groups differ, so group and batch stats differ
  r = (rng.uniform(size=(groups, n)) < p).astype(np.float64)
  r[0] = 1.0  # an all-correct group
  return r.reshape(-1)


@pytest.mark.parametrize("mean_type,std_type", [("group", "group"), ("group", "batch"), ("batch", "batch"),
                                                ("group", None), ("batch", None)])
def test_grpo_advantages_is_rolls_reward_norm(x64, mean_type, std_type):
  for seed in range(3):
    r = _binary_batch(seed) * 3.0 - 0.5  # any affine reward
    out = A.grpo_advantages(r, group_size=8, center=mean_type, scale=std_type or "none")
    np.testing.assert_allclose(np.asarray(out), _roll_reward_norm(r, 8, mean_type, std_type), rtol=0, atol=1e-12)


def test_lite_ppo_preset_divides_by_the_raw_reward_std_not_the_centred_one(x64):
  r = np.array([1.0] * 8 + [0.0] * 8 + [1, 0, 0, 0, 0, 0, 0, 0] + [1, 1, 1, 0, 0, 0, 0, 0], np.float64)
  kw = algorithms.get("lite_ppo").advantage_kwargs
  out = np.asarray(A.grpo_advantages(r, group_size=8, **kw))
  centred = r.reshape(-1, 8) - r.reshape(-1, 8).mean(1, keepdims=True)
  np.testing.assert_allclose(out, centred.reshape(-1) / (r.std(ddof=1) + 1e-6), rtol=1e-12)
  # ROLL's older group_reward_norm(div_std_global=True) divides by the std of the centred rewards instead:
  # here 1.65× smaller (the all-correct and all-wrong groups add between-group variance to the raw std only).
  old = centred.reshape(-1) / (centred.std(ddof=1) + 1e-6)
  ratio = r.std(ddof=1) / centred.std(ddof=1)
  assert np.max(np.abs(old)) / np.max(np.abs(out)) == pytest.approx(ratio, rel=1e-5)
  assert ratio > 1.6


@pytest.mark.parametrize("center,scale", [("group", "group"), ("batch", "batch"), ("group", "batch")])
def test_std_normalisations_ignore_the_reward_scale(x64, center, scale):
  """{0,1} → {−1,1} (r ↦ 2r − 1) leaves every std-normalised advantage unchanged (up to eps)."""
  r = _binary_batch(4)
  a01 = np.asarray(A.grpo_advantages(r, group_size=8, center=center, scale=scale))
  apm = np.asarray(A.grpo_advantages(2 * r - 1, group_size=8, center=center, scale=scale))
  assert np.any(a01 != 0)
  np.testing.assert_allclose(apm, a01, atol=1e-5)


def test_group_mean_only_doubles_with_the_reward_scale(x64):
  r = _binary_batch(5)
  for center in ("group", "batch"):
    a01 = np.asarray(A.grpo_advantages(r, group_size=8, center=center, scale="none"))
    apm = np.asarray(A.grpo_advantages(2 * r - 1, group_size=8, center=center, scale="none"))
    np.testing.assert_allclose(apm, 2 * a01, atol=1e-12)


def test_binary_group_std_advantages_are_bounded_but_batch_std_ones_are_not(x64):
  """With 0/1 rewards a mixed group of n has std_g ≥ 1/√n (unbiased), so |A| ≤ (n − 1)/√n under group std;
  under batch std a wrong answer in a nearly all-correct batch gets −(1 − 1/n)/σ_B, unbounded as σ_B → 0."""
  n = 8
  bound = (n - 1) / np.sqrt(n)
  for seed in range(20):
    a = np.asarray(A.grpo_advantages(_binary_batch(seed, groups=16), group_size=n, scale="group"))
    assert np.max(np.abs(a)) <= bound + 1e-9
  r = np.ones(64)
  r[63] = 0.0  # seven all-correct groups and one with 7 of 8 right: σ_B = 1/8 exactly (unbiased)
  group = np.asarray(A.grpo_advantages(r, group_size=n, scale="group"))
  lite = np.asarray(A.grpo_advantages(r, group_size=n, scale="batch"))
  assert group[63] == pytest.approx(-bound * (1 - 1e-5), rel=1e-5) and lite[63] == pytest.approx(-7.0, rel=1e-5)
  np.testing.assert_array_equal(group[:56], 0.0)
  np.testing.assert_array_equal(lite[:56], 0.0)


def test_batch_centring_sums_to_zero_over_the_batch_and_skips_invalid(x64):
  r = _binary_batch(7)
  valid = np.ones_like(r, bool)
  valid[[3, 17]] = False
  out = np.asarray(A.grpo_advantages(np.where(valid, r, np.nan), group_size=8, center="batch", scale="batch",
                                     valid=valid))
  np.testing.assert_array_equal(out[~valid], 0.0)
  np.testing.assert_allclose(out[valid], (r[valid] - r[valid].mean()) / (r[valid].std(ddof=1) + 1e-6), atol=1e-12)
  assert abs(out.sum()) < 1e-9


def test_unknown_center():
  with pytest.raises(ValueError, match="center"):
    A.grpo_advantages(np.zeros(8), group_size=4, center="prompt")
