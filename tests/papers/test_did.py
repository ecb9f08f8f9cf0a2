"""Differential information (Won et al. 2025): identities, the DPO population optimum, the reproduction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.did import get_config
from rljax.theory.kernels.divergences import categorical_kl
from rljax.theory.kernels.lbfgs import lbfgs_minimize
from rljax.theory.preference import did
from tests.helpers import assert_monotone, assert_smoke_claims


def _dist(key, k, scale=1.0):
  return jax.nn.log_softmax(scale * jax.random.normal(key, (k,)))


def test_did_identities(x64):
  k1, k2 = jax.random.split(jax.random.PRNGKey(0))
  log_pi, log_ref = _dist(k1, 7), _dist(k2, 7)
  log_q = did.differential_information(log_pi, log_ref)
  np.testing.assert_allclose(jnp.exp(log_q).sum(), 1.0, rtol=1e-14)
  np.testing.assert_allclose(jax.nn.log_softmax(log_ref + log_q), log_pi, atol=1e-13)  # π ∝ π_ref·q
  np.testing.assert_allclose(did.did_entropy(log_ref, log_ref), np.log(7), rtol=1e-14)
  assert did.did_entropy(log_pi, log_ref) < np.log(7)
  # Outside π_ref's support the DID is 0.
  ref0 = jnp.log(jnp.array([0.5, 0.5, 0.0]))
  np.testing.assert_allclose(jnp.exp(did.differential_information(jnp.log(jnp.array([0.2, 0.3, 0.5])), ref0)),
                             [0.4, 0.6, 0.0], atol=1e-14)
  with pytest.raises(ValueError, match="log_ref"):
    did.differential_information(log_pi, log_ref + 1.0)


def test_population_optimum_minimises_dpo_loss(x64):
  """L-BFGS on the exact pair expectation of rljax.losses.dpo_loss reaches the closed form."""
  keys = jax.random.split(jax.random.PRNGKey(1), 3)
  log_ref, log_pw, log_pl = (_dist(k, 6) for k in keys)
  for beta in (1.0, 0.5):
    loss = lambda x: did.dpo_population_loss(x, log_ref, log_pw, log_pl, beta)
    x = jax.jit(lambda x0: lbfgs_minimize(loss, x0, max_iters=100).x)(jnp.zeros(6))
    closed = did.dpo_population_optimum(log_ref, log_pw, log_pl, beta)
    np.testing.assert_allclose(jax.nn.log_softmax(x), closed, atol=1e-8)
    assert loss(closed) <= loss(x) + 1e-14
    # A random perturbation of the optimum never does better.
    for k in jax.random.split(keys[0], 5):
      assert loss(closed + 0.1 * jax.random.normal(k, (6,))) > loss(closed)


def test_encoding_conditions(x64):
  keys = jax.random.split(jax.random.PRNGKey(2), 3)
  log_ref, log_star, log_pw = (_dist(k, 8) for k in keys)
  # Rejected ~ π_ref, chosen ~ π*, β = 1 recovers π*; uniform rejections give the power law π_ref·π*.
  np.testing.assert_allclose(did.dpo_population_optimum(log_ref, log_star, log_ref, 1.0), log_star, atol=1e-13)
  unif = jnp.full(8, -np.log(8))
  np.testing.assert_allclose(did.dpo_population_optimum(log_ref, log_star, unif, 1.0),
                             jax.nn.log_softmax(log_ref + log_star), atol=1e-13)
  np.testing.assert_allclose(
      did.differential_information(did.dpo_population_optimum(log_ref, log_star, unif, 0.5), log_ref),
      jax.nn.log_softmax(2 * log_star), atol=1e-12)  # DID = (π_w/π_l)^{1/β}
  for beta in (1.0, 0.3):
    log_pl = did.optimal_rejected_distribution(log_pw, log_ref, log_star, beta)
    np.testing.assert_allclose(did.dpo_population_optimum(log_ref, log_pw, log_pl, beta), log_star, atol=1e-12)
  # The paper's closed form (chosen ~ π_ref): π_l ∝ π_ref·(π_ref/π*)^β.
  np.testing.assert_allclose(did.optimal_rejected_distribution(log_ref, log_ref, log_star, 1.0),
                             jax.nn.log_softmax(2 * log_ref - log_star), atol=1e-13)


def test_chosen_logp_shift_identities(x64):
  keys = jax.random.split(jax.random.PRNGKey(3), 2)
  log_ref, log_star = (_dist(k, 9) for k in keys)
  np.testing.assert_allclose(did.chosen_logp_shift(log_star, log_ref, log_star),
                             categorical_kl(log_star, log_ref), rtol=1e-12)
  np.testing.assert_allclose(did.chosen_logp_shift(log_star, log_ref, log_ref),
                             -categorical_kl(log_ref, log_star), rtol=1e-12)
  log_q = did.differential_information(log_star, log_ref)
  q = jnp.exp(log_q)
  ce = -jnp.sum(jnp.exp(log_star) * log_q)
  np.testing.assert_allclose(did.chosen_logp_shift(log_star, log_ref, log_star),
                             -ce - jnp.log(jnp.sum(jnp.exp(log_ref) * q)), rtol=1e-12)


def test_train_dpo_population_converges(x64):
  keys = jax.random.split(jax.random.PRNGKey(4), 3)
  log_ref, log_pw, log_pl = (_dist(k, 5) for k in keys)
  weights = jnp.exp(log_pw[:, None] + log_pl[None, :])
  target = did.dpo_population_optimum(log_ref, log_pw, log_pl, 1.0)
  logits, trace = jax.jit(lambda w: did.train_dpo(w, log_ref, target, beta=1.0, lr=0.05, steps=3000,
                                                   record_every=300))(weights)
  np.testing.assert_allclose(jax.nn.log_softmax(logits), target, atol=1e-5)
  assert trace.kl_target[-1] < 1e-9 < trace.kl_target[0]
  assert trace.loss.shape == (11,) and trace.loss[-1] < trace.loss[0]


@pytest.fixture(scope="module")
def rows(smoke):
  return {(r["temperature"], r["design"]): r for r in smoke.summary["metrics"]["table"]}


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_reproduction_trends(smoke, rows):
  results = smoke.results
  for t in (0.2, 5.0):
    enc, uni = rows[(t, "encode")], rows[(t, "uniform")]
    # DID-encoding data: KL(π*‖π_θ) falls to the sampling floor, far below the non-encoding plateau.
    assert enc["kl_end"] < 0.5 * enc["kl_start"]
    for r in (enc, uni):  # the chosen-logp shift has the sign and size of the population optimum
      assert np.sign(r["shift_end"]) == np.sign(r["shift_pred"])
      assert abs(r["shift_end"] - r["shift_pred"]) < 0.3 * abs(r["shift_pred"]) + 0.01
  # Low-entropy DID: the chosen log-likelihood rises; high-entropy DID learned from uniform rejections:
  # it falls (displacement); the paper's design (chosen ~ π_ref) lowers it at both temperatures.
  assert rows[(0.2, "uniform")]["shift_end"] > 0 > rows[(5.0, "uniform")]["shift_end"]
  assert rows[(0.2, "paper")]["shift_end"] < 0 and rows[(5.0, "paper")]["shift_end"] < 0
  assert_monotone(np.median(results["kl"][0, 0], 0)[::4], increasing=False, rtol=0.05)
  assert rows[(0.2, "encode")]["did_entropy_end"] < rows[(5.0, "encode")]["did_entropy_end"]


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
