"""Adversarial linear-Q MDPs (Dai, Luo, Wei, Zimmert, ICML 2023): FTRL solver, estimator, inverse
estimators, environment oracle, and the smoke reproduction (run by the notebook)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.adv_linear_q import get_config
from rljax.theory.envs import linear_mdp as env
from rljax.theory.kernels import inverse_estimators as inv
from rljax.theory.kernels import occupancy as occ
from rljax.theory.kernels import vi
from rljax.theory.kernels.simplex import ftrl_probs
from rljax.theory.linear_mdp import adv_linear_q as alq
from tests.helpers import assert_smoke_claims


def test_logbarrier_kkt(x64):
  L = jax.random.normal(jax.random.PRNGKey(0), (5, 6)) * 3.0
  p, lam = alq.logbarrier_ftrl_step(L, 0.7)
  np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-12)
  np.testing.assert_allclose(0.7 * (L + lam[:, None]) * p, 1.0, rtol=1e-9)
  np.testing.assert_allclose(alq.logbarrier_ftrl_step(jnp.full((4,), 2.5), 1.0)[0], 0.25, atol=1e-12)
  np.testing.assert_allclose(alq.logbarrier_ftrl_step(jnp.array([0.0, jnp.inf]), 1.0)[0], [1.0, 0.0], atol=1e-12)


def test_estimator_unbiased_one_hot(x64):
  """γ → 0 and exact Σ: E[φ(s,a)ᵀθ̂_h] = Q^π_h(s,a) on every reachable (h, s, a), within 4.5 s.e."""
  p = env.tabular_as_linear(jax.random.PRNGKey(1), 2, 3, 3)
  probs = jax.random.dirichlet(jax.random.PRNGKey(2), jnp.ones(3), (3, 2))
  n = 6000

  @jax.jit
  def mc(key):
    q_true, _ = vi.policy_evaluation(p.P, env.loss_table(p, 5), jnp.log(probs))
    q = occ.occupancy(p.P, jnp.log(probs), p.s0)
    cinv = alq.cov_inverse(None, alq.AdvLinQCfg(), q, p.phi, 1e-13)

    def estimate(k):
      traj = alq.rollout(k, p, probs, 5)
      return jnp.einsum("sad,hd->hsa", p.phi, alq.update(alq.init(3, 6), traj, cinv).theta_cum)

    return q_true, q, jax.vmap(estimate)(jax.random.split(key, n))

  q_true, q, est = mc(jax.random.PRNGKey(3))
  reach = q > 1e-3
  z = (est.mean(0) - q_true) / (est.std(0) / np.sqrt(n) + 1e-12)
  assert np.abs(np.asarray(z)[np.asarray(reach)]).max() < 4.5


def test_magnitude_reduction_leaves_exp_weights_unchanged(x64):
  cum = jax.random.normal(jax.random.PRNGKey(0), (4, 5))
  q_hat = 30.0 * jax.random.normal(jax.random.PRNGKey(1), (4, 5))
  reduced = alq.magnitude_reduce(q_hat)
  assert float(reduced.min()) >= 0.0
  np.testing.assert_allclose(ftrl_probs(cum + reduced, 0.3), ftrl_probs(cum + q_hat, 0.3), atol=1e-12)
  # the log-barrier normaliser λ absorbs a per-state constant as well
  np.testing.assert_allclose(alq.logbarrier_ftrl_step(cum + reduced, 0.3)[0],
                             alq.logbarrier_ftrl_step(cum + q_hat, 0.3)[0], atol=1e-9)


def test_policy_traced_algo_matches_static(x64):
  state = alq.AdvLinQState(jax.random.normal(jax.random.PRNGKey(0), (2, 3)), jnp.asarray(9))
  feats = jax.random.uniform(jax.random.PRNGKey(1), (2, 4, 5, 3))
  mask = jnp.arange(5) < 4

  @jax.jit
  def both():
    static = jnp.stack([alq.policy(state, feats, alq.AdvLinQCfg(algo=name, eta=2.0), mask) for name in alq.ALGOS])
    traced = jax.vmap(lambda c: alq.policy(state, feats, alq.AdvLinQCfg(algo=c, eta=2.0), mask))(jnp.arange(3))
    return static, traced

  static, traced = both()
  np.testing.assert_allclose(static, traced, atol=1e-12)
  np.testing.assert_allclose(static[..., 4], 0.0)
  assert not np.allclose(static[0], static[1])  # log-barrier and exponential weights differ
  with pytest.raises(ValueError, match="algo"):
    alq.check_cfg(alq.AdvLinQCfg(algo="exp4"))
  with pytest.raises(ValueError, match="cov"):
    alq.check_cfg(alq.AdvLinQCfg(cov="svd"))


def test_mgr_mean_and_inverse_diagnostics(x64):
  feats = jax.random.dirichlet(jax.random.PRNGKey(0), jnp.ones(3), (6,))  # 6 feature vectors in Δ_3
  probs = jnp.full((6,), 1 / 6)
  cov = jnp.einsum("n,ni,nj->ij", probs, feats, feats)
  target = jnp.linalg.inv(cov)

  @jax.jit
  def stats(key):
    samples = jax.vmap(lambda k: inv.sample_features(k, probs, feats, 256))(jax.random.split(key, 2000))
    est = jax.vmap(lambda x: inv.matrix_geometric_resampling(x, 0.5))(samples[:, :16])
    ridge = jax.vmap(lambda x: inv.empirical_ridge_inverse(x, 1e-3))
    mse = [inv.inverse_diagnostics(ridge(samples[:500, :m]), target).mse for m in (16, 256)]
    return inv.inverse_diagnostics(est, inv.mgr_mean(cov, 0.5, 16)), mse, inv.mgr_mean(cov, 0.5, 20000)

  diag, mse, mean_long = stats(jax.random.PRNGKey(1))
  assert diag.bias < 4 * np.sqrt(diag.variance / 2000)  # MGR's mean is the truncated Neumann series
  assert jnp.linalg.norm(mean_long - target) < 1e-6 * jnp.linalg.norm(target)  # ... which tends to Σ^{-1}
  assert jnp.linalg.norm(inv.mgr_mean(cov, 0.5, 16) - target) > 0.1 * jnp.linalg.norm(target)  # truncation bias
  assert mse[1] < 0.2 * mse[0]  # empirical-ridge error falls with the number of simulator samples
  with pytest.raises(ValueError, match="beta"):
    inv.matrix_geometric_resampling(feats, -1.0)
  with pytest.raises(ValueError, match="estimates"):
    inv.inverse_diagnostics(jnp.zeros((3, 2, 2)), target)


def test_env_oracle_is_best_deterministic_policy(x64):
  p = env.with_actions(env.simplex_linear_mdp(jax.random.PRNGKey(4), 2, 3, 3, 2), 2)
  np.testing.assert_allclose(p.P.sum(-1), 1.0, atol=1e-12)
  acts = jnp.array(list(itertools.product(range(2), repeat=4))).reshape(-1, 2, 2)
  tables = jax.nn.one_hot(acts, 3)  # every deterministic policy on the 2 available actions

  @jax.jit
  def check(p):
    cum = jax.lax.fori_loop(1, 9, lambda k, c: c + env.loss_table(p, k), jnp.zeros((2, 2, 3)))
    values = jax.vmap(lambda t: env.expected_loss(p, t, cum))(tables)
    thetas = jax.vmap(lambda k: env.loss_theta(p, k))(jnp.arange(1, 9))
    state, _ = env.reset(jax.random.PRNGKey(0), p, 5)
    step = env.step(jax.random.PRNGKey(1), p, state, 1)
    return values.min(), env.best_in_hindsight(p, cum), env.oracle(p, jnp.array([3, 8])), thetas, step

  best_brute, best, curve, thetas, (_, _, r, done, info) = check(p)
  np.testing.assert_allclose(best, best_brute, rtol=1e-10)
  np.testing.assert_allclose(curve[1], best_brute, rtol=1e-10)
  assert 0.0 <= float(thetas.min()) and float(thetas.max()) <= 1.0
  # phases [1], [2, 3], [4..7], [8..]: the adversary switches table at each power of two
  assert np.abs(thetas[1] - thetas[2]).max() <= 0.1 and np.abs(thetas[3] - thetas[6]).max() <= 0.1
  assert np.abs(thetas[2] - thetas[3]).max() > 0.1
  assert float(r) == -float(info["loss"]) and not bool(done)
  with pytest.raises(ValueError, match="n_actions"):
    env.with_actions(p, 4)
  with pytest.raises(ValueError, match="noise"):
    env.tabular_as_linear(jax.random.PRNGKey(0), 2, 2, 2, noise=1.5)


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_smoke_trends(smoke):
  res = smoke.results
  rows = {r["algo"]: r for r in smoke.summary["metrics"]["table"]}
  assert res["regret"].shape == (3, 2, 4, 5)
  assert np.all(np.isfinite(res["regret"]))
  # Sublinear regret for all three; the explore-mix baseline pays its K^{2/3} exploration and ends highest.
  for name in alq.ALGOS:
    assert rows[name]["k_slope"] < 1.0
  assert rows["explore_mix"]["regret_kmax"] > max(rows["logbarrier"]["regret_kmax"], rows["magred"]["regret_kmax"])
  assert rows["logbarrier"]["k_slope"] < rows["explore_mix"]["k_slope"]
  assert rows["logbarrier"]["a_slope"] > 0.2  # Algorithm 1's regret grows with A
  # realised regret tracks the pseudo-regret
  np.testing.assert_allclose(rows["magred"]["realised_kmax"], rows["magred"]["regret_kmax"], rtol=0.3)


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
