"""Sleeping-experts and online-ridge kernels, the groups environment, and the groupwise-regret reproduction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.groupwise import get_config
from rljax.theory.envs import groups_regression as env
from rljax.theory.experts import groupwise as gw
from rljax.theory.kernels import ridge, sleeping
from rljax.theory.kernels.regression_oracles import vaw_predict
from rljax.theory.kernels.simplex import ftrl_probs
from tests.helpers import assert_smoke_claims


def test_sleeping_hedge_all_awake_is_hedge(x64):
  losses = jax.random.uniform(jax.random.PRNGKey(0), (20, 5))
  awake = jnp.ones(5, bool)
  log_w, eta = jnp.zeros(5), 0.3
  for t in range(20):
    p = sleeping.hedge_probs(log_w, awake)
    log_w = sleeping.hedge_update(log_w, losses[t], p @ losses[t], awake, eta)
  np.testing.assert_allclose(sleeping.hedge_probs(log_w, awake), ftrl_probs(losses.sum(0), eta), rtol=1e-10)


def test_sleeping_experts_keep_asleep_weights(x64):
  log_w = jnp.array([0.1, -0.2, 0.3])
  awake = jnp.array([True, False, True])
  new = sleeping.hedge_update(log_w, jnp.array([0.2, 0.9, 0.5]), 0.4, awake, 0.5)
  np.testing.assert_allclose(new, [0.1 + 0.5 * 0.2, -0.2, 0.3 - 0.5 * 0.1], rtol=1e-12)
  p = sleeping.hedge_probs(new, awake)
  assert p[1] == 0 and abs(p.sum() - 1) < 1e-12
  st = sleeping.anh_update(sleeping.anh_init(3), jnp.array([0.2, 0.9, 0.5]), 0.4, awake)
  np.testing.assert_allclose(st.r, [0.2, 0.0, -0.1], rtol=1e-12)
  q = sleeping.anh_probs(st, awake)  # the expert with the larger cumulative regret R gets more weight
  assert q[1] == 0 and q[0] > q[2] and abs(q.sum() - 1) < 1e-12
  np.testing.assert_allclose(sleeping.anh_probs(sleeping.anh_init(3), awake), [0.5, 0, 0.5], rtol=1e-12)
  with pytest.raises(ValueError, match="awake"):
    sleeping.hedge_probs(log_w, awake[:2])


def test_vaw_matches_batch_ridge(x64):
  kx, ky = jax.random.split(jax.random.PRNGKey(2))
  x, y = jax.random.normal(kx, (30, 4)), jax.random.normal(ky, (30,))
  state = ridge.ridge_init(4, 0.5)
  for i in range(29):
    state = ridge.ridge_update(state, x[i], y[i])
  np.testing.assert_allclose(ridge.ridge_theta(state), ridge.ridge_solve(x[:29], y[:29], 0.5), rtol=1e-9)
  # VAW = ridge fitted with the new point included at label 0.
  ref = x[29] @ ridge.ridge_solve(x, y.at[29].set(0.0), 0.5)
  np.testing.assert_allclose(vaw_predict(state, x[29]), ref, rtol=1e-9)


def test_groupwise_invariants(x64):
  # One group: the meta prediction is the base learner's.
  cfg1 = gw.GroupwiseConfig(n_groups=1, dim=3, horizon=100)
  st = gw.init(cfg1)
  for row in jax.random.normal(jax.random.PRNGKey(3), (10, 4)) * 0.3:
    st = gw.update(st, row[:3], row[3], jnp.ones(1, bool), cfg1)
  x = jnp.array([0.1, -0.2, 0.3])
  yhat, (preds, p) = gw.predict(st, x, jnp.ones(1, bool), cfg1)
  np.testing.assert_allclose(yhat, vaw_predict(jax.tree.map(lambda a: a[0], st.learners), x), rtol=1e-12)
  # Disjoint groups: only the awake learner predicts, so each group sees its own learner.
  cfg2 = gw.GroupwiseConfig(n_groups=2, dim=3, horizon=100)
  st2 = gw.update(gw.init(cfg2), x, 0.5, jnp.array([True, False]), cfg2)
  yhat2, (preds2, p2) = gw.predict(st2, x, jnp.array([True, False]), cfg2)
  assert p2[1] == 0 and yhat2 == preds2[0]
  assert int(st2.learners.count[1]) == 0 and st2.log_w[1] == 0.0
  with pytest.raises(ValueError, match="groups"):
    gw.predict(st2, x, jnp.ones(3, bool), cfg2)


def test_groups_env(x64):
  params = env.make_params(jax.random.PRNGKey(0))
  s, (x, g) = env.reset(jax.random.PRNGKey(1), params)
  z = np.asarray(x[:3]).astype(bool)
  assert g[0] and all(g[1 + 2 * j + int(z[j])] and not g[2 + 2 * j - int(z[j])] for j in range(3))
  assert int(g.sum()) == 4 and -1 <= s.y <= 1
  _, _, r, _, info = env.step(jax.random.PRNGKey(2), params, s, 0.0)
  np.testing.assert_allclose(r, -info["y"] ** 2)


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_predicted_slopes(smoke):
  rows = smoke.summary["metrics"]["table"]
  assert len(rows) == 7 * len(smoke.results["metas"])
  for r in rows:
    # Groupwise: regret ≤ 0 on the group (no slope: None in the summary), or growing no faster than √T.
    assert r["slope"] is None or r["slope"] <= 0.6, r
    assert r["mse"] < r["base_mse"], r
    if r["group"] != "all":  # the group-blind model has near-linear regret on every proper group
      assert r["base_slope"] > 0.6 and r["base_regret_per_round"] > 0.005, r
      assert r["regret_per_round"] < r["base_regret_per_round"] / 2, r


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")


def test_ogd_oracle_learns_realizable_stream(x64):
  """OGD with η_t = c/√t on y = θ*ᵀx: the average loss of the last rounds is near 0 and an MLP
  prediction has the right shape (the online oracles of the regression-oracle kernel)."""
  from rljax.theory.kernels import regression_oracles as ro

  theta = jnp.array([0.5, -0.3, 0.2])
  xs = jax.random.uniform(jax.random.PRNGKey(4), (600, 3), minval=-1, maxval=1)
  opt = ro.ogd_optimizer(1.0)

  def step(state, x):
    loss = ro.pointwise_loss(ro.linear_apply(state.params, x), x @ theta, "square")
    return ro.ogd_update(state, ro.linear_apply, opt, x, x @ theta), loss

  _, losses = jax.lax.scan(step, ro.ogd_init(ro.linear_init(3), opt), xs)
  assert losses[-100:].mean() < 0.05 * losses[:20].mean()
  params = ro.mlp_init(jax.random.PRNGKey(5), 3, 16)
  assert ro.mlp_apply(params, xs[:7]).shape == (7,)
  with pytest.raises(ValueError, match="loss"):
    ro.pointwise_loss(0.0, 1.0, "hinge")
