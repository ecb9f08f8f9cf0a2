"""The train step, loop, checkpoints and objectives: exact accumulation, the non-finite guard,
bit-exact resume after SIGTERM, fallback from a corrupt checkpoint."""

import dataclasses
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rljax import losses, models
from rljax import training as T
from rljax.models.config import DecoderConfig
from rljax.models.decoder import Decoder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _model(seed=0, vocab=29, scale=1.0):
  cfg = DecoderConfig(family="llama", vocab_size=vocab, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=8,
                      d_ff=32, max_positions=32, norm_eps=1e-6, activation="silu", tie_word_embeddings=False,
                      qkv_bias=False)
  model = Decoder(cfg, rngs=nnx.Rngs(seed))
  # A larger scale spreads the per-token losses, so a wrongly weighted mean is visibly different.
  nnx.update(model, jax.tree.map(lambda x: scale * x, nnx.state(model, nnx.Param)))
  return model


def _sft_batch(rows=4, length=7, seed=0):
  rng = np.random.default_rng(seed)
  tokens = jnp.asarray(rng.integers(1, 29, (rows, length)), jnp.int32)
  lengths = np.array([7, 2, 5, 3, 6, 4, 7, 1])[:rows]  # unequal token counts per row
  mask = jnp.asarray(np.arange(length)[None] < lengths[:, None])
  return {"tokens": tokens, "mask": mask, "loss_mask": mask}


def _params(state):
  return jax.tree.leaves(jax.device_get(state.params))


def test_gradient_accumulation_is_token_weighted_and_exact():
  batch = _sft_batch()
  opt = T.make_optimizer(0.05, name="sgd", clip_norm=None)
  results = {}
  for k in (1, 2, 4):
    graphdef, state = T.init_train_state(_model(scale=20.0), opt, rng=jax.random.PRNGKey(0))
    step = T.make_train_step(graphdef, T.objectives.sft_loss(), opt, grad_accum=k)
    state, metrics = step(state, batch)
    results[k] = (float(metrics["loss"]), _params(state), float(metrics["loss_denominator"]))
  for k in (2, 4):
    assert results[k][0] == pytest.approx(results[1][0], rel=1e-6)
    assert results[k][2] == results[1][2] == float(batch["mask"][:, 1:].sum())
    for a, b in zip(results[k][1], results[1][1]):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # An unweighted mean over micro-batches is a different update: the test above can fail.
  model = _model(scale=20.0)
  loss = lambda m, b: T.objectives.sft_loss()(m, b, None, {})[0]
  halves = [jax.tree.map(lambda x: x[i:i + 2], batch) for i in (0, 2)]
  assert abs(0.5 * (loss(model, halves[0]) + loss(model, halves[1])) - loss(model, batch)) > 1e-3


def test_nonfinite_update_is_skipped_and_counted():
  def loss_fn(model, batch, rng, extra):
    loss, metrics = T.objectives.sft_loss()(model, batch, rng, extra)
    return loss * batch["scale"], metrics

  opt = T.make_optimizer(1e-2)
  graphdef, state = T.init_train_state(_model(), opt, rng=jax.random.PRNGKey(0))
  step = T.make_train_step(graphdef, loss_fn, opt, donate=False)
  before = _params(state)
  state, metrics = step(state, {**_sft_batch(), "scale": jnp.float32(jnp.nan)})
  assert int(metrics["skipped"]) == 1 and int(state.skipped) == 1 and int(state.step) == 1
  for a, b in zip(_params(state), before):
    np.testing.assert_array_equal(a, b)
  state, metrics = step(state, {**_sft_batch(), "scale": jnp.float32(1.0)})
  assert int(state.skipped) == 1
  assert any(not np.array_equal(a, b) for a, b in zip(_params(state), before))


def test_preference_loss_reference_precomputed_equals_on_the_fly():
  policy, ref = _model(0), _model(1)
  rng = np.random.default_rng(2)
  mk = lambda: jnp.asarray(rng.integers(1, 29, (3, 6)), jnp.int32)
  loss_mask = jnp.asarray(np.arange(6)[None] >= np.array([[2], [3], [2]]))
  batch = {"chosen_tokens": mk(), "rejected_tokens": mk(), "chosen_mask": jnp.ones((3, 6), bool),
           "rejected_mask": jnp.ones((3, 6), bool), "chosen_loss_mask": loss_mask, "rejected_loss_mask": loss_mask}
  ref_c, ref_r = T.objectives.pair_logps(ref, batch)
  # pair_logps against a direct log_softmax over full logits.
  logits = ref(batch["chosen_tokens"])
  direct = jnp.take_along_axis(jax.nn.log_softmax(logits[:, :-1]), batch["chosen_tokens"][:, 1:, None], -1)[..., 0]
  np.testing.assert_allclose(ref_c, jnp.sum(direct * loss_mask[:, 1:], -1), atol=1e-5)
  pre = T.objectives.preference_loss("rdpo", beta=0.1, epsilon=0.2)
  fly = T.objectives.preference_loss("rdpo", ref_graphdef=nnx.graphdef(ref), beta=0.1, epsilon=0.2)
  a, _ = pre(policy, {**batch, "ref_chosen_logps": ref_c, "ref_rejected_logps": ref_r}, None, {})
  b, _ = fly(policy, batch, None, {"ref_params": nnx.state(ref, nnx.Param)})
  pc, pr = T.objectives.pair_logps(policy, batch)
  c, _ = losses.rdpo_loss(pc, pr, ref_c, ref_r, beta=0.1, epsilon=0.2)
  np.testing.assert_allclose([a, b], [c, c], rtol=1e-6)


# Hyperparameters for every registered pairwise loss; a new one without an entry fails the test below.
PAIRWISE_KWARGS = {"dpo": dict(beta=0.1), "cdpo": dict(beta=0.1, epsilon=0.2), "rdpo": dict(beta=0.1, epsilon=0.2),
                   "ipo": dict(beta=0.5), "hinge": dict(beta=0.5), "simpo": dict(beta=2.0, gamma=0.5),
                   "inpo": dict(eta=0.5, tau=1.0)}


@pytest.fixture(scope="module")
def pairwise_setup():
  """A batch and every sequence log-prob field of the policy, the reference and the previous iterate
  (`_model(0)`, `(1)`, `(2)`; one jitted forward per model, shared by all the pairwise losses)."""
  policy, ref, prev = _model(0), _model(1), _model(2)
  rng = np.random.default_rng(4)
  mk = lambda: jnp.asarray(rng.integers(1, 29, (4, 6)), jnp.int32)
  loss_mask = jnp.asarray(np.arange(6)[None] >= np.array([[2], [3], [2], [4]]))
  batch = {"chosen_tokens": mk(), "rejected_tokens": mk(), "chosen_mask": jnp.ones((4, 6), bool),
           "rejected_mask": jnp.ones((4, 6), bool), "chosen_loss_mask": loss_mask, "rejected_loss_mask": loss_mask}
  graphdef = nnx.graphdef(policy)

  @jax.jit
  def seq_logps(params):
    model = nnx.merge(graphdef, params)
    return {suffix: T.objectives.pair_logps(model, batch, average=average)
            for suffix, average in (("logps", False), ("mean_logps", True))}

  fields = {}
  for prefix, model in (("", policy), ("ref_", ref), ("prev_", prev)):
    for suffix, (c, r) in seq_logps(nnx.state(model, nnx.Param)).items():
      fields[f"{prefix}chosen_{suffix}"], fields[f"{prefix}rejected_{suffix}"] = c, r
  return batch, fields


@pytest.mark.parametrize("name", losses.names("pairwise"))
def test_preference_loss_trains_every_registered_pairwise_loss(name, pairwise_setup):
  """Each pairwise loss runs through `preference_loss` and a jitted train step; its value is the kernel's
  on independently computed sequence log-probs (summed, length-averaged for SimPO, of the policy, the
  reference and the previous iterate for INPO)."""
  batch, fields = pairwise_setup
  policy, ref, prev = _model(0), _model(1), _model(2)  # fresh: the train step donates their buffers
  extra = {"ref_params": nnx.state(ref, nnx.Param), "prev_params": nnx.state(prev, nnx.Param)}
  kw = PAIRWISE_KWARGS[name]
  objective = T.objectives.preference_loss(name, ref_graphdef=nnx.graphdef(ref), **kw)
  expected, _ = losses.get(name)(*(fields[k] for k in losses.spec(name).reads), **kw)
  value = jax.jit(lambda p: objective(nnx.merge(nnx.graphdef(policy), p), batch, None, extra)[0])
  np.testing.assert_allclose(value(nnx.state(policy, nnx.Param)), expected, rtol=1e-5)

  opt = T.make_optimizer(1e-2)
  graphdef, state = T.init_train_state(policy, opt, rng=jax.random.PRNGKey(0), extra=extra)
  before = _params(state)
  state, metrics = T.make_train_step(graphdef, objective, opt)(state, batch)
  assert np.isfinite(float(metrics["loss"])) and int(state.skipped) == 0
  assert max(np.max(np.abs(a - b)) for a, b in zip(_params(state), before)) > 1e-4
  if any(k.startswith(("ref_", "prev_")) for k in losses.spec(name).reads):  # SimPO is reference-free
    with pytest.raises(KeyError, match="ref_graphdef"):
      T.objectives.preference_loss(name, **kw)(policy, batch, None, {})


def test_preference_loss_rejects_other_kinds():
  with pytest.raises(ValueError, match="pairwise"):
    T.objectives.preference_loss("ppo_clip")


def test_listwise_loss_with_two_items_equals_dpo():
  policy, ref = _model(0), _model(1)
  rng = np.random.default_rng(3)
  tokens = jnp.asarray(rng.integers(1, 29, (3, 2, 6)), jnp.int32)
  loss_mask = jnp.broadcast_to(jnp.arange(6) >= 2, (3, 2, 6))
  batch = {"tokens": tokens, "mask": jnp.ones((3, 2, 6), bool), "loss_mask": loss_mask,
           "labels": jnp.array([[1.0, 0.0]] * 3)}
  pairs = {"chosen_tokens": tokens[:, 0], "rejected_tokens": tokens[:, 1], "chosen_mask": batch["mask"][:, 0],
           "rejected_mask": batch["mask"][:, 1], "chosen_loss_mask": loss_mask[:, 0],
           "rejected_loss_mask": loss_mask[:, 1]}
  extra = {"ref_params": nnx.state(ref, nnx.Param)}
  listwise = T.objectives.listwise_loss("lipo", ref_graphdef=nnx.graphdef(ref), beta=0.3, objective="pair_logistic")
  pairwise = T.objectives.preference_loss("dpo", ref_graphdef=nnx.graphdef(ref), beta=0.3)
  np.testing.assert_allclose(listwise(policy, batch, None, extra)[0], pairwise(policy, pairs, None, extra)[0],
                             rtol=1e-6)


def test_bf16_compute_keeps_float32_master_weights():
  cfg = dataclasses.replace(_model().cfg, compute_dtype=jnp.bfloat16)
  opt = T.make_optimizer(1e-2)
  graphdef, state = T.init_train_state(Decoder(cfg, rngs=nnx.Rngs(0)), opt, rng=jax.random.PRNGKey(0))
  step = T.make_train_step(graphdef, T.objectives.sft_loss(), opt)
  for _ in range(3):
    state, metrics = step(state, _sft_batch())
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.params))
  assert metrics["loss"].dtype == jnp.float32 and np.isfinite(float(metrics["loss"]))
  assert int(state.skipped) == 0


def test_average_params_and_reward_model_step():
  a, b = nnx.state(_model(0), nnx.Param), nnx.state(_model(1), nnx.Param)
  soup = T.objectives.average_params([a, b], weights=[0.25, 0.75])
  for x, y, z in zip(jax.tree.leaves(a), jax.tree.leaves(b), jax.tree.leaves(soup)):
    np.testing.assert_allclose(z, 0.25 * x + 0.75 * y, atol=1e-7)
  with pytest.raises(ValueError, match="weights"):
    T.objectives.average_params([a, b], weights=[0.5, 0.6])
  rm = models.RewardModel(_model(), rngs=nnx.Rngs(3))
  batch = {k: v for k, v in zip(("chosen_tokens", "rejected_tokens"), (_sft_batch()["tokens"], _sft_batch(seed=1)["tokens"]))}
  batch |= {"chosen_mask": _sft_batch()["mask"], "rejected_mask": _sft_batch(seed=1)["mask"]}
  opt = T.make_optimizer(1e-2, name="adam")
  graphdef, state = T.init_train_state(rm, opt, rng=jax.random.PRNGKey(0))
  step = T.make_train_step(graphdef, T.objectives.reward_model_loss(), opt)
  first = None
  for _ in range(20):
    state, metrics = step(state, batch)
    first = float(metrics["loss"]) if first is None else first
  assert float(metrics["loss"]) < 0.5 * first


def test_corrupt_latest_checkpoint_falls_back(tmp_path):
  ckpt = T.Checkpointer(str(tmp_path / "ckpt"), max_to_keep=3)
  tree = {"w": jnp.arange(4.0), "step": jnp.int32(0)}
  ckpt.save(1, tree)
  ckpt.save(2, {"w": jnp.arange(4.0) * 2, "step": jnp.int32(2)})
  assert ckpt.steps() == [1, 2]
  for root, _, files in os.walk(tmp_path / "ckpt" / "2"):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"\0garbage")
  with pytest.warns(UserWarning, match="step 2 .* unreadable"):
    step, restored = ckpt.restore_latest(tree)
  assert step == 1
  np.testing.assert_array_equal(restored["w"], np.arange(4.0))
  empty = T.Checkpointer(str(tmp_path / "none"))
  assert empty.restore_latest(tree)[0] is None


_RUN = textwrap.dedent("""
    import os, signal, sys
    import jax, jax.numpy as jnp, numpy as np
    from flax import nnx
    from rljax import training as T
    from rljax.models.config import DecoderConfig
    from rljax.models.decoder import Decoder
    workdir, num_steps, kill_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cfg = DecoderConfig(family="llama", vocab_size=29, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=8,
                        d_ff=32, max_positions=32, norm_eps=1e-6, activation="silu", tie_word_embeddings=False,
                        qkv_bias=False)
    opt = T.make_optimizer(3e-2)
    graphdef, state = T.init_train_state(Decoder(cfg, rngs=nnx.Rngs(0)), opt, rng=jax.random.PRNGKey(0))
    def loss_fn(model, batch, rng, extra):  # uses the step's RNG, so resume must restore it exactly
      tokens = jnp.where(jax.random.bernoulli(rng, 0.2, batch["tokens"].shape), 1, batch["tokens"])
      return T.objectives.sft_loss()(model, {**batch, "tokens": tokens}, rng, extra)
    step = T.make_train_step(graphdef, loss_fn, opt)
    def batch_fn(pos):
      if pos == kill_at:
        os.kill(os.getpid(), signal.SIGTERM)
      rng = np.random.default_rng(pos)
      tokens = jnp.asarray(rng.integers(1, 29, (4, 8)), jnp.int32)
      return {"tokens": tokens, "mask": jnp.ones((4, 8), bool), "loss_mask": jnp.ones((4, 8), bool)}
    T.train(state, step, batch_fn, num_steps=num_steps, writer=T.MetricsWriter(workdir, tensorboard=False),
            checkpointer=T.Checkpointer(os.path.join(workdir, "ckpt")), log_every=1, ckpt_every=4, progress=False)
    print("DONE")
""")


def _run(workdir, num_steps, kill_at=-1):
  env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
  return subprocess.run([sys.executable, "-c", _RUN, str(workdir), str(num_steps), str(kill_at)], env=env,
                        capture_output=True, text=True, timeout=300)


def test_sigterm_saves_and_resume_is_bit_exact(tmp_path):
  full = _run(tmp_path / "full", 12)
  assert full.returncode == 0 and "DONE" in full.stdout, full.stderr[-3000:]
  killed = _run(tmp_path / "resumed", 12, kill_at=5)  # SIGTERM while producing the 6th batch
  assert killed.returncode == 0 and "DONE" not in killed.stdout and "saved step 6" in killed.stderr, killed.stderr[-3000:]
  resumed = _run(tmp_path / "resumed", 12)
  assert resumed.returncode == 0 and "DONE" in resumed.stdout, resumed.stderr[-3000:]
  a, b = T.read_metrics(str(tmp_path / "full")), T.read_metrics(str(tmp_path / "resumed"))
  assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 13))
  for ra, rb in zip(a, b):
    for key in ("loss", "grad_norm", "loss_denominator"):
      assert ra[key] == rb[key], (ra, rb)
