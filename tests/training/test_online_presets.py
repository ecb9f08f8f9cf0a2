"""Every preset runs online: teacher log-probs (KDRL), demonstrations (HPT), greedy baselines (ReMax),
the adaptive KL controller, running reward statistics (PPO-max), NLPO's masking policy, DAPO's refill
and host-side rewards, each checked against a direct computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rljax import algorithms as algos
from rljax import sampling
from rljax import training as T
from rljax.models import Decoder, DecoderConfig
from rljax.ops.masks import top_p_mask
from rljax.training import online

VOCAB, TARGET, EOS, PAD, N_NEW, GROUP = 16, 3, 1, 0, 6, 4
CFG = DecoderConfig(family="llama", vocab_size=VOCAB, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=16,
                    d_ff=64, max_positions=64, norm_eps=1e-6, activation="silu", tie_word_embeddings=False,
                    qkv_bias=False)
PROMPTS = np.array([[5, 9, 12], [0, 7, 4], [14, 6, 8], [0, 0, 11]], np.int32)
DEMOS = (np.tile(np.array([[3, 3, 3, EOS]], np.int32), (4, 1)), np.array([[1, 1, 1, 1]] * 3 + [[1, 1, 0, 0]], bool))


def target_fraction(tokens, mask):
  m = mask.astype(jnp.float32)
  return jnp.sum((tokens == TARGET) * m, -1) / jnp.maximum(jnp.sum(m, -1), 1.0)


def _model(critic=False, seed=0):
  model = Decoder(CFG, rngs=nnx.Rngs(seed))
  return online.ActorCritic(model, rngs=nnx.Rngs(seed + 1)) if critic else model


def _setup(cfg, *, reward_fn=target_fraction, teacher=None, lr=1e-2, seed=0, **kw):
  cfg = algos.get(cfg) if isinstance(cfg, str) else cfg
  model = _model(cfg.critic.enabled, seed)
  opt = T.make_optimizer(lr)
  algo = online.make_online_rl(cfg, graphdef=nnx.graphdef(model), reward_fn=reward_fn, group_size=GROUP,
                               max_new_tokens=N_NEW, eos_token_id=EOS, pad_token_id=PAD, teacher=teacher, **kw)
  _, state = algo.init_state(model, opt, rng=jax.random.PRNGKey(0))
  return algo, state, algo.make_step(opt), model


def _prompts(rows=slice(None)):
  return jnp.asarray(PROMPTS[rows]), jnp.asarray(PROMPTS[rows] > 0)


def test_kdrl_reads_the_teachers_logps():
  teacher = _model(seed=7)
  algo, state, step, _ = _setup("kdrl", teacher=teacher)
  p, m = _prompts()
  batch = algo.collect(state, p, m, jax.random.PRNGKey(1))
  want, _, _ = jax.jit(lambda t, tm: online.response_forward(teacher, t, tm, N_NEW))(batch["tokens"], batch["token_mask"])
  np.testing.assert_allclose(batch["teacher_logp"], want, atol=1e-6)
  assert not np.allclose(np.asarray(batch["teacher_logp"])[np.asarray(batch["mask"])],
                         np.asarray(batch["old_logp"])[np.asarray(batch["mask"])])
  state, metrics = algo.rl_iteration(state, step, p, m, jax.random.PRNGKey(2))
  assert np.isfinite(metrics["loss"]) and metrics["kd_loss"] > 0
  with pytest.raises(ValueError, match="teacher"):
    _setup("kdrl")
  with pytest.raises(ValueError, match="teacher"):
    _setup("grpo", teacher=teacher)


def test_remax_baseline_is_the_greedy_responses_reward():
  algo, state, step, model = _setup("remax")
  p, m = _prompts()
  batch = algo.collect(state, p, m, jax.random.PRNGKey(3))
  g = sampling.generate(model, p, m, key=jax.random.PRNGKey(0), max_new_tokens=N_NEW, greedy=True, eos_token_id=EOS,
                        pad_token_id=PAD)
  tokens = jnp.concatenate([p, g.tokens], 1)
  greedy = target_fraction(tokens, jnp.concatenate([jnp.zeros_like(m), g.mask], 1))
  np.testing.assert_allclose(batch["greedy_rewards"], np.repeat(greedy, GROUP), atol=1e-6)
  mask = np.asarray(batch["mask"])
  adv = np.asarray(batch["advantages"])
  want = np.asarray(batch["rewards"] - batch["greedy_rewards"])[:, None] * mask
  np.testing.assert_allclose(adv, want, atol=1e-6)


def test_hpt_with_every_prompt_gated_to_sft_is_the_demonstration_nll():
  cfg = algos.get("hpt")
  cfg.loss_kwargs.gamma = float(GROUP)  # RL iff more than GROUP of GROUP rollouts are correct: never
  cfg.entropy_coef = 0.0  # the loss is then the demonstrations' NLL alone
  algo, state, step, model = _setup(cfg)
  p, m = _prompts()
  d_tokens = jnp.concatenate([p, jnp.asarray(DEMOS[0])], 1)
  d_mask = jnp.concatenate([m, jnp.asarray(DEMOS[1])], 1)
  logp, _, _ = jax.jit(lambda t, tm: online.response_forward(model, t, tm, 4))(d_tokens, d_mask)
  nll = -float(jnp.sum(jnp.where(DEMOS[1], logp, 0)) / DEMOS[1].sum())
  state, metrics = algo.rl_iteration(state, step, p, m, jax.random.PRNGKey(4), demos=DEMOS)
  assert metrics["first_frac_sft_prompts"] == 1.0
  np.testing.assert_allclose(metrics["first_loss"], nll, rtol=1e-5)
  for it in range(5):
    state, metrics = algo.rl_iteration(state, step, p, m, jax.random.PRNGKey(5 + it), demos=DEMOS)
  assert metrics["loss"] < nll - 0.3  # the demonstrations become likely
  with pytest.raises(ValueError, match="demos"):
    algo.rl_iteration(state, step, p, m, jax.random.PRNGKey(4))


def test_adaptive_kl_coefficient_follows_the_controller():
  cfg = algos.get("grpo")
  cfg.kl.adaptive = dict(target=0.01, horizon=64.0, per="samples")
  algo, state, step, _ = _setup(cfg, lr=5e-2)
  p, m = _prompts()
  assert float(state.extra["kl_coef"]) == pytest.approx(cfg.kl.coef)
  for it in range(3):
    coef = float(state.extra["kl_coef"])
    state, metrics = algo.rl_iteration(state, step, p, m, jax.random.PRNGKey(10 + it))
    assert metrics["kl_coef"] == pytest.approx(coef)
    err = np.clip(metrics["kl_k1_token"] / 0.01 - 1, -0.2, 0.2)
    assert float(state.extra["kl_coef"]) == pytest.approx(coef * (1 + err * len(PROMPTS) * GROUP / 64.0), rel=1e-5)
  assert float(state.extra["kl_coef"]) != pytest.approx(cfg.kl.coef)
  bad = algos.get("grpo")
  bad.kl.adaptive = dict(target=0.0, horizon=10.0)
  with pytest.raises(ValueError, match="target"):
    algos.resolve(bad)


def test_ppo_max_keeps_running_reward_statistics():
  algo, state, step, _ = _setup("ppo_max")
  p, m = _prompts()
  seen = []
  for it in range(2):
    batch = algo.collect(state, p, m, jax.random.PRNGKey(20 + it))
    seen.append(np.asarray(batch["rewards"]))
    state, _ = algo.rl_iteration(state, step, p, m, jax.random.PRNGKey(20 + it))
  stats = state.extra["reward_stats"]
  allr = np.concatenate(seen)
  # rl_iteration splits its key before collecting, so its rollouts differ from `seen`; the count does not.
  assert float(stats["count"]) == allr.size
  assert 0.0 <= float(stats["mean"]) <= 1.0 and float(stats["var"]) >= 0.0


def test_nlpo_samples_inside_the_masking_policys_top_p_set():
  cfg = algos.get("nlpo")
  cfg.nlpo.update(top_p=0.5, min_keep=2)
  algo, state, step, model = _setup(cfg)
  p, m = _prompts()
  batch = algo.collect(state, p, m, jax.random.PRNGKey(6))
  logits = model.policy(batch["tokens"][:, :-1], attention_mask=batch["token_mask"][:, :-1])[:, -N_NEW:]
  keep = np.asarray(top_p_mask(logits, 0.5, min_tokens_to_keep=2)) | (np.arange(VOCAB) == EOS)
  tok, mask = np.asarray(batch["tokens"][:, -N_NEW:]), np.asarray(batch["mask"])
  inside = np.take_along_axis(keep, tok[..., None], -1)[..., 0]
  assert inside[mask].all()
  assert (keep.sum(-1) < VOCAB).all()  # the set is a real restriction
  # The masked policy renormalises over the kept set: its log-probs exceed the raw policy's.
  assert (np.asarray(batch["old_logp"])[mask] >= np.asarray(batch["sampler_logp"])[mask] - 1e-6).all()
  assert (np.asarray(batch["old_logp"])[mask] > np.asarray(batch["sampler_logp"])[mask] + 1e-3).any()
  state, metrics = algo.rl_iteration(state, step, p, m, jax.random.PRNGKey(7))
  assert abs(metrics["first_ratio_mean"] - 1.0) < 1e-5
  assert "mask_params" in state.extra


def test_dapo_refills_until_the_batch_holds_informative_groups():
  """Prompts whose last token is odd get a constant reward (an uninformative group); refill draws more
  prompt batches until two informative groups are found, and `online_step` advances the data position
  by the batches drawn."""
  def reward(tokens, mask):
    # Even prompts: the mean response token, which tells almost any two responses apart, so that the
    # group is informative whatever the draw (a target-token fraction is 0 for a whole group ~20% of
    # the time); odd prompts: a constant.
    m = mask.astype(jnp.float32)
    return jnp.where(tokens[:, 2] % 2 == 0, jnp.sum(tokens * m, -1) / jnp.maximum(jnp.sum(m, -1), 1.0), 0.5)

  cfg = algos.get("dapo")
  cfg.dynamic_sampling.max_num_gen_batches = 4
  cfg.overlong.enabled = False
  algo, state, step, _ = _setup(cfg, reward_fn=reward)
  stream = [np.array([[5, 9, 13], [0, 7, 5]]), np.array([[2, 2, 3], [0, 1, 4]]), np.array([[1, 2, 3], [0, 2, 8]])]
  prompt_fn = lambda pos: (jnp.asarray(stream[pos % 3]), jnp.asarray(stream[pos % 3] > 0), None, None)
  fn = online.online_step(algo, step, prompt_fn, seed=0)
  state, metrics = fn(state, prompt_fn(0))
  assert metrics["gen_batches"] == 3.0 and metrics["informative_groups"] == 2.0
  assert int(state.data_pos) == 3
  # With a cap of one batch the uninformative groups stay in the batch, masked out of the loss.
  cfg.dynamic_sampling.max_num_gen_batches = 1
  algo, state, step, _ = _setup(cfg, reward_fn=reward)
  state, metrics = online.online_step(algo, step, prompt_fn)(state, prompt_fn(0))
  assert metrics["gen_batches"] == 1.0 and metrics["informative_groups"] == 0.0 and metrics["loss"] == 0.0


class _HostTargetFraction:
  """The jittable reward computed on the host, checking that each response gets its prompt's row."""

  on_host = True

  def __init__(self):
    self.calls = 0

  def __call__(self, prompt_ids, prompt_mask, completion_ids, completion_mask, rows):
    assert isinstance(completion_ids, np.ndarray) and len(rows) == len(completion_ids)
    for i, row in enumerate(rows):
      assert row["last"] == prompt_ids[i, -1]
    self.calls += 1
    m = completion_mask.astype(np.float32)
    r = ((completion_ids == TARGET) * m).sum(-1) / np.maximum(m.sum(-1), 1.0)
    return r.astype(np.float32), {"reward/host": float(r.mean())}


def test_host_reward_equals_the_jitted_reward():
  host = _HostTargetFraction()
  a_jit, state, _, _ = _setup("grpo")
  a_host, _, step, _ = _setup("grpo", reward_fn=host)
  p, m = _prompts()
  rows = [{"last": int(x)} for x in PROMPTS[:, -1]]
  b_jit = a_jit.collect(state, p, m, jax.random.PRNGKey(8))
  b_host = a_host.collect(state, p, m, jax.random.PRNGKey(8), rows=rows)
  np.testing.assert_array_equal(b_jit["tokens"], b_host["tokens"])
  np.testing.assert_allclose(b_host["rewards"], b_jit["rewards"], atol=1e-6)
  np.testing.assert_allclose(b_host["advantages"], b_jit["advantages"], atol=1e-5)
  state, metrics = a_host.rl_iteration(state, step, p, m, jax.random.PRNGKey(9), rows=rows)
  assert "reward/host" in metrics and host.calls == 2
  with pytest.raises(ValueError, match="rows"):
    a_host.collect(state, p, m, jax.random.PRNGKey(8), rows=rows[:2])


@pytest.mark.slow
@pytest.mark.parametrize("name", algos.names())
def test_every_preset_runs_online(name):
  cfg = algos.get(name)
  teacher = _model(seed=9) if "teacher_logp" in cfg.inputs.loss else None
  algo, state, step, _ = _setup(cfg, teacher=teacher)
  p, m = _prompts()
  for it in range(2):
    state, metrics = algo.rl_iteration(state, step, p, m, jax.random.PRNGKey(it), demos=DEMOS)
  assert all(np.isfinite(v) for v in metrics.values()), metrics


def test_evaluator_accuracy_matches_a_direct_count():
  """mean@k is the fraction of correct samples, greedy the fraction of correct greedy responses, per family."""
  from rljax.training.evaluate import make_evaluator

  def first_is_target(tokens, mask):  # correct iff the first response token is TARGET
    first = jnp.argmax(mask, axis=1)
    return (jnp.take_along_axis(tokens, first[:, None], 1)[:, 0] == TARGET).astype(jnp.float32)

  model = _model()
  p, m = _prompts()
  rows = [{"family": f, "difficulty": 0} for f in ("a", "a", "b", "b")]
  k = 6
  ev = make_evaluator(nnx.graphdef(model), p, m, rows, first_is_target, k=k, max_new_tokens=N_NEW, eos_token_id=EOS,
                      pad_token_id=PAD, seed=3)
  out = ev(nnx.state(model, nnx.Param))
  kw = dict(key=jax.random.PRNGKey(3), max_new_tokens=N_NEW, eos_token_id=EOS, pad_token_id=PAD)
  r = sampling.generate(model, jnp.repeat(p, k, 0), jnp.repeat(m, k, 0), **kw)
  correct = np.asarray(r.tokens[:, 0] == TARGET).reshape(4, k)
  g = np.asarray(sampling.generate(model, p, m, greedy=True, **kw).tokens[:, 0] == TARGET)
  assert correct.any() and not correct.all()  # the count is informative
  assert out[f"eval/acc/all/mean@{k}"] == pytest.approx(correct.mean())
  assert out[f"eval/acc/a/mean@{k}"] == pytest.approx(correct[:2].mean())
  assert out["eval/acc/b/greedy"] == pytest.approx(g[2:].mean())
  assert out == ev(nnx.state(model, nnx.Param))  # fixed keys: the same parameters give the same numbers
