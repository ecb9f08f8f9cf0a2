"""rljax.models.heads: fused LM head == unfused (values, gradients), memory, value and reward heads."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rljax.ops.logps import token_logps
from rljax.models import Decoder, DecoderConfig
from rljax.models.heads import (RewardHead, ValueHead, last_token_index, lm_head_token_logps,
                                model_token_logps)

B, T, D, V = 2, 13, 8, 37


def make(dtype=jnp.float32, shape=(B, T, D, V), seed=0):
  b, t, d, v = shape
  rng = np.random.default_rng(seed)
  hidden = jnp.asarray(rng.standard_normal((b, t, d)), dtype)
  head = jnp.asarray(rng.standard_normal((d, v)), dtype)
  targets = jnp.asarray(rng.integers(0, v, (b, t)), jnp.int32)
  cot = jnp.asarray(rng.standard_normal((b, t)), jnp.float32)  # a generic upstream gradient
  return hidden, head, targets, cot


def unfused(hidden, head, targets):
  return token_logps(hidden @ head, targets, chunk_size=None)


# Compiled once for all chunk sizes: the reference is the same program every time.
unfused_grads = jax.jit(jax.grad(lambda h, w, y, cot: jnp.sum(cot * unfused(h, w, y)), argnums=(0, 1)))


def tiny_config(tied: bool, family: str = "llama", **kw) -> DecoderConfig:
  if family == "gpt2":
    return DecoderConfig(family="gpt2", vocab_size=41, d_model=16, n_layers=1, n_heads=2, n_kv_heads=2,
                         head_dim=8, d_ff=32, max_positions=32, norm_eps=1e-5, activation="gelu_new",
                         tie_word_embeddings=tied, qkv_bias=True, **kw)
  return DecoderConfig(family=family, vocab_size=41, d_model=16, n_layers=1, n_heads=4, n_kv_heads=2,
                       head_dim=4, d_ff=32, max_positions=32, norm_eps=1e-6, activation="silu",
                       tie_word_embeddings=tied, qkv_bias=False, **kw)


@functools.lru_cache(maxsize=None)
def tiny_model(tied: bool, family: str = "llama", compute_dtype=jnp.float32) -> Decoder:
  """Built once per config: eager init dominates these tests on a loaded CPU. Tests never mutate it."""
  return Decoder(tiny_config(tied, family, compute_dtype=compute_dtype), rngs=nnx.Rngs(0))


@pytest.mark.parametrize("chunk_size", [None, 1, 5, 7, 13, "auto"])  # T = 13: divisors, non-divisors, ≥ T
def test_fused_matches_unfused_values_and_grads(chunk_size):
  hidden, head, targets, cot = make()
  fused = jax.jit(functools.partial(lm_head_token_logps, chunk_size=chunk_size))
  out = fused(hidden, head, targets)
  assert out.shape == (B, T) and out.dtype == jnp.float32
  np.testing.assert_allclose(out, unfused(hidden, head, targets), rtol=1e-6, atol=1e-5)

  got = jax.jit(jax.grad(lambda h, w: jnp.sum(cot * fused(h, w, targets)), argnums=(0, 1)))(hidden, head)
  want = unfused_grads(hidden, head, targets, cot)
  for g, w in zip(got, want):
    assert g.dtype == jnp.float32
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_tied_transposed_head():
  hidden, head, targets, cot = make()
  embed_vd = head.T
  f = lambda h, e: jnp.sum(cot * lm_head_token_logps(h, e.T, targets, chunk_size=5))
  g = lambda h, e: jnp.sum(cot * unfused(h, e.T, targets))
  np.testing.assert_allclose(f(hidden, embed_vd), g(hidden, embed_vd), rtol=1e-6)
  for a, b in zip(jax.jit(jax.grad(f, (0, 1)))(hidden, embed_vd), jax.grad(g, (0, 1))(hidden, embed_vd)):
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_bf16_hidden_gives_float32_close_to_reference():
  hidden, head, targets, cot = make()
  out = lm_head_token_logps(hidden.astype(jnp.bfloat16), head.astype(jnp.bfloat16), targets, chunk_size=4)
  assert out.dtype == jnp.float32
  # The chunk matmul accumulates in float32, so the only error is the bf16 rounding of the inputs.
  exact = unfused(hidden.astype(jnp.bfloat16).astype(jnp.float32),
                  head.astype(jnp.bfloat16).astype(jnp.float32), targets)
  np.testing.assert_allclose(out, exact, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(out, unfused(hidden, head, targets), rtol=0.05, atol=0.1)
  # Mixed: bf16 hidden with a float32 head computes in float32.
  mixed = lm_head_token_logps(hidden.astype(jnp.bfloat16), head, targets, chunk_size=4)
  np.testing.assert_allclose(mixed, unfused(hidden.astype(jnp.bfloat16).astype(jnp.float32), head, targets),
                             rtol=1e-5, atol=1e-4)
  grads = jax.grad(lambda h, w: jnp.sum(cot * lm_head_token_logps(h, w, targets, chunk_size=4)), (0, 1))(
      hidden.astype(jnp.bfloat16), head)
  assert grads[0].dtype == jnp.bfloat16 and grads[1].dtype == jnp.float32


def test_out_of_range_target_is_nan_without_gradient():
  hidden, head, targets, _ = make()
  targets = targets.at[0, 3].set(-100).at[1, 5].set(V)
  out = lm_head_token_logps(hidden, head, targets, chunk_size=4)
  assert np.isnan(out[0, 3]) and np.isnan(out[1, 5])
  valid = (targets >= 0) & (targets < V)
  np.testing.assert_allclose(jnp.where(valid, out, 0), jnp.where(valid, unfused(hidden, head, targets), 0),
                             rtol=1e-6, atol=1e-5)
  dh = jax.grad(lambda h: jnp.sum(jnp.where(valid, lm_head_token_logps(h, head, targets, chunk_size=4), 0)))(hidden)
  assert np.all(np.isfinite(dh))


def test_forward_and_backward_memory_is_at_least_3x_smaller():
  b, t, d, v = 1, 2048, 64, 32768
  spec = (jax.ShapeDtypeStruct((b, t, d), jnp.float32), jax.ShapeDtypeStruct((d, v), jnp.float32),
          jax.ShapeDtypeStruct((b, t), jnp.int32))

  def temp_bytes(f):
    step = jax.grad(lambda h, w, y: jnp.sum(f(h, w, y)), argnums=(0, 1))
    return jax.jit(step).lower(*spec).compile().memory_analysis().temp_size_in_bytes

  fused = temp_bytes(lm_head_token_logps)  # chunk_size="auto"
  base = temp_bytes(lambda h, w, y: token_logps(h @ w, y))
  logits_bytes = b * t * v * 4
  assert base >= logits_bytes  # the unfused path holds at least one float32 [B, T, V] buffer
  assert 3 * fused <= base, (fused, base)
  assert fused < logits_bytes / 8


@pytest.mark.parametrize("family,tied", [("llama", False), ("gpt2", True)])
def test_model_token_logps_matches_model_logits(family, tied):
  model = tiny_model(tied, family)
  assert (model.lm_head_dv is None) == tied
  rng = np.random.default_rng(1)
  tokens = jnp.asarray(rng.integers(0, 41, (2, 9)), jnp.int32)
  targets = jnp.asarray(rng.integers(0, 41, (2, 9)), jnp.int32)
  mask = jnp.asarray([[1] * 9, [0, 0, 0] + [1] * 6], jnp.int32)  # one left-padded row
  cot = jnp.asarray(rng.standard_normal((2, 9)), jnp.float32)

  def fused(m):
    return jnp.sum(cot * model_token_logps(m, tokens, targets, mask, chunk_size=4))

  def reference(m):
    return jnp.sum(cot * token_logps(m(tokens, mask), targets))

  # Jitted: eager op-by-op dispatch of the decoder dominates the test time otherwise.
  got_loss, got = nnx.jit(nnx.value_and_grad(fused))(model)
  want_loss, want = nnx.jit(nnx.value_and_grad(reference))(model)
  np.testing.assert_allclose(got_loss, want_loss, rtol=1e-6, atol=1e-5)
  got_leaves, want_leaves = jax.tree.leaves(got), jax.tree.leaves(want)
  assert len(got_leaves) == len(want_leaves) > 0
  for g, w in zip(got_leaves, want_leaves):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
  # The tied embedding gets both the input-embedding and the head gradient.
  embed_grad = np.asarray(got["embed_vd"][...])
  assert np.abs(embed_grad).sum() > 0


def test_model_token_logps_bf16_model():
  model = tiny_model(True, "llama", jnp.bfloat16)
  tokens = jnp.asarray(np.random.default_rng(2).integers(0, 41, (2, 7)), jnp.int32)
  out = nnx.jit(lambda m, t: model_token_logps(m, t, jnp.roll(t, -1, axis=1), chunk_size=3))(model, tokens)
  assert out.dtype == jnp.float32
  # Same bf16 hidden states and head; both heads accumulate the matmul in float32.
  want = nnx.jit(lambda m, t: token_logps(m(t), jnp.roll(t, -1, axis=1)))(model, tokens)
  np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


def test_last_token_index():
  mask = jnp.asarray([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 1, 0, 0], [0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(last_token_index(mask), [2, 4, 2, 4])
  np.testing.assert_array_equal(last_token_index(mask.astype(bool)), [2, 4, 2, 4])


def test_value_and_reward_heads_shapes_and_reading():
  hidden, *_ = make()
  value = ValueHead(D, rngs=nnx.Rngs(0))
  reward = RewardHead(D, rngs=nnx.Rngs(1))
  v = value(hidden.astype(jnp.bfloat16))
  assert v.shape == (B, T) and v.dtype == jnp.float32
  per_token = lambda h: h @ reward.proj.kernel[...][:, 0] + reward.proj.bias[...][0]
  right = jnp.asarray([[1] * 5 + [0] * (T - 5), [1] * T])
  left = jnp.asarray([[0] * (T - 5) + [1] * 5, [0] * 2 + [1] * (T - 2)])
  r = reward(hidden, right)
  assert r.shape == (B,) and r.dtype == jnp.float32
  np.testing.assert_allclose(r, [per_token(hidden[0, 4]), per_token(hidden[1, T - 1])], rtol=1e-6)
  np.testing.assert_allclose(reward(hidden, left), per_token(hidden[:, T - 1]), rtol=1e-6)
  np.testing.assert_allclose(reward(hidden), per_token(hidden[:, T - 1]), rtol=1e-6)
  np.testing.assert_allclose(value(hidden), hidden @ value.proj.kernel[...][:, 0] + value.proj.bias[...][0],
                             rtol=1e-6, atol=1e-7)


def test_reward_is_padding_side_invariant_on_a_backbone():
  """A sequence right-padded and the same sequence left-padded get the same reward."""
  model = tiny_model(False)
  reward = RewardHead(16, rngs=nnx.Rngs(1))
  seq = np.asarray([5, 9, 13, 2, 7])
  tokens = jnp.asarray([np.r_[seq, 0, 0, 0], np.r_[0, 0, 0, seq]], jnp.int32)
  mask = jnp.asarray([[1] * 5 + [0] * 3, [0] * 3 + [1] * 5], jnp.int32)
  r = nnx.jit(lambda m, h, t, a: h(m.hidden_states(t, a), a))(model, reward, tokens, mask)
  np.testing.assert_allclose(r[0], r[1], rtol=1e-5, atol=1e-6)


def test_heads_share_a_backbone_and_gradients_reach_it():
  class Critic(nnx.Module):

    def __init__(self, rngs):
      self.backbone = tiny_model(True, "gpt2")  # shared, not copied: gradients do not mutate it
      self.value = ValueHead(16, rngs=rngs)
      self.reward = RewardHead(16, rngs=rngs)

  critic = Critic(nnx.Rngs(0))
  tokens = jnp.asarray(np.random.default_rng(3).integers(0, 41, (2, 6)), jnp.int32)
  mask = jnp.asarray([[1] * 6, [1] * 4 + [0] * 2])

  def loss(c):
    h = c.backbone.hidden_states(tokens, mask)
    return jnp.sum(c.value(h) * mask) + jnp.sum(c.reward(h, mask) ** 2)

  grads = nnx.jit(nnx.grad(loss))(critic)
  for name in ("embed_vd",):
    assert np.abs(np.asarray(grads["backbone"][name][...])).sum() > 0
  layer0 = grads["backbone"]["layers"][0]["attn"]["q_proj_dnh"][...]
  assert np.abs(np.asarray(layer0)).sum() > 0
  assert np.abs(np.asarray(grads["value"]["proj"]["kernel"][...])).sum() > 0
  assert np.abs(np.asarray(grads["reward"]["proj"]["kernel"][...])).sum() > 0


def test_bad_inputs_raise():
  hidden, head, targets, _ = make()
  with pytest.raises(ValueError, match="`hidden`"):
    lm_head_token_logps(hidden[0], head, targets)
  with pytest.raises(ValueError, match="`head_dv`"):
    lm_head_token_logps(hidden, head[0], targets)
  with pytest.raises(ValueError, match="`head_dv`.*embed_vd.T"):
    lm_head_token_logps(hidden, head.T, targets)  # an untransposed [V, D] embedding
  with pytest.raises(ValueError, match="`head_dv`.*V = 0"):
    lm_head_token_logps(hidden, head[:, :0], targets)
  with pytest.raises(ValueError, match="`targets`"):
    lm_head_token_logps(hidden, head, targets[:, :-1])
  with pytest.raises(ValueError, match="`targets`"):
    lm_head_token_logps(hidden, head, targets.astype(jnp.float32))
  with pytest.raises(ValueError, match="`hidden`"):
    lm_head_token_logps(hidden.astype(jnp.int32), head, targets)
  for bad in (0, -2, 2.5, True, "big"):
    with pytest.raises(ValueError, match="`chunk_size`"):
      lm_head_token_logps(hidden, head, targets, chunk_size=bad)
  value, reward = ValueHead(D, rngs=nnx.Rngs(0)), RewardHead(D, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="`hidden`"):
    value(hidden[..., :-1])
  with pytest.raises(ValueError, match="`hidden`"):
    reward(hidden[0])
  with pytest.raises(ValueError, match="`attention_mask`"):
    reward(hidden, jnp.ones((B, T + 1)))
  with pytest.raises(ValueError, match="`attention_mask`"):
    last_token_index(jnp.ones((T,)))
  with pytest.raises(ValueError, match="`d_model`"):
    ValueHead(0, rngs=nnx.Rngs(0))
