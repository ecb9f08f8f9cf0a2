"""FTPedel (Wagenmaker & Pacchiano, ICML 2023) and the experimental-design kernel: Kiefer–Wolfowitz,
monotone Frank–Wolfe, the Λ_off = 0 (RAGE) reduction, offline coverage removing online samples, the
smoke reproduction run by the notebook (online samples fall with n_off, within 3× of N*)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.ftpedel import get_config
from experiments import ftpedel as ex
from rljax.theory.kernels import design as dk
from rljax.theory.linear_mdp import ftpedel as fp
from tests.helpers import assert_monotone, assert_smoke_claims


def test_g_optimal_design_kiefer_wolfowitz(x64):
  basis = dk.g_optimal_design(jnp.eye(4))
  np.testing.assert_allclose(basis.weights, 0.25, atol=1e-12)
  assert float(basis.value) == pytest.approx(4.0)
  x = jax.random.normal(jax.random.PRNGKey(0), (20, 4))
  res = dk.g_optimal_design(x, n_iters=400)
  assert 4.0 - 1e-9 <= float(res.value) <= 4.0 * 1.02  # max_x xᵀA(λ)^{-1}x ≥ d always, = d at the optimum
  assert float(jnp.sum(res.weights)) == pytest.approx(1.0) and bool(jnp.all(res.weights >= 0))
  with pytest.raises(ValueError, match="x"):
    dk.g_optimal_design(jnp.ones(3))


def test_minimax_design_monotone_and_rage_reduction(x64):
  arms, _ = ex.instance(get_config("smoke"))
  diff, mask = fp.pairs(arms, jnp.ones(5, bool))
  res = fp.minimax_design(arms, jnp.ones(5, bool), jnp.zeros((4, 4)), 1.0)
  assert bool(jnp.all(jnp.diff(res.history) <= 1e-15))  # Frank–Wolfe with line search never goes up
  assert float(res.value) == pytest.approx(2.0 * 4, rel=1e-6)  # uniform on e_1..e_4, x' unused: 1/λ_i + 1/λ_j
  np.testing.assert_allclose(res.weights, [0.25, 0.25, 0.25, 0.25, 0.0], atol=1e-6)
  # Λ_off = 0: the N-dependence factors out, N = ρ*/tolerance (the RAGE / Pedel sample size).
  n, _ = dk.min_samples(diff, arms, jnp.zeros((4, 4)), 0.01, y_mask=mask)
  assert float(n) == pytest.approx(float(res.value) / 0.01, rel=1e-3)
  prior = 100.0 * jnp.outer(jnp.eye(4)[1], jnp.eye(4)[1])
  assert float(fp.minimax_design(arms, jnp.ones(5, bool), prior, 1.0).value) < float(res.value)
  with pytest.raises(ValueError, match="lam_off"):
    dk.minimax_design(diff, arms, jnp.zeros((3, 3)), 1.0)


def test_round_design():
  counts = dk.round_design(jnp.array([0.25, 0.25, 0.3, 0.2]), 10.3)
  assert int(counts.sum()) == 11
  assert bool(jnp.all(jnp.abs(counts - 11 * jnp.array([0.25, 0.25, 0.3, 0.2])) < 1))


def test_covering_offline_data_needs_no_online_samples(x64):
  cfg = get_config("smoke")
  arms, theta = ex.instance(cfg)
  algo = ex.algo_config(cfg)
  off_x = jnp.tile(arms, (20_000, 1))  # every arm 20k times: Λ_off ⪰ c I with c large
  off_y = off_x @ theta + jax.random.normal(jax.random.PRNGKey(0), off_x.shape[:1])
  res = fp.bandit(jax.random.PRNGKey(1), algo, arms, theta, off_x, off_y)
  assert int(res.online_samples) == 0 and bool(res.certified)
  assert int(res.arm) in (0, 4)  # e_1 or x' (gap 0.005 < ε): certified ε-optimal from offline data alone
  online = fp.bandit(jax.random.PRNGKey(1), algo, arms, theta, off_x[:0], off_y[:0])
  assert int(online.online_samples) > 500 and int(online.arm) in (0, 4)
  with pytest.raises(ValueError, match="offline"):
    fp.bandit(jax.random.PRNGKey(1), algo, arms, theta, off_x[:, :2], off_y)
  with pytest.raises(ValueError, match="epsilon"):
    fp.n_rounds(0.0)


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_online_samples_fall_with_offline_data(smoke):
  results, rows = smoke.results, smoke.summary["metrics"]["table"]
  samples = [r["samples"] for r in rows]
  assert_monotone(samples, increasing=False, rtol=0.02)
  assert samples[0] > 3 * samples[-1]  # covering the hard direction saves most of the exploration ...
  assert samples[-1] == pytest.approx(samples[-2], rel=0.2)  # ... down to the floor of e_3, e_4
  assert_monotone(results["n_star"], increasing=False)
  for r in rows:  # within 3× of the complexity formula, every output certified and ε-optimal
    assert 1 / 3 <= r["ratio"] <= 3
    assert r["certified"] == 1.0 and r["max_gap"] <= results["epsilon"]
  assert all(r["lcb_certified"] == 0.0 for r in rows)  # offline data alone never certifies


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
