"""DynLin-UCB (Mussi, Metelli & Restelli, ICML 2023): oracle, dynamics, block schedule, OFUL reduction,
and the reproduction run once through its notebook at the smoke preset."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.dynlin_ucb import get_config
from rljax.theory.bandits import dynlin_ucb as dl
from rljax.theory.envs import dyn_linear_bandit as env
from rljax.theory.kernels import ridge
from tests.helpers import assert_monotone, assert_smoke_claims


def test_oracle_paper_system(x64):
  params = env.paper_params(0.01)
  h, u_star, value = env.oracle(params)
  np.testing.assert_allclose(h, [0.45 / 0.8, 0.5, 0.1 + 0.01 / 0.9], atol=1e-12)
  np.testing.assert_allclose(u_star, [1.0, 0.5, 0.0])
  assert abs(float(value) - 0.8125) < 1e-12
  assert params.actions.shape == (6, 3)
  # The myopic gain 1ᵀD prefers a different arm than h: the source of LinUCB's bias.
  best_myopic = params.actions[jnp.argmax(params.actions @ env.immediate_gain(params))]
  np.testing.assert_allclose(best_myopic, [0.0, 1.0, 0.5])


def test_reward_converges_geometrically(x64):
  params = env.paper_params(0.0, a_scale=2.5)  # ρ = 0.5, noiseless
  h = env.markov_gain(params)
  arm = 3
  state, _ = env.reset(jax.random.PRNGKey(0), params)
  errs = []
  for t in range(12):
    state, _, reward, _, info = env.step(jax.random.PRNGKey(t), params, state, arm)
    errs.append(abs(float(reward) - float(h @ params.actions[arm])))
    assert float(info["steady"]) == pytest.approx(float(h @ params.actions[arm]))
  errs = np.asarray(errs)
  assert errs[0] > 0.1
  np.testing.assert_array_less(errs[1:], 0.5 * errs[:-1] + 1e-15)  # rate ρ = 0.5


def test_block_schedule(x64):
  m = jnp.arange(1, 2001)
  lengths = np.asarray(dl.block_length(m, 0.2))
  assert lengths[0] == 1 and lengths[4] == 2  # m = 5 = 1/ρ is an exact power
  assert np.all(np.diff(lengths) >= 0)
  inv_m = 1.0 / np.asarray(m)
  np.testing.assert_array_less(0.2**lengths, inv_m)  # L_m is the shortest block with ρ^{L_m} < 1/m
  assert np.all(0.2 ** (lengths - 1) >= inv_m * (1 - 1e-12))
  assert lengths.sum() >= 5000  # 2000 blocks cover a horizon of 5000
  assert np.all(np.asarray(dl.block_length(m, 0.0)) == 1)


def _play(params, agent, steps):
  """Runs the agent for `steps`, returning its final state and every (u, reward, block-end) triple."""
  state = dl.init(jax.random.PRNGKey(1), agent, params)
  env_state, _ = env.reset(jax.random.PRNGKey(2), params)
  us, ys, ends = [], [], []
  for k in jax.random.split(jax.random.PRNGKey(3), steps):
    arm, aux = dl.act(agent, state, params.actions)
    env_state, _, reward, _, _ = env.step(k, params, env_state, arm)
    u = params.actions[arm]
    state = dl.update(agent, state, arm, u, reward)
    us.append(u), ys.append(reward), ends.append(bool(state.fresh))
  return state, jnp.stack(us), jnp.stack(ys), np.asarray(ends)


def test_regression_uses_block_ends_only(x64):
  params = env.paper_params(0.05)
  agent = dl.make_config(params, 100)
  state, us, ys, ends = _play(params, agent, 40)
  n_blocks = int(state.block) - 1
  assert ends.sum() == n_blocks and n_blocks < 40
  np.testing.assert_allclose(ridge.ridge_theta(state.stats), ridge.ridge_solve(us[ends], ys[ends], 1.0), atol=1e-10)
  # Inside a block the arm is held.
  starts = np.concatenate([[True], ends[:-1]])
  arms = np.asarray(jnp.argmax(jnp.all(us[:, None] == params.actions[None], -1), -1))
  assert np.all(arms[1:][~starts[1:]] == arms[:-1][~starts[1:]])


def test_static_system_is_oful(x64):
  base = env.paper_params(0.05)
  params = base._replace(a=jnp.zeros_like(base.a), b=jnp.zeros_like(base.b))
  agent = dl.make_config(params, 100)
  assert agent.rho == 0.0
  state, us, ys, ends = _play(params, agent, 25)
  assert ends.all()  # block length 1: a plain linear bandit
  np.testing.assert_allclose(ridge.ridge_theta(state.stats), ridge.ridge_solve(us, ys, 1.0), atol=1e-10)
  # ... whose action is the OFUL argmax with radius β_t.
  arm, aux = dl.act(agent, state, params.actions)
  v_inv = jnp.linalg.inv(jnp.eye(3) + us.T @ us)
  ucb = params.actions @ (v_inv @ us.T @ ys) + aux["beta"] * jnp.sqrt(jnp.einsum("ki,ij,kj->k", params.actions, v_inv,
                                                                                   params.actions))
  assert int(arm) == int(jnp.argmax(ucb))


def test_bad_inputs():
  with pytest.raises(ValueError, match="`a`"):
    env.make_params(np.eye(3) * 1.1, np.eye(3), np.eye(3), np.eye(3), 0.1, np.eye(3))
  with pytest.raises(ValueError, match="`d`"):
    env.make_params(np.eye(3) * 0.1, np.eye(3), np.eye(3), np.eye(2), 0.1, np.eye(3))
  with pytest.raises(ValueError, match="`horizon`"):
    dl.make_config(env.paper_params(), 0)
  with pytest.raises(ValueError, match="`rho`"):
    dl.make_config(env.paper_params(), 10, rho=1.0)
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_predicted_trends(smoke):
  results, rows = smoke.results, {r["learner"]: r for r in smoke.summary["metrics"]["slopes"]}
  cfg = get_config("smoke")
  assert results["regret"].shape == (2, cfg.seeds, len(results["t"]))
  dyn, myopic = rows["dynlin_ucb"], rows["linucb_myopic"]
  assert dyn["slope"] < myopic["slope"] - 0.25  # sublinear against the myopic learner's linear regret
  assert dyn["regret_T"] < 0.2 * myopic["regret_T"]
  assert dyn["on_best"] > 0.7 > myopic["on_best"]
  # Slower dynamics need longer blocks: regret at T grows with ρ.
  assert_monotone(np.median(results["regret_rho"], axis=1), increasing=True)
