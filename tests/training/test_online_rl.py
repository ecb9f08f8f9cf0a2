"""Online RL trainer (`rljax.training.online`) on a toy task: reward = fraction of response tokens equal
to a target token, a tiny llama policy. Checks on-policy log-probs, learning, the KL to the reference,
preset resolution and the critic path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rljax import training as T
from rljax.models import Decoder, DecoderConfig
from rljax.training import online

VOCAB, TARGET, EOS, PAD = 16, 3, 1, 0
CFG = DecoderConfig(family="llama", vocab_size=VOCAB, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=16,
                    d_ff=64, max_positions=64, norm_eps=1e-6, activation="silu", tie_word_embeddings=False,
                    qkv_bias=False)
ITERS = 20


def target_fraction(tokens, mask):
  m = mask.astype(jnp.float32)
  return jnp.sum((tokens == TARGET) * m, -1) / jnp.maximum(jnp.sum(m, -1), 1.0)


def _prompts():
  # Left-padded prompts of lengths 3, 2, 3, 1 (pad 0 = PAD, never a real prompt token here).
  tokens = np.array([[5, 9, 12], [0, 7, 4], [14, 6, 8], [0, 0, 11]], np.int32)
  return jnp.asarray(tokens), jnp.asarray(tokens > 0)


def _setup(name, model, *, lr=1e-2, **kw):
  opt = T.make_optimizer(lr)
  graphdef, state = online.init_online_state(model, opt, rng=jax.random.PRNGKey(0))
  algo = online.make_online_rl(name, graphdef=graphdef, reward_fn=target_fraction, group_size=8, max_new_tokens=8,
                               eos_token_id=EOS, pad_token_id=PAD, **kw)
  return algo, state, algo.make_step(opt)


@pytest.fixture(scope="module")
def grpo_run():
  """20 GRPO iterations (2 minibatches per rollout); the first and last rollouts on one fixed key."""
  algo, state, step = _setup("grpo", Decoder(CFG, rngs=nnx.Rngs(0)), minibatches=2)
  prompts, mask = _prompts()
  eval_key = jax.random.PRNGKey(123)
  before = algo.collect(state, prompts, mask, eval_key)
  history = []
  for it in range(ITERS):
    state, metrics = algo.rl_iteration(state, step, prompts, mask, jax.random.fold_in(jax.random.PRNGKey(1), it))
    history.append(metrics)
  after = algo.collect(state, prompts, mask, eval_key)
  return algo, before, after, history


def test_old_logp_is_the_sampler_logp(grpo_run):
  algo, before, _, history = grpo_run
  m = np.asarray(before["mask"])
  assert m.any() and not m.all()  # some rows stopped at EOS: padding is exercised
  np.testing.assert_allclose(np.where(m, before["old_logp"], 0), np.where(m, before["sampler_logp"], 0), atol=1e-5)
  # On-policy at the first minibatch of every rollout: ratio 1, nothing clipped.
  for h in history:
    assert h["first_clipfrac"] == 0.0
    assert abs(h["first_ratio_mean"] - 1.0) < 1e-5


def test_grpo_increases_reward(grpo_run):
  algo, before, after, history = grpo_run
  r0, r1 = float(jnp.mean(before["rewards"])), float(jnp.mean(after["rewards"]))
  assert r0 < 0.2  # ~1/VOCAB at initialisation
  assert r1 > r0 + 0.4, (r0, r1)
  curve = np.array([h["reward_mean"] for h in history])
  assert curve[-5:].mean() > curve[:5].mean() + 0.3, curve


def test_kl_to_reference(grpo_run):
  algo, before, after, history = grpo_run
  start, end = algo.rollout_stats(before), algo.rollout_stats(after)
  assert float(start["kl_k1"]) == 0.0 and float(start["kl_k3"]) == 0.0
  np.testing.assert_array_equal(before["old_logp"], before["ref_logp"])
  assert float(end["kl_k3"]) > 1e-2 and float(end["kl_k1"]) > 0.0
  assert history[0]["kl_k3"] == 0.0 and history[-1]["kl_k3"] > 0.0


def test_response_forward_paths_agree():
  """The fused-head log-probs equal those read from full logits (entropy path) and from hidden states
  shared with the value head; the entropy is that of the full next-token distribution."""
  model = online.ActorCritic(Decoder(CFG, rngs=nnx.Rngs(3)), rngs=nnx.Rngs(4))
  prompts, mask = _prompts()
  tokens = jnp.concatenate([prompts, jnp.tile(jnp.arange(2, 7, dtype=jnp.int32), (4, 1))], 1)
  token_mask = jnp.concatenate([mask, jnp.arange(5)[None] < jnp.array([5, 3, 1, 4])[:, None]], 1)

  @jax.jit
  def paths(tokens, token_mask):
    fused, _, _ = online.response_forward(model.policy, tokens, token_mask, 5)
    full, _, ent = online.response_forward(model.policy, tokens, token_mask, 5, entropy=True)
    shared, values, _ = online.response_forward(model, tokens, token_mask, 5, values=True)
    logq = jax.nn.log_softmax(model.policy(tokens, attention_mask=token_mask)[:, -6:-1], -1)
    return fused, full, shared, values, ent, -jnp.sum(jnp.exp(logq) * logq, -1)

  fused, full, shared, values, ent, ent_ref = paths(tokens, token_mask)
  np.testing.assert_allclose(full, fused, atol=1e-5)
  np.testing.assert_allclose(shared, fused, atol=1e-5)
  np.testing.assert_allclose(ent, ent_ref, atol=1e-5)
  assert values.shape == (4, 5)
  with pytest.raises(ValueError, match="ActorCritic"):
    online.response_forward(model.policy, tokens, token_mask, 5, values=True)


def test_presets_resolve_by_name():
  model = Decoder(CFG, rngs=nnx.Rngs(0))
  graphdef = nnx.graphdef(model)
  make = lambda name, **kw: online.make_online_rl(name, graphdef=graphdef, reward_fn=target_fraction,
                                                  max_new_tokens=4, eos_token_id=EOS, **kw)
  for name in ("grpo", "dr_grpo", "dapo", "rloo", "reinforce_pp", "gspo", "ppo"):
    algo = make(name, group_size=4)
    assert algo.config.name == name and algo.config.group_size == 4
  assert make("dapo").config.group_size == 16  # the preset's own group size when none is given
  with pytest.raises(ValueError, match="cfg_name_or_config"):
    make("not_a_preset")
  with pytest.raises(ValueError, match="teacher_logp"):
    make("kdrl")
  with pytest.raises(ValueError, match="minibatches"):
    make("grpo", minibatches=0)
  with pytest.raises(ValueError, match="group_size"):
    make("grpo", group_size=0)


def test_bad_prompts_and_minibatches():
  algo, state, step = _setup("rloo", Decoder(CFG, rngs=nnx.Rngs(0)), minibatches=3)
  prompts, mask = _prompts()
  with pytest.raises(ValueError, match="left-padded"):
    algo.collect(state, prompts[:, ::-1], mask[:, ::-1], jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match="minibatches"):
    algo.rl_iteration(state, step, prompts, mask, jax.random.PRNGKey(0))


@pytest.mark.parametrize("separate", [False, True], ids=["shared", "separate"])
def test_ppo_with_critic(separate):
  """PPO (GAE + critic) with a value head on the policy's backbone or on its own: the reward rises and
  the critic's values track the GAE returns of the improved policy."""
  critic = Decoder(CFG, rngs=nnx.Rngs(2)) if separate else None
  model = online.ActorCritic(Decoder(CFG, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1), critic_backbone=critic)
  algo, state, step = _setup("ppo", model, epochs=2)
  prompts, mask = _prompts()
  history = []
  for it in range(8):
    state, metrics = algo.rl_iteration(state, step, prompts, mask, jax.random.fold_in(jax.random.PRNGKey(1), it))
    history.append(metrics)
  assert history[0]["first_clipfrac"] == 0.0 and history[0]["first_vf_clipfrac"] == 0.0
  curve = np.array([h["reward_mean"] for h in history])
  assert curve[-3:].mean() > curve[:3].mean() + 0.2, curve
  batch = algo.collect(state, prompts, mask, jax.random.PRNGKey(5))
  m = np.asarray(batch["mask"])
  assert batch["old_values"].shape == m.shape and batch["returns"].shape == m.shape
  err = np.abs(np.asarray(batch["old_values"]) - np.asarray(batch["returns"]))[m].mean()
  assert err < 0.5 * np.abs(np.asarray(batch["returns"]))[m].mean(), err
