"""Ridge / elliptical kernels against direct numpy linear algebra (float64)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.theory.kernels import ridge


def _data(n=40, d=6, seed=0):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n, d)), rng.normal(size=n), rng.uniform(0.1, 3.0, size=n)


def test_ridge_solve_matches_numpy(x64):
  x, y, _ = _data()
  theta = ridge.ridge_solve(jnp.asarray(x), jnp.asarray(y), 0.7)
  np.testing.assert_allclose(theta, np.linalg.solve(x.T @ x + 0.7 * np.eye(6), x.T @ y), rtol=1e-10)


def test_weighted_ridge_and_mask_match_normal_equations(x64):
  x, y, w = _data()
  mask = np.arange(40) < 25
  theta = ridge.ridge_solve(jnp.asarray(x), jnp.asarray(y), 2.0, weights=jnp.asarray(w), mask=jnp.asarray(mask))
  wm = w * mask
  expect = np.linalg.solve(x.T @ (wm[:, None] * x) + 2.0 * np.eye(6), x.T @ (wm * y))
  np.testing.assert_allclose(theta, expect, rtol=1e-10)
  # Weights are not a no-op: the unweighted fit on the same rows differs.
  assert np.abs(theta - ridge.ridge_solve(jnp.asarray(x[:25]), jnp.asarray(y[:25]), 2.0)).max() > 1e-3


def test_online_state_matches_direct_inverse_after_many_updates(x64):
  x, y, w = _data(n=500, d=5, seed=1)
  valid = np.random.default_rng(2).uniform(size=500) < 0.8

  def body(state, xs):
    return ridge.ridge_update(state, *xs), None

  state, _ = jax.lax.scan(body, ridge.ridge_init(5, 0.5),
                          (jnp.asarray(x), jnp.asarray(y), jnp.asarray(w), jnp.asarray(valid)))
  wm = w * valid
  v = x.T @ (wm[:, None] * x) + 0.5 * np.eye(5)
  np.testing.assert_allclose(state.v, v, rtol=1e-10)
  np.testing.assert_allclose(state.v_inv, np.linalg.inv(v), rtol=1e-8, atol=1e-12)
  np.testing.assert_allclose(state.logdet, np.linalg.slogdet(v)[1], rtol=1e-10)
  np.testing.assert_allclose(ridge.ridge_theta(state), np.linalg.solve(v, x.T @ (wm * y)), rtol=1e-8)
  assert int(state.count) == valid.sum()


def test_elliptical_bonus_batched(x64):
  x, _, _ = _data(n=12, d=4)
  a = np.random.default_rng(3).normal(size=(4, 4))
  v_inv = np.linalg.inv(a @ a.T + np.eye(4))
  got = ridge.elliptical_bonus(jnp.asarray(x.reshape(3, 4, 4)), jnp.asarray(v_inv))
  expect = np.sqrt(np.einsum("ni,ij,nj->n", x, v_inv, x)).reshape(3, 4)
  np.testing.assert_allclose(got, expect, rtol=1e-12)
  np.testing.assert_allclose(ridge.elliptical_bonus(jnp.asarray(x), jnp.asarray(v_inv), 2.5), 2.5 * expect.ravel())
  with pytest.raises(ValueError, match="x"):
    ridge.elliptical_bonus(jnp.ones(3), jnp.asarray(v_inv))


def test_oful_radius_and_doubling_trigger(x64):
  r = ridge.oful_radius(jnp.asarray([0.0, 100.0]), delta=0.05, lam=1.0, s_norm=2.0, l_norm=1.0, sigma=0.5, dim=3)
  np.testing.assert_allclose(r[0], 0.5 * np.sqrt(2 * np.log(20)) + 2.0)
  np.testing.assert_allclose(r[1], 0.5 * np.sqrt(2 * np.log(20) + 3 * np.log(1 + 100 / 3)) + 2.0)
  assert bool(ridge.determinant_doubled(1.0 + np.log(2) + 1e-9, 1.0))
  assert not bool(ridge.determinant_doubled(1.0 + np.log(2) - 1e-9, 1.0))
  with pytest.raises(ValueError, match="delta"):
    ridge.oful_radius(1.0, delta=1.5, lam=1.0, s_norm=1.0, l_norm=1.0, sigma=1.0, dim=2)
  with pytest.raises(ValueError, match="lam"):
    ridge.gram(jnp.ones((2, 2)), 0.0)


def test_buffer_fills_then_ignores(x64):
  buf = ridge.buffer_init(3, 2)
  for i, ok in enumerate([True, False, True, True, True]):
    buf = ridge.buffer_add(buf, jnp.full(2, float(i)), float(i), ok)
  assert int(buf.count) == 3 and bool(buf.mask.all())
  np.testing.assert_allclose(buf.y, [0.0, 2.0, 3.0])


def test_batch_update_skips_zero_weights_and_checks_shapes(x64):
  rng = np.random.default_rng(3)
  x, y = rng.normal(size=(6, 3)), rng.normal(size=6)
  w = np.array([1.0, 0.0, 2.0, 0.0, 0.5, 1.0])
  full = ridge.ridge_update_batch(ridge.ridge_init(3, 1.0), x, y, w)
  kept = ridge.ridge_update_batch(ridge.ridge_init(3, 1.0), x[w > 0], y[w > 0], w[w > 0])
  for a, b in zip(full, kept):
    np.testing.assert_allclose(a, b, atol=1e-12)
  assert int(full.count) == 4
  np.testing.assert_allclose(full.logdet, np.linalg.slogdet(np.asarray(full.v))[1], atol=1e-12)
  with pytest.raises(ValueError, match="weights"):
    ridge.ridge_update_batch(ridge.ridge_init(3, 1.0), x, y, w[:5])
