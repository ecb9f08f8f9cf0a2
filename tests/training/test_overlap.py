"""Overlapped rollouts (`make_online_rl(..., overlap=True)`): the batch trained at iteration k is sampled by
the parameters of iteration k − 1 while iteration k − 1 trains. Checks that the first iteration is the
synchronous one, that old_logp (the ratio's denominator) is the sampling parameters' training forward, the
staleness metric, that prefetching and a checkpoint restore change nothing, and that it still learns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rljax import algorithms as algos
from rljax import training as T
from rljax.models import Decoder
from rljax.training import online
from tests.training.test_online_rl import CFG, EOS, PAD, TARGET, _prompts, target_fraction

N_NEW = 8
STREAM = [np.array([[5, 9, 12], [0, 7, 4], [14, 6, 8], [0, 0, 11]], np.int32),
          np.array([[2, 9, 13], [0, 5, 4], [15, 6, 9], [0, 0, 12]], np.int32)]


def prompt_fn(pos):
  p = STREAM[pos % len(STREAM)]
  return jnp.asarray(p), jnp.asarray(p > 0), [{"last": int(x)} for x in p[:, -1]], None


class HostTargetFraction:
  """`target_fraction` on the host, checking that each response comes with its prompt's row."""

  on_host = True

  def __init__(self):
    self.calls = 0

  def __call__(self, prompt_ids, prompt_mask, completion_ids, completion_mask, rows):
    assert [r["last"] for r in rows] == list(prompt_ids[:, -1])
    self.calls += 1
    m = completion_mask.astype(np.float32)
    return ((completion_ids == TARGET) * m).sum(-1) / np.maximum(m.sum(-1), 1.0), {}


def _setup(overlap=True, *, reward_fn=target_fraction, lr=1e-2, **kw):
  model = Decoder(CFG, rngs=nnx.Rngs(0))
  opt = T.make_optimizer(lr)
  algo = online.make_online_rl("grpo", graphdef=nnx.graphdef(model), reward_fn=reward_fn, group_size=8,
                               max_new_tokens=N_NEW, eos_token_id=EOS, pad_token_id=PAD, overlap=overlap, **kw)
  graphdef, state = algo.init_state(model, opt, rng=jax.random.PRNGKey(0))
  return algo, graphdef, state, algo.make_step(opt)


def _run(fn, state, iters):
  history = []
  for _ in range(iters):
    state, metrics = fn(state, prompt_fn(int(state.data_pos)))
    history.append(metrics)
  return state, history


def _assert_same(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_first_iteration_is_the_synchronous_one():
  """Nothing to overlap with: the first batch is sampled by θ_0, exactly as without overlap."""
  sync, _, s0, step0 = _setup(overlap=False)
  over, _, s1, step1 = _setup(overlap=True)
  assert set(s1.extra) - set(s0.extra) == {"behaviour_params", "behaviour_step"}
  s0, [m0] = _run(online.online_step(sync, step0, prompt_fn), s0, 1)
  s1, [m1] = _run(online.online_step(over, step1, prompt_fn), s1, 1)
  assert m1.pop("staleness") == 0.0 and m1 == m0
  _assert_same(s0.params, s1.params)
  assert m1["first_ratio_mean"] == 1.0 and m1["first_clipfrac"] == 0.0


def test_batch_is_sampled_by_the_previous_parameters():
  """At iteration k ≥ 1 the trained batch comes from θ_{k−1}: its old_logp is θ_{k−1}'s training forward
  (and the sampler's log-probs), not θ_k's; staleness is 1, the first ratio is no longer 1 and clipping
  stays moderate. The host reward of each batch runs once, with its prompts' rows."""
  host = HostTargetFraction()
  algo, graphdef, state, step = _setup(reward_fn=host)
  seen = []

  def spy(state, mb):
    seen.append(jax.device_get(mb))
    return step(state, mb)

  fn = online.online_step(algo, spy, prompt_fn)
  forward = jax.jit(lambda params, tokens, mask: online.response_forward(nnx.merge(graphdef, params), tokens, mask,
                                                                         N_NEW)[0])
  thetas, history = [], []
  for _ in range(4):
    thetas.append(jax.device_get(state.params))
    state, metrics = fn(state, prompt_fn(int(state.data_pos)))
    history.append(metrics)
  assert host.calls == 5  # one rollout per iteration, plus the one prefetched for a fifth
  assert [h["staleness"] for h in history] == [0.0, 1.0, 1.0, 1.0]
  for k, mb in enumerate(seen):
    m = mb["mask"]
    behaviour = forward(thetas[max(k - 1, 0)], mb["tokens"], mb["token_mask"])
    np.testing.assert_allclose(np.where(m, mb["old_logp"], 0), np.where(m, behaviour, 0), atol=1e-5)
    np.testing.assert_allclose(np.where(m, mb["sampler_logp"], 0), np.where(m, behaviour, 0), atol=1e-5)
    assert sorted(map(tuple, mb["tokens"][::8, :3])) == sorted(map(tuple, STREAM[k % 2]))  # its prompts
    if k:
      current = forward(thetas[k], mb["tokens"], mb["token_mask"])
      assert np.abs(np.where(m, current - mb["old_logp"], 0)).max() > 1e-3
  for h in history[1:]:
    assert h["first_ratio_mean"] != 1.0 and abs(h["first_ratio_mean"] - 1.0) < 0.1
    assert 0.0 <= h["first_clipfrac"] < 0.5


def test_prefetch_and_restore_change_nothing(tmp_path):
  """The pending batch is a function of the state (behaviour parameters), the prompts and the key: a run that
  resamples it every iteration (no `upcoming`) and a run restored from a checkpoint mid-way both reproduce
  the prefetching run bit for bit."""
  algo, _, init, step = _setup()
  prefetched, ref = _run(online.online_step(algo, step, prompt_fn), jax.tree.map(jnp.copy, init), 4)

  state, resampled = jax.tree.map(jnp.copy, init), []
  for it in range(4):
    p, m, rows, _ = prompt_fn(it)
    state, metrics = algo.rl_iteration(state, step, p, m, jax.random.fold_in(jax.random.PRNGKey(0), int(state.step)),
                                       rows=rows)
    resampled.append(metrics)
  assert resampled == ref
  _assert_same(state.params, prefetched.params)

  logged = []

  def run(num_steps, state):
    fn = online.online_step(algo, step, prompt_fn)

    def logging_fn(state, batch):
      state, metrics = fn(state, batch)
      logged.append(metrics)
      return state, metrics

    return T.train(state, logging_fn, prompt_fn, num_steps=num_steps, checkpointer=T.Checkpointer(str(tmp_path)),
                   ckpt_every=2, progress=False, data_from_state=True,
                   step_of=lambda s: int(s.step) // algo.updates_per_iteration)

  run(2, jax.tree.map(jnp.copy, init))
  restored = run(4, jax.tree.map(jnp.copy, init))  # restores step 2, then runs steps 3 and 4
  assert logged == ref
  _assert_same(restored.params, prefetched.params)
  _assert_same(restored.extra["behaviour_params"], prefetched.extra["behaviour_params"])


def test_prefetch_follows_dapo_refills():
  """With DAPO's refill the next rollout is dispatched after the refills, at the position they leave; the
  refills are drawn from the behaviour parameters too. Same check as above: resampling changes nothing."""
  cfg = algos.get("dapo")
  cfg.dynamic_sampling.max_num_gen_batches = 3
  cfg.overlong.enabled = False
  stream = [np.array([[5, 9, 13], [0, 7, 5]]), np.array([[2, 2, 4], [0, 1, 4]]), np.array([[1, 2, 3], [0, 2, 8]])]
  stream_fn = lambda pos: (jnp.asarray(stream[pos % 3]), jnp.asarray(stream[pos % 3] > 0), None, None)

  def reward(tokens, mask):  # prompts ending in an odd token: a constant reward (an uninformative group)
    return jnp.where(tokens[:, 2] % 2 == 0, target_fraction(tokens, mask), 0.5)

  model = Decoder(CFG, rngs=nnx.Rngs(0))
  opt = T.make_optimizer(1e-2)
  algo = online.make_online_rl(cfg, graphdef=nnx.graphdef(model), reward_fn=reward, group_size=4, max_new_tokens=6,
                               eos_token_id=EOS, pad_token_id=PAD, overlap=True)
  _, init = algo.init_state(model, opt, rng=jax.random.PRNGKey(0))
  step = algo.make_step(opt)
  fn = online.online_step(algo, step, stream_fn)
  state, ref = jax.tree.map(jnp.copy, init), []
  for _ in range(3):
    state, metrics = fn(state, stream_fn(int(state.data_pos)))
    ref.append(metrics)
  assert sum(m["gen_batches"] for m in ref) == int(state.data_pos) > 3  # refills happened

  again, resampled = jax.tree.map(jnp.copy, init), []
  for _ in range(3):
    pos = int(again.data_pos)
    p, m, _, _ = stream_fn(pos)
    again, metrics = algo.rl_iteration(again, step, p, m, jax.random.fold_in(jax.random.PRNGKey(0), int(again.step)),
                                       refill=lambda j, pos=pos: stream_fn(pos + j))
    again = again._replace(data_pos=jnp.asarray(pos + int(metrics["gen_batches"]), jnp.int32))
    resampled.append(metrics)
  assert resampled == ref
  _assert_same(again.params, state.params)


def test_overlapped_grpo_increases_reward():
  algo, _, state, step = _setup(minibatches=2)
  _, history = _run(online.online_step(algo, step, prompt_fn), state, 20)
  curve = np.array([h["reward_mean"] for h in history])
  assert curve[-5:].mean() > curve[:5].mean() + 0.3, curve
  assert all(h["staleness"] == 1.0 for h in history[1:])


def test_overlap_arguments():
  graphdef = nnx.graphdef(Decoder(CFG, rngs=nnx.Rngs(0)))
  make = lambda name, **kw: online.make_online_rl(name, graphdef=graphdef, reward_fn=target_fraction,
                                                  max_new_tokens=4, eos_token_id=EOS, **kw)
  with pytest.raises(ValueError, match="NLPO"):
    make("nlpo", overlap=True)
  with pytest.raises(ValueError, match="overlap"):
    make("grpo", overlap=1)
  # A state from `init_online_state` has no behaviour parameters yet: its first batch is on-policy.
  algo = make("grpo", overlap=True, group_size=4)
  opt = T.make_optimizer(1e-2)
  _, state = online.init_online_state(Decoder(CFG, rngs=nnx.Rngs(0)), opt, rng=jax.random.PRNGKey(0))
  p, m = _prompts()
  state, metrics = algo.rl_iteration(state, algo.make_step(opt), p, m, jax.random.PRNGKey(1))
  assert metrics["staleness"] == 0.0 and metrics["first_ratio_mean"] == 1.0 and "behaviour_params" in state.extra
