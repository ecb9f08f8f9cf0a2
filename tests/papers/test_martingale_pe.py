"""Martingale policy evaluation (Jia & Zhou, JMLR 2022): SDE kernel, OU closed forms, estimators, Δt trend."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.martingale_pe import get_config
from rljax.theory.ct import martingale_pe as mp
from rljax.theory.envs import ou_process as ou
from rljax.theory.kernels import sde
from tests.helpers import assert_slope, assert_smoke_claims

P = ou.OUParams()


def _paths(key, n_paths, log2_fine, log2_dt):
  k0, kw = jax.random.split(key)
  x0 = P.x0_std * jax.random.normal(k0, (n_paths,))
  dw = sde.brownian_increments(kw, n_paths, 2**log2_fine, 2.0**-log2_fine)
  return x0, dw, [mp.simulate_paths(x0, sde.coarsen(dw, 2 ** (log2_fine - k)), 2.0**-k, ou.drift(P), ou.diffusion(P))
                  for k in log2_dt]


def test_ou_moments_and_strong_order(x64):
  x0, dw, (fine, *coarse) = _paths(jax.random.PRNGKey(0), 4000, 8, (8, 2, 3, 4, 5))
  t = 1.0
  var = float(sde.ou_variance(P.x0_std**2, t, P.kappa, P.sigma))
  assert abs(float(fine[:, -1].mean()) - float(sde.ou_mean(0.0, t, P.kappa))) < 4 * np.sqrt(var / 4000)
  assert abs(float(fine[:, -1].var()) / var - 1) < 4 * np.sqrt(2 / 4000)
  # Strong error against the exact solution X_T = e^{−κT}X_0 + σ Σ e^{−κ(T−s)}ΔW_s (fine-mesh quadrature).
  s = np.arange(2**8) / 2**8
  exact = np.exp(-P.kappa) * x0 + P.sigma * (np.exp(-P.kappa * (1 - s)) * np.asarray(dw)).sum(-1)
  errs = [float(np.sqrt(np.mean((np.asarray(c[:, -1]) - exact) ** 2))) for c in coarse]
  assert_slope(2.0 ** -np.arange(2, 6), np.asarray(errs), 1.0, 0.5, last_decades=None)  # order ≥ 0.5 (EM on additive noise: 1)
  with pytest.raises(ValueError, match="factor"):
    sde.coarsen(dw, 3)


def test_closed_form_value_pde_and_monte_carlo(x64):
  t, x = 0.3, 0.7
  j = functools.partial(ou.value, P)
  jt, jx = jax.grad(j, 0)(t, x), jax.grad(j, 1)(t, x)
  jxx = jax.grad(jax.grad(j, 1), 1)(t, x)
  assert abs(jt - P.kappa * x * jx + 0.5 * P.sigma**2 * jxx + x**2) < 1e-12  # Feynman–Kac PDE residual
  np.testing.assert_allclose(ou.features(P, t, x) @ ou.theta_star(P), j(t, x), rtol=1e-12)
  dw = sde.brownian_increments(jax.random.PRNGKey(1), 20000, 256, 1 / 256)
  xs = sde.euler_maruyama(jnp.full(20000, x), dw, 1 / 256, ou.drift(P), ou.diffusion(P))
  g = (xs[:, :-1] ** 2).sum(-1) / 256
  assert abs(float(g.mean()) - float(j(0.0, x))) < 3 * float(g.std()) / np.sqrt(20000) + 5e-3  # + O(Δt) bias


def test_estimators_lstd_equals_td_and_gtd(x64):
  dt = 2.0**-5
  _, _, (xs,) = _paths(jax.random.PRNGKey(2), 256, 5, (5,))
  data = mp.path_data(xs, dt, functools.partial(ou.features, P), ou.reward, jnp.zeros_like)
  lstd = mp.moc_lstd(data, dt)
  a, b, _, _ = mp.td_moments(data, 0.0, dt)
  np.testing.assert_allclose(a @ lstd + b, 0.0, atol=1e-12)  # the orthogonality condition holds
  td = mp.td_lambda_online(data, dt, 0.0, epochs=400, decay=0.7)
  assert np.linalg.norm(td - lstd) < 2e-2 * np.linalg.norm(lstd)  # SA reaches the TD(0) fixed point
  np.testing.assert_allclose(mp.gtd(data, dt, iters=2000), lstd, rtol=1e-6)
  # ML and MSTDE are least-squares solutions: their normal equations hold.
  ml = mp.ml_fit(data)
  g = mp.returns(data)
  np.testing.assert_allclose(jnp.einsum("pid,pi->d", data.phi[:, :-1], data.phi[:, :-1] @ ml - g), 0.0, atol=1e-9)
  with pytest.raises(ValueError, match="lam"):
    mp.traces(data.phi, 1.5, dt)


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_predicted_mesh_trend(smoke):
  results = smoke.results
  rows = {r["method"]: r for r in smoke.summary["metrics"]["table"]}
  for m in ("ml", "lstd_td0", "lstd_td_lambda", "gtd"):  # discretised → continuous-time limit, slope ≥ 0.5
    assert rows[m]["slope_limit"] >= 0.5, rows[m]
  assert_slope(results["dt"], results["err_limit"]["ml"], 1.0, 0.4)
  # MSTDE: the bias does not vanish as Δt → 0 (it grows), and stays far above ML's error.
  mstde = np.median(results["err_true"]["mstde"], 0)
  assert mstde[-1] > 0.8 * mstde[0] and mstde[-1] > 5 * rows["ml"]["err_true_fine"]
  assert rows["ml"]["err_true_fine"] < 0.5 * rows["ml"]["err_true_coarse"]


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
