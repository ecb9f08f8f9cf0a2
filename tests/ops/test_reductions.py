"""Masked reductions and the registry's keyword binding."""

import functools

import jax.numpy as jnp
import numpy as np
import pytest

from rljax import losses
from rljax.ops.reductions import mask_count, masked_mean, masked_sum, sequence_logps


def test_masked_reductions_against_hand_values():
  x = jnp.asarray([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
  mask = jnp.asarray([[True, True, False], [False, False, False]])
  np.testing.assert_allclose(masked_sum(x, mask, axis=-1), [3.0, 0.0])
  np.testing.assert_allclose(masked_mean(x, mask, axis=-1), [1.5, 0.0])  # empty row: 0, not NaN
  np.testing.assert_allclose(masked_mean(x, mask), 1.5)
  np.testing.assert_allclose(mask_count(mask, axis=-1), [2.0, 0.0])
  np.testing.assert_allclose(sequence_logps(x, mask), [3.0, 0.0])
  np.testing.assert_allclose(sequence_logps(x, mask, average=True), [1.5, 0.0])
  poisoned = jnp.where(mask, x, jnp.nan)  # padding values never reach the result
  np.testing.assert_allclose(masked_sum(poisoned, mask, axis=-1), [3.0, 0.0])
  with pytest.raises(ValueError, match="mask"):
    masked_sum(x, mask[:, :2])
  with pytest.raises(ValueError, match="rank 2"):
    sequence_logps(x[0], mask[0])


def test_bind_passes_only_accepted_keywords():
  bound = losses.bind("rdpo", beta=0.5, epsilon=0.1, key=None)
  assert bound.keywords == {"beta": 0.5, "epsilon": 0.1}
  assert losses.bind("dpo", beta=0.5, epsilon=0.1).keywords == {"beta": 0.5}
  partial = functools.partial(losses.clip_cov_loss, clip_ratio=1e-2)
  assert "key" in losses.bind(partial, key=1, beta=2).keywords
