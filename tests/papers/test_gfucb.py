"""GFUCB (Lu et al., NeurIPS 2022) and the linear-bandit environments: invariants, reductions, the smoke
reproduction through the notebook (per-task regret falls with M, √T growth)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.gfucb import get_config
from rljax.theory.bandits import gfucb
from rljax.theory.envs import linear_bandit as lb
from rljax.theory.kernels.ridge import oful_radius
from tests.helpers import assert_monotone, assert_slope, assert_smoke_claims


def _feed(cfg, state, key, env, rounds):
  """Plays `rounds` uniformly random actions to fill the statistics."""
  x = lb.multitask_reset(key, env)[1]
  for k in jax.random.split(key, rounds):
    a = jax.random.randint(k, (x.shape[0],), 0, x.shape[1])
    x2, _, y, _, _ = lb.multitask_step(k, env, x, a)
    state = gfucb.update(state, x[jnp.arange(x.shape[0]), a], y)
    x = x2
  return state, x


def test_finite_bandit_oracle_and_misspecification(x64):
  arms = lb.sphere_arms(jax.random.PRNGKey(0), 30, 3)
  np.testing.assert_allclose(jnp.linalg.norm(arms, axis=1), 1.0, atol=1e-12)
  theta = jnp.array([0.6, -0.8, 0.0])
  params = lb.finite_bandit(arms, theta, noise_std=0.0)
  o = lb.oracle(params)
  assert o.best_value <= lb.sphere_oracle(theta)[1] + 1e-12  # a finite net never beats the sphere optimum
  _, _, r, _, info = lb.step(jax.random.PRNGKey(1), params, lb.reset(None, params)[0], o.best_arm)
  assert float(r) == pytest.approx(float(o.best_value)) and float(info["regret"]) == 0.0
  rand = lb.misspecify(jax.random.PRNGKey(2), params, 0.05)
  assert float(jnp.max(jnp.abs(rand.bias))) <= 0.05
  adv = lb.oracle(lb.misspecify(None, params, 0.05, adversarial=True))
  shrunk = adv.means[o.best_arm] - adv.means  # every gap to the linear best arm shrinks by 2ε
  others = np.arange(30) != int(o.best_arm)
  np.testing.assert_allclose(np.asarray(shrunk)[others], np.asarray(o.gaps)[others] - 0.1, atol=1e-12)
  with pytest.raises(ValueError, match="budget"):
    lb.misspecify(None, params, -1.0)
  with pytest.raises(ValueError, match="theta"):
    lb.finite_bandit(arms, theta[:2])


def test_multitask_env_is_consistent(x64):
  env = lb.multitask_bandit(jax.random.PRNGKey(0), n=6, k=2, n_tasks=3, n_arms=4, noise_std=0.0)
  phis = lb.representation_class(jax.random.PRNGKey(1), env, 5, true_index=2)
  np.testing.assert_array_equal(phis[2], env.w_star)
  assert not np.allclose(phis[0], env.w_star)
  x, _ = lb.multitask_reset(jax.random.PRNGKey(2), env)
  o = lb.multitask_oracle(env, x)
  _, x2, y, _, info = lb.multitask_step(jax.random.PRNGKey(3), env, x, o.best_arm)
  np.testing.assert_allclose(y, o.best_value, atol=1e-12)  # noiseless: reward = oracle mean
  np.testing.assert_allclose(info["regret"], 0.0, atol=1e-12)
  assert x2.shape == x.shape and not np.allclose(x2, x)
  with pytest.raises(ValueError, match="action"):
    lb.multitask_step(jax.random.PRNGKey(3), env, x, o.best_arm[:2])


def test_single_representation_is_independent_oful(x64):
  """|Φ| = 1: GFUCB's actions are those of M separate OFUL learners on φ*(x)."""
  env = lb.multitask_bandit(jax.random.PRNGKey(0), n=5, k=2, n_tasks=3, n_arms=6, noise_std=0.3)
  cfg = gfucb.Config(sigma=0.3)
  state, x = _feed(cfg, gfucb.init(None, cfg, env.w_star[None], 3), jax.random.PRNGKey(1), env, 15)
  a, aux = gfucb.act(cfg, state, x)
  radius = oful_radius(15, delta=cfg.delta, lam=cfg.lam, s_norm=1.0, l_norm=np.sqrt(2), sigma=0.3, dim=2)
  for i in range(3):  # reference OFUL from the raw Gram matrix of task i
    v = np.linalg.inv(np.asarray(state.v_inv[0, i]))
    theta = np.linalg.solve(v, np.asarray(state.b[0, i]))
    f = np.tanh(np.asarray(x[i]) @ np.asarray(env.w_star))
    ucb = f @ theta + radius * np.sqrt(np.einsum("ai,ij,aj->a", f, np.linalg.inv(v), f))
    assert int(a[i]) == int(np.argmax(ucb))
  assert int(aux["set_size"]) == 1


def test_confidence_set_limits_and_task_permutation(x64):
  env = lb.multitask_bandit(jax.random.PRNGKey(0), n=5, k=2, n_tasks=3, n_arms=4, noise_std=0.2)
  phis = lb.representation_class(jax.random.PRNGKey(1), env, 6, scales=(0.3, 2.0))
  cfg = gfucb.Config(sigma=0.2)
  state, x = _feed(cfg, gfucb.init(None, cfg, phis, 3), jax.random.PRNGKey(2), env, 20)
  assert bool(jnp.all(gfucb.confidence_set(cfg._replace(beta_scale=float("inf")), state)))
  only = gfucb.confidence_set(cfg._replace(beta_scale=0.0), state)
  assert int(only.sum()) == 1 and int(jnp.argmax(only)) == int(jnp.argmin(gfucb.losses(state)))
  perm = jnp.array([2, 0, 1])  # relabelling tasks relabels the actions and keeps L_t and C_t
  permuted = state._replace(v_inv=state.v_inv[:, perm], b=state.b[:, perm], yy=state.yy[perm])
  np.testing.assert_allclose(gfucb.losses(permuted), gfucb.losses(state), rtol=1e-12)
  np.testing.assert_array_equal(gfucb.act(cfg, permuted, x[perm])[0], gfucb.act(cfg, state, x)[0][perm])
  with pytest.raises(ValueError, match="contexts"):
    gfucb.act(cfg, state, x[:2])
  with pytest.raises(ValueError, match="lam"):
    gfucb.init(None, cfg._replace(lam=0.0), phis, 3)


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_regret_falls_with_tasks_and_grows_like_sqrt_t(smoke):
  results, rows = smoke.results, smoke.summary["metrics"]["table"]
  assert results["regret"].shape == (2, 4, len(results["t"]))
  assert_monotone([r["regret_T"] for r in rows], increasing=False)
  assert rows[-1]["regret_T"] < 0.85 * rows[0]["regret_T"]  # M = 8 pays clearly less per task than M = 1
  assert rows[-1]["set_size_T"] < rows[0]["set_size_T"]  # pooled evidence shrinks C_t faster
  for i in range(len(rows)):
    assert_slope(results["t"], results["regret"][i], 0.5, 0.15)
  # The independent baseline does not pool: its per-task regret does not fall like GFUCB's.
  assert rows[-1]["independent_T"] > rows[-1]["regret_T"]


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
