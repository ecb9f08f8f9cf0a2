"""Training a LoRA-adapted decoder: only the adapters move, the optimizer state and checkpoints hold only them,
resume is exact, the RL reference shares the frozen base, and the RLVR job runs with LoRA by a config switch."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from configs import rlvr as rlvr_config
from experiments import rlvr
from rljax import training as T
from rljax.models import lora
from rljax.models.config import DecoderConfig
from rljax.models.decoder import Decoder
from rljax.training import online

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB = 29


def _lora_model(*, dropout=0.0, adapter_seed=1, random_b=False):
  cfg = DecoderConfig(family="llama", vocab_size=VOCAB, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=8,
                      d_ff=32, max_positions=32, norm_eps=1e-6, activation="silu", tie_word_embeddings=False,
                      qkv_bias=False)
  model = lora.apply_lora(Decoder(cfg, rngs=nnx.Rngs(0)), lora.LoRAConfig(rank=4, alpha=8.0, dropout=dropout),
                          rngs=nnx.Rngs(adapter_seed))
  if random_b:
    for i, (_, _, adapter) in enumerate(lora.adapters(model)):
      adapter.b.set_value(0.5 * jax.random.normal(jax.random.key(i), adapter.b.get_value().shape))
  return model


def _batch(pos=0, rows=4, length=8):
  rng = np.random.default_rng(pos)
  tokens = jnp.asarray(rng.integers(1, VOCAB, (rows, length)), jnp.int32)
  mask = jnp.asarray(np.arange(length)[None] < rng.integers(3, length + 1, (rows, 1)))
  return {"tokens": tokens, "mask": mask, "loss_mask": mask}


def _path(keys) -> str:
  """"layers/0/attn/q_proj_lora/b" for a flat-state path or a pytree key path."""
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in keys)


def _parts(params):
  """(trainable, frozen) parts of a parameter state as {path: host array}."""
  return tuple({_path(p): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(part)}
               for part in lora.split_frozen(params))


def _assert_equal(x: dict, y: dict):
  assert x.keys() == y.keys()
  for k in x:
    np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def _loss_with_rng(model, batch, rng, extra):
  # Reads the step's key too, so resume must restore it (and the dropout masks drawn from it).
  tokens = jnp.where(jax.random.bernoulli(rng, 0.2, batch["tokens"].shape), 1, batch["tokens"])
  return T.objectives.sft_loss()(model, {**batch, "tokens": tokens}, rng, extra)


def test_step_updates_adapters_only_and_optimizer_state_covers_only_them():
  model = _lora_model()
  adapter_shapes = sorted(x.shape for x in jax.tree.leaves(lora.lora_params(model)))
  opt = T.make_optimizer(1e-2)
  graphdef, state = T.init_train_state(model, opt, rng=jax.random.PRNGKey(0))
  # AdamW's two moments, each shaped like the adapters; nothing the size of a base weight.
  assert sorted(x.shape for x in jax.tree.leaves(state.opt_state) if x.ndim) == sorted(adapter_shapes * 2)
  step = T.make_train_step(graphdef, T.objectives.sft_loss(), opt)
  trainable0, frozen0 = _parts(state.params)
  assert len(frozen0) == 12 and len(trainable0) == 14
  state, metrics = step(state, _batch())
  trainable1, frozen1 = _parts(state.params)
  _assert_equal(frozen0, frozen1)
  # With B = 0 the gradient reaches B only (∂L/∂A ∝ B); a second step moves A too.
  moved = {k for k in trainable0 if not np.array_equal(trainable0[k], trainable1[k])}
  assert moved == {k for k in trainable0 if k.endswith("/b")}
  state, _ = step(state, _batch(1))
  trainable2, frozen2 = _parts(state.params)
  assert all(not np.array_equal(trainable0[k], trainable2[k]) for k in trainable0)
  _assert_equal(frozen0, frozen2)
  assert float(metrics["grad_norm"]) > 0 and int(state.skipped) == 0


def test_gradient_accumulation_with_frozen_base_is_exact():
  opt = T.make_optimizer(0.05, name="sgd", clip_norm=None)
  out = {}
  for k in (1, 2):
    graphdef, state = T.init_train_state(_lora_model(random_b=True), opt, rng=jax.random.PRNGKey(0))
    state, metrics = T.make_train_step(graphdef, T.objectives.sft_loss(), opt, grad_accum=k)(state, _batch())
    out[k] = (float(metrics["loss"]), _parts(state.params)[0])
  assert out[2][0] == pytest.approx(out[1][0], rel=1e-6)
  for key, x in out[1][1].items():
    np.testing.assert_allclose(out[2][1][key], x, rtol=1e-5, atol=1e-6)


def test_dropout_is_in_the_training_forward_only():
  losses = {}
  for dropout in (0.0, 0.5):
    model = _lora_model(dropout=dropout, random_b=True)
    eval_loss = float(nnx.jit(lambda m: T.objectives.sft_loss()(m, _batch(), None, {})[0])(model))
    opt = T.make_optimizer(1e-2)
    graphdef, state = T.init_train_state(model, opt, rng=jax.random.PRNGKey(0))
    step = T.make_train_step(graphdef, T.objectives.sft_loss(), opt, donate=False)
    losses[dropout] = (eval_loss, float(step(state, _batch())[1]["loss"]), float(step(state, _batch())[1]["loss"]))
  assert losses[0.0][0] == losses[0.5][0]  # outside training, dropout does nothing
  assert losses[0.0][1] == pytest.approx(losses[0.0][0], rel=1e-6)
  assert abs(losses[0.5][1] - losses[0.5][0]) > 1e-3 and losses[0.5][1] == losses[0.5][2]  # a function of the key


def _saved_leaves(directory, step):
  """{path: shape} of what the checkpointer wrote for `step`."""
  meta = ocp.StandardCheckpointer().metadata(os.path.join(directory, str(step), "default")).item_metadata
  return {_path(p): tuple(x.shape) for p, x in jax.tree_util.tree_leaves_with_path(meta)}


def test_checkpoint_holds_only_adapters_and_resume_is_exact(tmp_path):
  def run(workdir, num_steps, adapter_seed):
    opt = T.make_optimizer(3e-2)
    graphdef, state = T.init_train_state(_lora_model(dropout=0.2, adapter_seed=adapter_seed), opt,
                                         rng=jax.random.PRNGKey(0))
    return T.train(state, T.make_train_step(graphdef, _loss_with_rng, opt), _batch, num_steps=num_steps,
                   checkpointer=T.Checkpointer(str(workdir)), ckpt_every=2, progress=False)

  full = jax.device_get(run(tmp_path / "full", 6, adapter_seed=1))
  run(tmp_path / "resumed", 3, adapter_seed=1)
  # A fresh start with other adapters: the checkpoint's adapters (and optimizer state) replace them, the frozen
  # base comes from the model the run starts from.
  resumed = jax.device_get(run(tmp_path / "resumed", 6, adapter_seed=7))
  assert int(resumed.step) == 6
  for x, y in zip(jax.tree.leaves((full.params, full.opt_state, full.rng)),
                  jax.tree.leaves((resumed.params, resumed.opt_state, resumed.rng))):
    np.testing.assert_array_equal(x, y)
  saved = _saved_leaves(tmp_path / "full", 6)
  params = {k for k in saved if k.startswith("params/")}
  adapters = {f"params/{_path(p)}/value" for p, _ in nnx.to_flat_state(lora.lora_params(_lora_model()))}
  assert params == adapters and len(adapters) == 14
  assert all("_lora" in k for k in saved if saved[k] and k != "rng")  # no array but the adapters and moments


class _Tokenizer:
  bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

  def __len__(self):
    return 40


def test_rlvr_lora_policy_runs_an_rl_iteration_against_the_frozen_reference():
  cfg = rlvr_config.get_config("smoke")
  cfg.lora.update(enabled=True, rank=4, dropout=0.1)
  tok = _Tokenizer()
  sft = rlvr.make_model(cfg, tok, 0)
  nnx.update(sft, jax.tree.map(lambda x: 8 * x, nnx.state(sft, nnx.Param)))  # a peaked, non-uniform SFT policy
  policy = rlvr._policy_model(cfg, tok, nnx.state(sft, nnx.Param), critic=False)
  prompts = jnp.array([[0, 5, 9, 12], [7, 4, 3, 11], [0, 0, 6, 8]], jnp.int32)
  mask = prompts > 0
  np.testing.assert_array_equal(policy(prompts, mask), sft(prompts, mask))

  # The mean response token id: rewards differ within every group, so every advantage is nonzero.
  reward = lambda tokens, response_mask: jnp.sum(tokens * response_mask, -1) / jnp.maximum(
      jnp.sum(response_mask, -1), 1)
  algo = online.make_online_rl("grpo", graphdef=nnx.graphdef(policy), reward_fn=reward, group_size=4,
                               max_new_tokens=6, eos_token_id=2, pad_token_id=0)
  opt = T.make_optimizer(5e-2)
  _, state = algo.init_state(policy, opt, rng=jax.random.PRNGKey(0))
  # The reference is the initial adapters only: the base is shared, never copied.
  assert {type(v) for _, v in nnx.to_flat_state(state.extra["ref_params"])} == {nnx.LoRAParam}
  trainable0, frozen0 = _parts(state.params)
  state, metrics = algo.rl_iteration(state, algo.make_step(opt), prompts, mask, jax.random.PRNGKey(1))
  assert metrics["kl_k1"] == 0.0 and np.isfinite(metrics["loss"])
  trainable1, frozen1 = _parts(state.params)
  _assert_equal(frozen0, frozen1)
  assert any(not np.array_equal(trainable0[k], trainable1[k]) for k in trainable0)
  # After the update the policy has moved; the reference log-probs are still the SFT model's.
  batch = algo.collect(state, prompts, mask, jax.random.PRNGKey(2))
  sft_logp = online.response_forward(sft, batch["tokens"], batch["token_mask"], 6)[0]
  m = np.asarray(batch["mask"])
  np.testing.assert_allclose(np.where(m, batch["ref_logp"], 0), np.where(m, sft_logp, 0), rtol=1e-5, atol=1e-5)
  assert np.abs(np.where(m, batch["old_logp"] - batch["ref_logp"], 0)).max() > 1e-4

  # A critic preset: the value head beside the adapted decoder is trained, the decoder's weights are not.
  actor_critic = rlvr._policy_model(cfg, tok, nnx.state(sft, nnx.Param), critic=True)
  trainable, _ = lora.split_frozen(nnx.state(actor_critic, nnx.Param))
  kinds = {(path[0], type(v)) for path, v in nnx.to_flat_state(trainable)}
  assert kinds == {("policy", nnx.LoRAParam), ("value_head", nnx.Param)}


@pytest.mark.slow
def test_rlvr_smoke_with_lora_switch(tmp_path):
  """`python -m rljax.run` on the RLVR smoke preset with `lora.enabled`: RL checkpoints hold adapters only, and a
  second run resumes every phase from them without training or logging anything again."""
  env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
  cmd = [sys.executable, "-m", "rljax.run", "--config=configs/rlvr.py:smoke", "--config.lora.enabled=True",
         f"--workdir={tmp_path}"]
  proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert "| dapo | all |" in proc.stdout
  rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert [r["step"] for r in rows if r["phase"] == "dapo/seed0"] == [1, 2]
  saved = _saved_leaves(tmp_path / "ckpt" / "dapo" / "seed0", 2)
  assert all("_lora" in k for k in saved if saved[k] and k != "rng")
  again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert again.returncode == 0, again.stderr[-4000:]
  assert len(open(tmp_path / "metrics.jsonl").readlines()) == len(rows)
