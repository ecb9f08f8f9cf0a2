"""R2PVI on the d-rectangular linear MDP (Tang, Liu & Xu, ICML 2025): duals, exact robust planner, fit, notebook."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import execute_notebook

from configs.r2pvi import get_config
from experiments import r2pvi as ex
from rljax.theory.envs import d_rectangular as drect
from rljax.theory.kernels import divergences
from rljax.theory.linear_mdp import r2pvi

ROOT = pathlib.Path(__file__).resolve().parents[1]
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
  with pytest.raises(ValueError, match="q"):
    drect.features(PARAMS._replace(q=1.5))
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")


def test_notebook_trend():
  """Smoke preset via the notebook: every R2PVI variant degrades less than PEVI and beats it at q = 1."""
  _, printed = execute_notebook("r2pvi.ipynb")
  assert (ROOT / get_config("smoke").out_dir / "r2pvi_notebook.png").stat().st_size > 10_000
  rows = {}
  for line in printed.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) == 7 and cells[0] in ex.LABELS.values():
      rows[cells[0]] = [float(c) for c in cells[1:]]
  assert set(rows) == set(ex.LABELS.values()), printed
  pevi = rows["PEVI"]
  for label in ("R2PVI-TV", "R2PVI-KL", "R2PVI-χ²"):
    assert rows[label][2] < pevi[2], (label, rows[label], pevi)  # degradation
    assert rows[label][1] > pevi[1], (label, rows[label], pevi)  # return at q = 1
    assert rows[label][4] < pevi[4]  # smaller first-step exposure
