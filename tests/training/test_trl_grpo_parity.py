"""One GRPO update in rljax equals one update of TRL's `GRPOTrainer` (trl 1.13) for loss_type "grpo",
"dr_grpo", "dapo" and "bnpo", without (β = 0) and with (β > 0) the k3 KL term to the reference.

GRPO: Shao et al., "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models",
2024, arXiv:2402.03300. For G prompts × n completions, with old log-probs o, reference log-probs q and the
policy's log-probs p of the completion tokens (mask m):

    A_i  = (R_i − mean_g R) / (std_g R + 1e-4)            (unbiased std; A_i = R_i − mean_g R for dr_grpo)
    ℓ_it = −min(e^{p−o} A_i, clip(e^{p−o}, 1 − ε, 1 + ε_h) A_i) + β (e^{q−p} − (q − p) − 1)
    L    = mean_i Σ_t m ℓ / Σ_t m  (grpo),   Σ m ℓ / Σ m  (dapo, bnpo),   Σ m ℓ / (B · L_max)  (dr_grpo)

then one SGD step θ ← θ − η ∇L on both sides, from the same random float32 Qwen2 checkpoint.

Setup. TRL is driven through `GRPOTrainer.compute_loss(model, inputs)` on an inputs dict built here
(`prompt_ids`/`prompt_mask` left-padded, `completion_ids`/`completion_mask` right-padded after EOS to
`max_completion_length`, `advantages`, `num_items_in_batch`, and `old_per_token_logps` /
`ref_per_token_logps`), with `current_gradient_accumulation_steps = 1` as its training loop sets it, and
the gradient step applied by hand. The advantages are computed as in `_generate_and_score_completions`
(TRL has no separate method for them). rljax runs one `make_train_step` (optax SGD) on the same tokens
with the loss of `make_online_rl` (`response_forward`, then the loss of the preset
`rljax_config(trl_settings(...))`; benchmarks/grpo_step.py lists the TRL settings that must be matched
and the defaults that differ); its advantages come from the preset's `advantage_fn` and are checked
against TRL's. The old log-probs are either the current ones (on-policy: TRL's default path without
`old_per_token_logps`, ratio 1) or the current ones plus noise, so that the clip is active on some
tokens; the reference log-probs are the current ones plus independent noise, so that the KL term and its
gradient are not zero. With left padding TRL's forward numbers positions 0..L−1 including the padding,
rljax from the first real token; RoPE attention depends only on position differences, so both agree.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("trl")

import jax
import jax.numpy as jnp
import torch
from flax import nnx
from safetensors.numpy import load_file

from benchmarks.dpo_step import EOS, PAD, ModelSpec, write_checkpoint
from benchmarks.grpo_step import rljax_config, trl_reward, trl_settings
from rljax import algorithms
from rljax import training as T
from rljax.models import from_pretrained, save_pretrained
from rljax.training.online import response_forward

SPEC = ModelSpec(vocab=64, d_model=32, layers=2, heads=2, kv_heads=1, d_ff=64)
N_GEN, MAX_LEN = 4, 6  # completions per prompt, max_completion_length
LR, BETA = 0.1, 0.04
PROMPT_LENS = (5, 3, 4)  # one prompt per group, left-padded to 5
# Completion lengths (EOS included); None: truncated at MAX_LEN without EOS. Group 3's rewards are all
# equal, so its advantages are 0 (TRL: 0 / (0 + 1e-4)).
LENGTHS = (None, 3, 1, 5, 2, MAX_LEN, 4, None, 3, 5, None, 2)
REWARDS = (1.0, 0.0, 0.5, 0.0, 0.2, 0.9, 0.9, 0.1, 0.3, 0.3, 0.3, 0.3)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
  """Models this small gain nothing from torch's OpenMP threads, which spin on a busy CPU (a forward that
  takes 5 ms on one thread took 1.4 s on two on a loaded 2-core machine)."""
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(threads)


def _rollout(path: str) -> dict[str, np.ndarray]:
  """Fixed prompts (left-padded), completions (right-padded after EOS) and rewards, as TRL's inputs."""
  from tokenizers import Tokenizer

  tok = Tokenizer.from_file(f"{path}/tokenizer.json")
  pad, eos = tok.token_to_id(PAD), tok.token_to_id(EOS)
  rng = np.random.default_rng(0)
  words = lambda k: rng.integers(3, SPEC.vocab, k)  # ids 0..2 are <pad>, </s>, <unk>
  b, width = len(LENGTHS), max(PROMPT_LENS)
  prompt_ids, prompt_mask = np.full((b, width), pad), np.zeros((b, width), np.int64)
  for g, n in enumerate(PROMPT_LENS):
    rows = slice(g * N_GEN, (g + 1) * N_GEN)
    prompt_ids[rows, width - n:], prompt_mask[rows, width - n:] = words(n), 1
  completion_ids, completion_mask = np.full((b, MAX_LEN), pad), np.zeros((b, MAX_LEN), np.int64)
  for i, n in enumerate(LENGTHS):
    completion_ids[i, :n or MAX_LEN] = np.append(words(n - 1), eos) if n else words(MAX_LEN)
    completion_mask[i, :n or MAX_LEN] = 1
  return {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
          "completion_mask": completion_mask, "rewards": np.array(REWARDS, np.float32)}


def trl_advantages(rewards: torch.Tensor, num_generations: int, scale_rewards: str) -> torch.Tensor:
  """TRL 1.13 `_generate_and_score_completions` (one reward function, "sum_then_normalize")."""
  from trl.trainer.utils import nanstd

  grouped = rewards.view(-1, num_generations)
  mean = torch.nanmean(grouped, dim=1).repeat_interleave(num_generations)
  std = nanstd(grouped, dim=1).repeat_interleave(num_generations)
  advantages = rewards - mean
  return advantages / (std + 1e-4) if scale_rewards != "none" else advantages


def _trainer(path: str, settings: dict, out_dir: str):
  from datasets import Dataset
  from trl import GRPOConfig, GRPOTrainer

  args = GRPOConfig(output_dir=out_dir, per_device_train_batch_size=len(LENGTHS), max_completion_length=MAX_LEN,
                    use_cpu=True, bf16=False, fp16=False, report_to=[], save_strategy="no", disable_tqdm=True,
                    **settings)
  trainer = GRPOTrainer(model=path, reward_funcs=trl_reward, args=args,
                        train_dataset=Dataset.from_list([{"prompt": " a"}] * len(LENGTHS)))
  trainer.model.train()
  trainer.current_gradient_accumulation_steps = 1  # what Trainer's loop sets for gradient_accumulation_steps=1
  return trainer


def _ids_and_attention(r):
  return (torch.tensor(np.concatenate([r["prompt_ids"], r["completion_ids"]], 1)),
          torch.tensor(np.concatenate([r["prompt_mask"], r["completion_mask"]], 1)))


CASES = [(loss_type, beta) for loss_type in ("grpo", "dr_grpo", "dapo", "bnpo") for beta in (0.0, BETA)]
SETTINGS = [trl_settings(loss_type, beta=beta, num_generations=N_GEN) for loss_type, beta in CASES]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """The checkpoint, the rollout, its log-probs and the rljax side compiled once:
  {path, rollout, init (HF tensors), logps (TRL's current log-probs), old (logps + noise), ref (logps +
  other noise), model (the rljax Decoder), graphdef, optimizer, step, advantage_fns}.

  rljax's online loss is `response_forward` + the preset's loss (`make_online_rl(...).loss_fn` for these
  presets); here `lax.switch` on `batch["case"]` picks the case's preset loss on the same log-probs, so
  that the model's forward and backward are compiled once instead of once per case."""
  root = tmp_path_factory.mktemp("qwen2")
  path = str(root / "policy")
  write_checkpoint(path, SPEC)
  r = _rollout(path)
  trainer = _trainer(path, SETTINGS[0], str(root / "trl"))
  with torch.no_grad():
    logps = trainer._get_per_token_logps_and_entropies(trainer.model, *_ids_and_attention(r), MAX_LEN)[0].numpy()
  rng = np.random.default_rng(1)
  old, ref = [(logps + rng.normal(0, 0.3, logps.shape)).astype(np.float32) for _ in range(2)]

  model = from_pretrained(path)
  optimizer = T.make_optimizer(LR, name="sgd", clip_norm=None)
  graphdef, _ = T.init_train_state(model, optimizer, rng=jax.random.key(0))
  resolved = [algorithms.resolve(rljax_config(s)) for s in SETTINGS]

  def branch(preset_loss):
    def f(logp, batch):
      loss, metrics = preset_loss(logp, batch)
      return loss, {"clipfrac": metrics["clipfrac"], "kl_loss": metrics.get("kl_loss", jnp.zeros(()))}
    return f

  branches = [branch(loss) for _, loss in resolved]

  def loss_fn(model, batch, rng, extra):
    del rng, extra
    logp, _, _ = response_forward(model, batch["tokens"], batch["token_mask"], MAX_LEN)
    return jax.lax.switch(batch["case"], branches, logp, batch)

  return {"path": path, "rollout": r, "init": load_file(f"{path}/model.safetensors"), "logps": logps, "old": old,
          "ref": ref, "model": model, "graphdef": graphdef, "optimizer": optimizer,
          "step": T.make_train_step(graphdef, loss_fn, optimizer), "advantage_fns": [adv for adv, _ in resolved]}


def _rljax_batch(r, old, ref, advantage_fn, case: int) -> dict:
  tokens, token_mask = (x.numpy() for x in _ids_and_attention(r))
  batch = {"tokens": tokens.astype(np.int32), "token_mask": token_mask.astype(bool),
           "mask": r["completion_mask"].astype(bool), "rewards": r["rewards"], "old_logp": old, "ref_logp": ref}
  return batch | jax.device_get(advantage_fn(batch)) | {"case": np.int32(case)}


@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{t}-beta{b}" for t, b in CASES])
def test_one_update_matches_trl(setup, tmp_path, case):
  s, settings = setup, SETTINGS[case]
  r, init = s["rollout"], s["init"]
  trainer = _trainer(s["path"], settings, str(tmp_path / "trl"))
  model = trainer.model
  advantages = trl_advantages(torch.tensor(r["rewards"]), N_GEN, settings["scale_rewards"])

  for on_policy in (True, False):
    model.load_state_dict({k: torch.from_numpy(v) for k, v in init.items()})
    model.zero_grad(set_to_none=True)
    inputs = {k: torch.tensor(r[k]) for k in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask")}
    inputs |= {"advantages": advantages, "num_items_in_batch": inputs["completion_mask"].sum()}
    # On-policy is TRL's num_iterations = 1 path: no `old_per_token_logps`, so the ratio is exactly 1
    # (detached current log-probs); rljax gets TRL's current log-probs as old_logp (its own agree to ~1e-6).
    old = s["logps"] if on_policy else s["old"]
    if not on_policy:
      inputs["old_per_token_logps"] = torch.tensor(old)
    if settings["beta"]:
      inputs["ref_per_token_logps"] = torch.tensor(s["ref"])
    loss = trainer.compute_loss(model, inputs)
    loss.backward()
    with torch.no_grad():
      for p in model.parameters():
        p -= LR * p.grad
    trl_params = {k: v.detach().numpy() for k, v in model.state_dict().items()}

    _, state = T.init_train_state(s["model"], s["optimizer"], rng=jax.random.key(0))  # a copy of θ0
    batch = _rljax_batch(r, old, s["ref"], s["advantage_fns"][case], case)
    np.testing.assert_allclose(batch["advantages"], advantages.numpy(), atol=1e-6, err_msg="advantages")
    state, metrics = s["step"](state, batch)
    save_pretrained(nnx.merge(s["graphdef"], state.params), str(tmp_path / "rljax"))
    ours = load_file(str(tmp_path / "rljax" / "model.safetensors"))

    what = (CASES[case], "on-policy" if on_policy else "off-policy")
    assert abs(float(metrics["loss"]) - loss.item()) <= 1e-5, (what, float(metrics["loss"]), loss.item())
    if on_policy:
      assert float(metrics["clipfrac"]) == 0.0, what
    else:
      assert float(metrics["clipfrac"]) > 0.05, what  # the clipped branch is exercised
    assert (float(metrics["kl_loss"]) > 1e-3) == bool(settings["beta"]), what

    assert set(ours) <= set(trl_params) and "lm_head.weight" in ours
    step_size = max(np.max(np.abs(trl_params[k] - init[k])) for k in ours)
    step_err = max(np.max(np.abs((ours[k] - init[k]) - (trl_params[k] - init[k]))) for k in ours)
    assert step_size > 1e-4, (what, step_size)  # the update is not vacuous
    assert step_err <= 1e-5, (what, step_err)
    # The update θ1 − θ0 = −η∇L itself agrees to float32 accuracy, not just θ1 within a small step.
    assert step_err <= 1e-3 * step_size, (what, step_err, step_size)
