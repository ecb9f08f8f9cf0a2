"""The sampler against the training forward pass, transformers' greedy `generate`, and its own
processed distribution (chi-square)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import stats

from rljax import losses, models, ops, sampling
from rljax.models.config import DecoderConfig
from rljax.models.decoder import Decoder

from tests.helpers import hf_model

torch = pytest.importorskip("torch")


def _tiny(seed=0, family="llama", vocab=61):
  cfg = DecoderConfig(family=family, vocab_size=vocab, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                      head_dim=8, d_ff=64, max_positions=64, norm_eps=1e-6, activation="silu",
                      tie_word_embeddings=False, qkv_bias=False)
  model = Decoder(cfg, rngs=nnx.Rngs(seed))
  # Larger logits than the 0.02 init so sampled distributions are far from uniform.
  nnx.update(model, jax.tree.map(lambda x: 8 * x, nnx.state(model, nnx.Param)))
  return model


def _prompts():
  tokens = jnp.array([[0, 0, 0, 7, 8], [0, 11, 12, 13, 14], [5, 6, 7, 8, 9]], jnp.int32)
  return tokens, tokens > 0


def _training_logps(model, prompt, prompt_mask, rollout):
  tokens = jnp.concatenate([prompt, rollout.tokens], 1)
  mask = jnp.concatenate([prompt_mask, rollout.mask], 1)
  logits = model(tokens, attention_mask=mask)
  p = prompt.shape[1]
  return losses.token_logps(logits[:, p - 1:-1], rollout.tokens)


# Processed sampling, and plain sampling, where the drawn-from log-prob doubles as the model's.
@pytest.mark.parametrize("kw", [dict(temperature=0.7, top_k=20), dict()])
def test_model_logprobs_equal_training_forward(kw):
  model = _tiny()
  prompt, mask = _prompts()
  r = sampling.generate(model, prompt, mask, key=jax.random.PRNGKey(3), max_new_tokens=9, eos_token_id=(4, 17), **kw)
  ref = _training_logps(model, prompt, mask, r)
  np.testing.assert_allclose(np.where(r.mask, r.model_logprobs, 0), np.where(r.mask, ref, 0), atol=1e-5)
  # The drawn-from log-probs are those of the processed distribution over the same logits.
  tokens = jnp.concatenate([prompt, r.tokens], 1)
  logits = model(tokens, attention_mask=jnp.concatenate([mask, r.mask], 1))[:, prompt.shape[1] - 1:-1]
  logq = sampling.process_logits(logits, sampling.sampling_params(**kw))
  ref_q = jnp.take_along_axis(logq, r.tokens[..., None], -1)[..., 0]
  np.testing.assert_allclose(np.where(r.mask, r.logprobs, 0), np.where(r.mask, ref_q, 0), atol=1e-5)


def test_eos_stops_rows_and_pads():
  model = _tiny()
  prompt, mask = _prompts()
  free = sampling.generate(model, prompt, mask, key=jax.random.PRNGKey(0), max_new_tokens=8)
  eos = int(free.tokens[0, 2])  # row 0's third token becomes EOS
  r = sampling.generate(model, prompt, mask, key=jax.random.PRNGKey(0), max_new_tokens=8, eos_token_id=eos,
                        pad_token_id=60)
  first = int(np.argmax(np.asarray(r.tokens[0]) == eos))
  assert first <= 2 and r.lengths[0] == first + 1
  assert np.all(np.asarray(r.tokens[0, first + 1:]) == 60) and not np.any(np.asarray(r.mask[0, first + 1:]))
  np.testing.assert_array_equal(r.lengths, np.asarray(r.mask).sum(1))
  assert np.all(np.asarray(r.logprobs)[~np.asarray(r.mask)] == 0)


def test_deterministic_and_no_recompile_for_new_parameters():
  model = _tiny()
  prompt, mask = _prompts()
  run = lambda key, **kw: sampling.generate(model, prompt, mask, key=key, max_new_tokens=6, **kw)
  a, b = run(jax.random.PRNGKey(1), temperature=0.9), run(jax.random.PRNGKey(1), temperature=0.9)
  np.testing.assert_array_equal(a.tokens, b.tokens)
  assert not np.array_equal(a.tokens, run(jax.random.PRNGKey(2), temperature=0.9).tokens)
  size = sampling.generate.__globals__["_generate"]._cache_size()
  for kw in (dict(temperature=0.5), dict(top_k=3), dict(top_p=0.8), dict(min_p=0.1), dict(greedy=True)):
    run(jax.random.PRNGKey(1), **kw)
  assert sampling.generate.__globals__["_generate"]._cache_size() == size


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2"])
def test_greedy_matches_transformers_generate(family, tmp_path):
  hf = hf_model(family, tied=family == "gpt2")
  hf.save_pretrained(tmp_path)
  ours = models.from_pretrained(str(tmp_path))
  tokens = np.array([[0, 0, 0, 5, 9, 31], [0, 44, 3, 17, 8, 60], [11, 12, 13, 14, 15, 16]])
  mask = (np.arange(6)[None] >= np.array([[3], [1], [0]])).astype(np.int64)
  with torch.no_grad():
    out = hf.generate(input_ids=torch.tensor(tokens), attention_mask=torch.tensor(mask), do_sample=False,
                      max_new_tokens=12, min_new_tokens=0, pad_token_id=0, eos_token_id=2)
  theirs = out[:, tokens.shape[1]:].numpy()
  r = sampling.generate(ours, jnp.asarray(tokens), jnp.asarray(mask), key=jax.random.PRNGKey(0),
                        max_new_tokens=12, greedy=True, eos_token_id=2, pad_token_id=0)
  theirs = np.pad(theirs, ((0, 0), (0, 12 - theirs.shape[1])))  # HF stops when every row has ended
  np.testing.assert_array_equal(np.asarray(r.tokens), theirs)


@pytest.mark.parametrize("kw", [dict(temperature=0.6, top_k=6), dict(top_p=0.7), dict(min_p=0.2, temperature=1.3),
                                dict(temperature=1.2, top_k=12, top_p=0.9, min_p=0.05)])
def test_sampled_frequencies_match_processed_distribution(kw):
  model = _tiny(seed=1, vocab=23)
  n = 6000
  prompt = jnp.tile(jnp.array([[3, 4, 5]], jnp.int32), (n, 1))
  r = sampling.generate(model, prompt, jnp.ones_like(prompt, bool), key=jax.random.PRNGKey(7),
                        max_new_tokens=1, **kw)
  probs = np.exp(np.asarray(sampling.process_logits(model(prompt[:1])[0, -1], sampling.sampling_params(**kw)),
                            np.float64))
  counts = np.bincount(np.asarray(r.tokens[:, 0]), minlength=23)
  support = probs > 0
  assert counts[~support].sum() == 0, "sampled a token the processors excluded"
  chi2, pvalue = stats.chisquare(counts[support], probs[support] / probs[support].sum() * n)
  assert pvalue > 1e-3, (chi2, pvalue, counts, probs)


def test_mixture_and_nlpo_mask_sample_the_named_distributions():
  policy, ref = _tiny(seed=0), _tiny(seed=5)
  prompt, mask = _prompts()
  r = sampling.generate(policy, prompt, mask, key=jax.random.PRNGKey(4), max_new_tokens=5, mixture_model=ref,
                        mixture_alpha=0.3)
  full = jnp.concatenate([prompt, r.tokens], 1)
  fmask = jnp.concatenate([mask, r.mask], 1)
  sl = slice(prompt.shape[1] - 1, -1)
  lp, lr = policy(full, attention_mask=fmask)[:, sl], ref(full, attention_mask=fmask)[:, sl]
  mix = jax.nn.log_softmax(0.7 * jax.nn.log_softmax(lp) + 0.3 * jax.nn.log_softmax(lr))
  expect = jnp.take_along_axis(mix, r.tokens[..., None], -1)[..., 0]
  # Both models' logits reach ~24 here; the cached decode and the full forward differ by up to ~5e-5 in
  # them, and the mixture carries that into its log-probs.
  np.testing.assert_allclose(np.where(r.mask, r.logprobs, 0), np.where(r.mask, expect, 0), atol=5e-5)
  np.testing.assert_allclose(np.where(r.mask, r.model_logprobs, 0),
                             np.where(r.mask, losses.token_logps(lp, r.tokens), 0), atol=1e-5)
  r = sampling.generate(policy, prompt, mask, key=jax.random.PRNGKey(4), max_new_tokens=5, mask_model=ref,
                        mask_top_p=0.5)
  full, fmask = jnp.concatenate([prompt, r.tokens], 1), jnp.concatenate([mask, r.mask], 1)
  allowed = ops.top_p_mask(ref(full, attention_mask=fmask)[:, sl], 0.5)
  picked = jnp.take_along_axis(allowed, r.tokens[..., None], -1)[..., 0]
  assert bool(jnp.all(picked | ~r.mask))


def test_processors():
  x = jnp.array([[1.0, 3.0, 2.0, 0.0, 3.0]])
  np.testing.assert_array_equal(np.isfinite(sampling.top_k_logits(x, 2)), [[False, True, False, False, True]])
  np.testing.assert_array_equal(sampling.top_k_logits(x, 0), x)
  p = jax.nn.softmax(x)
  keep = np.isfinite(sampling.min_p_logits(x, 0.3))
  np.testing.assert_array_equal(keep, p >= 0.3 * p.max())
  np.testing.assert_array_equal(np.isfinite(sampling.top_p_logits(x, 1.0)), True)
  assert np.isfinite(sampling.top_p_logits(x, 0.3)).sum() == 1
  np.testing.assert_allclose(sampling.geometric_mixture(x, 2 * x, alpha=0.5),
                             jax.nn.log_softmax(1.5 * x), atol=1e-6)
  jitted = jax.jit(lambda x, k, p: sampling.top_p_logits(sampling.top_k_logits(x, k), p))
  assert np.isfinite(jitted(x, 3, 0.99)).sum() == 3


def test_bad_input():
  model = _tiny()
  prompt, mask = _prompts()
  gen = lambda **kw: sampling.generate(model, kw.pop("prompt", prompt), kw.pop("mask", mask),
                                       key=jax.random.PRNGKey(0), **{"max_new_tokens": 4, **kw})
  with pytest.raises(ValueError, match="cache_len"):
    gen(cache_len=8)
  with pytest.raises(ValueError, match="Empty prompt"):
    gen(mask=mask.at[0].set(False))
  with pytest.raises(ValueError, match="Empty prompt"):
    gen(prompt=prompt[:, :0], mask=mask[:, :0])
  with pytest.raises(ValueError, match="left-padded"):
    gen(mask=mask.at[1, -1].set(False))
  for bad in (0.0, 1.5, -0.1):
    with pytest.raises(ValueError, match="top_p"):
      gen(top_p=bad)
  with pytest.raises(ValueError, match="temperature"):
    gen(temperature=0.0)
  gen(temperature=0.0, greedy=True)  # greedy ignores the temperature
  with pytest.raises(ValueError, match="max_new_tokens"):
    gen(max_new_tokens=0)


_MESH_SCRIPT = """
import jax, jax.numpy as jnp, numpy as np
from flax import nnx
from rljax import sharding, sampling
from rljax.models.config import DecoderConfig
from rljax.models.decoder import Decoder
cfg = DecoderConfig(family="llama", vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=8,
                    d_ff=64, max_positions=64, norm_eps=1e-6, activation="silu", tie_word_embeddings=False,
                    qkv_bias=False)
model = Decoder(cfg, rngs=nnx.Rngs(0))
nnx.update(model, jax.tree.map(lambda x: 8 * x, nnx.state(model, nnx.Param)))
rng = np.random.default_rng(0)
prompt = jnp.asarray(rng.integers(1, 64, (8, 6)), jnp.int32)
mask = jnp.asarray(np.arange(6)[None] >= rng.integers(0, 5, (8, 1)))
kw = dict(key=jax.random.PRNGKey(0), max_new_tokens=7, temperature=0.8)
single = sampling.generate(model, prompt, mask, **kw)
mesh = sharding.make_mesh((2, 2, 2))
sharding.shard_model(model, mesh)
bs = sharding.batch_sharding(mesh)
with jax.set_mesh(mesh):
  sharded = sampling.generate(model, jax.device_put(prompt, bs), jax.device_put(mask, bs), **kw)
assert len(sharded.tokens.sharding.device_set) == 8
np.testing.assert_array_equal(np.asarray(sharded.tokens), np.asarray(single.tokens))
np.testing.assert_allclose(np.asarray(sharded.model_logprobs), np.asarray(single.model_logprobs), rtol=1e-4, atol=1e-5)
print("OK")
"""


def test_generate_on_a_mesh_matches_single_device():
  import os
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu",
         "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
  proc = subprocess.run([sys.executable, "-c", _MESH_SCRIPT], env=env, cwd=root, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stderr[-4000:]
