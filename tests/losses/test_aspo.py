import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses.advantages import grpo_advantages
from rljax.losses.aspo import aspo_advantages, first_tool_call_position, reward_shaping_baseline

# One compiled program per shape is much cheaper on CPU than compiling every eager op.
_aspo = jax.jit(aspo_advantages)


def _random_groups(seed, G=300, n=8):
  rng = np.random.default_rng(seed)
  correct = rng.random((G, n)) < rng.uniform(0.1, 0.9, (G, 1))
  r = correct.astype(np.float64)
  base = (r - r.mean(1, keepdims=True)) / (r.std(1, ddof=1, keepdims=True) + 1e-6)  # GRPO, in numpy
  feature = rng.random((G, n)).astype(np.float32)
  valid = rng.random((G, n)) < 0.7
  return base.astype(np.float32), correct, feature, valid


@pytest.mark.parametrize("delta, k", [(1.0, 0.5), (5.0, 0.9), (0.3, 0.2)])
def test_design_guarantees_on_random_groups(delta, k):
  base, correct, feature, valid = _random_groups(int(delta * 10))
  shaped = np.asarray(_aspo(base, correct, feature, valid, delta=delta, k=k))
  assert np.all(np.sign(shaped) == np.sign(base))
  assert np.all(np.abs(shaped - base) <= k * np.abs(base) + 1e-6)
  np.testing.assert_array_equal(shaped[~correct], base[~correct])
  np.testing.assert_array_equal(shaped[~valid], base[~valid])
  # correctness ordering within mixed groups: every correct keeps ≥ (1 − k)A > 0 > every incorrect
  mixed = correct.any(1) & ~correct.all(1)
  assert np.all(shaped[mixed][correct[mixed]] >= (1 - k) * base[mixed][correct[mixed]] - 1e-6)
  lo_correct = np.where(correct, shaped, np.inf).min(1)[mixed]
  hi_wrong = np.where(~correct, shaped, -np.inf).max(1)[mixed]
  assert np.all(lo_correct > 0) and np.all(hi_wrong < 0)
  # the tilt is real: some correct tool-using responses move
  assert np.any(shaped[correct & valid] != base[correct & valid])


def test_k_zero_is_identity():
  base, correct, feature, valid = _random_groups(3)
  np.testing.assert_array_equal(_aspo(base, correct, feature, valid, k=0.0), base)


def test_hand_computed_tilt():
  base = np.array([[1.0, 1.0, 1.0, -1.0]], np.float32)
  correct = np.array([[True, True, True, False]])
  feature = np.array([[0.1, 0.5, 0.9, 0.0]], np.float32)
  valid = np.ones((1, 4), bool)
  z = 0.4 / np.sqrt(2 * 0.4**2 / 3)  # population std over the three correct responses
  out = _aspo(base, correct, feature, valid, delta=0.2, k=0.5, eps=1e-12)
  np.testing.assert_allclose(out, [[1 + 0.2 * z, 1.0, 1 - 0.2 * z, -1.0]], rtol=1e-5)
  out = _aspo(base, correct, feature, valid, delta=1.0, k=0.5)
  np.testing.assert_allclose(out, [[1.5, 1.0, 0.5, -1.0]], rtol=1e-6)  # clipped at ±k·A


def test_single_valid_response_gets_no_tilt():
  base = np.array([[0.8, 0.8, -1.2]], np.float32)
  out = _aspo(
      base, np.array([[True, True, False]]), np.array([[0.3, 0.9, 0.1]]), np.array([[True, False, True]])
  )
  np.testing.assert_array_equal(out, base)


def test_counter_example_naive_reward_shaping_vs_aspo():
  n = 6
  position = jnp.linspace(0.05, 0.95, n)  # every response correct, distinct first-call positions
  correct = jnp.ones((n,), bool)
  naive = grpo_advantages(reward_shaping_baseline(jnp.ones(n), 1.0 - position, lam=0.1), group_size=n)
  assert np.any(np.asarray(naive) < -0.5)  # correct responses pushed down by ±1-sized advantages
  base = grpo_advantages(jnp.ones(n), group_size=n)
  shaped = _aspo(base[None], correct[None], position[None], correct[None])
  assert not np.any(np.asarray(shaped) < 0)


def test_first_tool_call_position():
  CALL = 7
  tokens = jnp.array([
      [1, 2, 3, 7, 9, 9, 4, 5],   # prompt 0..1, call at 3, tool output 4..5
      [1, 7, 3, 3, 3, 0, 0, 0],   # call inside the prompt is ignored; no call in the response
      [1, 3, 3, 3, 7, 0, 0, 0],
      [0, 0, 0, 0, 0, 0, 0, 0],   # empty response
  ])
  mask = jnp.array([
      [0, 0, 1, 1, 0, 0, 1, 1],
      [0, 0, 1, 1, 1, 0, 0, 0],
      [0, 1, 1, 1, 1, 0, 0, 0],
      [0, 0, 0, 0, 0, 0, 0, 0],
  ], bool)
  pos, has = first_tool_call_position(tokens, mask, tool_open_id=CALL, normalize=False)
  np.testing.assert_array_equal(has, [True, False, True, False])
  np.testing.assert_array_equal(pos, [1, 0, 3, 0])
  pos, _ = first_tool_call_position(tokens, mask, tool_open_id=CALL)
  np.testing.assert_allclose(pos, [1 / 4, 0, 3 / 4, 0])


def test_jit_matches_eager(maybe_jit):
  base, correct, feature, valid = _random_groups(5, G=4)
  f = maybe_jit(functools.partial(aspo_advantages, delta=1.0, k=0.5))
  np.testing.assert_allclose(f(base, correct, feature, valid), aspo_advantages(base, correct, feature, valid), rtol=1e-6)


def test_no_valid_feature_is_identity_and_finite():
  base, correct, feature, _ = _random_groups(6, G=3)
  out = _aspo(base, correct, feature, np.zeros_like(correct))
  np.testing.assert_array_equal(out, base)


def test_bad_inputs_raise():
  base, correct, feature, valid = _random_groups(7, G=2)
  with pytest.raises(ValueError, match="`k`"):
    aspo_advantages(base, correct, feature, valid, k=1.0)
  with pytest.raises(ValueError, match="delta"):
    aspo_advantages(base, correct, feature, valid, delta=-1.0)
  with pytest.raises(ValueError, match="eps"):
    aspo_advantages(base, correct, feature, valid, eps=0.0)
  with pytest.raises(ValueError, match="feature"):
    aspo_advantages(base, correct, feature[:, :3], valid)
  with pytest.raises(ValueError, match="mask"):
    first_tool_call_position(jnp.zeros((2, 3), int), jnp.zeros((2, 4), bool), tool_open_id=1)
  with pytest.raises(ValueError, match="bonus"):
    reward_shaping_baseline(jnp.zeros(3), jnp.zeros(4), lam=0.1)
