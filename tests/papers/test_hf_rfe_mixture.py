"""Horizon-free reward-free exploration in linear mixture MDPs (Zhang, Zhang & Gu, ICML 2023)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.hf_rfe_mixture import get_config
from experiments.slopes import loglog_slope
from rljax.theory.envs import linear_mixture_mdp as lmm
from rljax.theory.kernels import ridge
from rljax.theory.linear_mdp import hf_rfe_mixture as hf
from tests.helpers import assert_slope, assert_smoke_claims


def _random_mixture(seed, S=3, A=2, d=4):
  """φ(·|s,a) = the d base kernels' rows, θ* on the simplex: P = Σ_i θ_i P_i is a valid mixture."""
  rng = np.random.default_rng(seed)
  base = rng.dirichlet(np.ones(S), size=(d, S, A))  # P_i(s'|s,a)
  return lmm.check_mixture(np.moveaxis(base, 0, -1), rng.dirichlet(np.ones(d)), np.eye(S)[0])


def test_hard_instance_transitions(x64):
  d, H = 5, 40
  env = lmm.hard_instance(jax.random.PRNGKey(0), d, H)
  P = np.asarray(lmm.transition(env.phi, env.theta))
  acts = np.asarray(env.phi[0, :, 1, 1:])
  mu = np.asarray(env.theta[1:])
  lmm.check_mixture(env.phi, env.theta, env.rho)
  np.testing.assert_allclose(P[0, :, 1], 1 / H + acts @ mu, atol=1e-15)
  np.testing.assert_allclose(P[1, :, 1], 1.0)
  assert P.shape == (2, 2 ** (d - 1), 2) and np.abs(mu).sum() <= 0.9 / H + 1e-15
  log_m = np.sort(np.log(np.abs(mu) * H * (d - 1) / 0.9))[::-1] / np.log(100.0) * (d - 1)
  np.testing.assert_array_less(-np.arange(1, d), log_m)  # one coordinate per log-stratum
  np.testing.assert_array_less(log_m, -np.arange(d - 1) + 1e-12)


def test_rewards_total_at_most_one(x64):
  r = np.asarray(lmm.random_rewards(jax.random.PRNGKey(1), 6, 3, 4, 7))
  assert r.shape == (6, 7, 3, 4) and r.min() >= 0
  assert np.all(r.max((2, 3)).sum(1) <= 1 + 1e-12)  # along every trajectory
  np.testing.assert_allclose(r[0, :, -1], 1 / 7)


def test_vtr_feature_gives_the_expected_next_value(x64):
  env = _random_mixture(2)
  v = np.random.default_rng(3).uniform(size=(5, 3))
  P = np.asarray(lmm.transition(env.phi, env.theta))
  np.testing.assert_allclose(hf.vtr_feature(env.phi, v) @ env.theta, np.einsum("san,bn->bsa", P, v), atol=1e-14)


def test_moment_ladder_is_consistent(x64):
  """Jensen on the true parameter: ⟨φ_{V²}, θ*⟩ ≥ ⟨φ_V, θ*⟩² (the variance estimate of level m ≥ 0)."""
  for env in (_random_mixture(4), lmm.hard_instance(jax.random.PRNGKey(4), 4, 10)):
    v = np.random.default_rng(5).uniform(size=(50, env.phi.shape[0]))
    first = hf.vtr_feature(env.phi, v) @ env.theta
    second = hf.vtr_feature(env.phi, v**2) @ env.theta
    assert float((second - first**2).min()) >= -1e-14


def test_weighted_ridge_update_matches_sherman_morrison_and_solve(x64):
  rng = np.random.default_rng(6)
  x, y, w = rng.normal(size=(2, 30, 4)), rng.normal(size=(2, 30)), rng.uniform(0.1, 50, size=(2, 30))
  stats = jax.vmap(lambda _: ridge.ridge_init(4, 0.5))(jnp.arange(2))
  batch = hf.weighted_ridge_update(stats, x, y, w)
  for m in range(2):
    seq = ridge.ridge_init(4, 0.5)
    for j in range(30):
      seq = ridge.ridge_update(seq, x[m, j], y[m, j], w[m, j])
    direct = np.linalg.inv(0.5 * np.eye(4) + np.einsum("n,ni,nj->ij", w[m], x[m], x[m]))
    np.testing.assert_allclose(batch.v_inv[m], direct, atol=1e-10)
    np.testing.assert_allclose(seq.v_inv, direct, atol=1e-10)
    np.testing.assert_allclose(batch.logdet[m], seq.logdet, atol=1e-10)
    np.testing.assert_allclose(ridge.ridge_theta(jax.tree.map(lambda a: a[m], batch)),
                               ridge.ridge_solve(x[m], y[m], 0.5, weights=w[m]), atol=1e-10)


@pytest.mark.parametrize("weighted", [False, True])
def test_vtr_is_the_weighted_ridge_of_the_collected_data(x64, weighted):
  """Episode by episode the statistics equal one ridge solve on all (φ_V, V(s'), σ̄⁻²) rows; with σ̄ ≡ 1
  and M = 1 that is ordinary ridge on (φ_V, V(s'))."""
  env = lmm.hard_instance(jax.random.PRNGKey(7), 3, 6)
  cfg = hf.HfRfeConfig(3, 6, 50, n_levels=1 if not weighted else None, weighted=weighted)
  state = hf.explore_init(None, cfg, env.phi)
  episode = jax.jit(lambda st, k: hf.explore_episode(st, env, k, cfg))

  @jax.jit
  def data(st, k):  # what `explore_episode` regresses on: plan, roll out with the same key
    st = hf.explore_plan(st, cfg)
    return hf.regression_data(st, hf.rollout(k, env, st.policy), cfg)

  xs, ys, ws = [], [], []
  for k in jax.random.split(jax.random.PRNGKey(8), 8):
    x, y, w = data(state, k)
    xs.append(x), ys.append(y), ws.append(w)
    state = episode(state, k)
  x, y, w = (np.concatenate(a, axis=1) for a in (xs, ys, ws))
  if not weighted:
    np.testing.assert_array_equal(w, 1.0)
  else:
    assert w.max() > 2.0  # low-variance steps are up-weighted
  for m in range(cfg.n_levels):
    np.testing.assert_allclose(ridge.ridge_theta(jax.tree.map(lambda a: a[m], state.stats)),
                               ridge.ridge_solve(x[m], y[m], cfg.lam, weights=w[m]), atol=1e-8)


def test_planning_with_the_true_model_is_optimal(x64):
  for env, H in ((_random_mixture(9), 5), (lmm.hard_instance(jax.random.PRNGKey(9), 4, 12), 12)):
    S, A = env.phi.shape[:2]
    cfg = hf.HfRfeConfig(env.phi.shape[-1], H, 10)
    stats = jax.vmap(lambda _: ridge.RidgeState(jnp.eye(cfg.dim), jnp.eye(cfg.dim), env.theta, jnp.zeros(()),
                                                jnp.zeros((), jnp.int32)))(jnp.arange(cfg.n_levels))
    state = hf.explore_init(None, cfg, env.phi)._replace(stats=stats)  # θ̂ = Σ⁻¹b = θ*
    rewards = lmm.random_rewards(jax.random.PRNGKey(10), 4, S, A, H)
    v_star, v_plan = jax.jit(jax.vmap(lambda r: (env.rho @ lmm.oracle(env, r).v[0],
                                                 lmm.policy_value(env, r, hf.plan(state, r, cfg)))))(rewards)
    np.testing.assert_allclose(v_plan, v_star, atol=1e-12)


def test_pseudo_reward_maximises_over_all_value_functions(x64):
  env = _random_mixture(11)
  rng = np.random.default_rng(12)
  a = rng.normal(size=(4, 4))
  sigma_inv = np.linalg.inv(a @ a.T + np.eye(4))
  u = np.asarray(hf.model_uncertainty(env.phi, sigma_inv))
  brute = ridge.elliptical_bonus(hf.vtr_feature(env.phi, rng.uniform(size=(2000, 3))), sigma_inv).max(0)
  assert np.all(u >= np.asarray(brute) - 1e-12) and np.all(u <= np.asarray(brute) * 1.2)


def test_replan_schedule():
  sched = hf.HfRfeConfig(4, 10, 5000, replan_growth=1.1).replan_schedule()
  assert sched[:10].all() and 60 < sched.sum() < 120
  assert hf.HfRfeConfig(4, 10, 50, replan_growth=1.0).replan_schedule().all()


def test_bad_input_raises(x64):
  env = lmm.hard_instance(jax.random.PRNGKey(0), 3, 5)
  with pytest.raises(ValueError, match="probability"):
    lmm.check_mixture(env.phi, env.theta * 2, env.rho)
  with pytest.raises(ValueError, match="theta"):
    lmm.check_mixture(env.phi, env.theta[:2], env.rho)
  with pytest.raises(ValueError, match="dim"):
    lmm.hard_instance(jax.random.PRNGKey(0), 14, 5)
  with pytest.raises(ValueError, match="replan_growth"):
    hf.HfRfeConfig(3, 5, 10, replan_growth=0.5)
  with pytest.raises(ValueError, match="n_levels"):
    hf.HfRfeConfig(3, 5, 10, n_levels=0)
  cfg = hf.HfRfeConfig(3, 5, 10)
  with pytest.raises(ValueError, match="reward"):
    hf.plan(hf.explore_init(None, cfg, env.phi), jnp.zeros((4, 2, 4)), cfg)
  with pytest.raises(ValueError, match="checkpoints"):
    hf.run(jax.random.PRNGKey(0), cfg, env, jnp.zeros((1, 5, 2, 4)), (5, 20))
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_suboptimality_falls_like_inverse_sqrt_k_and_is_flat_in_h(smoke):
  results = smoke.results
  k = results["k"]
  assert np.all(results["subopt_d"] >= -1e-12)  # π̂ never beats π*
  for i in range(len(results["dims"])):
    # The paper's rate: the worst-reward suboptimality (median and mean over seeds) and the model error
    # fall like K^(−1/2).
    sub = np.maximum(results["subopt_d"][i], 1e-12)
    assert_slope(k, sub, -0.5, 0.15)
    assert -0.65 < loglog_slope(k, sub.mean(0))[0] < -0.4
    assert_slope(k, results["theta_d"][i], -0.5, 0.1)
  # Horizon-free: from H = 10 up, neither the mean suboptimality nor the relative model error H·‖θ̂₀ − θ*‖
  # grows by more than 1.5×.
  rows = smoke.summary["metrics"]["vs_h"]
  assert max(r["ratio_mean"] for r in rows if r["variant"] == "weighted") <= 1.5
  rel = [r["rel_theta"] for r in rows]
  assert max(rel) < 1.5 * min(rel)
