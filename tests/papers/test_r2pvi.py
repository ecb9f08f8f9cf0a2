"""R2PVI on the d-rectangular linear MDP (Tang, Liu & Xu, ICML 2025): duals, exact robust planner, fit, notebook."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.r2pvi import get_config
from experiments import r2pvi as ex
from rljax.theory.envs import d_rectangular as drect
from rljax.theory.kernels import divergences
from rljax.theory.linear_mdp import r2pvi
from tests.helpers import assert_smoke_claims

PARAMS = drect.DRectParams()


def test_env_model_is_a_linear_mdp(x64):
  phi = drect.features(PARAMS)
  np.testing.assert_allclose(phi.sum(-1), 1.0)
  for q in (0.0, 0.7):
    P, _ = drect.model(PARAMS._replace(q=q))
    np.testing.assert_allclose(P.sum(-1), 1.0, atol=1e-12)
  # the perturbation only costs the high-exposure actions at the first step
  r_nominal = drect.policy_return(jnp.full((3, 5), 15), PARAMS)
  r_perturbed = drect.policy_return(jnp.full((3, 5), 15), PARAMS._replace(q=1.0))
  assert r_perturbed < r_nominal - 0.5 * 2 * 0.99  # exposure 0.5 loses the two rewards of x_5
  _, v_star = drect.oracle(PARAMS)
  assert v_star >= r_nominal - 1e-12


def test_duals_wrap_the_kernels(x64):
  v = jnp.linspace(0.0, 2.0, 10)
  p0 = jax.nn.softmax(jnp.sin(jnp.arange(10.0)))
  for name in ("kl", "tv", "chi2"):
    ours = getattr(r2pvi, f"dual_{name}")(v, p0, 0.3)
    assert ours == getattr(divergences, f"dual_{name}")(v, p0, 0.3)
    assert float(jnp.min(v)) - 1e-12 <= ours <= float(p0 @ v) + 1e-12  # between the ess-inf and the mean


def test_robust_planner_limits(x64):
  phi, mu, theta = drect.features(PARAMS), drect.factors(PARAMS), drect.reward_params()
  _, v_plain = r2pvi.robust_value_iteration(phi, mu, theta, "none", 1.0)
  np.testing.assert_allclose(v_plain[0, 0], drect.oracle(PARAMS)[1], rtol=1e-12)
  for div in ("kl", "tv", "chi2"):  # λ → ∞: no adversary
    _, v = r2pvi.robust_value_iteration(phi, mu, theta, div, 1e6)
    np.testing.assert_allclose(v[0, 0], v_plain[0, 0], atol=1e-4)
    _, v_small = r2pvi.robust_value_iteration(phi, mu, theta, div, 0.1)
    assert v_small[0, 0] < v_plain[0, 0]  # the adversary only lowers values


@pytest.fixture(scope="module")
def big_data():
  with jax.enable_x64(True):
    return ex.make_data(jax.random.PRNGKey(0), PARAMS, 20000)


@pytest.mark.parametrize("div,lam,atol,same_action", [("none", 0.1, 0.02, True), ("tv", 0.1, 0.02, False),
                                                      ("chi2", 0.1, 0.08, False), ("kl", 1.0, 0.02, True)])
def test_fit_recovers_the_exact_robust_value(x64, big_data, div, lam, atol, same_action):
  """β = 0, tiny ridge, 20000 episodes: the regressed duals give the exact robust V_1(x_1) and its action.
  (KL is checked at λ = 1: at λ = 0.1 its targets e^{−V/λ} span ten orders of magnitude and the ridge
  regression of the rare fail transitions leaks into the other factor. Under TV the exact first-step Q is
  flat in the action, and under χ² nearly so, so only the value is compared there; the χ² variance term
  amplifies the sampling noise of the rare fail transitions by 1/(4λ), hence its wider tolerance.)"""
  fitted = r2pvi.fit(big_data, r2pvi.R2PVIConfig(div, 1e-6, lam, 0.0, n_alpha=512))
  a0, q0 = r2pvi.policy(fitted, drect.features(PARAMS)[0], 0)
  pol, v = r2pvi.robust_value_iteration(drect.features(PARAMS), drect.factors(PARAMS), drect.reward_params(), div,
                                        lam)
  np.testing.assert_allclose(q0[a0], v[0, 0], atol=atol)
  if same_action:
    assert drect.ACTIONS[a0].sum() == drect.ACTIONS[pol[0, 0]].sum()


def test_constrained_duals_match_the_primal_problems(x64):
  """DRPVI / DRVI-L inner searches with probability-vector factors: inf over a TV ball (scipy LP) and a
  KL ball (SLSQP) of radius ρ around each factor."""
  scipy_opt = pytest.importorskip("scipy.optimize")
  rng = np.random.default_rng(0)
  N, rho, H = 12, 0.15, 3.0
  z, coef = rng.uniform(0, H, N), rng.dirichlet(np.ones(N), size=3)
  tv = r2pvi.regressed_dual(jnp.asarray(z), jnp.asarray(coef), rho, "drpvi", H, 4001)
  kl = r2pvi.regressed_dual(jnp.asarray(z), jnp.asarray(coef), rho, "drvi_l", H, 4001)
  for i, p0 in enumerate(coef):  # TV: μ = p0 + u − w, u, w ≥ 0, ½Σ(u + w) ≤ ρ, Σ(u − w) = 0, μ ≥ 0
    a_ub = np.vstack([0.5 * np.ones(2 * N), np.hstack([-np.eye(N), np.eye(N)])])
    lp = scipy_opt.linprog(np.concatenate([z, -z]), A_ub=a_ub, b_ub=np.concatenate([[rho], p0]),
                           A_eq=np.concatenate([np.ones(N), -np.ones(N)])[None], b_eq=[0.0])
    np.testing.assert_allclose(tv[i], p0 @ z + lp.fun, atol=1e-4)
    ball = {"type": "ineq", "fun": lambda m, p0=p0: rho - np.sum(m * np.log(np.maximum(m, 1e-300) / p0))}
    nlp = scipy_opt.minimize(lambda m: m @ z, p0, method="SLSQP", bounds=[(0, 1)] * N, options={"ftol": 1e-12, "maxiter": 500},
                             constraints=[{"type": "eq", "fun": lambda m: m.sum() - 1}, ball])
    np.testing.assert_allclose(kl[i], nlp.fun, atol=1e-5)
  assert np.all(np.asarray(tv) < coef @ z) and np.all(np.asarray(kl) < coef @ z)


def test_drpvi_reduces_to_pevi_for_a_tiny_ball(x64, big_data):
  """ρ → 0 leaves no adversary. With regressed (signed) factors the inner sup can only overshoot the
  plain regression, by an amount that vanishes as the regression becomes exact (20000 episodes). (DRVI-L
  is not checked this way: its sup over b reaches small b, where the regressed e^{−V/b} of the rare fail
  transitions is noise; its inner dual is checked against the primal above.)"""
  pevi = r2pvi.fit(big_data, r2pvi.R2PVIConfig("none", 1e-6, beta=0.0)).w
  tiny = r2pvi.fit(big_data, r2pvi.R2PVIConfig("drpvi", 1e-6, beta=0.0, n_alpha=512, rho=1e-9)).w
  np.testing.assert_allclose(tiny, pevi, atol=0.02)
  robust = r2pvi.fit(big_data, r2pvi.R2PVIConfig("drpvi", 1e-6, beta=0.0, n_alpha=512, rho=0.3)).w
  assert float(robust[0, -1]) < float(pevi[0, -1]) - 0.1  # the ball's adversary lowers the x_5 factor's value


def test_pessimism_lowers_values(x64):
  data = ex.make_data(jax.random.PRNGKey(1), PARAMS, 100)
  phi0 = drect.features(PARAMS)[0]
  for div in ("none", "tv"):
    q_pess = r2pvi.policy(r2pvi.fit(data, r2pvi.R2PVIConfig(div, beta=1.0)), phi0, 0)[1]
    q_plain = r2pvi.policy(r2pvi.fit(data, r2pvi.R2PVIConfig(div, beta=0.0)), phi0, 0)[1]
    assert jnp.max(q_pess) <= jnp.max(q_plain) + 1e-12


def test_bad_inputs():
  with pytest.raises(ValueError, match="div"):
    r2pvi.check_config(r2pvi.R2PVIConfig("hellinger"))
  with pytest.raises(ValueError, match="lam"):
    r2pvi.check_config(r2pvi.R2PVIConfig("kl", lam=0.0))
  with pytest.raises(ValueError, match="rho"):
    r2pvi.check_config(r2pvi.R2PVIConfig("drpvi", rho=-1.0))
  with pytest.raises(ValueError, match="div"):
    r2pvi.robust_value_iteration(drect.features(PARAMS), drect.factors(PARAMS), drect.reward_params(), "drpvi", 0.1)
  with pytest.raises(ValueError, match="q"):
    drect.features(PARAMS._replace(q=1.5))
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_reproduction_trends(smoke):
  """Every R2PVI variant degrades less than PEVI, beats it at q = 1 and picks a smaller first-step exposure."""
  rows = {r["method"]: r for r in smoke.summary["metrics"]["returns"]}
  assert set(rows) == set(get_config("smoke").methods)
  pevi = rows["none"]
  for m in ("tv", "kl", "chi2"):
    assert rows[m]["degradation"] < pevi["degradation"], (m, rows[m], pevi)
    assert rows[m]["return_q1"] > pevi["return_q1"], (m, rows[m], pevi)
    assert rows[m]["exposure"] < pevi["exposure"]
  # exact returns of each replication's policy, non-increasing in q (the perturbation only removes reward)
  assert np.all(np.diff(smoke.results["returns"], axis=-1) <= 1e-12)
