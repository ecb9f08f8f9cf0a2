"""Decoder features beyond the plain forward: packed segments, remat, KV-cache decoding, bf16 policy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rljax.models import Decoder, DecoderConfig
from rljax.models.decoder import segment_positions

VOCAB = 61
TOL = 1e-5
FAMILIES = ["llama", "qwen2", "qwen3", "gpt2"]


def _cfg(family: str, **kw) -> DecoderConfig:
  gpt2 = family == "gpt2"
  return DecoderConfig(
      family=family, vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=4, n_kv_heads=4 if gpt2 else 2,
      head_dim=12 if family == "qwen3" else 8,  # qwen3: head_dim != d_model / n_heads, as in its checkpoints
      d_ff=48, max_positions=64, norm_eps=1e-6, activation="gelu_new" if gpt2 else "silu",
      tie_word_embeddings=gpt2, qkv_bias=family != "llama", **kw)


def _randomize(model: Decoder, seed: int = 0) -> Decoder:
  # The default init (std 0.02, unit norms, zero biases) gives near-uniform logits, against which a
  # wrong mask or position could hide; larger random weights make every path visible in the logits.
  rng = np.random.default_rng(seed)
  state = nnx.state(model, nnx.Param)

  def draw(path, p):
    # Norm scales stay near 1, as in trained models; everything else is N(0, 0.3^2).
    mean = 1.0 if "scale_d" in jax.tree_util.keystr(path) else 0.0
    return jnp.asarray(rng.normal(mean, 0.3, p.shape), p.dtype)

  state = jax.tree_util.tree_map_with_path(draw, state)
  nnx.update(model, state)
  return model


def _model(family: str, **kw) -> Decoder:
  return _randomize(Decoder(_cfg(family, **kw), rngs=nnx.Rngs(0)))


def _left_padded(lengths, width, seed=1):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(3, VOCAB, size=(len(lengths), width))
  mask = np.zeros((len(lengths), width), np.int32)
  for b, n in enumerate(lengths):
    mask[b, width - n:] = 1
  return jnp.asarray(np.where(mask == 1, tokens, 0)), jnp.asarray(mask)


def _jit_apply(model, fn):
  """jax.jit over the model's state, so each decode shape compiles once (no eager op-by-op)."""
  graphdef, state = nnx.split(model)
  jitted = jax.jit(lambda s, *a: fn(nnx.merge(graphdef, s), *a))
  return lambda *a: jitted(state, *a)


# ------------------------------------------------------------------------------------------------
# Packed sequences


def test_segment_positions_restart_per_segment():
  mask = jnp.array([[0, 1, 1, 1, 1, 1, 0]])
  seg = jnp.array([[0, 0, 0, 1, 1, 1, 2]])
  np.testing.assert_array_equal(segment_positions(mask, seg), [[0, 0, 1, 0, 1, 2, 0]])


@pytest.mark.parametrize("family", FAMILIES)
def test_packed_row_equals_separate_sequences(family):
  model = _model(family)
  rng = np.random.default_rng(2)
  a, b = rng.integers(3, VOCAB, size=(1, 5)), rng.integers(3, VOCAB, size=(1, 4))
  # Row: [a (5) | b (4) | 2 pad]; padding gets its own segment id and mask 0.
  packed = np.concatenate([a, b, np.zeros((1, 2), np.int64)], axis=1)
  seg = np.array([[0] * 5 + [1] * 4 + [2] * 2])
  mask = np.array([[1] * 9 + [0] * 2])
  fwd = _jit_apply(model, lambda m, *args: m(*args))
  seg_fwd = _jit_apply(model, lambda m, t, k, s: m(t, k, segment_ids=s))
  out = seg_fwd(jnp.asarray(packed), jnp.asarray(mask), jnp.asarray(seg))
  np.testing.assert_allclose(out[:, :5], fwd(jnp.asarray(a)), atol=TOL, rtol=0)
  np.testing.assert_allclose(out[:, 5:9], fwd(jnp.asarray(b)), atol=TOL, rtol=0)
  # Without segment ids the second sequence sees the first, so the check above is not vacuous.
  unpacked = fwd(jnp.asarray(packed), jnp.asarray(mask))
  assert np.abs(np.asarray(unpacked[:, 5:9] - out[:, 5:9])).max() > 1e-2


def test_segment_ids_shape_is_checked():
  model = _model("llama")
  with pytest.raises(ValueError, match="segment_ids"):
    model(jnp.zeros((2, 5), jnp.int32), segment_ids=jnp.zeros((2, 4), jnp.int32))


# ------------------------------------------------------------------------------------------------
# Rematerialisation


def _loss(model, tokens):
  logp = jax.nn.log_softmax(model(tokens[:, :-1]), axis=-1)
  return -jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1).mean()


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_remat_gradients_equal(family):
  tokens = jnp.asarray(np.random.default_rng(3).integers(3, VOCAB, size=(2, 8)))
  plain, remat = _model(family), _model(family, remat=True)
  assert remat.cfg.remat and not plain.cfg.remat
  g_plain = nnx.jit(nnx.grad(_loss))(plain, tokens)
  g_remat = nnx.jit(nnx.grad(_loss))(remat, tokens)
  for x, y in zip(jax.tree.leaves(g_plain), jax.tree.leaves(g_remat)):
    np.testing.assert_allclose(x, y, atol=1e-6, rtol=1e-5)
  # The remat model's gradient program really contains checkpointed blocks.
  graphdef, state = nnx.split(remat)
  jaxpr = str(jax.make_jaxpr(lambda s: jax.grad(lambda s: _loss(nnx.merge(graphdef, s), tokens))(s))(state))
  assert "remat" in jaxpr or "checkpoint" in jaxpr


# ------------------------------------------------------------------------------------------------
# KV cache


@pytest.mark.parametrize("family", FAMILIES)
def test_prefill_and_steps_match_full_forward(family):
  model = _model(family)
  prompt, pmask = _left_padded([6, 4, 1], width=6)
  rest = jnp.asarray(np.random.default_rng(4).integers(3, VOCAB, size=(3, 5)))

  def run(m, prompt, pmask, rest):
    cache = m.init_cache(3, 13)
    lp, cache = m.decode(prompt, cache, attention_mask=pmask)
    # A two-token chunk, then single-token steps in lax.scan.
    lc, cache = m.decode(rest[:, :2], cache)

    def step(cache, tok):
      logits, cache = m.decode(tok[:, None], cache)
      return cache, logits[:, 0]

    cache, ls = jax.lax.scan(step, cache, rest[:, 2:].T)
    return jnp.concatenate([lp, lc, ls.transpose(1, 0, 2)], axis=1), cache

  cached, cache = _jit_apply(model, run)(prompt, pmask, rest)
  full_tokens = jnp.concatenate([prompt, rest], axis=1)
  full_mask = jnp.concatenate([pmask, jnp.ones_like(rest)], axis=1)
  full = model(full_tokens, full_mask)
  assert cached.dtype == jnp.float32 and cached.shape == full.shape
  keep = np.asarray(full_mask, bool)
  np.testing.assert_allclose(np.asarray(cached)[keep], np.asarray(full)[keep], atol=TOL, rtol=0)
  assert int(cache.index) == 11
  np.testing.assert_array_equal(cache.next_position, [11, 9, 6])
  np.testing.assert_array_equal(cache.mask[:, :11], full_mask)
  assert not np.asarray(cache.mask[:, 11:]).any()


def test_greedy_with_cache_equals_recompute():
  model = _model("llama")
  prompt, pmask = _left_padded([5, 2], width=5, seed=5)
  n_new, p = 6, prompt.shape[1]

  def cached_greedy(m, prompt, pmask):
    cache = m.init_cache(2, p + n_new)
    logits, cache = m.decode(prompt, cache, attention_mask=pmask)
    first = jnp.argmax(logits[:, -1], axis=-1)

    def step(carry, _):
      tok, cache = carry
      logits, cache = m.decode(tok[:, None], cache)
      nxt = jnp.argmax(logits[:, 0], axis=-1)
      return (nxt, cache), tok

    _, toks = jax.lax.scan(step, (first, cache), None, length=n_new)
    return toks.T

  got = np.asarray(_jit_apply(model, cached_greedy)(prompt, pmask))

  # No cache: a fixed-width buffer re-run in full each step (one compiled shape).
  forward = _jit_apply(model, lambda m, t, k: m(t, k))
  buf = jnp.concatenate([prompt, jnp.zeros((2, n_new), prompt.dtype)], axis=1)
  mask = jnp.concatenate([pmask, jnp.zeros((2, n_new), pmask.dtype)], axis=1)
  want = []
  for i in range(n_new):
    nxt = jnp.argmax(forward(buf, mask)[:, p + i - 1], axis=-1)
    want.append(nxt)
    buf, mask = buf.at[:, p + i].set(nxt), mask.at[:, p + i].set(1)
  np.testing.assert_array_equal(got, np.stack(want, axis=1))


def test_cache_errors():
  model = _model("llama")
  cache = model.init_cache(2, 4)
  assert cache.k[0].shape == (2, 4, 2, 8) and len(cache.k) == 2 and cache.k[0].dtype == jnp.float32
  with pytest.raises(ValueError, match="batch"):
    model.decode(jnp.zeros((3, 2), jnp.int32), cache)
  with pytest.raises(ValueError, match="overflow"):
    _, cache = model.decode(jnp.zeros((2, 3), jnp.int32), cache)
    model.decode(jnp.zeros((2, 2), jnp.int32), cache)


# ------------------------------------------------------------------------------------------------
# dtype policy


def test_bf16_params_give_float32_logits_close_to_f32():
  f32 = _model("llama")
  bf16 = Decoder(_cfg("llama", param_dtype=jnp.bfloat16, compute_dtype=jnp.bfloat16), rngs=nnx.Rngs(0))
  nnx.update(bf16, jax.tree.map(lambda p: p.astype(jnp.bfloat16), nnx.state(f32, nnx.Param)))
  assert bf16.layers[0].attn.q_proj_dnh[...].dtype == jnp.bfloat16
  tokens, mask = _left_padded([7, 4], width=7, seed=6)
  a = _jit_apply(f32, lambda m, *args: m(*args))(tokens, mask)
  b = _jit_apply(bf16, lambda m, *args: m(*args))(tokens, mask)
  assert b.dtype == jnp.float32
  keep = np.asarray(mask, bool)
  diff = np.abs(np.asarray(a) - np.asarray(b))[keep]
  assert diff.mean() < 0.05, f"mean |logit diff| bf16 vs f32 = {diff.mean()}"
  # The cache defaults to the compute dtype; decoding still returns float32 logits.
  cache = bf16.init_cache(2, 8)
  assert cache.k[0].dtype == jnp.bfloat16
  logits, _ = _jit_apply(bf16, lambda m, t, k, c: m.decode(t, c, attention_mask=k))(tokens, mask, cache)
  assert logits.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(logits)[keep], np.asarray(b)[keep], atol=0.1, rtol=0)

