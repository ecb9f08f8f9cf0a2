"""The trend statistics of the reproductions (`experiments.slopes`) and the assertions built on them."""

import numpy as np
import pytest

from experiments.slopes import autocorrelation, fit_slope
from tests.helpers import assert_monotone, assert_oscillation, assert_slope


def test_assert_slope_uses_the_asymptotic_decades():
  x = np.logspace(0, 4, 17)
  rng = np.random.default_rng(0)
  y = (1.0 + 30.0 / x) * x ** -0.5  # pre-asymptotic bump; slope −0.5 in the last 1.5 decades
  y_seeds = y * np.exp(0.02 * rng.normal(size=(32, x.size)))
  fit = assert_slope(x, y_seeds, -0.5, 0.05)
  assert fit.ci_low <= fit.slope <= fit.ci_high
  with pytest.raises(AssertionError, match="predicted -1"):
    assert_slope(x, y_seeds, -1.0, 0.1)
  assert abs(fit_slope(x, y, last_decades=None).slope + 0.5) > 0.1  # the whole range is biased


def test_monotone_and_oscillation_checks():
  assert_monotone([1.0, 2.0, 1.99, 3.0], rtol=0.01)
  with pytest.raises(AssertionError, match="indices \\[1\\]"):
    assert_monotone([1.0, 2.0, 1.5, 3.0])
  assert_monotone([3.0, 2.0, 1.0], increasing=False)
  t = np.arange(200)
  rho = assert_oscillation(np.cos(np.pi * t) + 0.1 * np.sin(t))
  assert rho < -0.9
  with pytest.raises(AssertionError, match="no oscillation"):
    assert_oscillation(np.sin(0.05 * t))
  x = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
  d = x - x.mean()
  assert autocorrelation(x, 2) == pytest.approx((d[:-2] @ d[2:]) / (d @ d))


def test_regret_slopes_on_a_log_grid():
  from experiments.slopes import log_grid, regret_slopes

  t = np.arange(1, 100_001)
  idx = log_grid(t, 10, 30)
  assert t[idx[0]] >= 10 and idx[-1] == t.size - 1 and np.all(np.diff(idx) > 0)
  assert np.ptp(np.diff(np.log(t[idx[len(idx) // 2:]]))) < 0.05  # evenly spaced in log t, late on
  rng = np.random.default_rng(1)
  regret = 3.0 * np.sqrt(t) * (1 + 30.0 / t) * np.exp(0.01 * rng.normal(size=(8, t.size)))
  late, whole = regret_slopes(t, regret, 10, 30)
  assert abs(late.slope - 0.5) < 0.02 < abs(whole.slope - 0.5)  # the early bump biases the whole range
