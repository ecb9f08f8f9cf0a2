"""Purely periodic policies under recovering rewards (Simchi-Levi, Zheng & Zhu): the LP, rounding,
idle-time bookkeeping, periodic UCB invariants, and the reproduction run once through its notebook at the
smoke preset."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linprog

from configs.recovering_ppp import get_config
from rljax.theory.bandits import recovering_ppp as rp
from rljax.theory.envs import recovering_bandit as env
from tests.helpers import assert_monotone, assert_smoke_claims


def test_lp_matches_scipy(x64):
  params = env.make_params(jax.random.PRNGKey(0), 12, 3)
  x, value = jax.jit(lambda r: rp.lp_solve(r, 3))(params.means)
  r = np.asarray(params.means)
  n, d = r.shape
  per = np.arange(1, d + 1)
  a_ub = np.vstack([np.tile(1 / per, n), np.kron(np.eye(n), np.ones(d))])
  ref = linprog(-(r / per).ravel(), A_ub=a_ub, b_ub=np.r_[3, np.ones(n)], bounds=(0, None))
  assert abs(float(value) + ref.fun) < 1e-9
  assert float(jnp.sum(x / per)) <= 3 + 1e-9 and np.all(np.asarray(x.sum(1)) <= 1 + 1e-9) and np.all(x >= 0)


def test_lp_upper_bounds_brute_force_periodic(x64):
  r = env.exponential_recovery(jnp.asarray([1.0, 0.8, 0.6]), jnp.asarray([2.0, 1.0, 4.0]), 3)
  _, value = rp.lp_solve(r, 1)
  best = 0.0
  for periods in itertools.product(range(4), repeat=3):  # 0 = never pulled
    for offsets in itertools.product(*[range(max(p, 1)) for p in periods]):
      due = np.zeros(12, int)
      for p, o in zip(periods, offsets):
        if p:
          due[o::p] += 1
      if due.max() <= 1:  # a feasible purely periodic policy: its reward per period is Σ R_i(p_i)/p_i
        best = max(best, sum(float(r[i, p - 1]) / p for i, p in enumerate(periods) if p))
  assert best <= float(value) + 1e-12
  assert best > 0.5 * float(value)


def test_no_recovery_picks_top_k(x64):
  r = jnp.repeat(jnp.asarray([0.9, 0.3, 0.7, 0.5, 0.2])[:, None], 4, axis=1)
  x, value = rp.lp_solve(r, 2)
  np.testing.assert_allclose(x[:, 0], [1, 0, 1, 0, 0], atol=1e-12)
  assert abs(float(value) - 1.6) < 1e-12
  period, offset = rp.round_periodic(jax.random.PRNGKey(0), x)
  np.testing.assert_array_equal(period, [1, 0, 1, 0, 0])
  params = env.RecoveringParams(r, 2, 0.0)
  assert abs(float(jnp.mean(rp.run_offline(jax.random.PRNGKey(1), params, 50))) - 1.6) < 1e-12  # optimal


def test_idle_bookkeeping_and_rounding(x64):
  params = env.make_params(jax.random.PRNGKey(0), 4, 2, d_max=3)
  state, obs = env.reset(jax.random.PRNGKey(0), params)
  np.testing.assert_array_equal(obs, [3, 3, 3, 3])
  state, obs, _, _, info = env.step(jax.random.PRNGKey(1), params, state, jnp.asarray([True, False, True, False]))
  np.testing.assert_array_equal(obs, [1, 3, 1, 3])
  assert float(info["expected"]) == pytest.approx(float(params.means[0, 2] + params.means[2, 2]))
  state, obs, _, _, _ = env.step(jax.random.PRNGKey(2), params, state, jnp.asarray([False, False, True, False]))
  np.testing.assert_array_equal(obs, [2, 3, 1, 3])
  x = jnp.asarray([[0.5, 0.25, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
  period, offset = jax.vmap(lambda k: rp.round_periodic(k, x))(jax.random.split(jax.random.PRNGKey(3), 4000))
  freq = np.mean(np.asarray(period[:, 0])[:, None] == np.arange(4), axis=0)
  np.testing.assert_allclose(freq, [0.25, 0.5, 0.25, 0.0], atol=0.03)
  assert np.all(np.asarray(offset) < np.maximum(np.asarray(period), 1)) and np.all(np.asarray(period[:, 2]) == 3)


def test_ucb_bookkeeping(x64):
  params = env.make_params(jax.random.PRNGKey(4), 6, 2, d_max=5)
  state = rp.ucb_init(6, 5)
  np.testing.assert_allclose(rp.ucb_index(state, 100, 1.0), 1.0)  # unvisited pairs are optimistic
  env_state, _ = env.reset(jax.random.PRNGKey(0), params)
  for t, k in enumerate(jax.random.split(jax.random.PRNGKey(5), 9)):
    state, pulled = rp.ucb_act(k, state, 2, 100)
    assert int(pulled.sum()) <= 2
    idle = env_state.idle
    env_state, _, _, _, info = env.step(k, params, env_state, pulled)
    state = rp.ucb_update(state, pulled, idle, info["obs"])
  assert int(state.t) == 9 and int(state.next_epoch) == 16  # LP re-solved at t = 0, 1, 2, 4, 8
  assert float(state.counts.sum()) > 0


def test_bad_inputs():
  with pytest.raises(ValueError, match="`r`"):
    rp.lp_solve(jnp.ones(3), 1)
  with pytest.raises(ValueError, match="`k`"):
    rp.lp_solve(jnp.ones((3, 2)), 0)
  with pytest.raises(ValueError, match="k"):
    env.make_params(jax.random.PRNGKey(0), 3, 4)
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_offline_rounding_gap(smoke):
  results = smoke.results
  assert np.all(results["periodic"] <= results["lp"] + 1e-9)  # the LP upper-bounds the periodic policy
  assert_monotone(np.median(1 - results["periodic"] / results["lp"], 1), increasing=False)  # the gap shrinks with K


def test_online_regret_grows(smoke):
  """Regret against the offline benchmark accumulates (its rate, above √T but sublinear at T = 10^4, is
  the smoke band of `online_regret_slope`); per period it rises during the forced exploration, then falls
over the last decade."""
  results = smoke.results
  t, reg = results["t"], results["regret"].mean(0)
  assert np.all(np.isfinite(results["regret"])) and reg[-1] > 0
  assert_monotone(reg, increasing=True)
  assert_monotone((reg / t)[t >= t[-1] / 10], increasing=False, rtol=0.05)
