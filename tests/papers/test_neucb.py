"""NeuSquareCB / NeuFastCB: FastCB and IGW probability invariants, the oracle update, and the regret
reproduction at the smoke preset (Deb et al., ICLR 2024)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.neucb import get_config
from rljax.theory.bandits import neucb as nc
from rljax.theory.kernels import regression_oracles as ro
from tests.helpers import assert_smoke_claims


def test_fastcb_probs_invariants(x64):
  lhat = jnp.array([0.3, 0.1, 0.5, 0.9])
  p = nc.fastcb_probs(lhat, 20.0)
  assert jnp.all(p >= 0) and abs(p.sum() - 1) < 1e-12 and jnp.argmax(p) == 1
  np.testing.assert_allclose(p[0], 0.1 / (4 * 0.1 + 20.0 * 0.2), rtol=1e-12)
  np.testing.assert_allclose(nc.fastcb_probs(jnp.full(4, 0.4), 50.0), jnp.full(4, 0.25), rtol=1e-12)


def test_act_and_update(x64):
  cfg = nc.NeuCBConfig(algo="fast", n_arms=3, dim=4, width=8, horizon=10, n_steps=3, window=4, gamma_scale=2.0)
  state = nc.init(jax.random.PRNGKey(0), cfg)
  x = jnp.array([0.5, -0.5, 0.5, 0.5])
  arm, p = nc.act(state, x, jax.random.PRNGKey(1), cfg)
  lhat = jax.nn.sigmoid(ro.mlp_apply(state.oracle.params, nc.arm_features(x, 3)))
  np.testing.assert_allclose(p, ro.fastcb_probs(lhat, 2.0 * np.sqrt(3.0)), rtol=1e-12)  # γ_1 = √K with c_γ = 2
  # Repeated updates on one (x, a, r = 1) drive the predicted loss σ(f) of that arm towards 1 − r = 0.
  before = nc.predict(state, x, cfg)[2]
  state = jax.lax.fori_loop(0, 30, lambda i, s: nc.update(s, x, 2, 1.0, jax.random.PRNGKey(i), cfg), state)
  after = nc.predict(state, x, cfg)[2]
  assert after < 0.5 * before and int(state.t) == 30 and state.targets[0] == 0.0
  with pytest.raises(ValueError, match="algo"):
    nc.init(jax.random.PRNGKey(0), cfg._replace(algo="ucb"))


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_reproduction_trends(smoke):
  """What the README states: NeuSquareCB's regret is sublinear but steeper than √t, the oracle learns,
  NeuFastCB's regret is below NeuSquareCB's, and its curve is not flatter at small L*."""
  results, rows = smoke.results, {(r["sharpness"], r["algo"]): r for r in smoke.summary["metrics"]["table"]}
  t = results["t"]
  for s in results["sharpness"]:
    for algo in results["algos"]:
      r, row = results[(s, algo)], rows[(s, algo)]
      assert row["mse_last"] < 0.6 * row["mse_first"]  # the regressor learns
      assert 0.5 < row["slope"] < 0.95  # sublinear, but not yet at the predicted √t
      # the regret per round falls below that of the first block
      assert np.median(r["regret"][:, -1]) / t[-1] < 0.8 * np.median(r["regret"][:, 0]) / t[0]
    assert rows[(s, "fast")]["regret"] < rows[(s, "square")]["regret"]
    assert abs(rows[(s, "fast")]["slope"] - rows[(s, "square")]["slope"]) < 0.2  # not flatter


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
