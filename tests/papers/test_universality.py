"""Universality lens (2025): mixture closed forms, the over-parametrised class, the resolvability bound,
and the smoke-size reproduction measured by the notebook."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import gammaln

from configs.universality import get_config
from experiments import universality as ex
from rljax.theory.experts import universality as un
from tests.helpers import assert_smoke_claims


def _laplace_grid(g):
  """Gauss–Legendre nodes on [0, 1] as a prior: exact for the uniform prior on polynomials of degree < 2g."""
  x, w = np.polynomial.legendre.leggauss(g)
  return jnp.asarray((x + 1) / 2), jnp.log(jnp.asarray(w / 2))


def test_sequential_equals_batch_and_laplace(x64):
  probs, log_prior = _laplace_grid(16)
  x = jnp.asarray([1, 0, 0, 1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1], jnp.float64)
  loglik_fn = lambda xi: un.bernoulli_loglik(probs, xi, 1.0)
  seq = float(jnp.sum(un.mixture_predict(log_prior, loglik_fn, x)))
  n, k = x.size, float(x.sum())
  batch = float(un.mixture_logprob(log_prior, un.bernoulli_loglik(probs, k, n)))
  laplace = gammaln(k + 1) + gammaln(n - k + 1) - gammaln(n + 2)  # k!(n−k)!/(n+1)!
  assert abs(seq - batch) < 1e-10 and abs(batch - laplace) < 1e-10


def test_laplace_worst_case_regret(x64):
  probs, log_prior = _laplace_grid(16)
  n = 12
  k = jnp.arange(n + 1.0)
  ml = un.bernoulli_loglik(k / n, k, n)  # best θ in hindsight for each count of ones
  reg = ml - un.mixture_logprob(log_prior, un.bernoulli_loglik(probs, k[:, None], n))
  assert int(jnp.argmax(reg)) in (0, n)
  np.testing.assert_allclose(jnp.max(reg), np.log(n + 1), atol=1e-10)


def test_laplace_expected_regret_half_log_n(x64):
  g = 4000
  probs, log_prior = jnp.arange(0.5, g) / g, jnp.full(g, -np.log(g))
  r = jax.jit(jax.vmap(lambda n: un.expected_regret(0.5, probs, log_prior, n, half_width=600)))(
      jnp.asarray([100.0, 10_000.0]))
  assert abs(float(r[1] - r[0]) - 0.5 * np.log(100)) < 0.05


def test_finite_class_regret_below_log_size(x64):
  probs = jnp.asarray([0.2, 0.5, 0.9])
  log_prior = jnp.full(3, -np.log(3))
  seqs = jnp.asarray(list(itertools.product([0.0, 1.0], repeat=10)))
  log_q = jax.vmap(lambda x: jnp.sum(un.mixture_predict(log_prior, lambda xi: un.bernoulli_loglik(probs, xi, 1.0), x)))(seqs)
  log_p = un.bernoulli_loglik(probs[None], seqs.sum(1, keepdims=True), 10.0)  # [2^10, 3]
  worst = jnp.max(log_p - log_q[:, None], axis=0)
  assert np.all(np.asarray(worst) <= np.log(3) + 1e-12)
  assert float(jnp.max(worst)) > np.log(3) - 0.05  # nearly attained for the extreme hypothesis


def test_overparam_prior_counts(x64):
  m = 6
  probs, log_prior = un.overparam_class(m)
  sums = np.asarray(list(itertools.product([-1, 0, 1], repeat=m))).sum(1)
  np.testing.assert_allclose(np.exp(log_prior) * 3**m, np.bincount(sums + m), rtol=1e-10)
  np.testing.assert_allclose(probs[np.array([0, m, 2 * m])], [0.05, 0.5, 0.95])
  # −log P(mean w = 1/2) = m·I(1/2) + O(log m), with I(1/2) = 0.1974.
  assert abs(float(un.trinomial_rate(0.5)) - 0.1974) < 1e-4
  lam = jnp.linspace(-5, 5, 100_001)
  assert abs(float(jnp.max(lam * 0.5 - jnp.log((1 + 2 * jnp.cosh(lam)) / 3))) - float(un.trinomial_rate(0.5))) < 1e-8
  m = 600
  log_w = un.overparam_class(m)[1][m + m // 2]
  assert abs(-float(log_w) / m - 0.1974) < 0.01


def test_weight_and_bound(x64):
  probs, log_prior = un.overparam_class(20)
  p = 0.5 + 0.45 * 0.5
  eps = jnp.logspace(-6, 0, 40)
  log_w = un.weight(p, eps, probs, log_prior)
  assert np.all(np.diff(np.asarray(log_w)) >= 0) and float(log_w[-1]) < 0
  assert float(un.weight(p, 10.0, probs, log_prior)) == pytest.approx(0.0, abs=1e-12)  # the whole class
  ns = [10, 100, 1000, 10_000]
  bound = un.resolvability_bound(p, jnp.asarray(ns, jnp.float64), probs, log_prior)
  exact = jax.jit(jax.vmap(lambda n: un.expected_regret(p, probs, log_prior, n, half_width=600)))(
      jnp.asarray(ns, jnp.float64))
  assert np.all(np.asarray(exact) <= np.asarray(bound) + 1e-12)
  assert float(bound[0] - exact[0]) > 0.1  # strict before the posterior concentrates
  # At large n the bound is −log w(target) (the target is on the grid), i.e. 20·I(0.5) + O(log 20).
  np.testing.assert_allclose(bound[-1], -log_prior[30], rtol=1e-12)


def test_bad_inputs(x64):
  with pytest.raises(ValueError, match="log_prior"):
    un.mixture_logprob(jnp.zeros(3), jnp.zeros(3))
  with pytest.raises(ValueError, match="ns"):
    un.regret(jax.random.PRNGKey(0), 0.5, *un.overparam_class(4), [10, 5])
  with pytest.raises(ValueError, match="`m`"):
    un.overparam_class(0)
  cfg = get_config("smoke")
  cfg.ms = (10, 15)
  with pytest.raises(ValueError, match="ms"):
    ex.run(cfg)
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_predicted_trends(smoke):
  results = smoke.results
  rows = {r["target"]: r for r in smoke.summary["metrics"]["table"]}
  assert results["expected"].shape == (3, 2, len(results["n"]))
  simple, complex_ = rows[0.0], rows[0.5]
  assert abs(complex_["slope_vs_m"] - 0.1974) < 0.25 * 0.1974  # R_n ≈ m·I(0.5): linear in m
  assert abs(simple["slope_vs_m"]) < 0.1 * 0.1974  # flat in m
  assert max(simple["final"]) < 0.5 * np.log(results["n"][-1]) + 1.0  # O(½ log n), whatever m
  for r in rows.values():
    assert r["max_ratio_to_bound"] <= 1.0 + 1e-9  # never above min_ε{−log W_ε + nε}
    assert r["mc_max_z"] < 5.0  # Monte-Carlo sequences agree with the exact expectation
  ms = results["ms"]
  assert np.all(np.asarray(complex_["final"]) < ms * np.log(3))  # far below log |Θ|
  assert [r["m"] for r in smoke.summary["metrics"]["parameter_count"]] == ms.tolist()
