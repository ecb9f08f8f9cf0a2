import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses.pf_ppo import (
    STRATEGIES,
    choose_filter,
    filter_weights,
    pf_ppo_filter,
    pf_ppo_resample,
    pf_ppo_resample_weights,
    r2_score,
)
from rljax.losses.policy_gradient import ppo_clip_loss

KEY = jax.random.PRNGKey(0)
_filter = jax.jit(pf_ppo_filter, static_argnames="strategy")
_r2 = jax.jit(r2_score)


def _rewards(G=6, N=5, seed=0):
  return np.random.default_rng(seed).normal(size=(G, N)).astype(np.float32)


@pytest.mark.parametrize("strategy, count", [("none", 5), ("bon", 1), ("best_random", 2), ("best_worst", 2)])
def test_keeps_the_specified_count(strategy, count):
  r = _rewards()
  keep = np.asarray(_filter(r, KEY, strategy=strategy))
  np.testing.assert_array_equal(keep.sum(1), count)
  if strategy != "none":
    assert np.all(keep[np.arange(len(r)), r.argmax(1)])  # the best is always kept
  if strategy == "best_worst":
    assert np.all(keep[np.arange(len(r)), r.argmin(1)])


def test_best_worst_with_two_is_none():
  r = _rewards(N=2)
  np.testing.assert_array_equal(_filter(r, strategy="best_worst"), _filter(r, strategy="none"))


def test_ties_go_to_lowest_index():
  r = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 2.0, -1.0, 2.0], [3.0, -1.0, 0.0, -1.0]], np.float32)
  np.testing.assert_array_equal(
      _filter(r, strategy="bon"), [[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]]
  )
  np.testing.assert_array_equal(
      _filter(r, strategy="best_worst"), [[1, 1, 0, 0], [0, 1, 1, 0], [1, 1, 0, 0]]
  )


def test_best_random_other_is_uniform_and_key_dependent():
  r = np.array([[0.1, 0.9, -0.3, 0.4, 0.0]], np.float32)
  keys = jax.random.split(KEY, 4000)
  keeps = np.asarray(jax.jit(jax.vmap(lambda k: pf_ppo_filter(r, k, strategy="best_random")))(keys))[:, 0]
  assert np.all(keeps[:, 1]) and np.all(keeps.sum(1) == 2)
  freq = keeps[:, [0, 2, 3, 4]].mean(0)
  np.testing.assert_allclose(freq, 0.25, atol=0.03)


def test_valid_mask_is_respected():
  r = _rewards(G=4, N=5, seed=1)
  valid = np.array([[1, 1, 1, 1, 1], [0, 1, 0, 1, 1], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]], bool)
  r[~valid] = 100.0  # an invalid entry must not win even with the largest reward
  for strategy, count in [("none", 5), ("bon", 1), ("best_random", 2), ("best_worst", 2)]:
    keep = np.asarray(_filter(r, KEY, strategy=strategy, valid=valid))
    assert not np.any(keep & ~valid)
    np.testing.assert_array_equal(keep.sum(1), np.minimum(count, valid.sum(1)))


def test_filter_weights_normalise_per_group():
  keep = np.array([[1, 0, 1, 1], [0, 0, 0, 0], [0, 1, 0, 0]], bool)
  np.testing.assert_allclose(
      filter_weights(keep), [[1 / 3, 0, 1 / 3, 1 / 3], [0, 0, 0, 0], [0, 1, 0, 0]], rtol=1e-6
  )


def test_filtered_rows_get_zero_policy_gradient():
  G, N, T = 3, 4, 5
  r = _rewards(G, N, seed=2)
  keep = np.asarray(_filter(r, strategy="best_worst")).reshape(-1)
  rng = np.random.default_rng(3)
  logp = jnp.asarray(-rng.uniform(0.1, 2, (G * N, T)), jnp.float32)
  adv = jnp.asarray(rng.normal(size=(G * N,)), jnp.float32)
  mask = jnp.ones((G * N, T), bool) & jnp.asarray(keep)[:, None]
  g = jax.jit(jax.grad(lambda lp: ppo_clip_loss(lp, lp + 0.05, adv, mask)[0]))(logp)
  np.testing.assert_array_equal(np.asarray(g)[~keep], 0.0)
  assert np.all(np.asarray(g)[keep] != 0)


def test_resample_weights_follow_verl():
  r = np.array([-2.0, 0.5, 3.0, 1.0, -2.0], np.float32)
  np.testing.assert_allclose(pf_ppo_resample_weights(r, method="pow"), r**2, rtol=1e-6)
  np.testing.assert_allclose(pf_ppo_resample_weights(r, method="pow", power=1.0), np.abs(r), rtol=1e-6)
  np.testing.assert_array_equal(pf_ppo_resample_weights(r, method="max_min"), [1, 0, 1, 0, 1])
  np.testing.assert_allclose(pf_ppo_resample_weights(r, method="max_random"), [0.1, 0.1, 0.4, 0.1, 0.1])


def test_resample_draws_in_proportion():
  r = np.array([-2.0, 0.5, 3.0, 1.0, 0.0], np.float32)
  keys = jax.random.split(KEY, 2000)
  draw = jax.jit(lambda: (jax.vmap(lambda k: pf_ppo_resample(r, k, method="pow"))(keys),
                          jax.vmap(lambda k: pf_ppo_resample(r, k, method="max_min"))(keys)))
  pow_idx, max_min_idx = map(np.asarray, draw())
  assert pow_idx.dtype == np.int32 and pow_idx.shape == (2000, 5)
  assert set(np.unique(max_min_idx)) == {0, 2}  # only the batch max and min (ties included)
  counts = np.bincount(pow_idx.ravel(), minlength=5)
  np.testing.assert_allclose(counts / counts.sum(), r**2 / np.sum(r**2), atol=0.02)


def test_r2_score_properties():
  rng = np.random.default_rng(4)
  x = rng.normal(size=400).astype(np.float32)
  np.testing.assert_allclose(_r2(x, 3 * x - 1), 1.0, rtol=1e-5)
  y = (0.5 * x + rng.normal(size=400)).astype(np.float32)
  slope, icpt = np.polyfit(x.astype(np.float64), y, 1)
  expected = 1 - np.sum((y - slope * x - icpt) ** 2) / np.sum((y - y.mean()) ** 2)
  np.testing.assert_allclose(_r2(x, y), expected, rtol=1e-4)
  np.testing.assert_allclose(_r2(-2.5 * x + 7, y), _r2(x, y), rtol=1e-4)  # affine invariance in x
  assert float(_r2(x, rng.normal(size=400).astype(np.float32))) < 0.02  # independent data
  valid = rng.random(400) < 0.5
  np.testing.assert_allclose(_r2(x, y, valid), _r2(x[valid], y[valid]), rtol=1e-4)
  assert float(_r2(x, np.ones_like(x))) == 0.0 and float(_r2(np.ones_like(x), y)) == 0.0


def test_choose_filter_matches_r2_of_kept_samples():
  rng = np.random.default_rng(5)
  s = rng.random((40, 8)).astype(np.float32)
  # heteroscedastic proxy reward: reliable at the extremes of s, noisy in the middle
  r = (s + rng.normal(size=s.shape) * 0.8 * 4 * s * (1 - s)).astype(np.float32)
  out = jax.jit(choose_filter)(r, s, KEY)
  assert set(out) == set(STRATEGIES)
  keep = np.asarray(_filter(r, strategy="best_worst")).ravel()
  np.testing.assert_allclose(out["best_worst"], _r2(r.ravel(), s.ravel(), keep), rtol=1e-6)
  np.testing.assert_allclose(out["none"], _r2(r.ravel(), s.ravel()), rtol=1e-6)
  assert all(0.0 <= float(v) <= 1.0 for v in out.values())


@pytest.mark.parametrize("strategy", ["best_random", "best_worst"])
def test_jit_matches_eager(strategy, maybe_jit):
  r = _rewards(G=2, N=4, seed=6)
  f = maybe_jit(functools.partial(pf_ppo_filter, strategy=strategy))
  np.testing.assert_array_equal(f(r, KEY), _filter(r, KEY, strategy=strategy))


def test_bad_inputs_raise():
  r = _rewards()
  with pytest.raises(ValueError, match="strategy"):
    pf_ppo_filter(r, KEY, strategy="top2")
  with pytest.raises(ValueError, match="key"):
    pf_ppo_filter(r, strategy="best_random")
  with pytest.raises(ValueError, match="rewards"):
    pf_ppo_filter(r[0], strategy="bon")
  with pytest.raises(ValueError, match="valid"):
    pf_ppo_filter(r, strategy="bon", valid=np.ones((6, 4), bool))
  with pytest.raises(ValueError, match="method"):
    pf_ppo_resample(r[0], KEY, method="softmax")
  with pytest.raises(ValueError, match="power"):
    pf_ppo_resample_weights(r[0], power=-1.0)
  with pytest.raises(ValueError, match="y"):
    r2_score(r[0], r[0, :3])
  with pytest.raises(ValueError, match="strategies"):
    choose_filter(r, r, KEY, strategies=())
