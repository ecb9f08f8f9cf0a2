"""Naive Bayes vs logistic regression (Zheng et al., ICML 2023): learners, Bayes error, m* trend, notebook."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

from configs.dis_vs_gen import get_config
from experiments import dis_vs_gen as ex
from rljax.theory.envs import gaussian_mixture_cls as gm
from rljax.theory.stats import dis_vs_gen as dg
from tests.helpers import assert_slope, assert_smoke_claims


def test_nb_matches_numpy_mle_and_weights(x64):
  x, y = gm.sample(jax.random.PRNGKey(0), gm.make_params(3, 5), 60)
  nb = dg.gaussian_nb_fit(x, y, 3)
  xn, yn = np.asarray(x), np.asarray(y)
  eps = 1e-9 * xn.var(0).max()
  for k in range(3):
    np.testing.assert_allclose(nb.means[k], xn[yn == k].mean(0), rtol=1e-10)
    np.testing.assert_allclose(nb.var[k], xn[yn == k].var(0) + eps, rtol=1e-10)
  np.testing.assert_allclose(jnp.exp(nb.log_prior), [1 / 3] * 3, rtol=1e-12)
  # A 0/1 mask is the same as fitting on the kept rows.
  masked = dg.gaussian_nb_fit(x, y, 3, weights=(jnp.arange(60) < 30).astype(x.dtype))
  np.testing.assert_allclose(masked.var, dg.gaussian_nb_fit(x[:30], y[:30], 3).var, rtol=1e-10)


def test_logreg_stationary_and_mask(x64):
  x, y = gm.sample(jax.random.PRNGKey(1), gm.make_params(3, 6), 90)
  lr = dg.logreg_fit(x[:45], y[:45], 3, tol=1e-12, max_iters=1000)
  grad = jax.grad(lambda wb: dg.logreg_objective(wb[0], wb[1], x[:45], y[:45], jnp.ones(45), 1.0))(
      (lr.weight, lr.bias))
  assert max(float(jnp.abs(g).max()) for g in grad) < 1e-6  # stationary point of ½‖W‖² + C Σ CE
  masked = dg.logreg_fit(x, y, 3, weights=(jnp.arange(90) < 45).astype(x.dtype), tol=1e-12, max_iters=1000)
  np.testing.assert_allclose(masked.weight, lr.weight, atol=1e-6)
  with pytest.raises(ValueError, match="c"):
    dg.logreg_fit(x, y, 3, c=0.0)


def test_bayes_error_closed_form_vs_monte_carlo(x64):
  for dim in (2, 4, 10):
    p = gm.make_params(2, dim)
    exact = float(gm.bayes_error_two_class(p))
    # Δ² = 4(⌊n/2⌋/n + ⌈n/2⌉) for μ_1 − μ_0 = 2·1_n and Σ = diag(n·1_{⌊n/2⌋}, 1_{⌈n/2⌉}).
    delta = np.sqrt(4 * (dim // 2 / dim + dim - dim // 2))
    np.testing.assert_allclose(exact, norm.cdf(-delta / 2), rtol=1e-10)
    mc = float(gm.bayes_error_mc(jax.random.PRNGKey(dim), p, 200_000))
    assert abs(mc - exact) < 4 * np.sqrt(exact * (1 - exact) / 200_000) + 1e-5
  with pytest.raises(ValueError, match="mode"):
    gm.make_params(2, 4, "medium")


def test_m_star():
  grid = np.array([4, 8, 16, 32])
  errs = np.array([[0.3, 0.1, 0.02, 0.0], [0.2, 0.1, 0.0, 0.01]])
  assert dg.m_star(grid, errs, 0.0, 0.01) == 16
  assert dg.m_star(grid, errs, 0.0, 0.001) == np.inf
  with pytest.raises(ValueError, match="m_grid"):
    dg.m_star(grid[::-1], errs, 0.0)


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_predicted_sample_complexities(smoke):
  results = smoke.results
  rows = {r["model"]: r for r in ex.trend_rows(results)}
  n = results["n"]
  assert np.nanmax(results["grad_norm"]) < 1e-3  # smoke caps L-BFGS at 100 iterations
  lr_seeds, nb_seeds = rows["lr"]["m_star_seeds"], rows["nb"]["m_star_seeds"]
  assert_slope(n, lr_seeds, 1.0, 0.4, last_decades=None)  # LR: m* ∝ n
  assert rows["nb"]["slope"] < 0.3  # NB: m* ~ log n, flat on log-log axes
  assert np.all(np.median(nb_seeds, 0) < np.median(lr_seeds, 0))
  ratio = np.median(lr_seeds, 0) / np.median(nb_seeds, 0)
  assert ratio[-1] > ratio[0] and ratio[-1] > 5  # the gap widens with n


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
