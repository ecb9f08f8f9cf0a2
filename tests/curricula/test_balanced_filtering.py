"""Balanced online difficulty filtering (rljax.curricula.difficulty): the filter, the tilt-KL identities, the curriculum
(registered as "balanced")."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import curricula
from rljax.curricula import difficulty as df
from rljax.losses import grpo_advantages


def _groups(key, b=512, g=8):
  """Binary reward groups with every count k ∈ {0..G} well represented (per-group success rates uniform)."""
  k1, k2 = jax.random.split(key)
  p = jax.random.uniform(k1, (b, 1))
  p = jnp.where(jnp.arange(b)[:, None] % 4 == 0, jnp.round(p), p)  # a quarter of the groups all-0 / all-1
  return (jax.random.uniform(k2, (b, g)) < p).astype(jnp.float32)


def test_pass_rate_threshold_and_mask():
  r = jnp.array([[1.0, 0.0, 0.7, 0.2], [0.0, 0.0, 0.0, 1.0]])
  np.testing.assert_allclose(df.pass_rate(r), [0.5, 0.25])
  np.testing.assert_allclose(df.pass_rate(r, threshold=0.1), [0.75, 0.25])
  mask = jnp.array([[True, True, False, False], [False, False, False, False]])
  np.testing.assert_allclose(df.pass_rate(r, mask), [0.5, 0.0])  # no valid response -> 0


def test_default_keeps_exactly_nonzero_advantage_groups():
  r = _groups(jax.random.PRNGKey(0))
  keep, m = df.balanced_filter(r)
  p = np.asarray(r).mean(1)
  np.testing.assert_array_equal(keep, (p > 0) & (p < 1))
  adv = np.asarray(grpo_advantages(r.reshape(-1), group_size=r.shape[1])).reshape(r.shape)
  nonzero = np.any(adv != 0, axis=1)
  np.testing.assert_array_equal(keep, nonzero)  # the kept groups are exactly those with a gradient
  assert 0 < m["frac_kept"] < 1 and m["frac_all_correct"] > 0 and m["frac_all_wrong"] > 0
  np.testing.assert_allclose(m["frac_kept"] + m["frac_all_correct"] + m["frac_all_wrong"], 1.0, atol=1e-6)


@pytest.mark.parametrize("low, high, inclusive, rule", [
    (0.0, 1.0, (True, True), lambda p: np.ones_like(p, bool)),
    (0.0, 1.0, (True, False), lambda p: p < 1),  # drop too easy only
    (0.0, 1.0, (False, True), lambda p: p > 0),  # drop too hard only
    (0.25, 0.75, (True, True), lambda p: (p >= 0.25) & (p <= 0.75)),
    (0.25, 0.75, (False, False), lambda p: (p > 0.25) & (p < 0.75)),
    (0.5, 0.5, (True, True), lambda p: p == 0.5),
])
def test_band_bounds(low, high, inclusive, rule):
  r = _groups(jax.random.PRNGKey(1))
  keep, m = jax.jit(lambda r: df.balanced_filter(r, low=low, high=high, inclusive=inclusive))(r)
  want = rule(np.asarray(r).mean(1))
  np.testing.assert_array_equal(keep, want)
  np.testing.assert_allclose(m["frac_kept"], want.mean(), atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"low": 0.8, "high": 0.2}, "low <= high"),
    ({"low": -0.1}, "low <= high"),
    ({"low": 0.5, "high": 0.5}, "empty"),
    ({"inclusive": (True,)}, "pair of bools"),
])
def test_bad_band_raises(kwargs, match):
  with pytest.raises(ValueError, match=match):
    df.balanced_filter(jnp.zeros((2, 4)), **kwargs)
  with pytest.raises(ValueError, match=match):
    curricula.make("balanced", 3, **kwargs)


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match=r"f\[B, G\]"):
    df.balanced_filter(jnp.zeros(8))
  with pytest.raises(ValueError, match="mask"):
    df.pass_rate(jnp.zeros((2, 4)), jnp.ones((2, 3), bool))


def test_kl_matches_direct_computation(x64):
  """The closed form q·λ − log Z equals KL(π*‖π_0) computed directly over an explicit response distribution
  (random π_0 over 40 responses, random binary rewards), and the two-point Bernoulli KL."""
  rng = np.random.default_rng(0)
  for _ in range(20):
    pi0 = rng.dirichlet(np.ones(40))
    r = (rng.random(40) < rng.random()).astype(float)
    r[0], r[1] = 0.0, 1.0  # both reward classes present
    lam = rng.uniform(0.01, 5.0)
    tilt = pi0 * np.exp(lam * r)
    pistar = tilt / tilt.sum()
    direct = np.sum(pistar * np.log(pistar / pi0))
    p = pi0[r == 1].sum()
    q = pistar[r == 1].sum()
    two_point = q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p))
    got = float(df.kl_tilted_binary(jnp.float64(p), jnp.float64(lam)))
    assert abs(got - direct) < 1e-10 and abs(got - two_point) < 1e-10
  np.testing.assert_array_equal(df.kl_tilted_binary(jnp.array([0.0, 1.0, 0.3]), jnp.array([2.0, 2.0, 0.0])), 0.0)


def test_kl_second_order_and_pinsker(x64):
  p = jnp.linspace(0.005, 0.995, 200)
  small = df.kl_tilted_binary(p, 0.01)
  np.testing.assert_array_less(jnp.abs(df.kl_second_order(p, 0.01) / small - 1.0), 0.01)
  # the relative error of the expansion is O(λ): at λ = 0.5 it exceeds 1% somewhere
  assert float(jnp.max(jnp.abs(df.kl_second_order(p, 0.5) / df.kl_tilted_binary(p, 0.5) - 1.0))) > 0.01
  pp, lam = jnp.meshgrid(jnp.linspace(0.0, 1.0, 200), jnp.geomspace(1e-3, 20.0, 50), indexing="ij")
  exact = df.kl_tilted_binary(pp, lam)
  bound = df.kl_lower_bound_pinsker(pp, lam)
  assert bool(jnp.all(bound <= exact + 1e-15)) and bool(jnp.all(bound >= 0))
  assert float(jnp.max(bound / jnp.maximum(exact, 1e-300))) > 0.5  # not a vacuous bound


def test_sampled_variance_is_biased_by_g_minus_one_over_g(x64):
  """E[p̂(1−p̂)] = p(1−p)(G−1)/G for p̂ = Binomial(G, p)/G: exact binomial sum, and by simulation."""
  for g in (2, 4, 8, 16):
    k = np.arange(g + 1)
    for p in (0.05, 0.3, 0.5, 0.9):
      pmf = np.array([math.comb(g, int(i)) for i in k]) * p**k * (1 - p) ** (g - k)
      ph = k / g
      np.testing.assert_allclose(np.sum(pmf * ph * (1 - ph)), p * (1 - p) * (g - 1) / g, rtol=1e-12)
  r = (jax.random.uniform(jax.random.PRNGKey(3), (200_000, 8)) < 0.3).astype(jnp.float32)
  ph = df.pass_rate(r)
  np.testing.assert_allclose(float(jnp.mean(ph * (1 - ph))), 0.21 * 7 / 8, rtol=0.01)


def _argmax_p(lam):
  """argmax over p of the exact KL: a grid, then a finer grid around its best point (vectorised)."""
  grid = np.linspace(1e-4, 1 - 1e-4, 2001)
  i = int(np.argmax(df.kl_tilted_binary(jnp.asarray(grid), jnp.float64(lam))))
  fine = np.linspace(grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)], 4001)
  return float(fine[int(np.argmax(df.kl_tilted_binary(jnp.asarray(fine), jnp.float64(lam))))])


def test_kl_argmax_is_half_only_for_small_lambda(x64):
  assert abs(_argmax_p(1e-3) - 0.5) < 1e-3  # small λ: the variance p(1−p) rules
  assert abs(_argmax_p(0.1) - 0.483) < 1e-3  # the spec's survey number
  moving = [_argmax_p(lam) for lam in (0.1, 0.5, 1.0, 2.0)]
  assert moving[2] < 0.4 and all(a > b for a, b in zip(moving, moving[1:]))


def test_balanced_curriculum_is_uniform_with_a_keep_filter():
  c = curricula.make({"name": "balanced", "low": 0.25, "high": 0.75, "inclusive": (True, True)}, 5, arms=[1, 3])
  assert c.name == "balanced" and c.config["low"] == 0.25 and c.config["inclusive"] == (True, True)
  state = c.init()
  np.testing.assert_allclose(c.probs(state), [0, 0.5, 0, 0.5, 0])
  r = _groups(jax.random.PRNGKey(2))
  np.testing.assert_array_equal(jax.jit(c.keep)(r), df.balanced_filter(r, low=0.25, high=0.75,
                                                                        inclusive=(True, True))[0])
  state = c.update(state, curricula.Feedback.of(jnp.zeros(r.shape[0], jnp.int32), r))
  assert int(state["step"]) == 1
  assert curricula.make("balanced", 3).keep is not None and curricula.make("uniform", 3).keep is None
