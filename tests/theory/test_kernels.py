"""Closed-form checks of the simplex online-learning kernels (FTRL, FTPL, geometric mixtures, KL prox)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

from rljax.theory.kernels import simplex


def _ftrl_objective(p, losses, eta, regularizer):
  reg = {"log_barrier": -np.sum(np.log(p)), "tsallis": -2 * np.sum(np.sqrt(p)),
         "entropy": np.sum(p * np.log(p))}[regularizer]
  return p @ losses + reg / eta


@pytest.mark.parametrize("regularizer", ["entropy", "log_barrier", "tsallis"])
def test_ftrl_probs_minimise_the_ftrl_objective(x64, regularizer):
  losses = np.array([[3.0, 0.5, 2.0, 0.4, 7.0], [0.0, 0.0, 1.0, -2.0, 0.3]])
  eta = 0.7
  p = np.asarray(jax.jit(lambda l: simplex.ftrl_probs(l, eta, regularizer=regularizer))(losses))
  np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-12)
  for row, prow in zip(losses, p):
    best = _ftrl_objective(prow, row, eta, regularizer)
    rng = np.random.default_rng(0)
    for _ in range(200):  # any other point of the simplex is worse
      q = rng.dirichlet(np.ones(5) * 2)
      q = 0.9 * prow + 0.1 * q
      assert _ftrl_objective(q, row, eta, regularizer) >= best - 1e-12
    res = minimize(lambda z: _ftrl_objective(np.exp(z) / np.exp(z).sum(), row, eta, regularizer),
                   np.log(prow), method="BFGS", options={"gtol": 1e-12})
    assert res.fun >= best - 1e-10


def test_entropy_ftrl_is_softmax_with_prior(x64):
  losses = jnp.array([1.0, 2.0, 0.0])
  log_prior = jnp.log(jnp.array([0.2, 0.5, 0.3]))
  p = simplex.ftrl_probs(losses, 2.0, log_prior=log_prior)
  q = jnp.exp(log_prior - 2.0 * losses)
  np.testing.assert_allclose(p, q / q.sum(), rtol=1e-12)


def test_ftpl_gumbel_matches_hedge_in_distribution():
  losses = jnp.array([0.3, 0.0, 1.0, 0.5])
  keys = jax.random.split(jax.random.PRNGKey(0), 100_000)
  actions = jax.vmap(lambda k: simplex.ftpl_action(k, losses, 2.0))(keys)
  freq = np.bincount(np.asarray(actions), minlength=4) / keys.shape[0]
  np.testing.assert_allclose(freq, simplex.ftrl_probs(losses, 2.0), atol=5e-3)


def test_kl_prox_step_maximises_its_objective(x64):
  rng = np.random.default_rng(1)
  log_p = jax.nn.log_softmax(jnp.asarray(rng.normal(size=6)))
  log_mu = jax.nn.log_softmax(jnp.asarray(rng.normal(size=6)))
  g = jnp.asarray(rng.normal(size=6))
  eta, tau = 0.4, 1.5
  new = simplex.kl_prox_step(log_p, g, eta, log_anchor=log_mu, tau=tau)
  kl = lambda a, b: jnp.sum(jnp.exp(a) * (a - b))
  obj = lambda lq: eta * jnp.exp(lq) @ g - eta * tau * kl(lq, log_mu) - kl(lq, log_p)
  grad = jax.grad(lambda z: obj(jax.nn.log_softmax(z)))(new)
  np.testing.assert_allclose(grad, 0.0, atol=1e-12)
  # τ = 0 reduces to multiplicative weights, and the anchor step is the Nash-MD geometric mixture.
  np.testing.assert_allclose(simplex.kl_prox_step(log_p, g, eta), jax.nn.log_softmax(log_p + eta * g), atol=1e-12)
  mix = simplex.geometric_mixture(log_p, log_mu, eta * tau / (1 + eta * tau))
  np.testing.assert_allclose(new, jax.nn.log_softmax(mix + eta * g / (1 + eta * tau)), atol=1e-12)


def test_mirror_prox_solves_a_regularised_game_faster_than_plain_steps(x64):
  """On rock–paper–scissors with a KL anchor, extragradient converges to the unique regularised
  equilibrium (the anchor-centred fixed point); its residual is tiny after a few hundred steps."""
  a = jnp.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])
  log_mu = jnp.log(jnp.array([0.6, 0.3, 0.1]))
  tau, eta = 0.5, 0.3
  gain = lambda lp: a @ jnp.exp(lp)
  step = lambda lp, _: (simplex.mirror_prox_step(lp, gain, eta, log_anchor=log_mu, tau=tau), None)
  lp, _ = jax.lax.scan(step, jnp.log(jnp.ones(3) / 3), None, length=400)
  fixed = jax.nn.log_softmax(log_mu + gain(lp) / tau)  # π = μ·exp(Aπ/τ)/Z at equilibrium
  np.testing.assert_allclose(lp, fixed, atol=1e-8)


def test_bad_arguments():
  with pytest.raises(ValueError, match="regularizer"):
    simplex.ftrl_probs(jnp.zeros(3), 1.0, regularizer="l2")
  with pytest.raises(ValueError, match="eta"):
    simplex.ftrl_probs(jnp.zeros(3), 0.0)
  with pytest.raises(ValueError, match="alpha"):
    simplex.geometric_mixture(jnp.zeros(3), jnp.zeros(3), 1.5)
  with pytest.raises(ValueError, match="log_anchor"):
    simplex.kl_prox_step(jnp.zeros(3), jnp.zeros(3), 1.0, tau=1.0)


def test_lbfgs_minimize_reaches_the_closed_form_and_stops_at_tol(x64):
  from rljax.theory.kernels.lbfgs import lbfgs_minimize

  a = jnp.array([[3.0, 1.0], [1.0, 2.0]])
  b = jnp.array([1.0, -2.0])
  f = lambda x: 0.5 * x @ a @ x - b @ x  # minimiser A⁻¹b
  out = jax.jit(lambda x0: lbfgs_minimize(f, x0, max_iters=50, tol=1e-12))(jnp.zeros(2))
  np.testing.assert_allclose(out.x, jnp.linalg.solve(a, b), atol=1e-10)
  assert out.grad_norm <= 1e-12 and out.iters < 50
  short = lbfgs_minimize(f, jnp.zeros(2), max_iters=1)
  assert short.iters == 1 and short.grad_norm > 1e-3
  with pytest.raises(ValueError, match="max_iters"):
    lbfgs_minimize(f, jnp.zeros(2), max_iters=0)
