"""DUMP (rljax.curricula.dump): the spec's §2.3 invariants, the ring buffer against a deque, and exact parity with
a NumPy port of the reference controller (ZhentingWang/DUMP, verl/utils/curriculum_learning.py; the port is
`experiments.dump.RefSampler`, which the experiment also replays on its training runs)."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import curricula
from rljax.curricula import dump
from experiments.dump import RefSampler  # the NumPy port of the reference controller
from rljax.losses import grpo_advantages


def _np_grpo(rewards):
  """GRPO advantages as verl computes them (Bessel std, ε = 1e-6), per row of `rewards` [B, G]."""
  mean, std = rewards.mean(1, keepdims=True), rewards.std(1, ddof=1, keepdims=True)
  return (rewards - mean) / (std + 1e-6)


@pytest.mark.parametrize("num_arms, prompts, group", [(6, 16, 8), (3, 64, 8)])  # the second overflows W per step
def test_probabilities_match_a_numpy_port_of_the_reference_controller(num_arms, prompts, group):
  rng = np.random.default_rng(num_arms)
  p_arm = rng.uniform(0.05, 0.95, num_arms)
  c = curricula.make("dump", num_arms)
  upd, probs = jax.jit(c.update), jax.jit(c.probs)
  state = c.init()
  ref = RefSampler(range(num_arms))
  worst = 0.0
  for _ in range(80):
    p_ref = np.array([ref.weights[s] for s in range(num_arms)])
    worst = max(worst, np.abs(np.asarray(probs(state)) - p_ref).max())
    arms = rng.choice(num_arms, size=prompts, p=p_ref)
    rewards = (rng.random((prompts, group)) < p_arm[arms, None]).astype(np.float32)
    adv = _np_grpo(rewards).astype(np.float32)  # both controllers see the same float32 values
    valid = rng.random(prompts) > 0.1            # dropped prompts never reach the reference
    src_r, src_a = {}, {}
    for b in np.flatnonzero(valid):               # the trainer's per-response loop, in batch order
      src_r.setdefault(int(arms[b]), []).extend(rewards[b].tolist())
      src_a.setdefault(int(arms[b]), []).extend(adv[b].astype(np.float64).tolist())
    ref.update_weights(src_r, src_a)
    state = upd(state, curricula.Feedback.of(arms, rewards, adv, valid=valid))
    np.testing.assert_array_equal(np.asarray(state["n"]), [ref.estimators[s].n_samples for s in range(num_arms)])
  p_ref = np.array([ref.weights[s] for s in range(num_arms)])
  worst = max(worst, np.abs(np.asarray(probs(state)) - p_ref).max())
  assert worst < 1e-6
  assert p_ref.max() - p_ref.min() > 0.05  # the comparison is not between two uniform vectors


def test_window_mean_equals_a_deque_reference_over_random_pushes():
  """L̂_j = mean |·| of the last min(W, total) values pushed to j, for random per-step multiplicities (up to
  2W values of one arm in one step), with invalid entries skipped."""
  k, w, m_max = 4, 7, 16
  rng = np.random.default_rng(0)
  push = jax.jit(dump.push)
  state = dump.init_state(k, w)
  refs = [collections.deque(maxlen=w) for _ in range(k)]
  pushed = 0
  while pushed < 10_000:
    m = int(rng.integers(1, m_max + 1))
    arms = np.full(m_max, rng.integers(k)) if rng.random() < 0.3 else rng.integers(0, k, m_max)
    vals = rng.normal(size=m_max).astype(np.float32)
    valid = (np.arange(m_max) < m) & (rng.random(m_max) < 0.9)
    state = push(state, arms, vals, valid)
    for a, v in zip(arms[valid], vals[valid]):
      refs[a].append(abs(float(v)))
    pushed += int(valid.sum())
    _, l_hat, _ = dump.scores(state, {"exploration": 1.0})
    want = [np.mean(r) if r else 0.0 for r in refs]
    np.testing.assert_allclose(np.asarray(l_hat), want, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(state["filled"]), [len(r) for r in refs])


def test_init_is_uniform_and_bonus_orders_arms():
  c = curricula.make("dump", 5)
  np.testing.assert_allclose(np.asarray(c.probs(c.init())), np.full(5, 0.2), atol=1e-7)
  # Equal L̂ (same window contents), different n: the less sampled arm has strictly larger probability.
  state = dump.init_state(5, 300)
  state = dump.push(state, jnp.repeat(jnp.arange(5), 4), jnp.tile(jnp.array([0.3, -0.7, 1.1, 0.0]), 5))
  state = {**state, "n": jnp.array([4, 40, 400, 4000, 40000], jnp.int32)}
  ucb, l_hat, bonus = dump.scores(state, c.config)
  np.testing.assert_allclose(np.asarray(l_hat), 0.525, rtol=1e-6)
  assert np.all(np.diff(np.asarray(c.probs(state))) < 0)
  assert np.all(np.diff(np.asarray(bonus)) < 0)  # decreasing in n_j ...
  more = {**state, "n": state["n"].at[4].add(10_000)}
  assert np.all(np.asarray(dump.scores(more, c.config)[2])[:4] > np.asarray(bonus)[:4])  # ... increasing in N
  np.testing.assert_allclose(np.asarray(ucb), np.asarray(l_hat + bonus), rtol=1e-6)


def test_update_counts_valid_responses_or_prompts_and_skips_invalid_prompts():
  arms = jnp.array([0, 0, 2, 1])
  adv = jnp.arange(12, dtype=jnp.float32).reshape(4, 3) - 6.0
  fb = curricula.Feedback.of(arms, jnp.zeros((4, 3)), adv, valid=jnp.array([True, True, False, True]))
  s_r = curricula.make("dump", 3).update(curricula.make("dump", 3).init(), fb)
  s_p = curricula.make("dump", 3, count_unit="prompts").update(curricula.make("dump", 3).init(), fb)
  np.testing.assert_array_equal(np.asarray(s_r["n"]), [6, 3, 0])
  np.testing.assert_array_equal(np.asarray(s_p["n"]), [2, 1, 0])
  np.testing.assert_array_equal(np.asarray(s_r["filled"]), [6, 3, 0])
  np.testing.assert_allclose(np.asarray(s_r["window"][0, :6]), np.abs(np.asarray(adv[:2]).reshape(-1)))
  assert int(s_r["step"]) == 1 and float(s_r["window"][2].sum()) == 0.0


def test_stationary_toy_prefers_the_p_half_arm_and_keeps_exploring():
  """K = 5 arms with fixed success probabilities, G = 8, 16 prompts per step, 300 steps, 16 seeds (vmapped)."""
  p = jnp.array([0.02, 0.2, 0.5, 0.8, 0.98])
  c = curricula.make("dump", 5)

  def step(state, key):
    k_arm, k_r = jax.random.split(key)
    arms = c.sample(state, k_arm, 16)
    r = (jax.random.uniform(k_r, (16, 8)) < p[arms, None]).astype(jnp.float32)
    adv = grpo_advantages(r.reshape(-1), group_size=8).reshape(16, 8)
    state = c.update(state, curricula.Feedback.of(arms, r, adv))
    return state, state["n"]

  run = jax.jit(jax.vmap(lambda key: jax.lax.scan(step, c.init(), jax.random.split(key, 300))[1]))
  n = np.asarray(run(jax.random.split(jax.random.PRNGKey(0), 16)))  # [seed, step, K]
  assert np.all(np.argmax(n[:, -1], axis=1) == 2)
  assert np.all(n[:, -1] > n[:, 149])  # every arm is still drawn in the second half
  assert np.all(n[:, -1].sum(1) == 300 * 16 * 8)


@pytest.mark.parametrize("opts, match", [({"window": 0}, "window"), ({"temperature": 0.0}, "temperature"),
                                         ({"count_unit": "tokens"}, "count_unit"), ({"exploration": -1.0},
                                                                                     "exploration")])
def test_bad_options_raise(opts, match):
  with pytest.raises(ValueError, match=match):
    curricula.make("dump", 4, **opts)


def test_bad_feedback_shapes_raise():
  with pytest.raises(ValueError, match="arm_ids"):
    dump.push(dump.init_state(2, 5), jnp.zeros((3,), jnp.int32), jnp.zeros((4,)))
  c = curricula.make("dump", 2)
  bad = curricula.Feedback(jnp.zeros((3,), jnp.int32), jnp.zeros((4, 2)), jnp.zeros((4, 2)), jnp.zeros((4, 2)),
                           jnp.ones((4,), bool))
  with pytest.raises(ValueError, match="Feedback"):
    c.update(c.init(), bad)


def test_uniform_with_pool_weights_is_proportional_to_pool_sizes():
  """`fixed.uniform(weights=...)`, the experiment's uniform-over-pool baseline: p ∝ weights over `arms`."""
  c = curricula.make("uniform", 4, weights=(3, 3, 1, 1))
  np.testing.assert_allclose(np.asarray(c.probs(c.init())), [0.375, 0.375, 0.125, 0.125], rtol=1e-6)
  c = curricula.make("uniform", 4, arms=(1, 2), weights=(3, 3, 1, 1))
  np.testing.assert_allclose(np.asarray(c.probs(c.init())), [0.0, 0.75, 0.25, 0.0], rtol=1e-6)
  for bad in ((1, 1, 1), (1, -1, 1, 1), (0, 0, 0, 0)):
    with pytest.raises(ValueError, match="weights"):
      curricula.make("uniform", 4, weights=bad)
