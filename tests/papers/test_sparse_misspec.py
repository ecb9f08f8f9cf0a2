"""Sparsity in misspecified linear bandits (Dong & Yang): the ε-budget invariant, the sparse net and
query count, exact recovery when well specified, the least-squares trap in closed form, and the
smoke-size trends measured by the notebook."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.sparse_misspec import get_config
from rljax.theory.bandits import sparse_misspec as sm
from rljax.theory.envs import linear_bandit as lb
from rljax.theory.envs import sparse_misspecified as env
from tests.helpers import assert_slope, assert_smoke_claims


def test_misspecification_within_budget(x64):
  make = lambda k: (env.make_instance(k, 10, 2, 0.05), env.make_instance(k, 10, 2, 0.05, adversarial=False))
  for adversarial, params in zip((True, False), jax.jit(jax.vmap(make))(jax.random.split(jax.random.PRNGKey(0), 3))):
    b = np.abs(np.asarray(jax.vmap(env.misspecification)(params)))
    assert np.all(b.max(1) <= 0.05 + 1e-12) and np.all(b.max(1) > 0.01)
    assert np.all(np.asarray(jnp.sum(params.theta != 0, 1)) == 2)
    np.testing.assert_allclose(np.linalg.norm(params.arms, axis=-1), 1.0, atol=1e-12)
    if adversarial:  # x* (arm 2d) is the unique best arm of the trap
      np.testing.assert_array_equal(jax.vmap(env.oracle)(params).best_arm, 20)


def test_candidates_are_sparse_net():
  tc = sm.candidates(5, 2, 0.5)
  net_size = len(sm.net(2, 0.5))
  assert tc.shape == (math.comb(5, 2) * net_size, 5)
  assert np.all((tc != 0).sum(1) <= 2) and np.all(np.linalg.norm(tc, axis=1) <= 1 + 1e-12)
  assert np.all(np.linalg.norm(tc, axis=1) > 0)
  # every unit direction on a support is within ε_net√s/2 of some net point
  u = np.array([np.cos(0.3), np.sin(0.3), 0, 0, 0])
  assert np.min(np.linalg.norm(tc - u, axis=1)) <= 0.5 * np.sqrt(2) / 2 + 1e-12


D, S, EPS, KAPPA = 18, 2, 0.05, 0.5
TC = sm.candidates(D, S, 0.2)
# one compile shared by the well-specified and the trap instance (same shapes)
_solve = jax.jit(lambda key, params, tc: (sm.run(key, params, tc, 3), sm.design_ls(key, params, 4096)))


def test_well_specified_enumeration_finds_optimum(x64):
  theta = jnp.zeros(D).at[1].set(0.6).at[4].set(0.8)  # on the ε_net = 0.2 grid
  arms = lb.sphere_arms(jax.random.PRNGKey(0), 2 * D + 2, D)
  params = lb.finite_bandit(arms, theta, noise_std=0.0)
  res, ls = _solve(jax.random.PRNGKey(1), params, TC)
  assert int(res.action) == int(lb.oracle(params).best_arm) and float(res.subopt) == 0.0
  assert int(res.queries) == TC.shape[0] * 3
  assert float(ls.subopt) == 0.0 and int(ls.queries) == 4096


def test_least_squares_trap_closed_form(x64):
  params = jax.jit(lambda k: env.make_instance(k, D, S, EPS, kappa=KAPPA, noise_std=0.0))(jax.random.PRNGKey(3))
  sp, ls = _solve(jax.random.PRNGKey(4), params, TC)
  assert int(ls.action) == 2 * D + 1  # the needle
  np.testing.assert_allclose(float(ls.subopt), KAPPA * EPS * np.sqrt(D - S), rtol=1e-9)
  assert float(sp.subopt) <= 1e-12


def test_bad_input():
  with pytest.raises(ValueError, match="eps_net"):
    sm.candidates(4, 2, 0.0)
  with pytest.raises(ValueError, match="s <= d"):
    sm.candidates(2, 3, 0.5)
  with pytest.raises(ValueError, match="kappa"):
    env.make_instance(jax.random.PRNGKey(0), 6, 2, 0.05, kappa=1.5)
  params = lb.finite_bandit(np.eye(6), np.zeros(6))
  with pytest.raises(ValueError, match="theta_c"):
    sm.run(jax.random.PRNGKey(0), params, np.ones((3, 5)), 1)
  with pytest.raises(ValueError, match="get_config|unknown preset"):
    get_config("huge")


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_smoke_trends(smoke):
  results = smoke.results
  ds = results["ds"]
  assert_slope(ds, results["ls"], 0.5, 0.2, last_decades=None)  # LS loses ∝ ε√d
  assert_slope(ds, results["queries_sparse"].astype(float), 2.0, 0.3, last_decades=None)  # ∝ d^s
  assert np.max(results["sparse"]) <= 1.0  # O(ε) at every d: flat
  assert np.all(np.median(results["ls"], 0) > np.max(results["sparse"], 0) + 0.5)
  assert np.all(results["queries_ls"] == get_config("smoke").n_ls)  # the design's budget does not grow with d
