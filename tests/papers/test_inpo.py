"""Tabular INPO (Zhang et al. 2024): the inpo_loss minimiser is the OMD step, iterating converges to the
oracle equilibrium, and sampled INPO's 1/n floor, measured by the notebook (experiments.inpo at the smoke
preset)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.inpo import get_config
from rljax.theory.kernels import preference_games as pg
from rljax.theory.kernels.lbfgs import lbfgs_minimize
from rljax.theory.preference import inpo
from tests.helpers import assert_slope, assert_smoke_claims


def _game(seed, K):
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  e = jax.random.exponential(k2, (K,))
  return pg.random_preference_matrix(k1, K), jnp.log(e / e.sum())


def test_lbfgs_minimiser_is_the_omd_step(x64):
  P, log_ref = _game(0, 7)
  log_pi_t = jax.nn.log_softmax(jax.random.normal(jax.random.PRNGKey(1), (7,)))
  eta, tau = 2.0, 0.2
  loss = lambda z: inpo.inpo_expected_loss(z, log_pi_t, log_ref, P, eta=eta, tau=tau)
  z = jax.jit(lambda z0: lbfgs_minimize(loss, z0, max_iters=100).x)(jnp.zeros(7))
  omd = inpo.inpo_omd_step(log_pi_t, log_ref, P, eta=eta, tau=tau)
  np.testing.assert_allclose(jax.nn.log_softmax(z), omd, atol=1e-8)
  np.testing.assert_allclose(inpo.inpo_tabular_step(log_pi_t, log_ref, P, eta=eta, tau=tau), omd, atol=1e-11)
  # ητ = 1: π_t drops out of the step.
  other = inpo.inpo_tabular_step(log_ref, log_ref, P, eta=5.0, tau=0.2)
  np.testing.assert_allclose(inpo.inpo_tabular_step(log_pi_t, log_ref, P, eta=5.0, tau=0.2),
                             jax.nn.log_softmax(log_ref + 5.0 * pg.win_rate(P, log_pi_t)), atol=1e-11)
  assert not np.allclose(other, inpo.inpo_tabular_step(log_pi_t, log_ref, P, eta=5.0, tau=0.2))


def test_iterating_converges_to_oracle(x64):
  P, log_ref = _game(2, 10)
  tau = 0.1
  star = pg.regularized_nash_equilibrium(P, jnp.exp(log_ref), tau).log_pi
  _, m = inpo.inpo(P, log_ref, log_ref, eta=1.0, tau=tau, T=150, log_pi_star=star)
  assert m["kl_to_star"][-1] < 1e-12 and m["exploit"][-1] < 1e-12
  # (sampled mode approaching exact mode as n grows: the floor ∝ 1/n of the smoke run below)
  with pytest.raises(ValueError, match="n_pairs"):
    inpo.inpo_tabular_step(log_ref, log_ref, P, eta=1.0, tau=tau, key=jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match="eta \\* tau"):
    inpo.inpo_omd_step(log_ref, log_ref, P, eta=20.0, tau=tau)


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_exact_and_sampled_curves(smoke):
  res = smoke.results
  assert res["oracle_residual"].max() < 1e-10 and res["omd_gap"].max() < 1e-10
  for i, row in enumerate(smoke.summary["metrics"]["table"]):
    assert row["exact_final"] < 1e-9 and row["rate"] < -0.1  # exact INPO converges linearly
    floor = res["kl"][i, 1:, :, -res["floor_window"]:].mean(-1)
    assert_slope(np.asarray(res["n_pairs"]), floor.T, -1.0, 0.35, last_decades=None)  # floor ∝ 1/n
    assert np.all(np.median(floor, 1) > 10 * row["exact_final"])  # the floor is sampling noise, not bias


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
