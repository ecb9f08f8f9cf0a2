"""Nash-MP (Tiapkin et al. 2025): the equilibrium is a fixed point of both prox steps, the steps are the
simplex kernel's mirror-prox step, PG-solved prox steps, and the predicted rates measured by the notebook
(experiments.nash_mp at the smoke preset)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.nash_mp import get_config
from experiments import nash_mp as ex
from experiments.nash_md import make_games
from rljax.theory.preference import nash_mp
from rljax.theory.kernels import preference_games as pg
from rljax.theory.kernels.simplex import kl_prox_step, mirror_prox_step
from tests.helpers import assert_monotone, assert_slope, assert_smoke_claims


def _game(seed, K):
  """One random intransitive game (P, log μ), drawn as the experiments draw them."""
  P, log_mu = make_games(jax.random.PRNGKey(seed), 1, K)
  return P[0], log_mu[0]


def test_nash_mp_fixed_point_and_kernel(x64):
  P, log_mu = _game(3, 9)
  beta, eta = 0.2, 2.0
  star = pg.regularized_nash_equilibrium(P, jnp.exp(log_mu), beta).log_pi
  new, half = nash_mp.nash_mp_step(star, P, log_mu, eta=eta, beta=beta)
  np.testing.assert_allclose(new, star, atol=1e-12)
  np.testing.assert_allclose(half, star, atol=1e-12)
  gain = lambda lp: pg.win_rate(P, lp)
  np.testing.assert_allclose(nash_mp.nash_mp_step(log_mu, P, log_mu, eta=eta, beta=beta)[0],
                             mirror_prox_step(log_mu, gain, eta, log_anchor=log_mu, tau=beta), atol=1e-14)
  _, m = nash_mp.nash_mp(P, log_mu, log_mu, eta=eta, beta=beta, T=60, log_pi_star=star)
  assert_monotone(np.asarray(m["span"])[:40], increasing=False, rtol=1e-9)


def test_prox_by_pg(x64):
  P, log_mu = _game(4, 8)
  log_pi = jax.nn.log_softmax(jax.random.normal(jax.random.PRNGKey(5), (8,)))
  # Exact-gain prox by PG equals the closed-form prox for any number of inner steps.
  beta = 0.2
  closed = kl_prox_step(log_pi, pg.win_rate(P, log_mu), 2.0, log_anchor=log_mu, tau=beta)
  for m in (1, 5):
    got = nash_mp.prox_by_pg(jax.random.PRNGKey(0), log_pi, log_mu, P, log_mu, eta=2.0, beta=beta, inner_steps=m)
    np.testing.assert_allclose(got, closed, atol=1e-12)
  with pytest.raises(ValueError, match="inner_steps"):
    nash_mp.nash_mp_approx(jax.random.PRNGKey(0), P, log_mu, log_mu, eta=2.0, beta=beta, T=2, inner_steps=0)


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_predicted_rates(smoke):
  res = smoke.results
  assert res["oracle_residual"].max() < 1e-10
  for b, beta in enumerate(res["betas"]):  # R3–R5: span at, KL and exploitability below, −½ log(1+2β)
    for m in ex.METRICS:
      assert ex.per_query_slope(res[f"mp_{m}"][b]) <= -0.5 * np.log(1 + 2 * beta) + 0.02, (beta, m)
  slopes = ex.size_slopes(res)  # R6: the same rate for every K
  assert max(slopes) <= -0.5 * np.log(1 + 2 * res["tau"]) and max(slopes) / min(slopes) > 0.8, slopes
  assert_slope(np.asarray(res["inner_steps"]), ex.approx_floors(res).T, -1.0, 0.4, last_decades=None)  # R7
  _, mp, md_best = ex.versus_md(res)
  assert np.all(mp <= md_best)  # Nash-MP beats the best constant-η Nash-MD on every game


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
