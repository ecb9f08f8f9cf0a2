"""Divergences and the closed-form duals of inf_μ E_μ V + λ D(μ‖μ0) against direct minimisation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as so

from rljax.theory.kernels import divergences as dv


def _simplex_min(objective, n, rng, starts=2):
  cons = [{"type": "eq", "fun": lambda m: m.sum() - 1}]
  best = np.inf
  for _ in range(starts):
    res = so.minimize(objective, rng.dirichlet(np.ones(n)), method="SLSQP", bounds=[(0, 1)] * n,
                      constraints=cons, options={"ftol": 1e-15, "maxiter": 2000})
    best = min(best, res.fun)
  return best


def _tv_lp(v, p0, lam):
  """min_μ μ·V + λ/2 Σ|μ − μ0| as an LP with μ − μ0 = t⁺ − t⁻."""
  n = v.size
  c = np.concatenate([v, 0.5 * lam * np.ones(2 * n)])
  a_eq = np.block([[np.eye(n), -np.eye(n), np.eye(n)], [np.ones((1, n)), np.zeros((1, 2 * n))]])
  return so.linprog(c, A_eq=a_eq, b_eq=np.concatenate([p0, [1.0]]), bounds=[(0, None)] * (3 * n)).fun


@pytest.mark.parametrize("lam", [0.05, 0.4, 2.0, 20.0])
def test_duals_match_direct_minimisation(x64, lam):
  rng = np.random.default_rng(int(lam * 100))
  n = 6
  p0 = rng.dirichlet(np.ones(n))
  v = 2 * rng.normal(size=n)
  kl = _simplex_min(lambda m: m @ v + lam * np.sum(np.where(m > 0, m * np.log(np.maximum(m, 1e-300) / p0), 0)), n, rng)
  chi2 = _simplex_min(lambda m: m @ v + lam * np.sum((m - p0) ** 2 / p0), n, rng)
  np.testing.assert_allclose(dv.dual_kl(v, p0, lam), kl, atol=1e-7)
  np.testing.assert_allclose(dv.dual_chi2(v, p0, lam), chi2, atol=1e-8)
  np.testing.assert_allclose(dv.dual_tv(v, p0, lam), _tv_lp(v, p0, lam), atol=1e-9)


def test_dual_limits_and_batching(x64):
  rng = np.random.default_rng(1)
  p0 = rng.dirichlet(np.ones(8), size=3)
  v = rng.normal(size=(3, 8))
  mean = np.sum(p0 * v, -1)
  for dual in (dv.dual_kl, dv.dual_tv, dv.dual_chi2):
    np.testing.assert_allclose(dual(v, p0, 1e6), mean, atol=1e-5)  # λ → ∞: the nominal mean
    batched = dual(v, p0, 0.3)
    assert batched.shape == (3,)
    np.testing.assert_allclose(batched, [dual(v[i], p0[i], 0.3) for i in range(3)], rtol=1e-12)
  np.testing.assert_allclose(dv.dual_tv(v, p0, 1e-9), v.min(-1), atol=1e-8)
  np.testing.assert_allclose(dv.dual_kl(v, p0, 1e-3), v.min(-1), atol=1e-2)
  with pytest.raises(ValueError, match="p0"):
    dv.dual_kl(v[0], p0[0] * 2, 1.0)
  with pytest.raises(ValueError, match="lam"):
    dv.dual_tv(v[0], p0[0], -1.0)


def test_categorical_divergences(x64):
  rng = np.random.default_rng(2)
  p, q = rng.dirichlet(np.ones(5), size=2)
  lp, lq = np.log(p), np.log(q)
  np.testing.assert_allclose(dv.categorical_kl(lp, lq), np.sum(p * np.log(p / q)), rtol=1e-12)
  np.testing.assert_allclose(dv.total_variation(lp, lq), 0.5 * np.abs(p - q).sum(), rtol=1e-12)
  np.testing.assert_allclose(dv.chi2_divergence(lp, lq), np.sum((p - q) ** 2 / q), rtol=1e-10)
  # Zero-mass atoms: 0·log 0 = 0, and mass where the other has none is infinite.
  p0 = jnp.log(jnp.array([0.5, 0.5, 0.0]))
  q0 = jnp.log(jnp.array([0.25, 0.25, 0.5]))
  np.testing.assert_allclose(dv.categorical_kl(p0, q0), np.log(2), rtol=1e-12)
  assert np.isinf(dv.categorical_kl(q0, p0)) and np.isinf(dv.chi2_divergence(q0, p0))
  np.testing.assert_allclose(dv.chi2_divergence(p0, q0), 1.0, rtol=1e-12)  # .0625/.25·2 + .25/.5
  g = jax.grad(lambda x: dv.categorical_kl(jax.nn.log_softmax(x), lq))(jnp.asarray(lp))
  assert np.all(np.isfinite(g))
  with pytest.raises(ValueError, match="log_p"):
    dv.categorical_kl(jnp.zeros(3), lq[:3])


def test_bernoulli_kl_edges(x64):
  p = jnp.array([0.0, 1.0, 0.3, 0.3, 0.3])
  q = jnp.array([0.5, 0.5, 0.0, 1.0, 0.6])
  kl = np.asarray(dv.bernoulli_kl(p, q))
  np.testing.assert_allclose(kl[:2], np.log(2), rtol=1e-12)
  assert np.isinf(kl[2]) and np.isinf(kl[3])
  np.testing.assert_allclose(kl[4], 0.3 * np.log(0.3 / 0.6) + 0.7 * np.log(0.7 / 0.4), rtol=1e-12)
  # Tiny q: log1p keeps precision where log(1 − q) would round to 0.
  np.testing.assert_allclose(dv.bernoulli_kl(0.0, 1e-17), 1e-17, rtol=1e-6)
  np.testing.assert_allclose(dv.bernoulli_kl(0.2, 0.2), 0.0, atol=1e-15)
  with pytest.raises(ValueError, match="q"):
    dv.bernoulli_kl(0.5, 1.5)


def test_kl_ball_mass(x64):
  rng = np.random.default_rng(3)
  d = rng.exponential(size=50)
  logw = np.log(rng.dirichlet(np.ones(50)))
  eps = np.array([-1.0, 0.0, 0.3, 1.0, 10.0])
  brute = [np.log(np.sum(np.exp(logw)[d <= e])) if np.any(d <= e) else -np.inf for e in eps]
  np.testing.assert_allclose(dv.kl_ball_mass(d, logw, eps), brute, rtol=1e-12, atol=1e-12)
  # Bernoulli grid: the ball around θ = 1/2 under a uniform prior on 101 points.
  grid = np.linspace(0, 1, 101)
  div = dv.bernoulli_kl(0.5, grid)
  mass = np.exp(dv.kl_ball_mass(div, np.full(101, -np.log(101)), 0.02))
  np.testing.assert_allclose(mass, np.mean(np.asarray(div) <= 0.02), rtol=1e-12)
