"""Nash-MD (Munos et al. 2024): the preference-game kernel and its equilibrium oracle, Nash-MD's
contraction and O(η²) floor, its policy-gradient form, and the predicted rates measured by the notebook
(experiments.nash_md at the smoke preset)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.nash_md import get_config
from experiments import nash_md as ex
from rljax.theory.preference import nash_md
from rljax.theory.kernels import preference_games as pg
from tests.helpers import assert_slope, assert_smoke_claims


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
  solve = jax.jit(pg.regularized_nash_equilibrium)  # τ traced: one compilation per game size
  for tau in (0.02, 0.1, 1.0):
    sol = solve(P, jnp.exp(log_mu), tau)
    assert sol.residual < 1e-10 and abs(sol.exploitability) < 1e-12
    # The fixed point and the best-response value agree: exploitability of anything else is > 0.
    assert pg.regularized_exploitability(log_mu, P, log_mu, tau) > 1e-4
  u = jnp.full(6, 1 / 6)
  np.testing.assert_allclose(solve(pg.cyclic_matrix(6), u, 0.05).pi, u, atol=1e-12)
  mu = jnp.exp(log_mu)
  np.testing.assert_allclose(solve(jnp.full((12, 12), 0.5), mu, 0.3).pi, mu, atol=1e-12)
  r = jnp.array([0.0, 1.0, -0.5, 0.3])  # Bradley–Terry: as τ → 0 the mass goes to the Condorcet winner
  assert solve(pg.bradley_terry_matrix(r), jnp.full(4, 0.25), 0.005).pi[1] > 0.99
  with pytest.raises(ValueError, match="mu"):
    pg.regularized_nash_equilibrium(P, mu * 2, 0.1)
  with pytest.raises(ValueError, match="tau"):
    pg.regularized_nash_equilibrium(P, mu, 0.0)


def test_nash_md_contraction_and_floor(x64):
  P, log_mu = _game(2, 10)
  tau = 0.1
  star = pg.regularized_nash_equilibrium(P, jnp.exp(log_mu), tau).log_pi
  floors = []
  run = jax.jit(nash_md.nash_md, static_argnames="T")  # η traced: one compilation
  for eta in (0.5, 1.0, 2.0):
    _, m = run(P, log_mu, log_mu, eta=eta, tau=tau, T=800, log_pi_star=star)
    kl = np.asarray(m["kl_to_star"])
    # [M] per-step recursion KL(π*‖π_{t+1}) ≤ (1 − ητ)KL(π*‖π_t) + 2η², checked at every step.
    assert np.all(kl[1:] <= (1 - eta * tau) * kl[:-1] + 2 * eta**2 + 1e-12)
    floors.append(kl[-1])
    assert kl[-1] <= 2 * eta / tau  # the floor the recursion implies
  fit = assert_slope(np.array([0.5, 1.0, 2.0]), np.array(floors), 2.0, 0.4, last_decades=None)
  assert fit.slope > 1.5  # the floor is a genuine O(η²) bias, not round-off
  # P ≡ ½: Nash-MD contracts to μ at exactly 1 − ητ in log-probabilities.
  log_pis, _ = nash_md.nash_md(jnp.full((10, 10), 0.5), log_mu, jnp.zeros(10) - jnp.log(10.0), eta=1.0, tau=tau, T=30)
  span = np.asarray(pg.logprob_span(log_pis, log_mu))
  np.testing.assert_allclose(span[1:] / span[:-1], 1 - tau, rtol=1e-9)
  with pytest.raises(ValueError, match="eta"):
    nash_md.nash_md(P, log_mu, log_mu, eta=20.0, tau=tau, T=3)


def test_pg_form_calls_the_loss_kernel(x64):
  P, log_mu = _game(4, 8)
  log_pi = jax.nn.log_softmax(jax.random.normal(jax.random.PRNGKey(5), (8,)))
  tau, eta = 0.3, 0.9
  np.testing.assert_allclose(nash_md.nash_md_pg_step(log_pi, P, log_mu, eta=eta, tau=tau),
                             nash_md.nash_md_step(log_pi, P, log_mu, eta=eta, tau=tau), atol=1e-12)
  # The kernel's expected gradient is the softmax policy gradient π ⊙ (w − ⟨π, w⟩).
  pref = pg.win_rate(P, log_mu)
  w = tau * (log_pi - log_mu) - (pref - 0.5)
  pi = jnp.exp(log_pi)
  grad = jax.grad(pg.nash_pg_objective)(log_pi, log_mu, pref, tau)
  np.testing.assert_allclose(grad, pi * (w - pi @ w), atol=1e-13)


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_predicted_rates(smoke):
  res = smoke.results
  assert res["oracle_residual"].max() < 1e-10 and np.abs(res["oracle_exploit"]).max() < 1e-12
  assert_slope(np.asarray(res["md_etas"]), res["md_const_kl"][..., -1].T, 2.0, 0.4, last_decades=None)  # R1
  # R1: before the floor, KL falls at least as fast as (1 − ητ)^t.
  tau = res["tau"]
  for e, c in zip(res["md_etas"], res["md_const_kl"]):
    assert ex.per_query_slope(c[:, : int(3 / (e * tau))], 1) <= np.log(1 - e * tau) + 0.01
  t = np.arange(res["md_anytime_kl"].shape[-1])[1:]
  assert np.all(res["md_anytime_kl"][:, 1:] <= 8 / (tau**2 * (t + 1)))  # R2 bound at every step
  rows = {r["target"].split(":")[0]: r["value"] for r in smoke.summary["metrics"]["table"]}
  assert rows["R2 anytime η_t=2/(τ(t+2))"] < -1.0  # R2: at least 1/t ...
  assert rows["R2 horizon η=log T/(τT)"] < -0.9  # ... and 1/T for the horizon-tuned step


def test_self_play_mwu_cycles(smoke):
  res = smoke.results
  assert res["mwu_kl"][-1] >= res["mwu_kl"][0]  # MWU does not approach the equilibrium ...
  sign_changes = np.sum(np.diff(np.sign(res["mwu_p0"] - 1 / 3)) != 0)
  assert sign_changes >= 4  # ... it circles it
  assert res["nash_md_kl"][-1] < 1e-3 * res["mwu_kl"][0]  # while Nash-MD (τ > 0) converges


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
