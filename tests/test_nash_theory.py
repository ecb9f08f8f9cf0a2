"""Tabular Nash-MD / Nash-MP (rljax.theory.nash): oracle, closed forms, PG forms through the loss kernel,
predicted rates (experiments.nash_rates at the smoke preset) and the notebook."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import execute_notebook

from configs.nash_rates import get_config
from experiments import nash_rates as ex
from rljax.theory import nash
from rljax.theory.kernels import preference_games as pg
from rljax.theory.kernels.simplex import kl_prox_step, mirror_prox_step
from rljax.theory.kernels.slopes import assert_monotone, assert_slope


def _game(seed, K, kind="intransitive"):
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  P = pg.random_preference_matrix(k1, K, kind=kind)
  e = jax.random.exponential(k2, (K,))
  return P, jnp.log(e / e.sum())


def test_preference_matrices(x64):
  for kind in pg.KINDS:
    P = pg.random_preference_matrix(jax.random.PRNGKey(0), 7, kind=kind)
    np.testing.assert_allclose(P + P.T, 1.0, atol=1e-14)
    pg.check_preference_matrix(P)
  C = pg.cyclic_matrix(5)
  np.testing.assert_allclose((C - 0.5).sum(1), 0.0, atol=1e-14)
  pi = jax.nn.log_softmax(jnp.arange(5.0))
  assert abs(pg.regularized_objective(pi, pi, C, pi, 0.3) - 0.5) < 1e-14  # P_τ(π≻π) = ½
  with pytest.raises(ValueError, match="P"):
    pg.check_preference_matrix(jnp.full((3, 3), 0.7))
  with pytest.raises(ValueError, match="kind"):
    pg.random_preference_matrix(jax.random.PRNGKey(0), 4, kind="cyclic")


def test_oracle_certificates(x64):
  P, log_mu = _game(1, 12)
  for tau in (0.02, 0.1, 1.0):
    sol = nash.regularized_nash_equilibrium(P, jnp.exp(log_mu), tau)
    assert sol.residual < 1e-10 and abs(sol.exploitability) < 1e-12
    # The fixed point and the best-response value agree: exploitability of anything else is > 0.
    assert nash.regularized_exploitability(log_mu, P, log_mu, tau) > 1e-4
  u = jnp.full(6, 1 / 6)
  np.testing.assert_allclose(nash.regularized_nash_equilibrium(pg.cyclic_matrix(6), u, 0.05).pi, u, atol=1e-12)
  mu = jnp.exp(log_mu)
  np.testing.assert_allclose(nash.regularized_nash_equilibrium(jnp.full((12, 12), 0.5), mu, 0.3).pi, mu, atol=1e-12)
  r = jnp.array([0.0, 1.0, -0.5, 0.3])  # Bradley–Terry: as τ → 0 the mass goes to the Condorcet winner
  assert nash.regularized_nash_equilibrium(pg.bradley_terry_matrix(r), jnp.full(4, 0.25), 0.005).pi[1] > 0.99
  with pytest.raises(ValueError, match="mu"):
    nash.regularized_nash_equilibrium(P, mu * 2, 0.1)
  with pytest.raises(ValueError, match="tau"):
    nash.regularized_nash_equilibrium(P, mu, 0.0)


def test_nash_md_contraction_and_floor(x64):
  P, log_mu = _game(2, 10)
  tau = 0.1
  star = nash.regularized_nash_equilibrium(P, jnp.exp(log_mu), tau).log_pi
  floors = []
  for eta in (0.5, 1.0, 2.0):
    _, m = nash.nash_md(P, log_mu, log_mu, eta=eta, tau=tau, T=800, log_pi_star=star)
    kl = np.asarray(m["kl_to_star"])
    # [M] per-step recursion KL(π*‖π_{t+1}) ≤ (1 − ητ)KL(π*‖π_t) + 2η², checked at every step.
    assert np.all(kl[1:] <= (1 - eta * tau) * kl[:-1] + 2 * eta**2 + 1e-12)
    floors.append(kl[-1])
    assert kl[-1] <= 2 * eta / tau  # the floor the recursion implies
  fit = assert_slope(np.array([0.5, 1.0, 2.0]), np.array(floors), 2.0, 0.4, last_decades=None)
  assert fit.slope > 1.5  # the floor is a genuine O(η²) bias, not round-off
  # P ≡ ½: Nash-MD contracts to μ at exactly 1 − ητ in log-probabilities.
  log_pis, _ = nash.nash_md(jnp.full((10, 10), 0.5), log_mu, jnp.zeros(10) - jnp.log(10.0), eta=1.0, tau=tau, T=30)
  span = np.asarray(pg.logprob_span(log_pis, log_mu))
  np.testing.assert_allclose(span[1:] / span[:-1], 1 - tau, rtol=1e-9)
  with pytest.raises(ValueError, match="eta"):
    nash.nash_md(P, log_mu, log_mu, eta=20.0, tau=tau, T=3)


def test_nash_mp_fixed_point_and_kernel(x64):
  P, log_mu = _game(3, 9)
  beta, eta = 0.2, 2.0
  star = nash.regularized_nash_equilibrium(P, jnp.exp(log_mu), beta).log_pi
  new, half = nash.nash_mp_step(star, P, log_mu, eta=eta, beta=beta)
  np.testing.assert_allclose(new, star, atol=1e-12)
  np.testing.assert_allclose(half, star, atol=1e-12)
  gain = lambda lp: pg.win_rate(P, lp)
  np.testing.assert_allclose(nash.nash_mp_step(log_mu, P, log_mu, eta=eta, beta=beta)[0],
                             mirror_prox_step(log_mu, gain, eta, log_anchor=log_mu, tau=beta), atol=1e-14)
  _, m = nash.nash_mp(P, log_mu, log_mu, eta=eta, beta=beta, T=60, log_pi_star=star)
  assert_monotone(np.asarray(m["span"])[:40], increasing=False, rtol=1e-9)


def test_nash_mp_rate_independent_of_K(x64):
  beta, eta, T = 0.1, 2.0, 120
  slopes = []
  for K in (5, 20, 80):
    P, log_mu = ex.make_games(jax.random.PRNGKey(K), 4, K)
    star = ex.oracle(P, log_mu, beta).log_pi
    kl = np.asarray(ex.mp_metrics(P, log_mu, star, beta, eta, T)["kl_to_star"])
    slopes.append(ex.per_query_slope(kl))
  assert max(slopes) <= -0.5 * np.log(1 + 2 * beta)  # at least the (1+2β)^{-N/2} rate
  assert max(slopes) / min(slopes) > 0.8, slopes  # and the same rate for every K


def test_pg_forms_call_the_loss_kernel(x64):
  P, log_mu = _game(4, 8)
  log_pi = jax.nn.log_softmax(jax.random.normal(jax.random.PRNGKey(5), (8,)))
  tau, eta = 0.3, 0.9
  np.testing.assert_allclose(nash.nash_md_pg_step(log_pi, P, log_mu, eta=eta, tau=tau),
                             nash.nash_md_step(log_pi, P, log_mu, eta=eta, tau=tau), atol=1e-12)
  # The kernel's expected gradient is the softmax policy gradient π ⊙ (w − ⟨π, w⟩).
  pref = pg.win_rate(P, log_mu)
  w = tau * (log_pi - log_mu) - (pref - 0.5)
  pi = jnp.exp(log_pi)
  grad = jax.grad(nash._nash_pg_objective)(log_pi, log_mu, pref, tau)
  np.testing.assert_allclose(grad, pi * (w - pi @ w), atol=1e-13)
  # Exact-gain prox by PG equals the closed-form prox for any number of inner steps.
  beta = 0.2
  closed = kl_prox_step(log_pi, pg.win_rate(P, log_mu), 2.0, log_anchor=log_mu, tau=beta)
  for m in (1, 5):
    got = nash.prox_by_pg(jax.random.PRNGKey(0), log_pi, log_mu, P, log_mu, eta=2.0, beta=beta, inner_steps=m)
    np.testing.assert_allclose(got, closed, atol=1e-12)


@pytest.fixture(scope="module")
def smoke():
  with jax.enable_x64(True):
    cfg = get_config("smoke")
    res = ex.run(cfg)
  return res, ex.trend_rows(res)


def test_predicted_rates(smoke):
  res, rows = smoke
  assert res["oracle_residual"].max() < 1e-10
  fl = ex.floors(res)
  assert_slope(np.asarray(res["md_etas"]), fl["md"].T, 2.0, 0.4, last_decades=None)  # R1
  t = np.arange(res["md_anytime_kl"].shape[-1])[1:]
  assert np.all(res["md_anytime_kl"][:, 1:] <= 8 / (res["tau"] ** 2 * (t + 1)))  # R2 bound
  assert rows[2]["value"] < -1.0 and rows[3]["value"] < -0.9  # R2: at least 1/T
  assert rows[4]["value"] >= 1.0  # MWU does not approach the equilibrium
  sign_changes = np.sum(np.diff(np.sign(res["mwu_p0"] - 1 / 3)) != 0)
  assert sign_changes >= 4  # ... it circles it
  for r in rows[5:5 + len(res["betas"])]:
    assert r["value"] <= 0.02, r  # R3–R5 slopes at (span) or below (KL, exploitability) −½ log(1+2β)
  assert rows[-3]["value"] < 1.25  # R6
  assert_slope(np.asarray(res["inner_steps"]), fl["approx"].T, -1.0, 0.4, last_decades=None)  # R7
  assert rows[-1]["value"] == 1.0  # Nash-MP beats the best constant-η Nash-MD on every game


def test_notebook_executes():
  _, printed = execute_notebook("nash_rates.ipynb")
  assert "R3–R5 Nash-MP" in printed
