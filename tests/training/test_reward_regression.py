"""The pointwise learned reward model (rljax.training.reward_regression): noisy labels, fit, reward function."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from rljax import models
from rljax.training import reward_regression as rr
from rljax.training.testbed import decoder

PAD = 0


def _rm(seed=0):
  cfg = ml_collections.ConfigDict(dict(d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=32, dtype="float32"))
  return models.RewardModel(decoder(cfg, 12, seed=seed), rngs=nnx.Rngs(seed + 1))


def test_noise_is_zero_at_the_extremes_and_sigma0_in_the_middle():
  s = jnp.asarray([0.0, 0.25, 0.5, 1.0])
  np.testing.assert_allclose(rr.noise_scale(s, 0.8), [0.0, 0.6, 0.8, 0.0], rtol=1e-6)
  np.testing.assert_array_equal(rr.noisy_labels(s, jax.random.key(0), sigma0=0.0), s)
  big = jnp.repeat(s, 20000)
  y = np.asarray(rr.noisy_labels(big, jax.random.key(1), sigma0=0.8)).reshape(4, -1)
  np.testing.assert_array_equal(y[[0, 3]], np.asarray(s)[[0, 3], None] * np.ones_like(y[[0, 3]]))
  np.testing.assert_allclose(y.std(1)[1:3], [0.6, 0.8], rtol=0.03)
  np.testing.assert_allclose(y.mean(1), s, atol=0.02)  # unbiased
  with pytest.raises(ValueError, match="sigma0"):
    rr.noise_scale(s, -0.1)


def test_fit_learns_a_sequence_score_and_reward_fn_reads_the_model():
  # Label: the fraction of 7s among the real tokens of a left-padded row (a function of the whole sequence).
  rng = np.random.default_rng(0)
  n, width = 256, 12
  tokens = rng.integers(5, 9, (n, width)).astype(np.int32)
  lengths = rng.integers(4, width + 1, n)
  tokens[np.arange(width)[None, :] < (width - lengths)[:, None]] = PAD
  labels = ((tokens == 7).sum(1) / lengths).astype(np.float32)
  rm = _rm()
  graphdef = nnx.graphdef(rm)
  fn = jax.jit(rr.reward_fn(graphdef, nnx.state(rm, nnx.Param), pad_token_id=PAD))
  before = float(np.mean((np.asarray(fn(tokens, None)) - labels) ** 2))
  params = rr.fit_reward_model(rm, tokens, tokens != PAD, labels, steps=150, batch_size=64, lr=3e-3)
  fitted = rr.reward_fn(graphdef, params, pad_token_id=PAD)
  r = np.asarray(jax.jit(fitted)(tokens, None))
  np.testing.assert_allclose(r, nnx.merge(graphdef, params)(tokens, tokens != PAD), rtol=1e-5, atol=1e-6)
  after = float(np.mean((r - labels) ** 2))
  assert after < 0.3 * labels.var() < before, (before, after, labels.var())


def test_bad_inputs_raise():
  rm = _rm()
  tokens = np.ones((8, 12), np.int32)
  with pytest.raises(ValueError, match="batch_size"):
    rr.fit_reward_model(rm, tokens, tokens != PAD, np.zeros(8), steps=1, batch_size=16, lr=1e-3)
  with pytest.raises(ValueError, match="labels"):
    rr.fit_reward_model(rm, tokens, tokens != PAD, np.zeros(7), steps=1, batch_size=4, lr=1e-3)
  with pytest.raises(ValueError, match="steps"):
    rr.fit_reward_model(rm, tokens, tokens != PAD, np.zeros(8), steps=0, batch_size=4, lr=1e-3)
