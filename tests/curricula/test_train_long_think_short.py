"""Train Long, Think Short (spec §5.3): budget schedules, length rewards, the budget reward, the registered
"length_budget" curriculum and the strategy toy's plumbing."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import curricula
from rljax.curricula import length_budget as lb
from rljax.theory.curricula import strategy_toy


def _at(schedule, steps):
  return np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps)))


# ---- schedules -------------------------------------------------------------------------------------------------

def test_exponential_budget_is_floor_of_b0_gamma_k_on_each_interval():
  s = lb.exponential_budget(256, 0.7, 150)
  assert int(s(0)) == 256
  steps = np.arange(0, 1200)
  b = _at(s, steps)
  expected = np.floor(256 * 0.7 ** (steps // 150))  # float64 reference
  np.testing.assert_array_equal(b, np.maximum(1, expected))
  assert b[450] == b[599] == 87  # k = 3: 87.8 floored
  assert b.dtype == np.int32


def test_exponential_budget_non_increasing_and_floored_at_b_min():
  s = lb.exponential_budget(256, 0.5, 10, b_min=5)
  b = _at(s, np.arange(0, 400))
  assert np.all(np.diff(b) <= 0) and b.min() == 5 and b[0] == 256
  assert float(lb.exponential_budget(100, 0.5, 10, as_int=False)(10)) == pytest.approx(50.0)
  assert int(lb.exponential_budget(100, 0.5, 10)(10)) == 50  # an exact product is not lost to float rounding
  assert int(s(-7)) == 256


def test_stepwise_exponential_256_179_125_87_rounded():
  s = lb.stepwise_budget(256, 87, 3, 600, kind="exponential")
  b = _at(s, [0, 149, 150, 299, 300, 449, 450, 599, 600, 5000])
  np.testing.assert_array_equal(b, [256, 256, 179, 179, 125, 125, 87, 87, 87, 87])
  d = (87 / 256) ** (1 / 3)
  np.testing.assert_array_equal(np.unique(_at(s, np.arange(600)))[::-1], np.round(256 * d ** np.arange(4)))


def test_stepwise_one_decay_drops_at_half():
  b = _at(lb.stepwise_budget(256, 87, 1, 600), np.arange(600))
  assert np.all(b[:300] == 256) and np.all(b[300:] == 87)


def test_stepwise_decay_points_for_n_7():
  b = _at(lb.stepwise_budget(256, 87, 7, 600), np.arange(600))
  changes = np.flatnonzero(np.diff(b)) + 1
  np.testing.assert_array_equal(changes, 75 * np.arange(1, 8))


def test_linear_budget_equal_gaps_and_final_value():
  T = 600
  s = lb.linear_budget(256, 87, T, 3)
  assert int(s(T)) == 87 and int(s(0)) == 256
  levels = np.unique(_at(s, np.arange(T)))[::-1]
  assert len(levels) == 4
  assert np.ptp(np.diff(levels)) <= 1  # equal gaps up to rounding to integers
  exact = np.unique(_at(lb.stepwise_budget(256, 87, 3, T, kind="linear", as_int=False), np.arange(T)))[::-1]
  np.testing.assert_allclose(np.diff(exact), -(256 - 87) / 3, rtol=1e-5)


def test_linear_continuous_ramp():
  s = lb.stepwise_budget(256, 87, 3, 600, kind="linear_continuous", as_int=False)
  np.testing.assert_allclose(_at(s, [0, 300, 600, 900]), [256, 171.5, 87, 87], rtol=1e-6)


# ---- length rewards ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("B", [87.0, 100.0, 256.0])
def test_triangular_reward_values(B):
  L = jnp.asarray([0.0, B / 2, B, 1.5 * B, 2 * B, 3 * B])
  np.testing.assert_allclose(lb.length_reward(L, B, "triangular"), [0, 0.5, 1, 0.5, 0, 0], atol=1e-6)


def test_band_reward_values():
  B = 87.0
  np.testing.assert_allclose(lb.length_reward(jnp.linspace(0, B, 50), B, "band"), 1.0)
  np.testing.assert_allclose(lb.length_reward(jnp.asarray([1.5 * B, 2 * B, 4 * B]), B, "band"), [0.5, 0, 0],
                             atol=1e-6)


def test_budget_reward_maximum_only_at_correct_well_formed_on_budget():
  B, w = 100, (0.6, 0.3, 0.1)
  combos = list(itertools.product([False, True], [False, True], [False, True], [0, 50, 99, 100, 101, 150, 300]))
  correct, think, answer, L = (jnp.asarray(x) for x in zip(*combos))
  r, metrics = lb.budget_reward(correct, L, think, answer, B, weights=w)
  r = np.asarray(r)
  top = np.asarray(correct & think & answer & (L == B))
  assert np.all(r <= sum(w) + 1e-6)
  np.testing.assert_allclose(r[top], sum(w), rtol=1e-6)
  assert np.all(r[~top] < sum(w) - 1e-3)
  assert float(metrics["budget"]) == B and 0 <= float(metrics["over_budget"]) <= 1


def test_answer_only_format_gets_alpha_answer():
  r, _ = lb.budget_reward(jnp.asarray([False]), jnp.asarray([0]), jnp.asarray([False]), jnp.asarray([True]), 87,
                          weights=(0.0, 0.0, 1.0), fmt_alphas=(0.3, 0.7))
  np.testing.assert_allclose(r, [0.7])
  r, _ = lb.budget_reward(jnp.asarray([True]), jnp.asarray([43.5]), jnp.asarray([True]), jnp.asarray([False]), 87)
  np.testing.assert_allclose(r, [0.6 + 0.3 * 0.5 + 0.1 * 0.5], rtol=1e-6)


@pytest.mark.parametrize("call, match", [
    (lambda: lb.stepwise_budget(kind="cosine"), "kind"),
    (lambda: lb.stepwise_budget(87, 256), "b_final"),
    (lambda: lb.stepwise_budget(n_decays=3, total_steps=3), "total_steps"),
    (lambda: lb.exponential_budget(gamma=1.5), "gamma"),
    (lambda: lb.length_reward(jnp.ones(3), 10, "cosine"), "shape"),
    (lambda: lb.budget_reward(jnp.ones(3, bool), jnp.ones(2), jnp.ones(3, bool), jnp.ones(3, bool), 10), "length"),
    (lambda: lb.budget_reward(jnp.ones(3, bool), jnp.ones(3), jnp.ones(3, bool), jnp.ones(3, bool), 10,
                              weights=(0.5, 0.5)), "weights"),
])
def test_bad_input_is_rejected(call, match):
  with pytest.raises(ValueError, match=match):
    call()


# ---- the curriculum ---------------------------------------------------------------------------------------------

def test_registered_curriculum_is_uniform_and_shapes_with_the_budget_at_its_step():
  c = curricula.make({"name": "length_budget", "total_steps": 8, "n_decays": 3, "weights": (0.5, 0.4, 0.1)}, 4,
                     arms=(1, 3))
  state = c.init()
  np.testing.assert_allclose(c.probs(state), [0, 0.5, 0, 0.5])
  rewards = jnp.asarray([1.0, 0.0, 0.5, 1.0])
  lengths = jnp.asarray([256.0, 256.0, 128.0, 87.0])
  ok = jnp.asarray([True, True, False, True])
  fb = curricula.Feedback.of(jnp.zeros(2, jnp.int32), jnp.ones((2, 2)))
  shaped = jax.jit(c.shape_rewards)
  for t, budget in [(0, 256), (2, 179), (4, 125), (6, 87), (7, 87)]:
    s = {**state, "step": jnp.asarray(t, jnp.int32)}
    expected, _ = lb.budget_reward(rewards > 0, lengths, ok, ok, budget, weights=(0.5, 0.4, 0.1))
    np.testing.assert_allclose(shaped(s, rewards, lengths, ok), expected, rtol=1e-6)
  all_ok, _ = lb.budget_reward(rewards > 0, lengths, jnp.ones(4, bool), jnp.ones(4, bool), 256, weights=(0.5, 0.4, 0.1))
  np.testing.assert_allclose(c.shape_rewards(state, rewards, lengths, None), all_ok, rtol=1e-6)
  assert int(c.update(state, fb)["step"]) == 1
  with pytest.raises(ValueError, match="rewards"):
    c.shape_rewards(state, rewards.reshape(2, 2), lengths.reshape(2, 2))
  with pytest.raises(ValueError, match="shape"):
    curricula.make("length_budget", 2, shape="square")


# ---- the strategy toy -------------------------------------------------------------------------------------------

def test_strategy_toy_runs_and_records_exact_quantities():
  cfg = strategy_toy.toy_config(prompts=8, steps=30, lr_logits=0.5)
  wide = lb.length_budget(1, b0=256, b_final=256, total_steps=30)  # a fixed, generous budget
  rec = strategy_toy.run_seeds(cfg, wide, 4, [(-1.0, 1.0, 3.0), (-1.0, 1.0, 5.0)])
  assert rec["accuracy"].shape == (2, 4, 30) and rec["pi"].shape == (2, 4, 30, 3)
  mu = np.asarray(cfg.think_lengths)
  np.testing.assert_allclose(rec["length"], (rec["pi"] * mu).sum(-1), rtol=1e-5)
  h = np.asarray([[-1, 1, 3], [-1, 1, 5]], float)[:, None, None, :]
  sig = 1 / (1 + np.exp(-(rec["theta"][..., None] - h)))
  np.testing.assert_allclose(rec["accuracy"], (rec["pi"] * sig).sum(-1), rtol=1e-5)
  # Under a 256 budget the long strategy pays most (length and correctness): its mass and θ grow.
  assert np.all(rec["pi"][:, :, -1, 0].mean(1) > 0.5) and np.all(rec["theta"][:, :, -1] > 0)


def test_strategy_toy_rejects_a_curriculum_without_reward_shaping_and_bad_hardness():
  cfg = strategy_toy.toy_config(steps=2)
  with pytest.raises(ValueError, match="shape_rewards"):
    strategy_toy.make_train(cfg, curricula.make("uniform", 1))
  train = strategy_toy.make_train(cfg, lb.length_budget(1, total_steps=2, n_decays=1))
  with pytest.raises(ValueError, match="hardness"):
    train(jax.random.PRNGKey(0), jnp.zeros(2))
