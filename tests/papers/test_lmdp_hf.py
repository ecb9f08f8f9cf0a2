"""Latent-MDP history planning and the horizon-free / variance-dependent reproduction (Zhou, Wang & Du, 2023)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.lmdp_hf import get_config
from rljax.theory.envs import lmdp
from rljax.theory.kernels.vi import value_iteration
from rljax.theory.tabular import lmdp_hf as lh
from tests.helpers import assert_smoke_claims


def _random_model(seed, M, S=3, A=2, H=3):
  rng = np.random.default_rng(seed)
  return rng.dirichlet(np.ones(S), size=(M, S, A)), rng.uniform(0, 1 / H, size=(M, H, S, A))


def test_single_context_is_finite_horizon_vi(x64):
  P, r = _random_model(0, 1)
  tree = jax.jit(lh.plan_histories)(P, r, np.ones(1), v_max=np.inf)
  np.testing.assert_allclose(tree.value, value_iteration(P[0], r[0]).v[0], atol=1e-12)


def test_identical_contexts_do_not_depend_on_the_belief(x64):
  P, r = _random_model(1, 1)
  P2, r2 = np.concatenate([P, P]), np.concatenate([r, r])
  plan = jax.jit(lh.plan_histories)
  v_a = plan(P2, r2, np.array([0.2, 0.8]), v_max=np.inf).value
  v_b = plan(P2, r2, np.array([0.9, 0.1]), v_max=np.inf).value
  np.testing.assert_allclose(v_a, v_b, atol=1e-12)
  np.testing.assert_allclose(v_a, value_iteration(P[0], r[0]).v[0], atol=1e-12)


def _two_paths_lmdp():
  """Context 0 walks s0 → s1 → s0, context 1 walks s0 → s2 → s0; at the last step (in s0 for both)
  action m pays 1 in context m. A Markov policy sees s0 at h = 2 and earns max(w); the history
  (through s1 or s2) reveals m and earns 1."""
  P = np.zeros((2, 3, 2, 3))
  P[0, 0, :, 1] = P[1, 0, :, 2] = 1.0
  P[:, 1, :, 0] = P[:, 2, :, 0] = 1.0
  r = np.zeros((2, 3, 3, 2))
  r[0, 2, 0, 0] = r[1, 2, 0, 1] = 1.0
  return lmdp.check_lmdp(P, r, np.array([0.4, 0.6]), np.array([1.0, 0.0, 0.0]))


def test_history_policy_beats_every_markov_policy(x64):
  env = _two_paths_lmdp()
  v_star, tree = jax.jit(lmdp.oracle)(env)
  assert float(lmdp.policy_value(env, tree.policy)) == pytest.approx(float(v_star), abs=1e-12)
  S, A, H = 3, 2, 3
  offsets = lmdp.layer_offsets(S, A, H)
  tables = np.asarray(list(itertools.product(range(A), repeat=S * H))).reshape(-1, H, S)  # (A^S)^H = 512
  flat = np.concatenate([tables[:, h][:, np.arange(offsets[h + 1] - offsets[h]) % S] for h in range(H)], 1)
  markov = jax.jit(jax.vmap(lmdp.policy_value, in_axes=(None, 0)))(env, jnp.asarray(flat))
  assert float(v_star) >= float(markov.max()) - 1e-12
  assert float(v_star) == pytest.approx(1.0) and float(markov.max()) == pytest.approx(0.6)


def test_history_masses_are_bayes_beliefs(x64):
  P, _ = _random_model(4, 2)
  w, rho = np.array([0.3, 0.7]), np.array([1.0, 0.0, 0.0])
  masses = lmdp.history_masses(jnp.asarray(P), jnp.asarray(w), jnp.asarray(rho), 3)
  s0, a0, s1, a1, s2 = 0, 1, 2, 0, 1  # x = ((s0·A + a0)·S + s1)·A + a1)·S + s2
  x = (((s0 * 2 + a0) * 3 + s1) * 2 + a1) * 3 + s2
  expected = w * P[:, s0, a0, s1] * P[:, s1, a1, s2]
  np.testing.assert_allclose(masses[2][x], expected, atol=1e-14)
  assert float(masses[2].sum()) == pytest.approx(2 * 2)  # Σ over (a0, a1) of probability-1 trees


def test_bonus_is_optimistic_and_truncated(x64):
  env = lmdp.random_lmdp(jax.random.PRNGKey(5), 2, 3, 2, 3, variant="noisy")
  cfg = lh.LmdpConfig(2, 3, 2, 3, 1000)

  @jax.jit
  def values(env, n):
    bonus = lh.bernstein_bonus(env.P, env.r, jnp.full((2, 3, 2), n), jnp.full((2, 3, 3, 2), n), cfg)
    tree = lh.plan_histories(env.P, env.r, env.w, rho=env.rho, bonus=bonus)
    return lmdp.oracle(env)[0], env.rho @ tree.value

  v_star, v_50 = values(env, 50.0)
  _, v_5000 = values(env, 5000.0)
  assert float(v_50) >= float(v_5000) >= float(v_star) - 1e-12  # optimistic, less so with more data
  assert float(v_50) <= 1.0 + 1e-12


def test_episode_counts_go_to_the_revealed_context(x64):
  cfg = lh.LmdpConfig(2, 3, 2, 2, 100)
  act, update = jax.jit(lh.act), jax.jit(lh.update)
  st = lh.init(cfg)
  assert bool(lh.should_switch(st))  # the first check plans
  st = jax.jit(lh.plan, static_argnums=1)(st, cfg)
  a0, _ = act(st, jnp.asarray(0))
  st = update(st, (0, a0, 0.0, 2, False, -1))
  assert float(st.trans.sum()) == 0 and int(st.h) == 1 and int(st.node) == (0 * 2 + int(a0)) * 3 + 2
  a1, _ = act(st, jnp.asarray(2))
  assert int(a1) == int(st.policy[lmdp.layer_offsets(3, 2, 2)[1] + st.node])
  st = update(st, (2, a1, 1.0, 1, True, 1))
  assert float(st.trans[1].sum()) == 2 and float(st.trans[0].sum()) == 0
  assert float(st.reward_sum[1, 1, 2, int(a1)]) == 1.0 and int(st.h) == 0


def test_bad_input_raises():
  with pytest.raises(ValueError, match="w"):
    lmdp.check_lmdp(np.full((2, 3, 2, 3), 1 / 3), np.zeros((2, 2, 3, 2)), np.array([0.5, 0.6]))
  with pytest.raises(ValueError, match="r"):
    lmdp.check_lmdp(np.full((2, 3, 2, 3), 1 / 3), np.zeros((2, 3, 2)), np.array([0.5, 0.5]))
  with pytest.raises(ValueError, match="variant"):
    lmdp.random_lmdp(jax.random.PRNGKey(0), 2, 3, 2, 3, variant="loud")
  with pytest.raises(ValueError, match="horizon"):
    lh.LmdpConfig(2, 3, 2, 12, 100)
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_regret_trends(smoke):
  results = smoke.results
  rows = {(r["H"], r["variant"]): r for r in smoke.summary["metrics"]["trends"]}
  H0, H1 = results["horizons"]
  for row in rows.values():  # sublinear, still pre-asymptotic at K = 4000 (full preset: ~0.5)
    assert 0.2 < row["slope"] < 0.9, row
  for H in (H0, H1):  # variance dependence: near-deterministic LMDPs have less regret
    assert rows[(H, "deterministic")]["ratio_to_noisy"] < 0.8
    assert rows[(H, "deterministic")]["var_star"] < rows[(H, "noisy")]["var_star"]
  for v in results["variants"]:  # horizon-free: a longer episode costs at most 1.5×
    assert rows[(H1, v)]["ratio_to_H0"] <= 1.5
  assert np.all(np.diff(results["regret"], axis=-1) >= -1e-9)  # V* − V^π ≥ 0 every episode
