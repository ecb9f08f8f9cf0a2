"""GPOMDP / HVP estimators, the scalar LQR oracle, N-PG-IGT and (N)-HARPG (Fatkhullin et al., ICML 2023)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.npg_harpg import get_config
from experiments import npg_harpg as ex
from rljax.theory.envs import lqr_scalar
from rljax.theory.pg import estimators as est
from rljax.theory.pg import npg_harpg as nh
from tests.helpers import assert_smoke_claims

H = 6
PARAMS = lqr_scalar.LQRParams(horizon=H)
N_MC = 30000


@pytest.fixture(scope="module")
def mc_estimates():
  """GPOMDP, REINFORCE, B(τ,θ)v and the discounted return on N_MC trajectories at θ = −0.8, v = 1."""
  with jax.enable_x64(True):
    problem = est.lqr_problem(PARAMS)
    theta, v = jnp.array([-0.8]), jnp.array([1.0])

    def one(key):
      traj = problem.sample(key, theta)
      return (est.gpomdp(traj, problem.logp, theta)[0], est.reinforce(traj, problem.logp, theta)[0],
              est.hvp_estimate(traj, problem.logp, theta, v)[0], jnp.sum(traj.discounts * traj.rewards))

    out = jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(3), N_MC))
    j_fn = lambda th: lqr_scalar.value(th, PARAMS, H)
    exact = (jax.grad(j_fn)(theta)[0], jax.grad(j_fn)(theta)[0], (jax.hessian(j_fn)(theta) @ v)[0], j_fn(theta))
    return [np.asarray(o) for o in out], [float(e) for e in exact]


@pytest.mark.parametrize("which", ["gpomdp", "reinforce", "hvp", "value"])
def test_estimators_unbiased(mc_estimates, which):
  """Monte-Carlo means within 4 standard errors of jax.grad / jax.hessian of the exact J_H."""
  i = ["gpomdp", "reinforce", "hvp", "value"].index(which)
  samples, exact = mc_estimates[0][i], mc_estimates[1][i]
  se = samples.std() / np.sqrt(samples.size)
  assert abs(samples.mean() - exact) < 4 * se, (samples.mean(), exact, se)
  assert se < 0.3 * abs(exact)  # power: a sign error moves the mean by > 6 s.e.


def test_gpomdp_lower_variance_than_reinforce(mc_estimates):
  assert mc_estimates[0][0].std() < mc_estimates[0][1].std()


def test_lqr_value_closed_form(x64):
  theta = jnp.array([-0.6])
  inf = lqr_scalar.value(theta, PARAMS)
  long = lqr_scalar.value(theta, PARAMS, horizon=400)
  np.testing.assert_allclose(long, inf, rtol=1e-10)  # the finite sum tends to the closed form
  # the second-moment recursion by hand for H = 3
  a, b, sw, s0, q, r, g, sig = PARAMS[:8]
  m, j = s0**2, 0.0
  for t in range(3):
    j += g**t * (-(q + r * theta[0] ** 2) * m - r * sig**2)
    m = (a + b * theta[0]) ** 2 * m + b**2 * sig**2 + sw**2
  np.testing.assert_allclose(lqr_scalar.value(theta, PARAMS, horizon=3), j, rtol=1e-12)
  assert lqr_scalar.value(jnp.array([2.0]), PARAMS) == -jnp.inf  # unstable under discounting


def test_oracle_is_a_maximum(x64):
  theta_star, j_star = lqr_scalar.oracle(PARAMS, horizon=H)
  j_fn = lambda th: lqr_scalar.value(th, PARAMS, H)
  assert abs(jax.grad(j_fn)(theta_star)[0]) < 1e-9
  for dt in (-1e-2, 1e-2):
    assert j_fn(theta_star + dt) < j_star


def test_hvp_interpolation_matches_gradient_difference(x64):
  """E_q[∇²J(q θ_t + (1−q) θ_{t−1})](θ_t − θ_{t−1}) = ∇J(θ_t) − ∇J(θ_{t−1}) (the HARPG correction)."""
  j_fn = lambda th: lqr_scalar.value(th, PARAMS, H)
  th1, th0 = jnp.array([-0.4]), jnp.array([-1.2])
  qs, w = np.polynomial.legendre.leggauss(20)
  hess_v = lambda q: jax.hessian(j_fn)(q * th1 + (1 - q) * th0) @ (th1 - th0)
  hv = sum(wi / 2 * hess_v(qi / 2 + 0.5) for qi, wi in zip(qs, w))  # Gauss–Legendre on [0, 1]
  np.testing.assert_allclose(hv, jax.grad(j_fn)(th1) - jax.grad(j_fn)(th0), rtol=1e-8)


def test_igt_with_unit_eta_is_normalized_sgd(x64):
  """η_t ≡ 1 removes both the transport and the momentum: θ_{t+1} = θ_t + γ_t g(τ_t, θ_t)/|g|."""
  problem = est.lqr_problem(PARAMS)
  cfg = nh.IGTConfig(gamma0=0.2, eta_power=0.0)
  state = est.MomentumState(jnp.array([-0.5]), jnp.array([-0.9]), jnp.array([7.0]), jnp.asarray(3))
  key = jax.random.PRNGKey(0)
  new = nh.igt_step(state, key, cfg, problem)
  g = est.gpomdp(problem.sample(key, state.theta), problem.logp, state.theta)
  np.testing.assert_allclose(new.theta, state.theta + 0.2 * (2 / 5) * jnp.sign(g), rtol=1e-12)


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_predicted_rates(smoke):
  """The smoke preset (6 seeds, 10..1000 trajectories, H = 20). The paper's exponents bound ‖∇J‖ (the
  gap is reached through J* − J ≤ C‖∇J‖); on the locally quadratic LQR J* − J ∝ ‖∇J‖², so the gap
  falls faster than predicted, about twice as fast."""
  rows = {r["method"]: r for r in smoke.summary["metrics"]["table"]}
  assert set(rows) == set(ex.LABELS), rows
  for name in ("npg_igt", "nharpg"):  # momentum methods: the predicted exponent, read on ‖∇J‖
    assert abs(rows[name]["grad_slope"] - rows[name]["predicted"]) < 0.15, rows[name]
  for name in ("pg", "npg_igt", "nharpg"):
    assert rows[name]["slope"] < -0.3, rows[name]
  assert all(r["gap_final"] < 0.3 for r in rows.values())  # from J* − J ≈ 2.5 at θ_0 = 0
  gap = smoke.results["gap"]
  assert gap.shape == (4, 6, len(smoke.results["trajectories"])) and np.all(gap >= -1e-12)


def test_bad_inputs():
  with pytest.raises(ValueError, match="gamma0"):
    nh.check_config(nh.IGTConfig(gamma0=-1.0))
  with pytest.raises(ValueError, match="theta_bounds"):
    nh.check_config(nh.HARPGConfig(theta_bounds=(1.0, 0.0)))
  with pytest.raises(ValueError, match="policy_std"):
    lqr_scalar.check_params(lqr_scalar.LQRParams(policy_std=0.0))
  with pytest.raises(ValueError, match="`v`"):
    est.hvp_estimate(est.lqr_problem(PARAMS).sample(jax.random.PRNGKey(0), jnp.zeros(1)), est.lqr_problem(PARAMS).logp,
                     jnp.zeros(1), jnp.zeros(2))
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
  cfg = get_config("smoke")
  cfg.methods = ("pg", "sgd")
  with pytest.raises(ValueError, match="sgd"):
    ex.run(cfg)
