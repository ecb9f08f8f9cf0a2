"""rDPO on a log-linear bandit (Chowdhury et al., ICML 2024): the preference model fitted through the
same rljax.losses kernels, and the reproduction run by the notebook at the smoke preset."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.rdpo_loglinear import get_config
from experiments import rdpo_loglinear as ex
from rljax import losses
from rljax.theory.preference import rdpo_loglinear as lb
from experiments.slopes import loglog_slope, seed_slope
from tests.helpers import assert_smoke_claims


@pytest.fixture(scope="module")
def rows(smoke):
  return {(r["loss"], r["epsilon"]): r for r in smoke.summary["metrics"]["slopes"]}


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_predicted_rates(smoke, rows):
  results = smoke.results
  assert results["error"].shape == (3, 2, 4, 8)
  assert results["grad_norm"].max() < 1e-6  # every fit converged
  for name in ("dpo", "cdpo", "rdpo"):  # without noise all three are the same MLE, rate n^{-1/2}
    assert -0.8 < rows[(name, 0.0)]["slope"] < -0.3
  assert rows[("rdpo", 0.2)]["slope"] < -0.2  # rDPO keeps converging under noise ...
  for name in ("dpo", "cdpo"):  # ... while DPO and cDPO sit on a bias floor
    assert abs(rows[(name, 0.2)]["slope"]) < 0.1
    assert rows[(name, 0.2)]["error_nmax"] > 2 * rows[("rdpo", 0.2)]["error_nmax"]
    assert rows[(name, 0.2)]["kl_gap_nmax"] > 5 * rows[("rdpo", 0.2)]["kl_gap_nmax"]
  # The 1/(1−2ε) factor: scaled rDPO errors land within a factor 2 of the noiseless curve.
  ratio = rows[("rdpo", 0.2)]["scaled_error_nmax"] / rows[("rdpo", 0.0)]["scaled_error_nmax"]
  assert 0.5 < ratio < 2.0


def test_unknown_loss_fails_before_compute():
  cfg = get_config("smoke")
  cfg.losses = ("dpo", "rdpoo")
  with pytest.raises(KeyError, match="rdpoo"):
    ex.run(cfg, progress=False)
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")


def _env(seed=0, n_prompts=64):
  env = lb.make_loglinear_bandit(jax.random.PRNGKey(seed), n_prompts=n_prompts, n_actions=6, dim=4, theta_norm=2.0)
  return jax.tree.map(lambda a: a.astype(jnp.float64), env)


def test_environment_shapes_and_norm(x64):
  env = _env()
  assert env.features.shape == (64, 6, 4)
  np.testing.assert_allclose(jnp.linalg.norm(env.theta_star), 2.0, rtol=1e-12)
  with pytest.raises(ValueError, match="n_actions"):
    lb.make_loglinear_bandit(jax.random.PRNGKey(0), n_prompts=3, n_actions=1, dim=2, theta_norm=1.0)


def test_sampler_flip_rate_and_label_probabilities(x64):
  env = _env(1, n_prompts=8)
  n, eps = 200_000, 0.3
  data = lb.sample_preferences(jax.random.PRNGKey(2), env, n, eps)
  assert np.all(np.asarray(data.chosen) != np.asarray(data.rejected))
  flip_rate = float(np.mean(data.flipped))
  assert abs(flip_rate - eps) < 4 * np.sqrt(eps * (1 - eps) / n)
  # P(observed winner has the higher true reward) = E[ε + (1−2ε)σ(|Δr|)] for the drawn pairs.
  reward = np.asarray(env.features @ env.theta_star)
  r_c = reward[data.prompt, data.chosen]
  r_r = reward[data.prompt, data.rejected]
  expected = np.mean(eps + (1 - 2 * eps) / (1 + np.exp(-np.abs(r_c - r_r))))
  observed = np.mean(r_c > r_r)
  assert abs(observed - expected) < 4 * np.sqrt(0.25 / n)


def test_same_key_shares_clean_draws_across_noise_levels(x64):
  env = _env(3)
  key = jax.random.PRNGKey(4)
  lo = lb.sample_preferences(key, env, 1000, 0.1)
  hi = lb.sample_preferences(key, env, 1000, 0.3)
  assert np.all(np.asarray(lo.flipped) <= np.asarray(hi.flipped))  # ε↑ only adds flips
  same = ~np.asarray(hi.flipped)
  np.testing.assert_array_equal(np.asarray(lo.chosen)[same], np.asarray(hi.chosen)[same])


def _fit(env, data, name, eps=0.0, **kw):
  fn = losses.get(name)
  bound = functools.partial(fn, beta=1.0, **({"epsilon": eps} if name != "dpo" else {}))
  return jax.jit(lambda d: lb.fit(env.features, d, bound, **kw))(data)


def test_objective_is_the_registry_loss_on_policy_logps(x64):
  env = _env(5)
  data = lb.sample_preferences(jax.random.PRNGKey(6), env, 300, 0.2)
  theta = jnp.linspace(-1.0, 1.0, 4)
  bound = functools.partial(losses.rdpo_loss, beta=1.0, epsilon=0.2)
  logp = jax.nn.log_softmax(env.features @ theta, -1)
  ref = jnp.full(300, -np.log(6.0))
  direct, _ = losses.rdpo_loss(logp[data.prompt, data.chosen], logp[data.prompt, data.rejected], ref, ref,
                               beta=1.0, epsilon=0.2)
  np.testing.assert_allclose(lb.preference_objective(theta, env.features, data, bound), direct, rtol=1e-12)
  # Zero weights drop pairs exactly: a weighted buffer equals its prefix.
  w = (jnp.arange(300) < 120).astype(jnp.float64)
  prefix = jax.tree.map(lambda a: a[:120], data)
  np.testing.assert_allclose(
      lb.preference_objective(theta, env.features, data, bound, weights=w),
      lb.preference_objective(theta, env.features, prefix, bound), rtol=1e-12)


def test_fit_reaches_a_stationary_point(x64):
  env = _env(7)
  data = lb.sample_preferences(jax.random.PRNGKey(8), env, 2000, 0.2)
  res = _fit(env, data, "rdpo", 0.2, l2=1e-3)
  assert float(res.grad_norm) < 1e-8
  bound = functools.partial(losses.rdpo_loss, beta=1.0, epsilon=0.2)
  g = jax.grad(lambda t: lb.preference_objective(t, env.features, data, bound, l2=1e-3))(res.theta)
  assert float(jnp.linalg.norm(g)) < 1e-8


def test_large_sample_rdpo_is_consistent_and_dpo_is_shrunk(x64):
  """Population minimisers: rDPO → θ*, DPO and cDPO → a biased θ when ε > 0."""
  env = _env(9)
  data = lb.sample_preferences(jax.random.PRNGKey(10), env, 2**17, 0.25)
  err = {name: float(lb.estimation_error(_fit(env, data, name, 0.25).theta, env.theta_star, 1.0))
         for name in ("dpo", "cdpo", "rdpo")}
  assert err["rdpo"] < 0.2
  assert err["dpo"] > 0.5 and err["cdpo"] > 0.5
  # DPO's bias is a shrinkage: the direction is still (nearly) right.
  theta_dpo = _fit(env, data, "dpo").theta
  cos = float(theta_dpo @ env.theta_star / (jnp.linalg.norm(theta_dpo) * 2.0))
  assert cos > 0.98


def test_regularized_gap_identity_and_greedy_suboptimality(x64):
  env = _env(11)
  beta = 0.7
  theta_hat = env.theta_star / beta + 0.3 * jnp.ones(4)
  log_hat = lb.log_policy(theta_hat, env.features)
  reward = env.features @ env.theta_star

  def value(logp):  # J(π) = E_π[r*] − β KL(π‖uniform)
    p = jnp.exp(logp)
    return jnp.mean(jnp.sum(p * (reward - beta * (logp + np.log(6.0))), -1))

  log_star = lb.optimal_log_policy(env.theta_star, env.features, beta)
  np.testing.assert_allclose(lb.regularized_gap(theta_hat, env.theta_star, env.features, beta),
                             value(log_star) - value(log_hat), rtol=1e-10)
  assert float(lb.regularized_gap(env.theta_star / beta, env.theta_star, env.features, beta)) < 1e-14
  assert float(lb.greedy_suboptimality(2 * env.theta_star, env.theta_star, env.features)) == 0.0
  assert float(lb.greedy_suboptimality(-env.theta_star, env.theta_star, env.features)) > 0.0


def test_slope_helpers():
  n = np.asarray([100, 200, 400, 800, 1600], float)
  y = 3.0 * n**-0.5
  s, c = loglog_slope(n, y)
  np.testing.assert_allclose([s, np.exp(c)], [-0.5, 3.0], rtol=1e-10)
  rng = np.random.default_rng(0)
  fit = seed_slope(n, y * np.exp(0.05 * rng.normal(size=(30, 5))))
  assert fit.ci_low < -0.5 < fit.ci_high and fit.ci_high - fit.ci_low < 0.2
  with pytest.raises(ValueError, match="positive"):
    loglog_slope(n, -y)
