"""PR-LSVI (Wu & Sun, ICLR 2024): BT MLE, perturbation, query rule, LSVI oracle, and the reproduction."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from configs.pr_lsvi import get_config
from rljax.theory.linear_mdp import pr_lsvi as lp
from rljax.theory.kernels import ridge, vi
from tests.helpers import assert_monotone, assert_slope, assert_smoke_claims


def _bt_data(key, n, theta):
  k_x, k_o = jax.random.split(key)
  dphi = jax.random.normal(k_x, (n, theta.shape[0]))
  o = jnp.where(jax.random.bernoulli(k_o, jax.nn.sigmoid(dphi @ theta)), 1.0, -1.0)
  return dphi, o


def test_logistic_mle_converges_and_recovers_theta(x64):
  theta_star = jnp.asarray([1.0, -0.5, 0.25, 2.0])
  dphi, o = _bt_data(jax.random.PRNGKey(0), 20_000, theta_star)
  theta, sigma = ridge.logistic_mle(dphi, o, lam=1.0)
  grad = jax.grad(ridge.logistic_loss)(theta, dphi, o, lam=1.0)
  assert float(jnp.linalg.norm(grad)) < 1e-8
  assert float(jnp.linalg.norm(theta - theta_star)) < 0.1  # ~ sqrt(d/n) statistical error
  np.testing.assert_allclose(sigma, np.eye(4) + np.asarray(dphi).T @ np.asarray(dphi), rtol=1e-10)
  # An independent solver on the same objective (with half the rows masked out).
  mask = jnp.arange(20_000) < 10_000
  theta_m, _ = ridge.logistic_mle(dphi, o, lam=1.0, mask=mask)
  ref = scipy.optimize.minimize(
      lambda t: float(ridge.logistic_loss(jnp.asarray(t), dphi[:10_000], o[:10_000], lam=1.0)), np.zeros(4),
      jac=lambda t: np.asarray(jax.grad(ridge.logistic_loss)(jnp.asarray(t), dphi[:10_000], o[:10_000], lam=1.0)),
      method="BFGS", options={"gtol": 1e-9})
  np.testing.assert_allclose(theta_m, ref.x, atol=1e-6)
  with pytest.raises(ValueError, match="lam"):
    ridge.logistic_mle(dphi, o, lam=0.0)
  with pytest.raises(ValueError, match="outcomes"):
    ridge.logistic_mle(dphi, o[:5], lam=1.0)


def test_perturb_covariance(x64):
  a = jax.random.normal(jax.random.PRNGKey(1), (3, 3))
  sigma_mat = a @ a.T + 0.5 * jnp.eye(3)
  theta = jnp.asarray([0.3, -1.0, 2.0])
  draws = jax.vmap(lambda k: lp.perturb(k, theta, sigma_mat, 1.7))(jax.random.split(jax.random.PRNGKey(2), 10_000))
  expect = 1.7**2 * np.linalg.inv(np.asarray(sigma_mat))
  cov = np.cov(np.asarray(draws).T)
  assert np.linalg.norm(cov - expect) < 0.05 * np.linalg.norm(expect)
  assert np.abs(np.asarray(draws).mean(0) - theta).max() < 4 * np.sqrt(np.diag(expect).max() / 10_000)


def test_should_query_threshold(x64):
  sigma_inv = jnp.diag(jnp.asarray([4.0, 1.0]))
  assert bool(lp.should_query(jnp.asarray([1e-6, 0.0]), sigma_inv, 0.0))
  assert not bool(lp.should_query(jnp.zeros(2), sigma_inv, 0.0))
  assert bool(lp.should_query(jnp.asarray([0.5, 0.0]), sigma_inv, 0.99))  # ‖x‖ = 1
  assert not bool(lp.should_query(jnp.asarray([0.5, 0.0]), sigma_inv, 1.01))


def test_lsvi_one_hot_is_value_iteration_on_empirical_model(x64):
  env = lp.make_tabular_mdp(jax.random.PRNGKey(3), 4, 3, 6)
  counts = np.random.default_rng(0).integers(1, 9, size=(4, 3, 4)).astype(float)
  stats = lp.TransitionStats(1e-9 * jnp.eye(12) + jnp.diag(jnp.asarray(counts.sum(-1).ravel())),
                             jnp.asarray(counts.reshape(12, 4)))
  q = lp.lsvi(env.features, stats, env.theta_star, horizon=6)
  r = env.features @ env.theta_star
  q_vi = vi.value_iteration(jnp.asarray(counts / counts.sum(-1, keepdims=True)), r, horizon=6).q
  np.testing.assert_allclose(q, q_vi, rtol=1e-7)
  # The exact oracle is self-consistent: V^{π*} = V* ≥ V^π for another policy.
  best = vi.value_iteration(env.transitions, r, horizon=6)
  np.testing.assert_allclose(lp.policy_value(env, 6, best.policy), env.init @ best.v[0], rtol=1e-12)
  np.testing.assert_allclose(lp.policy_value(env, 6), env.init @ best.v[0], rtol=1e-12)
  assert float(lp.policy_value(env, 6, (best.policy + 1) % 3)) < float(env.init @ best.v[0])
  # Perturbation noise only enters through the transition regression.
  q_noisy = lp.lsvi(env.features, stats, env.theta_star, horizon=6, key=jax.random.PRNGKey(0), sigma_p=1.0)
  np.testing.assert_allclose(q_noisy[-1], q_vi[-1], rtol=1e-12)
  assert np.abs(np.asarray(q_noisy[0] - q_vi[0])).max() > 1e-3


def test_rollout_matches_exact_policy_value(x64):
  env = lp.make_tabular_mdp(jax.random.PRNGKey(4), 3, 2, 4)
  pi = jax.random.randint(jax.random.PRNGKey(5), (4, 3), 0, 2)
  returns = jax.jit(jax.vmap(lambda k: lp.rollout(k, env, pi, 4)[3]))(jax.random.split(jax.random.PRNGKey(6), 5000))
  value = float(lp.policy_value(env, 4, pi))
  assert abs(float(returns.mean()) - value) < 4 * float(returns.std()) / np.sqrt(5000)
  f, phis, _, ret = lp.rollout(jax.random.PRNGKey(7), env, pi, 4)
  np.testing.assert_allclose(f @ env.theta_star, ret)  # return = θ*ᵀφ(τ)
  assert float(f.sum()) == 4.0 and phis.shape == (4, 6)


def test_config_validation():
  with pytest.raises(ValueError, match="baseline"):
    lp.PRConfig(rounds=10, horizon=1, baseline="previous")
  with pytest.raises(ValueError, match="lam"):
    lp.PRConfig(rounds=10, horizon=1, lam=-1.0)
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_sqrt_regret_and_tradeoff(smoke):
  results = smoke.results
  rows = {(r["problem"], r["method"]): r for r in smoke.summary["metrics"]["table"]}
  bandit = results["bandit"]
  assert bandit["cum_regret"].shape == (4, 5, len(bandit["t"]))
  # ε = 0: sublinear regret with the √T slope (early rounds are ~linear, a fixed gap bends it lower late).
  assert_slope(bandit["t"], bandit["cum_regret"][0], 0.5, 0.2)
  for name, res in results.items():
    pr = [i for i, m in enumerate(res["methods"]) if m != "greedy"]
    regret = np.median(res["cum_regret"][pr, :, -1], axis=1)
    queries = np.median(res["cum_queries"][pr, :, -1], axis=1)
    assert_monotone(queries, increasing=False)  # larger ε → fewer queries ...
    assert queries[-1] < 0.2 * queries[0], name
    if name == "bandit":  # ... and more regret (the MDP's 150 smoke episodes are too few to separate it)
      assert_monotone(regret, increasing=True, rtol=0.05)
      assert regret[-1] > 2.0 * regret[0]
  # Greedy MLE in the bandit: identical models never disagree, so it never asks and stays stuck.
  assert rows[("bandit", "greedy")]["queries_T"] == 0
  assert rows[("bandit", "greedy")]["stuck_frac"] > 0.5 > rows[("bandit", "ε=0")]["stuck_frac"]
