"""Demonstration-regularised RL (Tiapkin et al., ICLR 2024): BC, the online learners, the BT reward
MLE, and the reproduction at smoke size (episodes-to-ε ∝ 1/N^E), run through its notebook."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.demo_regularized_rl import get_config
from rljax.theory.tabular import demo_regularized_rl as tm
from rljax.theory.kernels import vi
from tests.helpers import assert_monotone, assert_slope, assert_smoke_claims

S, A, H = 4, 3, 3


@pytest.fixture(scope="module")
def world():
  with jax.enable_x64(True):
    mdp = tm.random_mdp(jax.random.PRNGKey(0), S, A, H)
    opt = vi.value_iteration(mdp.P, mdp.r)
    expert = vi.deterministic_log_policy(opt.policy, A)
    demos = jax.jit(tm.sample_trajectories, static_argnums=3)(jax.random.PRNGKey(1), mdp, expert, 4096)
    counts = jax.vmap(lambda t: tm.visit_counts(t, S, A))(demos)  # [n, H, S, A]
  return mdp, opt, expert, counts


def test_env_reset_step_follow_the_model(x64, world):
  mdp, _, expert, counts = world
  state, obs = tm.reset(jax.random.PRNGKey(2), mdp)
  assert int(obs) == 0 and int(state.h) == 0  # s0 = δ_0
  keys = jax.random.split(jax.random.PRNGKey(3), 4000)
  nxt = jax.vmap(lambda k: tm.step(k, mdp, state, 1)[1])(keys)
  np.testing.assert_allclose(np.bincount(np.asarray(nxt), minlength=S) / 4000, mdp.P[0, 1], atol=0.03)
  _, _, reward, done, _ = tm.step(keys[0], mdp, tm.EnvState(jnp.asarray(2), jnp.asarray(H - 1)), 0)
  assert bool(done) and float(reward) == float(mdp.r[H - 1, 2, 0])
  assert counts.sum((2, 3)).min() == 1  # one visit per step per trajectory


def test_behavior_cloning_closed_form_and_convergence(x64, world):
  mdp, opt, expert, counts = world
  n = counts[:10].sum(0)
  log_bc = tm.behavior_cloning(n, kappa=0.5)
  np.testing.assert_allclose(jnp.exp(log_bc).sum(-1), 1.0, atol=1e-12)
  np.testing.assert_allclose(jnp.exp(log_bc), (n + 0.5) / (n.sum(-1, keepdims=True) + 1.5), atol=1e-12)
  freq = tm.behavior_cloning(n, kappa=0.0)
  seen = n.sum(-1) > 0
  np.testing.assert_allclose(jnp.exp(freq)[seen], (n / n.sum(-1, keepdims=True))[seen], atol=1e-12)
  np.testing.assert_allclose(jnp.exp(freq)[~seen], 1.0 / A, atol=1e-12)  # unvisited: uniform
  # BC → expert: trajectory KL(π^E ‖ π^BC) = E_{π^E} Σ_h −log π^BC_h(a*_h|s_h) falls like 1/N^E
  sizes = np.array([16, 64, 256, 1024, 4096])
  occ_e = counts.mean(0)  # expert occupancy (Monte Carlo over 4096 demos)
  bcs = jnp.stack([tm.behavior_cloning(counts[:k].sum(0)) for k in sizes])
  kl = -(occ_e * bcs).sum((1, 2, 3))
  assert_slope(sizes, np.asarray(kl), -1.0, 0.15, last_decades=None)
  gaps = np.asarray(jax.jit(jax.vmap(lambda lp: tm.optimal_value(mdp) - tm.policy_return(mdp, lp)))(bcs))
  assert_monotone(gaps, increasing=False)
  assert gaps[-1] < 0.05 * gaps[0]


def test_hoeffding_bonus_shrinks_as_inverse_sqrt():
  n = np.array([1.0, 4.0, 16.0, 64.0])
  b = np.asarray(tm.hoeffding_bonus(n, 5, 0.2))
  np.testing.assert_allclose(b * np.sqrt(n), 0.2 * 5)
  assert float(tm.hoeffding_bonus(0.0, 5, 0.2)) == pytest.approx(1.0)  # unvisited: the n = 1 value


def test_episodes_to_epsilon():
  gaps = jnp.array([[3.0, 2.0, 0.5, 1.5, 0.5, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [2.0] * 6])
  np.testing.assert_array_equal(tm.episodes_to_epsilon(gaps, 1.0), [4, 0, 6])


def test_bt_reward_mle_recovers_return_differences(x64, world):
  mdp, _, _, _ = world
  log_unif = jnp.full((H, S, A), -jnp.log(A))
  fa, fb, o = jax.jit(tm.sample_preferences, static_argnums=3)(jax.random.PRNGKey(5), mdp, log_unif, 3000)
  theta = tm.bt_reward_mle(fa, fb, o, lam=1e-3)
  dphi = np.asarray(fa - fb)
  true, est = dphi @ np.asarray(mdp.r).ravel(), dphi @ np.asarray(theta)
  assert np.corrcoef(true, est)[0, 1] > 0.9
  assert 0.7 < np.polyfit(true, est, 1)[0] < 1.3  # BT scale is identified
  with pytest.raises(ValueError, match="features"):
    tm.bt_reward_mle(fa, fb[:10], o, lam=1.0)


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="kappa"):
    tm.behavior_cloning(jnp.ones((2, 2, 2)), kappa=-1.0)
  with pytest.raises(ValueError, match="counts"):
    tm.behavior_cloning(jnp.ones((2, 2)))
  with pytest.raises(ValueError, match="concentration"):
    tm.random_mdp(jax.random.PRNGKey(0), 2, 2, 2, concentration=0.0)
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_episodes_fall_like_one_over_demos(smoke):
  res = smoke.results
  n = res["n_demos"]
  # one episode is the resolution of episodes-to-ε: seeds already ε-optimal before any episode count as 1
  fit = assert_slope(n, np.maximum(res["episodes_demo"], 1), -1.0, 0.6, last_decades=res["fit_decades"])
  assert fit.ci_high < 0  # decreasing, not flat
  assert np.median(res["final_gap"]) < np.median(res["eps"])  # the learner does reach ε-optimality
  med = np.median(res["episodes_demo"], 0)
  assert np.all(med <= np.median(res["episodes_ucbvi"]))  # demonstrations never hurt; UCBVI is flat in N^E
  assert_monotone(np.median(res["bc_gap"], 0), increasing=False)  # pure BC's plateau shrinks with N^E
  assert np.all(np.median(res["bc_gap"] / res["eps"][:, None], 0)[:-1] > 1)  # ... but BC alone is not ε-optimal
  # RLHF variant: regularised planning beats greedy planning on the same BT reward, and improves with m
  reg, greedy = np.median(res["rlhf_gap_reg"], 0), np.median(res["rlhf_gap_greedy"], 0)
  assert np.all(reg < greedy) and reg[-1] < reg[0]
