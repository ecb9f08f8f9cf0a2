"""LSTD/FQE under realizability without completeness: exact population checks and the n^{-1/2} rate."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.realizability_ope import get_config
from experiments import realizability_ope as ex
from rljax.theory.tabular import realizability_ope as ro
from tests.helpers import assert_slope, assert_smoke_claims


def _flat(inst):
  d = inst.phi.shape[-1]
  return ro.next_pair_operator(inst.P, inst.pi), inst.phi.reshape(-1, d)


def test_population_lstd_is_exact_and_completeness_only_at_zero(x64):
  for alpha in (0.0, 0.4, 1.0):
    inst = ro.make_family(jax.random.PRNGKey(3), alpha)
    np.testing.assert_allclose(ro.population_lstd(inst), inst.theta_star, atol=1e-10)
    st = ro.alignment_stats(*_flat(inst), inst.mu.ravel(), inst.gamma)
    assert (st.e_norm < 1e-10) == (alpha == 0.0)  # E = 0 iff Bellman complete
    assert st.concentrability >= 1.0 and np.isclose(st.a_inv_norm * st.sigma_min_A, 1.0)


def test_on_policy_complete_a_is_positive_definite(x64):
  inst = ro.make_family(jax.random.PRNGKey(5), 0.0)
  P_pi, Phi = _flat(inst)
  # Stationary distribution of P^π: the on-policy μ of the classical TD argument.
  w, v = jnp.linalg.eig(P_pi.T)
  nu = jnp.real(v[:, jnp.argmin(jnp.abs(w - 1))])
  nu = nu / nu.sum()
  a_mat = Phi.T @ (nu[:, None] * (Phi - inst.gamma * P_pi @ Phi))
  assert float(jnp.linalg.eigvalsh(0.5 * (a_mat + a_mat.T)).min()) > 0


def test_fqe_matches_lstd_when_it_converges(x64):
  inst = ro.make_family(jax.random.PRNGKey(7), 0.7)
  data = ro.sample_data(jax.random.PRNGKey(8), inst, 4000, reward_noise=0.1)
  st = ro.alignment_stats(*_flat(inst), inst.mu.ravel(), inst.gamma)
  assert st.fqe_radius < 1
  path = ro.fqe(data, inst.phi, inst.pi, inst.gamma, 400, lam=1e-10)
  np.testing.assert_allclose(path[-1], ro.lstd(data, inst.phi, inst.pi, inst.gamma), atol=1e-6)


def test_sandwich_matches_monte_carlo(x64):
  inst = ro.make_family(jax.random.PRNGKey(11), 0.5)
  n = 2000
  errs = jax.jit(jax.vmap(lambda k: ro.lstd(ro.sample_data(k, inst, n), inst.phi, inst.pi, inst.gamma)))(
      jax.random.split(jax.random.PRNGKey(12), 120)) - inst.theta_star
  _, sandwich, _ = ex.instance_stats(inst)
  rmse = float(jnp.sqrt(jnp.mean(jnp.sum(errs**2, 1)) * n))
  assert 0.7 < rmse / float(sandwich) < 1.4


def test_bad_inputs():
  inst = ro.make_family(jax.random.PRNGKey(0), 0.2)
  with pytest.raises(ValueError, match="alpha"):
    ro.make_family(jax.random.PRNGKey(0), 1.5)
  with pytest.raises(ValueError, match="pi"):
    ro.fqe(ro.Data(*(jnp.zeros(2, int),) * 2, jnp.zeros(2), jnp.zeros(2, int)), inst.phi, 2 * inst.pi, inst.gamma, 3)
  with pytest.raises(ValueError, match="P_pi"):
    ro.alignment_stats(jnp.eye(3), inst.phi.reshape(-1, 3), inst.mu.ravel(), 0.9)
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_predicted_rates(smoke):
  res = smoke.results
  for i in range(len(res["alphas"])):  # realizability alone: n^{-1/2} for every α
    assert_slope(res["n"], res["lstd_error"][i], -0.5, 0.15)
  # The constant follows the exact asymptotic (sandwich) constant ...
  assert_slope(res["sandwich"], res["scaled_error"], 1.0, 0.3, last_decades=None)
  # ‖A_μ^{-1}‖ is only a bound on that constant: the sandwich never exceeds ‖A_μ^{-1}‖·‖Σ‖^{1/2}·√d.
  assert np.all(res["sandwich"] <= res["a_inv_norm"] * np.sqrt(res["noise_norm"] * 3) + 1e-9)
  assert np.all(res["fqe_radius"] < 1) and np.median(res["fqe_lstd_gap"]) < 1e-3
