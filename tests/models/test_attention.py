"""The attention implementations against the einsum reference: outputs and gradients at real queries."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rljax.models import Decoder, DecoderConfig
from rljax.models import attention

# Rows of real (1) and padding (0) tokens, and segment ids for packed rows (None otherwise).
_T = 12
MASKS = {
    "no_mask": (None, None),  # every token real (the Decoder's attention_mask=None)
    "left_pad": ([[1] * 12, [0] * 5 + [1] * 7, [0] * 12], None),
    "right_pad": ([[1] * 12, [1] * 5 + [0] * 7, [1] * 3 + [0] * 9], None),
    # Left-padded prompt, completion, trailing padding: the batches RL training builds.
    "prompt_completion": ([[0] * 3 + [1] * 6 + [0] * 3, [0] * 1 + [1] * 11, [0] * 6 + [1] * 4 + [0] * 2], None),
    "packed": ([[1] * 10 + [0] * 2, [1] * 12, [1] * 4 + [0] * 8],
               [[0] * 4 + [1] * 3 + [2] * 3 + [3] * 2, [0] * 5 + [1] * 7, [0] * 4 + [1] * 8]),
}


def _mask(name: str, width: int = _T) -> attention.SelfMask:
  real, seg = MASKS[name]
  pad = lambda rows: None if rows is None else jnp.asarray(np.pad(np.asarray(rows), ((0, 0), (width - _T, 0))))
  return attention.SelfMask(None if real is None else pad(real).astype(bool), pad(seg))


def _qkv(b, t, n, k, h, dtype=jnp.float32, seed=0):
  keys = jax.random.split(jax.random.PRNGKey(seed), 4)
  q = jax.random.normal(keys[0], (b, t, n, h))
  kv = [jax.random.normal(key, (b, t, k, h)) for key in keys[1:3]]
  w = jax.random.normal(keys[3], (b, t, n, h))  # weights of the test loss
  return [x.astype(dtype) for x in (q, *kv)], w


def _out_and_grads(fn, qkv, w, real):
  """fn's output at real queries and d/d(q, k, v) of sum over real queries of <w, out>."""
  keep = 1.0 if real is None else real[:, :, None, None].astype(jnp.float32)
  loss = lambda q, k, v: jnp.sum(keep * w * fn(q, k, v).astype(jnp.float32))
  out = np.asarray(jax.jit(fn)(*qkv), np.float32) * keep
  return [out] + [np.asarray(g, np.float32) for g in jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(*qkv)]


def _reference(mask):
  return lambda q, k, v: attention.einsum_attention(q, k, v, attention.dense_mask(mask, q.shape[1]))


def _assert_all_close(got, want, atol):
  for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
    np.testing.assert_allclose(a, b, atol=atol, rtol=0, err_msg=name)


@pytest.mark.parametrize("heads", [(4, 4), (6, 2), (4, 1)], ids=["mha", "gqa", "mqa"])
@pytest.mark.parametrize("name", list(MASKS))
def test_xla_equals_einsum(name, heads):
  mask = _mask(name)
  qkv, w = _qkv(3, _T, *heads, 8)
  got = _out_and_grads(lambda q, k, v: attention.fused_attention(q, k, v, mask, "xla"), qkv, w, mask.real)
  _assert_all_close(got, _out_and_grads(_reference(mask), qkv, w, mask.real), atol=1e-5)


def test_roll_rows_and_its_gradient():
  x = jnp.arange(2 * 5, dtype=jnp.float32).reshape(2, 5)
  shift = jnp.asarray([2, 0])
  np.testing.assert_array_equal(attention.roll_rows(x, shift), [[2, 3, 4, 0, 1], [5, 6, 7, 8, 9]])
  np.testing.assert_array_equal(attention.roll_rows(attention.roll_rows(x, shift), -shift), x)
  w = jnp.arange(10.0).reshape(2, 5) ** 2
  g = jax.grad(lambda x: jnp.sum(w * attention.roll_rows(x, shift)))(x)
  np.testing.assert_array_equal(g, jnp.stack([jnp.roll(w[0], 2), w[1]]))


@pytest.mark.parametrize("name", ["prompt_completion", "packed"])
def test_splash_equals_einsum_in_interpret_mode(name):
  # The TPU kernel's math, run by Pallas' interpreter on CPU; it needs T to be a multiple of 128.
  mask = _mask(name, width=128)
  qkv, w = _qkv(2, 128, 4, 2, 8, seed=1)
  mask = attention.SelfMask(mask.real[:2], None if mask.segment_ids is None else mask.segment_ids[:2])
  got = _out_and_grads(lambda q, k, v: attention.splash_attention(q, k, v, mask), qkv, w, mask.real)
  _assert_all_close(got, _out_and_grads(_reference(mask), qkv, w, mask.real), atol=1e-5)
  with pytest.raises(ValueError, match="divisible by 128"):
    attention.splash_attention(*_qkv(1, 12, 2, 2, 8)[0], _mask("left_pad"))


def _cfg(**kw) -> DecoderConfig:
  base = dict(family="llama", vocab_size=97, d_model=48, n_layers=1, n_heads=6, n_kv_heads=2, head_dim=8, d_ff=64,
              max_positions=64, norm_eps=1e-5, activation="silu", tie_word_embeddings=False, qkv_bias=False)
  return DecoderConfig(**{**base, **kw})


def test_auto_is_the_default_and_resolves_by_backend():
  cfg = _cfg()
  assert cfg.attention == "auto"
  assert attention.resolve(cfg, 128) == {"cpu": "einsum", "tpu": "splash"}.get(
      jax.default_backend(), "cudnn" if attention.cudnn_supported(cfg) else "xla")
  assert attention.resolve(_cfg(attention="xla"), 128) == "xla"
  with pytest.raises(ValueError, match="attention"):
    _cfg(attention="dot_product")


@pytest.mark.parametrize("name", ["prompt_completion", "packed"])
def test_decoder_with_xla_attention_equals_einsum(name):
  einsum = Decoder(_cfg(attention="einsum"), rngs=nnx.Rngs(0))
  fused = Decoder(_cfg(attention="xla"), rngs=nnx.Rngs(0))
  mask = _mask(name)
  tokens = jax.random.randint(jax.random.PRNGKey(1), mask.real.shape, 0, 97)
  keep = mask.real[..., None]
  forward = nnx.jit(lambda m: jnp.where(keep, m(tokens, mask.real, segment_ids=mask.segment_ids), 0))
  grad = nnx.jit(nnx.grad(lambda m: jnp.sum(forward(m) ** 2)))
  np.testing.assert_allclose(forward(fused), forward(einsum), atol=1e-5)
  for a, b in zip(jax.tree.leaves(grad(einsum)), jax.tree.leaves(grad(fused))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  if name != "packed":  # decoding (dense masked path) gives the same logits whatever `attention` is
    decode = nnx.jit(lambda m: m.decode(tokens, m.init_cache(3, _T + 2), attention_mask=mask.real)[0])
    np.testing.assert_allclose(jnp.where(keep, decode(fused), 0), forward(einsum), atol=1e-5)


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="cuDNN needs a GPU")
@pytest.mark.parametrize("name", list(MASKS))
def test_cudnn_equals_einsum_in_bf16(name):
  mask = _mask(name, width=128)
  qkv, w = _qkv(3, 128, 8, 2, 64, dtype=jnp.bfloat16)
  got = _out_and_grads(lambda q, k, v: attention.fused_attention(q, k, v, mask, "cudnn"), qkv, w, mask.real)
  # The reference in float32 from the same bf16 inputs; bf16 rounding bounds the error relative to the scale.
  want = _out_and_grads(_reference(mask), [x.astype(jnp.float32) for x in qkv], w, mask.real)
  for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
    assert np.abs(a - b).max() <= 2e-2 * np.abs(b).max() + 1e-3, name
  assert attention.resolve(_cfg(compute_dtype=jnp.bfloat16, head_dim=64), 128) == "cudnn"
