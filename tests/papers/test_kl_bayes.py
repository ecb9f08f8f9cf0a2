"""KL-regularised RL as Bayesian inference (Korbak et al. 2022): π*, J, the surrogates and the reproduction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.kl_bayes import get_config
from experiments import kl_bayes as ex
from rljax.theory.preference import kl_bayes as kb
from rljax.theory.kernels.divergences import categorical_kl
from tests.helpers import assert_monotone, assert_smoke_claims


def _problem(k=12, seed=0):
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  return jax.nn.log_softmax(jax.random.normal(k1, (k,))), 2.0 * jax.random.normal(k2, (k,))


def test_optimal_policy_and_objective_identity(x64):
  log_ref, r = _problem()
  beta = 0.7
  log_star = kb.kl_optimal_policy(log_ref, r, beta)
  unnorm = jnp.exp(log_ref) * jnp.exp(r / beta)
  np.testing.assert_allclose(jnp.exp(log_star), unnorm / unnorm.sum(), rtol=1e-13)
  log_z = jnp.log(unnorm.sum())
  j_star = kb.kl_regularized_objective(log_star, log_ref, r, beta)
  np.testing.assert_allclose(j_star, beta * log_z, rtol=1e-13)
  for key in jax.random.split(jax.random.PRNGKey(1), 6):  # J(π) + β·KL(π‖π*) = β·log Z, and π* is the argmax
    log_pi = jax.nn.log_softmax(log_star + 0.3 * jax.random.normal(key, log_star.shape))
    j = kb.kl_regularized_objective(log_pi, log_ref, r, beta)
    np.testing.assert_allclose(j + beta * categorical_kl(log_pi, log_star), beta * log_z, rtol=1e-12)
    assert j < j_star
  # β → ∞: the prior; β → 0: the point mass on argmax r.
  np.testing.assert_allclose(kb.kl_optimal_policy(log_ref, r, 1e8), log_ref, atol=1e-6)
  np.testing.assert_allclose(jnp.exp(kb.kl_optimal_policy(log_ref, r, 1e-3)), jax.nn.one_hot(jnp.argmax(r), 12),
                             atol=1e-10)
  with pytest.raises(ValueError, match="beta"):
    kb.kl_optimal_policy(log_ref, r, 0.0)
  with pytest.raises(ValueError, match="log_ref"):
    kb.kl_optimal_policy(log_ref + 1.0, r, 1.0)


def test_markov_posterior_is_exact(x64):
  prior = kb.make_markov_lm(jax.random.PRNGKey(2), 3, 4)
  w = jnp.array([1.0, -0.5, 0.2])
  seqs = kb.enumerate_sequences(3, 4)
  assert seqs.shape == (81, 4)
  log_ref = kb.sequence_logps(prior, seqs)
  np.testing.assert_allclose(jnp.exp(log_ref).sum(), 1.0, rtol=1e-13)
  log_star = kb.kl_optimal_policy(log_ref, kb.sequence_rewards(w, seqs), 0.5)
  np.testing.assert_allclose(kb.sequence_logps(kb.markov_posterior(prior, w, 0.5), seqs), log_star, atol=1e-12)


def test_surrogate_gradients_are_exact(x64):
  """On the enumeration, the reinforce_loss / dpg_loss surrogates give −∇J and ∇KL(π*‖π_θ) exactly."""
  prior = kb.make_markov_lm(jax.random.PRNGKey(3), 3, 3)
  lm = kb.make_markov_lm(jax.random.PRNGKey(4), 3, 3)
  w = jnp.array([1.0, 0.0, 0.3])
  seqs = kb.enumerate_sequences(3, 3)
  r = kb.sequence_rewards(w, seqs)
  log_ref = kb.sequence_logps(prior, seqs)
  beta = 0.5
  weights = jnp.exp(kb.sequence_logps(lm, seqs))
  for method, beta_j in (("rl", 0.0), ("kl_rl", beta)):
    got = jax.grad(kb.surrogate_loss)(lm, prior, seqs, r, method=method, beta=beta, weights=weights)
    want = jax.grad(lambda m: -kb.kl_regularized_objective(kb.sequence_logps(m, seqs), log_ref, r, beta_j))(lm)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-12), got, want)
  log_star = kb.kl_optimal_policy(log_ref, r, beta)
  got = jax.grad(kb.surrogate_loss)(lm, prior, seqs, r, method="dpg", beta=beta, weights=weights)
  want = jax.grad(lambda m: categorical_kl(log_star, kb.sequence_logps(m, seqs)))(lm)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-12), got, want)


def test_rollout_matches_sequence_distribution(x64):
  lm = kb.make_markov_lm(jax.random.PRNGKey(5), 2, 3)
  params = kb.EnvParams(jnp.array([1.0, 0.0]), 3)
  state, _ = kb.reset(jax.random.PRNGKey(0), params)
  state, _, reward, done, _ = kb.step(jax.random.PRNGKey(0), params, state, 0)
  assert reward == 1.0 and not done and state.t == 1
  tokens, rewards = jax.jit(lambda k: kb.rollout(k, lm, params, 20_000))(jax.random.PRNGKey(6))
  np.testing.assert_allclose(rewards, kb.sequence_rewards(params.token_reward, tokens))
  seqs = kb.enumerate_sequences(2, 3)
  index = tokens @ jnp.array([4, 2, 1])
  freq = np.bincount(np.asarray(index), minlength=8) / 20_000
  np.testing.assert_allclose(freq, jnp.exp(kb.sequence_logps(lm, seqs)), atol=0.015)


@pytest.fixture(scope="module")
def rows(smoke):
  return {(r["method"], r["batch"]): r for r in smoke.summary["metrics"]["table"]}


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_reproduction_trends(smoke, rows):
  results = smoke.results
  for batch in results["batches"]:
    rl, klrl, dpg = rows[("rl", batch)], rows[("kl_rl", batch)], rows[("dpg", batch)]
    # Pure RL collapses: entropy falls below 5% of its start and E r approaches max r.
    assert rl["entropy_end"] < 0.05 * rl["entropy_start"]
    assert rl["reward_end"] > 0.95 * rl["reward_max"]
    assert rl["kl_reverse_end"] > 0.5
    # KL-RL and DPG converge to π*, keeping its entropy.
    assert klrl["kl_reverse_end"] < 1e-3 and dpg["kl_forward_end"] < 5e-2
    for r in (klrl, dpg):
      assert abs(r["entropy_end"] - r["entropy_star"]) < 0.05 * r["entropy_star"]
  j = results["methods"].index("rl")
  assert_monotone(np.median(results["entropy"][j, 0], 0), increasing=False)
  j = results["methods"].index("kl_rl")
  assert_monotone(np.median(results["objective"][j, 0], 0), increasing=True, rtol=1e-9)


def test_bad_config():
  cfg = get_config("smoke")
  cfg.methods = ("rl", "ppo")
  with pytest.raises(ValueError, match="ppo"):
    ex.run(cfg)
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
