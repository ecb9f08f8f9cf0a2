"""Average-reward kernels, RiverSwim oracle and the LOOP reproduction (He, Zhong & Yang, ICLR 2024)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linprog

from configs.loop_amdp import get_config
from rljax.theory.envs import amdp
from rljax.theory.kernels import average_reward as ar
from rljax.theory.tabular import loop_amdp as la
from tests.helpers import assert_monotone, assert_smoke_claims


def _random_amdp(seed, S=4, A=2):
  rng = np.random.default_rng(seed)
  return rng.dirichlet(np.ones(S), size=(S, A)), rng.uniform(size=(S, A))


def test_optimistic_expectation_matches_lp(x64):
  rng = np.random.default_rng(0)
  S = 5
  for _ in range(4):
    p, v, d = rng.dirichlet(np.ones(S)), rng.normal(size=S), rng.uniform(0.05, 1.5)
    got = np.asarray(ar.optimistic_expectation(jnp.asarray(p), jnp.asarray(v), d))
    # LP over (p, u) with u ≥ |p − p̂|, Σu ≤ d, Σp = 1.
    eye, zero = np.eye(S), np.zeros((1, S))
    res = linprog(np.concatenate([-v, np.zeros(S)]),
                  A_ub=np.block([[eye, -eye], [-eye, -eye], [zero, np.ones((1, S))]]),
                  b_ub=np.concatenate([p, -p, [d]]), A_eq=np.concatenate([np.ones(S), np.zeros(S)])[None], b_eq=[1.0],
                  bounds=[(0, None)] * (2 * S))
    assert got @ v == pytest.approx(-res.fun, abs=1e-9)
    assert got.min() >= 0 and got.sum() == pytest.approx(1.0) and np.abs(got - p).sum() <= d + 1e-12


def test_rvi_gain_equals_best_stationary_gain(x64):
  """J* from relative value iteration = max over deterministic policies of μ_π·r_π (exact, stationary)."""
  P, r = _random_amdp(1)
  sol = ar.relative_value_iteration(P, r)
  gains = [float(ar.policy_gain(P, r, np.array(pi))) for pi in itertools.product(range(2), repeat=4)]
  assert float(sol.gain) == pytest.approx(max(gains), abs=1e-9)
  assert float(ar.policy_gain(P, r, sol.policy)) == pytest.approx(max(gains), abs=1e-9)
  # Bellman equation J + h = max_a [r + P h].
  np.testing.assert_allclose(sol.gain + sol.bias, (r + P @ np.asarray(sol.bias)).max(-1), atol=1e-8)


def test_evi_zero_radii_is_rvi_and_optimistic(x64):
  P, r = _random_amdp(2)
  rvi = ar.relative_value_iteration(P, r)
  evi = la.plan_evi(P, r, 0.0, tol=1e-10)
  assert float(evi[0]) == pytest.approx(float(rvi.gain), abs=1e-8)
  np.testing.assert_array_equal(evi[2], rvi.policy)
  gains = [float(la.plan_evi(P, r, d, 0.1 * d, tol=1e-10)[0]) for d in (0.05, 0.2, 0.8)]
  assert gains[0] >= float(rvi.gain) - 1e-9  # the true model is in the ball around P̂ = P
  assert_monotone(np.asarray(gains))  # larger sets, more optimism


def test_riverswim_oracle(x64):
  env = amdp.riverswim(6)
  orc = amdp.oracle(env)
  np.testing.assert_array_equal(orc.policy, np.ones(6))  # always swim right
  assert float(orc.gain) == pytest.approx(float(ar.policy_gain(env.P, env.r, jnp.ones(6, int))), abs=1e-9)
  assert float(ar.policy_gain(env.P, env.r, jnp.zeros(6, int))) == pytest.approx(0.005)
  s, _, rew, done, info = amdp.step(jax.random.PRNGKey(0), env, jnp.asarray(0), 0)
  assert int(s) == 0 and float(info["mean_reward"]) == pytest.approx(0.005) and not bool(done)


def test_bad_input_raises():
  with pytest.raises(ValueError, match="P"):
    ar.relative_value_iteration(np.ones((3, 2, 3)), np.zeros((3, 2)))
  with pytest.raises(ValueError, match="r"):
    ar.relative_value_iteration(np.full((3, 2, 3), 1 / 3), np.zeros((3, 3)))
  with pytest.raises(ValueError, match="radii"):
    ar.extended_value_iteration(np.full((3, 2, 3), 1 / 3), np.zeros((3, 2)), -1.0)
  with pytest.raises(ValueError, match="delta"):
    la.LoopConfig(3, 2, 100, delta=2.0)
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")


def test_switch_trigger_doubling(x64):
  cfg = la.LoopConfig(2, 1, 100)
  st = la.init(cfg)
  assert int(st.switches) == 1 and bool(la.should_switch(st)) is False
  st = la.update(st, (0, 0, 1.0, 1))
  assert bool(la.should_switch(st))  # first visit of an unseen pair: ν = 1 ≥ max(1, 0)
  st = la.plan(st, cfg)
  st = la.update(st, (0, 0, 1.0, 1))
  assert bool(la.should_switch(st))  # n: 1 → 2, doubled
  st = la.update(la.plan(st, cfg), (0, 0, 1.0, 1))
  assert not bool(la.should_switch(st))  # n: 2 → 3, not yet doubled


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_regret_and_switch_trends(smoke):
  results = smoke.results
  rows = {r["learner"]: r for r in smoke.summary["metrics"]["learners"]}
  # Upper-bound check: slope ≤ 0.5 + 0.1 for LOOP (sublinear), linear regret without optimism.
  assert rows["loop"]["slope"] <= 0.6 and rows["loop"]["slope_whole"] <= 0.6
  assert rows["certainty_equivalent"]["slope"] > 0.9
  assert rows["certainty_equivalent"]["regret_T"] > 4 * rows["loop"]["regret_T"]
  # O(SA log T) switches: the doubling bound holds at every checkpoint, and the count grows with T.
  t = results["t"]
  bound = results["n_states"] * results["n_actions"] * (np.log2(t) + 1)
  assert np.all(results["switches"] <= bound)
  assert_monotone(np.median(results["switches"][0], 0))
  assert rows["loop"]["switches_last_decade"] <= rows["loop"]["per_decade_bound"]
