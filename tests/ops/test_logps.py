"""`token_logps`: chunked == unchunked == log_softmax reference, gradients, dtypes, validation, memory."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.ops.logps import default_chunk_size, token_logps

B, T, V = 2, 12, 37


@jax.jit
def reference(logits, targets):
  logp = jax.nn.log_softmax(logits.astype(jnp.promote_types(logits.dtype, jnp.float32)), axis=-1)
  return jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]


def make(dtype=jnp.float32, shape=(B, T, V), scale=3.0, seed=0):
  rng = np.random.default_rng(seed)
  logits = jnp.asarray(scale * rng.standard_normal(shape), dtype)
  targets = jnp.asarray(rng.integers(0, shape[2], shape[:2]), jnp.int32)
  return logits, targets


@pytest.mark.parametrize("chunk_size", [None, 1, 4, 5, 7, 12, 13])  # divisors, non-divisors, == T, > T
def test_matches_reference(chunk_size):
  logits, targets = make()
  f = jax.jit(functools.partial(token_logps, chunk_size=chunk_size))
  out = f(logits, targets)
  assert out.shape == (B, T) and out.dtype == jnp.float32
  np.testing.assert_allclose(out, reference(logits, targets), rtol=1e-6, atol=1e-5)
  np.testing.assert_allclose(out, token_logps(logits, targets, chunk_size=None), rtol=1e-6, atol=1e-6)


def test_long_sequence_and_auto_chunk():
  logits, targets = make(shape=(1, 3000, 16))
  want = reference(logits, targets)
  np.testing.assert_allclose(token_logps(logits, targets, chunk_size=1024), want, rtol=1e-6, atol=1e-5)  # + tail
  np.testing.assert_allclose(token_logps(logits, targets), want, rtol=1e-6, atol=1e-5)  # "auto"


def test_default_chunk_size():
  assert default_chunk_size(1, 151936, "cpu") == 8  # a float32 chunk of ≤ 8 MiB stays in cache
  assert default_chunk_size(1, 32768, "cpu") == 64
  assert default_chunk_size(1, 151936, "gpu") == 4096  # few, large chunks on accelerators
  assert default_chunk_size(4, 151936, "gpu") == 1024
  assert default_chunk_size(64, 151936, "cpu") == 1
  assert default_chunk_size(1, 16, "cpu") == 1 << 17


def test_stable_for_huge_and_infinite_logits():
  logits, targets = make()
  logits = logits + 1e4 * jnp.arange(B, dtype=jnp.float32)[:, None, None]  # shift invariance
  logits = logits.at[:, :, 0].set(-jnp.inf)  # a banned token (never a target below)
  targets = jnp.maximum(targets, 1)
  for chunk_size in (None, 5):
    out = jax.jit(functools.partial(token_logps, chunk_size=chunk_size))(logits, targets)
    assert np.all(np.isfinite(out)) and np.all(out <= 0)
    np.testing.assert_allclose(out, reference(logits, targets), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_returns_float32(dtype):
  logits, targets = make(dtype)
  for chunk_size in (None, 5):
    out = token_logps(logits, targets, chunk_size=chunk_size)
    assert out.dtype == jnp.float32
    # The upcast of half precision is exact, so this matches the f32 reference of the same values.
    np.testing.assert_allclose(out, reference(logits.astype(jnp.float32), targets), rtol=1e-6, atol=1e-5)


def test_float64(x64):
  logits, targets = make(jnp.float64)
  out = jax.jit(functools.partial(token_logps, chunk_size=5))(logits, targets)
  assert out.dtype == jnp.float64
  np.testing.assert_allclose(out, reference(logits, targets), rtol=1e-12, atol=1e-12)
  grad = jax.jit(jax.grad(lambda z: token_logps(z, targets, chunk_size=5).sum()))(logits)
  assert grad.dtype == jnp.float64


@pytest.mark.parametrize("chunk_size", [None, 5])
def test_gradients_match_reference(chunk_size, maybe_jit):
  logits, targets = make()
  w = jnp.asarray(np.random.default_rng(1).standard_normal((B, T)), jnp.float32)
  loss = lambda f: lambda z: jnp.sum(w * f(z, targets))
  grad = maybe_jit(jax.grad(loss(functools.partial(token_logps, chunk_size=chunk_size))))(logits)
  want = jax.grad(loss(reference))(logits)
  assert grad.dtype == jnp.float32
  np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-6)
  # softmax − onehot rows sum to 0.
  np.testing.assert_allclose(jnp.sum(grad, -1), 0.0, atol=1e-5)


def test_bf16_gradient_dtype_and_value():
  logits, targets = make(jnp.bfloat16)
  grad = jax.jit(jax.grad(lambda z: token_logps(z, targets, chunk_size=5).sum()))(logits)
  assert grad.dtype == jnp.bfloat16
  want = jax.grad(lambda z: reference(z, targets).sum())(logits.astype(jnp.float32))
  np.testing.assert_allclose(grad.astype(jnp.float32), want, rtol=1e-2, atol=1e-2)


def test_value_and_grad_under_vmap():
  logits, targets = make()
  f = lambda z, y: token_logps(z, y, chunk_size=5).sum()
  vals, grads = jax.jit(jax.vmap(jax.value_and_grad(f)))(logits[:, None], targets[:, None])
  want_vals, want_grads = jax.jit(jax.vmap(jax.value_and_grad(lambda z, y: reference(z, y).sum())))(
      logits[:, None], targets[:, None])
  np.testing.assert_allclose(vals, want_vals, rtol=1e-6, atol=1e-5)
  np.testing.assert_allclose(grads, want_grads, rtol=1e-5, atol=1e-6)


def test_small_integer_targets():
  logits, targets = make(shape=(1, 6, 300))
  out = token_logps(logits, targets.astype(jnp.uint8), chunk_size=4)  # ids < 256, V = 300
  np.testing.assert_allclose(out, reference(logits, targets.astype(jnp.uint8)), rtol=1e-6, atol=1e-5)


def test_out_of_range_targets_give_nan_and_no_gradient():
  logits, targets = make()
  targets = targets.at[0, 3].set(-100).at[1, 7].set(V)
  mask = targets >= 0
  mask = mask & (targets < V)
  out = token_logps(logits, targets, chunk_size=5)
  assert np.isnan(out[0, 3]) and np.isnan(out[1, 7])
  assert np.all(np.isfinite(out[mask]))
  loss = lambda z: jnp.sum(jnp.where(mask, token_logps(z, targets, chunk_size=5), 0.0))
  grad = jax.grad(loss)(logits)
  assert np.all(np.isfinite(grad))
  assert np.all(grad[0, 3] == 0) and np.all(grad[1, 7] == 0)
  safe = jnp.where(mask, targets, 0)
  want = jax.grad(lambda z: jnp.sum(jnp.where(mask, reference(z, safe), 0.0)))(logits)
  np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "logits_shape, targets_shape, logits_dtype, targets_dtype, chunk_size, match",
    [
        ((B, T), (B, T), jnp.float32, jnp.int32, 4, "`logits` must have rank 3"),
        ((B, T, V), (B, T, 1), jnp.float32, jnp.int32, 4, "`targets` must have rank 2"),
        ((B, T, V), (B, T + 1), jnp.float32, jnp.int32, 4, "`targets` has shape"),
        ((B, T, V), (T, B), jnp.float32, jnp.int32, 4, "`targets` has shape"),
        ((B, T, 0), (B, T), jnp.float32, jnp.int32, 4, "non-empty vocabulary"),
        ((B, T, V), (B, T), jnp.int32, jnp.int32, 4, "`logits` must be floating"),
        ((B, T, V), (B, T), jnp.float32, jnp.float32, 4, "`targets` must be integer"),
        ((B, T, V), (B, T), jnp.float32, jnp.int32, 0, "`chunk_size` must be > 0"),
        ((B, T, V), (B, T), jnp.float32, jnp.int32, -3, "`chunk_size` must be > 0"),
        ((B, T, V), (B, T), jnp.float32, jnp.int32, 2.0, "`chunk_size` must be a positive Python int"),
        ((B, T, V), (B, T), jnp.float32, jnp.int32, True, "`chunk_size` must be a positive Python int"),
        ((B, T, V), (B, T), jnp.float32, jnp.int32, "fast", "`chunk_size` must be a positive Python int"),
    ],
)
def test_bad_inputs_raise(logits_shape, targets_shape, logits_dtype, targets_dtype, chunk_size, match):
  logits = jnp.zeros(logits_shape, logits_dtype)
  targets = jnp.zeros(targets_shape, targets_dtype)
  with pytest.raises(ValueError, match=match):
    token_logps(logits, targets, chunk_size=chunk_size)


def _compiled_memory(f, *args):
  stats = jax.jit(f).lower(*args).compile().memory_analysis()
  if stats is None:
    pytest.skip("memory_analysis() is not available on this backend")
  return stats


def test_memory_is_a_fraction_of_the_float32_baseline():
  """Compile only: temp bytes of the chunked kernel vs `log_softmax(logits.astype(f32))`.

  On CPU the baseline forward materialises the float32 [B, T, V] copy; XLA:GPU fuses it away, so
  there only the absolute bound and the backward comparison apply.
  """
  n_tok, vocab = 4096, 32768
  chunk_size = min(default_chunk_size(1, vocab), n_tok)  # the default, "auto" (64 tokens on CPU)
  logits = jax.ShapeDtypeStruct((1, n_tok, vocab), jnp.bfloat16)
  targets = jax.ShapeDtypeStruct((1, n_tok), jnp.int32)
  chunked = token_logps
  f32_copy = 4 * n_tok * vocab
  base = _compiled_memory(reference, logits, targets).temp_size_in_bytes
  fwd = _compiled_memory(chunked, logits, targets).temp_size_in_bytes
  assert fwd <= 4 * chunk_size * vocab + (1 << 20), fwd  # at most one float32 chunk, plus O(B·T)
  if jax.default_backend() == "cpu":
    assert base >= f32_copy, base
  if base >= f32_copy:
    assert fwd <= base / 4, (fwd, base)
  # Backward: besides the bf16 gradient it returns, no float32 [B, T, V] buffer.
  grad = lambda f: jax.grad(lambda z, y: f(z, y).sum())
  base_bwd = _compiled_memory(grad(reference), logits, targets)
  bwd = _compiled_memory(grad(chunked), logits, targets)
  assert bwd.output_size_in_bytes == base_bwd.output_size_in_bytes == 2 * n_tok * vocab
  assert base_bwd.temp_size_in_bytes >= f32_copy, base_bwd
  assert bwd.temp_size_in_bytes <= base_bwd.temp_size_in_bytes / 4, (bwd, base_bwd)
