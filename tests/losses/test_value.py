"""PPO value loss and entropy from logits (rljax.losses.value)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import losses
from rljax.losses import value as V


def _value_inputs(seed, shape=(5, 7)):
  rng = np.random.default_rng(seed)
  old = rng.normal(size=shape)
  values = old + rng.normal(scale=0.5, size=shape)  # often outside V_old ± 0.2
  returns = old + rng.normal(size=shape)
  mask = np.arange(shape[1])[None, :] < rng.integers(1, shape[1] + 1, size=shape[0])[:, None]
  mask[1, 2] = False  # an interior tool token
  return values, old, returns, mask


def _np_value_loss(v, old, ret, mask, clip):
  """verl `compute_value_loss` by hand: ½·token-mean of max((V−R)², (clip(V, V_old ± ε)−R)²)."""
  l1 = (v - ret) ** 2
  l2 = (np.clip(v, old - clip, old + clip) - ret) ** 2
  per = np.maximum(l1, l2)
  n = mask.sum()
  # l2 > l1 only when V is outside the band, where clip(V) is flat: the gradient is 0 there.
  grad = np.where(l2 > l1, 0.0, v - ret) * mask / n
  return 0.5 * (per * mask).sum() / n, ((l2 > l1) * mask).sum() / n, per, grad


def test_value_loss_matches_hand_computation(maybe_jit, x64):
  v, old, ret, mask = _value_inputs(0)
  fn = maybe_jit(functools.partial(V.value_loss, clip=0.2))
  loss, m = fn(v, old, ret, mask)
  exp_loss, exp_clipfrac, per, exp_grad = _np_value_loss(v, old, ret, mask, 0.2)
  np.testing.assert_allclose(loss, exp_loss, rtol=1e-12)
  np.testing.assert_allclose(m["vf_clipfrac"], exp_clipfrac, rtol=1e-12)
  assert 0.1 < float(m["vf_clipfrac"]) < 0.9  # both branches are exercised
  np.testing.assert_allclose(m["value_mean"], v[mask].mean(), rtol=1e-12)
  np.testing.assert_allclose(m["loss_numerator"], 0.5 * (per * mask).sum(), rtol=1e-12)
  np.testing.assert_allclose(m["loss_denominator"], mask.sum())
  grads = jax.grad(lambda a, b, c: fn(a, b, c, mask)[0], argnums=(0, 1, 2))(v, old, ret)
  np.testing.assert_allclose(grads[0], exp_grad, atol=1e-12)
  np.testing.assert_array_equal(grads[1], 0.0)  # V_old and R are constants
  np.testing.assert_array_equal(grads[2], 0.0)


def test_value_loss_unclipped_and_seq_mean(x64):
  v, old, ret, mask = _value_inputs(1)
  loss, m = jax.jit(functools.partial(V.value_loss, clip=None))(v, old, ret, mask)
  np.testing.assert_allclose(loss, 0.5 * ((v - ret) ** 2)[mask].mean(), rtol=1e-12)
  assert float(m["vf_clipfrac"]) == 0.0
  seq, _ = jax.jit(functools.partial(V.value_loss, clip=0.2, agg="seq-mean-token-mean"))(v, old, ret, mask)
  per = _np_value_loss(v, old, ret, mask, 0.2)[2]
  np.testing.assert_allclose(seq, 0.5 * np.mean((per * mask).sum(1) / mask.sum(1)), rtol=1e-12)
  # A large clip range never binds: the clipped loss is the plain one.
  wide, _ = jax.jit(functools.partial(V.value_loss, clip=1e3))(v, old, ret, mask)
  np.testing.assert_allclose(wide, loss, rtol=1e-12)
  assert losses.get("value") is V.value_loss


def test_value_loss_micro_batch_parts_accumulate_exactly(x64):
  v, old, ret, mask = _value_inputs(2, (6, 5))
  fn = jax.jit(functools.partial(V.value_loss, clip=0.2))
  full, _ = fn(v, old, ret, mask)
  parts = [fn(v[s], old[s], ret[s], mask[s])[1] for s in (slice(0, 2), slice(2, 6))]
  num = sum(float(p["loss_numerator"]) for p in parts)
  den = sum(float(p["loss_denominator"]) for p in parts)
  np.testing.assert_allclose(num / den, full, rtol=1e-12)


def test_value_loss_empty_mask_and_nan_padding():
  v, old, ret, mask = _value_inputs(3)
  v, old, ret = (np.asarray(a, np.float32) for a in (v, old, ret))
  zero = np.zeros_like(mask)
  loss, m = jax.jit(V.value_loss)(v, old, ret, zero)
  assert float(loss) == 0.0 and all(float(x) == 0.0 for k, x in m.items() if k != "loss_denominator")
  poisoned = np.where(mask, v, np.nan)
  loss_p, _ = jax.jit(V.value_loss)(poisoned, np.where(mask, old, np.inf), ret, mask)
  loss_c, _ = jax.jit(V.value_loss)(v, old, ret, mask)
  np.testing.assert_allclose(loss_p, loss_c, rtol=1e-6)
  g = jax.jit(jax.grad(lambda x: V.value_loss(x, old, ret, mask)[0]))(poisoned)
  assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~mask] == 0)


def test_value_loss_errors():
  v, old, ret, mask = _value_inputs(4)
  with pytest.raises(ValueError, match="`returns` has shape"):
    V.value_loss(v, old, ret[:, :3], mask)
  with pytest.raises(ValueError, match="`values` must have rank 2"):
    V.value_loss(v[0], old[0], ret[0], mask[0])
  with pytest.raises(ValueError, match="`clip` must be > 0"):
    V.value_loss(v, old, ret, mask, clip=0.0)
  with pytest.raises(ValueError, match="`agg` must be one of"):
    V.value_loss(v, old, ret, mask, agg="mean")


# ----------------------------------------------------------------------------------------------
# Entropy


def _np_entropy(z):
  z = np.asarray(z, np.float64)
  p = np.exp(z - z.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), axis=-1)


def test_entropy_matches_definition(maybe_jit):
  z = 3.0 * np.random.default_rng(0).normal(size=(3, 4, 11)).astype(np.float32)
  h = maybe_jit(V.entropy_from_logits)(z)
  assert h.shape == (3, 4) and h.dtype == jnp.float32
  np.testing.assert_allclose(h, _np_entropy(z), rtol=1e-5, atol=1e-6)
  # ∂H/∂z = −p·(log p + H)
  g = jax.jit(jax.grad(lambda x: V.entropy_from_logits(x).sum()))(z)
  logp = np.asarray(jax.nn.log_softmax(z), np.float64)
  expected = -np.exp(logp) * (logp + _np_entropy(z)[..., None])
  np.testing.assert_allclose(g, expected, rtol=1e-4, atol=1e-6)


def test_entropy_masked_vocabulary_and_precision():
  z = np.array([[1.0, -np.inf, 2.0, 0.5, -np.inf], [-np.inf] * 5, [0.0] * 5], np.float32)
  h = jax.jit(V.entropy_from_logits)(z)
  np.testing.assert_allclose(h[0], _np_entropy(z[0, [0, 2, 3]]), rtol=1e-6)
  assert float(h[1]) == 0.0  # no distribution
  np.testing.assert_allclose(h[2], np.log(5), rtol=1e-6)
  g = jax.jit(jax.grad(lambda x: V.entropy_from_logits(x).sum()))(z)
  assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[np.isinf(z)] == 0)
  g_reduced = jax.jit(jax.grad(V.entropy_from_logits))(z[0, [0, 2, 3]])
  np.testing.assert_allclose(np.asarray(g)[0, [0, 2, 3]], g_reduced, rtol=1e-6)
  # Large logits: shifting by 1024 (exact on this grid) changes nothing; logsumexp − Σp·z would be
  # off by ~ulp(1024) ≈ 1e-4.
  grid = np.round(8 * np.random.default_rng(1).normal(size=(4, 50))) / 8
  base = jax.jit(V.entropy_from_logits)(jnp.asarray(grid, jnp.float32))
  shifted = jax.jit(V.entropy_from_logits)(jnp.asarray(grid + 1024, jnp.float32))
  np.testing.assert_allclose(shifted, base, rtol=0, atol=2e-6)
  bf16 = jax.jit(V.entropy_from_logits)(jnp.asarray(grid, jnp.bfloat16))
  assert bf16.dtype == jnp.float32
  np.testing.assert_allclose(bf16, _np_entropy(grid), rtol=1e-5)  # the grid is exact in bf16
  with pytest.raises(ValueError, match="non-empty last"):
    V.entropy_from_logits(jnp.zeros((2, 0)))
  with pytest.raises(ValueError, match="must be floating"):
    V.entropy_from_logits(jnp.zeros((2, 3), jnp.int32))


def test_entropy_float64(x64):
  z = np.random.default_rng(2).normal(size=(2, 9)) * 4
  h = jax.jit(V.entropy_from_logits)(z)
  assert h.dtype == jnp.float64
  np.testing.assert_allclose(h, _np_entropy(z), rtol=1e-13)
