"""Rollout backends (`rljax.sampling.backend`): the native sampler is the reference and the default of
`make_online_rl`; a second engine, transformers `generate` on the weights exported by `save_pretrained`
after every update, plugs into the same online-RL iteration and its log-probs agree with the training
forward."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rljax import sampling
from rljax import training as T
from rljax.models import Decoder, save_pretrained
from rljax.training import online
from tests.training.test_online_rl import CFG, EOS, PAD, _prompts, target_fraction

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

N_NEW = 8


class TransformersBackend:
  """transformers `generate` on the trained weights, re-exported (`save_pretrained`) at every update."""

  def __init__(self, graphdef, workdir: str):
    self.graphdef, self.workdir, self.updates, self.model = graphdef, workdir, 0, None

  def update_weights(self, params) -> None:
    path = os.path.join(self.workdir, f"policy{self.updates}")
    save_pretrained(nnx.merge(self.graphdef, params), path)
    self.model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    self.updates += 1

  def generate(self, prompt_tokens, prompt_mask, key, *, max_new_tokens, temperature=1.0, eos_token_id=None,
               pad_token_id=0, greedy=False) -> sampling.Rollout:
    torch.manual_seed(int(jax.random.randint(key, (), 0, 2**31 - 1)))
    mode = dict(do_sample=False) if greedy else dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
    with torch.no_grad():
      out = self.model.generate(input_ids=torch.tensor(np.asarray(prompt_tokens), dtype=torch.long),
                                attention_mask=torch.tensor(np.asarray(prompt_mask), dtype=torch.long),
                                max_new_tokens=max_new_tokens, min_new_tokens=0, eos_token_id=eos_token_id,
                                pad_token_id=pad_token_id, output_logits=True, output_scores=True,
                                return_dict_in_generate=True, **mode)
    tokens = out.sequences[:, prompt_tokens.shape[1]:].numpy()
    is_eos = np.isin(tokens, np.atleast_1d(eos_token_id if eos_token_id is not None else -1))
    mask = np.cumsum(is_eos, 1) - is_eos == 0  # up to and including the first EOS
    pick = lambda logits: np.take_along_axis(torch.stack(logits, 1).log_softmax(-1).numpy(), tokens[..., None],
                                             -1)[..., 0]
    logprobs = np.zeros(tokens.shape, np.float32) if greedy else np.where(mask, pick(out.scores), 0.0)
    model_logprobs = np.where(mask, pick(out.logits), 0.0)
    pad = lambda x, value: np.pad(x, ((0, 0), (0, max_new_tokens - x.shape[1])), constant_values=value)
    mask = pad(mask, False)  # generate stops once every row has ended
    return sampling.Rollout(jnp.asarray(np.where(mask, pad(tokens, pad_token_id), pad_token_id), jnp.int32),
                            jnp.asarray(pad(logprobs, 0.0), jnp.float32),
                            jnp.asarray(pad(model_logprobs, 0.0), jnp.float32), jnp.asarray(mask),
                            jnp.asarray(mask.sum(-1), jnp.int32))


def _algo(graphdef, **kw):
  return online.make_online_rl("grpo", graphdef=graphdef, reward_fn=target_fraction, group_size=8,
                               max_new_tokens=N_NEW, eos_token_id=EOS, pad_token_id=PAD, **kw)


def test_native_backend_is_the_sampler_and_agrees_with_the_training_forward():
  model = Decoder(CFG, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model, nnx.Param)
  backend = sampling.NativeBackend(graphdef)
  assert isinstance(backend, sampling.RolloutBackend)
  p, m = (jnp.repeat(x, 8, axis=0) for x in _prompts())
  key = jax.random.PRNGKey(3)
  with pytest.raises(ValueError, match="update_weights"):
    backend.generate(p, m, key, max_new_tokens=N_NEW)
  backend.update_weights(params)
  r = backend.generate(p, m, key, max_new_tokens=N_NEW, eos_token_id=EOS, temperature=0.8)
  want = sampling.generate(model, p, m, key=key, max_new_tokens=N_NEW, eos_token_id=EOS, temperature=0.8)
  for x, y in zip(r, want):
    np.testing.assert_array_equal(x, y)
  assert np.asarray(r.mask).any() and not np.asarray(r.mask).all()
  gap = sampling.logprob_agreement(r.model_logprobs, sampling.reference_logprobs(model, p, m, r), r.mask)
  assert float(gap["max_abs"]) < 1e-5 and float(gap["mean_abs"]) <= float(gap["max_abs"])


def test_explicit_native_backend_is_the_default():
  model = Decoder(CFG, rngs=nnx.Rngs(0))
  opt = T.make_optimizer(1e-2)
  default = _algo(nnx.graphdef(model))
  _, state = default.init_state(model, opt, rng=jax.random.PRNGKey(0))
  explicit = _algo(nnx.graphdef(model), backend=sampling.NativeBackend(nnx.graphdef(model), policy=online.policy_of))
  p, m = _prompts()
  a, b = default.collect(state, p, m, jax.random.PRNGKey(4)), explicit.collect(state, p, m, jax.random.PRNGKey(4))
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  with pytest.raises(ValueError, match="RolloutBackend"):
    _algo(nnx.graphdef(model), backend=object())


def test_transformers_backend_runs_online_rl_and_agrees_with_the_reference(tmp_path):
  model = Decoder(CFG, rngs=nnx.Rngs(0))
  graphdef = nnx.graphdef(model)
  backend = TransformersBackend(graphdef, str(tmp_path))
  algo = _algo(graphdef, backend=backend)
  opt = T.make_optimizer(1e-2)
  _, state = algo.init_state(model, opt, rng=jax.random.PRNGKey(0))
  step = algo.make_step(opt)
  p, m = _prompts()
  batch = algo.collect(state, p, m, jax.random.PRNGKey(5))
  mask = np.asarray(batch["mask"])
  assert mask.any() and not mask.all() and backend.updates == 1
  # old_logp is the training forward on the weights the engine sampled with: the engine's log-probs agree.
  gap = sampling.logprob_agreement(batch["sampler_logp"], batch["old_logp"], mask)
  assert float(gap["max_abs"]) < 1e-4, gap
  for it in range(2):
    state, metrics = algo.rl_iteration(state, step, p, m, jax.random.fold_in(jax.random.PRNGKey(6), it))
    assert np.isfinite(metrics["loss"]) and metrics["first_ratio_mean"] == pytest.approx(1.0, abs=1e-5)
    assert 0.0 <= metrics["backend_logp_gap_mean"] <= metrics["backend_logp_gap_max"] < 1e-4
  assert backend.updates == 2  # the first iteration sampled θ_0 again; the second got the updated weights
  # Both engines on the final weights: the same greedy responses.
  backend.update_weights(state.params)
  native = sampling.NativeBackend(graphdef, state.params)
  kw = dict(max_new_tokens=N_NEW, eos_token_id=EOS, pad_token_id=PAD, greedy=True)
  theirs, ours = backend.generate(p, m, jax.random.PRNGKey(0), **kw), native.generate(p, m, jax.random.PRNGKey(0), **kw)
  np.testing.assert_array_equal(theirs.tokens, ours.tokens)
  np.testing.assert_array_equal(theirs.mask, ours.mask)
