"""Loss aggregation modes against hand computations, and exact accumulation over micro-batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses.aggregation import MODES, aggregate, aggregate_parts


def _batch(seed=0, b=5, t=7):
  rng = np.random.default_rng(seed)
  loss = rng.normal(size=(b, t)).astype(np.float32)
  lengths = rng.integers(0, t + 1, size=b)
  lengths[0] = t  # at least one full row
  lengths[1] = 0  # and one empty row
  mask = np.arange(t)[None, :] < lengths[:, None]
  return loss, mask


def _hand(loss, mask, mode, norm=None):
  loss, mask = np.asarray(loss, np.float64), np.asarray(mask)
  rows = [(loss[i][mask[i]]) for i in range(len(loss))]
  nonempty = [r for r in rows if r.size]
  if mode == "token-mean":
    return sum(r.sum() for r in rows) / sum(r.size for r in rows)
  if mode == "token-sum":
    return sum(r.sum() for r in rows)
  if mode == "seq-mean-token-mean":
    return np.mean([r.mean() for r in nonempty])
  if mode == "seq-mean-token-sum":
    return np.mean([r.sum() for r in nonempty])
  return np.mean([r.sum() for r in nonempty]) / (loss.shape[1] if norm is None else norm)


@pytest.mark.parametrize("mode", MODES)
def test_modes_match_hand_computation(mode, maybe_jit):
  loss, mask = _batch()
  fn = maybe_jit(lambda l, m: aggregate(l, m, mode))
  np.testing.assert_allclose(fn(loss, mask), _hand(loss, mask, mode), rtol=1e-5)


def test_dr_grpo_norm_and_padding_values_ignored():
  loss, mask = _batch(1)
  np.testing.assert_allclose(aggregate(loss, mask, "seq-mean-token-sum-norm", norm=32.0),
                             _hand(loss, mask, "seq-mean-token-sum-norm", 32.0), rtol=1e-5)
  poisoned = np.where(mask, loss, np.nan)
  g = jax.grad(lambda l: aggregate(l, mask, "token-mean"))(jnp.asarray(poisoned))
  assert np.isfinite(float(aggregate(poisoned, mask, "token-mean")))
  assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~mask] == 0)


def test_modes_agree_on_equal_lengths():
  loss = np.random.default_rng(2).normal(size=(4, 6))
  mask = np.ones((4, 6), bool)
  tm = aggregate(loss, mask, "token-mean")
  np.testing.assert_allclose(aggregate(loss, mask, "seq-mean-token-mean"), tm, rtol=1e-6)
  np.testing.assert_allclose(aggregate(loss, mask, "seq-mean-token-sum") / 6, tm, rtol=1e-6)
  np.testing.assert_allclose(aggregate(loss, mask, "seq-mean-token-sum-norm"), tm, rtol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_exact_accumulation_over_micro_batches(mode):
  loss, mask = _batch(3, b=8)
  parts = [aggregate_parts(loss[i:i + 2], mask[i:i + 2], mode) for i in range(0, 8, 2)]
  num = sum(p[0] for p in parts)
  den = 1.0 if mode == "token-sum" else sum(p[1] for p in parts)
  np.testing.assert_allclose(num / den, aggregate(loss, mask, mode), rtol=1e-5)


def test_empty_mask_is_zero_and_errors():
  loss = jnp.ones((2, 3))
  mask = jnp.zeros((2, 3), bool)
  for mode in MODES:
    assert float(aggregate(loss, mask, mode)) == 0.0
  with pytest.raises(ValueError, match="mode"):
    aggregate(loss, mask, "mean")
  with pytest.raises(ValueError, match="mask"):
    aggregate(loss, mask[:, :2], "token-mean")
  with pytest.raises(ValueError, match="rank 2"):
    aggregate(loss[0], mask[0], "token-mean")
  with pytest.raises(ValueError, match="norm"):
    aggregate(loss, mask, "token-mean", norm=4.0)
  with pytest.raises(ValueError, match="norm"):
    aggregate(loss, mask, "seq-mean-token-sum-norm", norm=0.0)
