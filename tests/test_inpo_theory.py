"""Tabular INPO (rljax.theory.nash): the inpo_loss minimiser is the OMD step, iterating converges to the
oracle equilibrium, sampled INPO has a 1/n floor (experiments.inpo at the smoke preset), the notebook."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import execute_notebook

from configs.inpo import get_config
from experiments import inpo as ex
from rljax.theory import nash
from rljax.theory.kernels import preference_games as pg
from rljax.theory.kernels.slopes import assert_slope


def _game(seed, K):
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  e = jax.random.exponential(k2, (K,))
  return pg.random_preference_matrix(k1, K), jnp.log(e / e.sum())


def test_lbfgs_minimiser_is_the_omd_step(x64):
  P, log_ref = _game(0, 7)
  log_pi_t = jax.nn.log_softmax(jax.random.normal(jax.random.PRNGKey(1), (7,)))
  eta, tau = 2.0, 0.2
  loss = lambda z: nash.inpo_expected_loss(z, log_pi_t, log_ref, P, eta=eta, tau=tau)
  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(loss)

  def body(carry, _):
    z, state = carry
    v, g = value_and_grad(z, state=state)
    updates, state = opt.update(g, state, z, value=v, grad=g, value_fn=loss)
    return (optax.apply_updates(z, updates), state), None

  z0 = jnp.zeros(7)
  (z, _), _ = jax.lax.scan(body, (z0, opt.init(z0)), None, length=100)
  omd = nash.inpo_omd_step(log_pi_t, log_ref, P, eta=eta, tau=tau)
  np.testing.assert_allclose(jax.nn.log_softmax(z), omd, atol=1e-8)
  np.testing.assert_allclose(nash.inpo_tabular_step(log_pi_t, log_ref, P, eta=eta, tau=tau), omd, atol=1e-11)
  # ητ = 1: π_t drops out of the step.
  other = nash.inpo_tabular_step(log_ref, log_ref, P, eta=5.0, tau=0.2)
  np.testing.assert_allclose(nash.inpo_tabular_step(log_pi_t, log_ref, P, eta=5.0, tau=0.2),
                             jax.nn.log_softmax(log_ref + 5.0 * pg.win_rate(P, log_pi_t)), atol=1e-11)
  assert not np.allclose(other, nash.inpo_tabular_step(log_pi_t, log_ref, P, eta=5.0, tau=0.2))


def test_iterating_converges_to_oracle(x64):
  P, log_ref = _game(2, 10)
  tau = 0.1
  star = nash.regularized_nash_equilibrium(P, jnp.exp(log_ref), tau).log_pi
  _, m = nash.inpo(P, log_ref, log_ref, eta=1.0, tau=tau, T=150, log_pi_star=star)
  assert m["kl_to_star"][-1] < 1e-12 and m["exploit"][-1] < 1e-12
  # sampled mode moves towards exact mode as n grows
  exact = nash.inpo_tabular_step(log_ref, log_ref, P, eta=1.0, tau=tau)
  errs = [np.mean([pg.kl(exact, nash.inpo_tabular_step(log_ref, log_ref, P, eta=1.0, tau=tau,
                                                       key=jax.random.PRNGKey(s), n_pairs=n)) for s in range(4)])
          for n in (200, 20000)]
  assert errs[1] < errs[0] / 20
  with pytest.raises(ValueError, match="n_pairs"):
    nash.inpo_tabular_step(log_ref, log_ref, P, eta=1.0, tau=tau, key=jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match="eta \\* tau"):
    nash.inpo_omd_step(log_ref, log_ref, P, eta=20.0, tau=tau)


def test_experiment_smoke(x64):
  res = ex.run(get_config("smoke"))
  rows = ex.trend_rows(res)
  assert res["omd_gap"].max() < 1e-10
  for i, r in enumerate(rows):
    assert r["exact_final"] < 1e-6
    floor = res["kl"][i, 1:, :, -res["floor_window"]:].mean(-1)
    assert_slope(np.asarray(res["n_pairs"]), floor.T, -1.0, 0.35, last_decades=None)


def test_notebook_executes():
  _, printed = execute_notebook("inpo.ipynb")
  assert "floor slope vs n" in printed
