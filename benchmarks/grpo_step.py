"""Speed and memory of one GRPO iteration: rljax's online loop vs TRL's `GRPOTrainer`, on the same Qwen2
checkpoint, prompts and reward.

GRPO: Shao et al., "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models",
2024, arXiv:2402.03300. One iteration on G prompts × n completions each:

    y_i ~ π_θ(· | x_g), i = 1..n          (at most --max-new-tokens tokens, a row stops at its EOS)
    R_i = reward(y_i)                     (`trl_reward` / `rljax_reward`: the fraction of even token ids)
    A_i = (R_i − mean_g R) / (std_g R + 1e-4)           (unbiased std; no std for loss_type dr_grpo)
    ℓ_it = −min(r_it A_i, clip(r_it, 1 − ε, 1 + ε_h) A_i) + β k3_it,   r = π_θ / π_old,
    k3_it = exp(ref_it − logp_it) − (ref_it − logp_it) − 1
    L = agg(ℓ) by TRL's loss_type (grpo: token mean per completion, then mean over completions;
        dapo/bnpo: mean over all tokens; dr_grpo: sum / (B · max_completion_length)),
    θ ← θ − η ∇L                          (plain SGD: no clipping, no weight decay)

    python benchmarks/grpo_step.py                      # hidden 128, 4 layers, vocab 1000, 4 prompts × 4, 32 tokens
    python benchmarks/grpo_step.py --loss-type dapo --beta 0 --steps 10 --out /tmp/grpo.json
    python benchmarks/grpo_step.py --threads 1          # each worker pinned to one core (a shared CPU)

What is measured. A random float32 Qwen2 checkpoint and its tokenizer (`benchmarks.dpo_step.write_checkpoint`)
are written to a temporary directory, and G random text prompts of --prompt-len one-token words. Each
implementation then runs in its own fresh subprocess, pinned to --threads cores:

  rljax: `from_pretrained`, `init_online_state`, `make_online_rl(rljax_config(trl_settings(...)),
    reward_fn=rljax_reward, ...)` and `rl_iteration(state, make_step(sgd), prompts, prompt_mask, key)`:
    one jit-compiled `collect` (KV-cache sampling, old and reference log-probs, reward, advantages)
    and one jit-compiled update. The first iteration includes compilation ("first").
  TRL: `GRPOTrainer(model=<checkpoint dir>, reward_funcs=trl_reward, args=GRPOConfig(...))` with the same
    settings (`trl_settings`), generation through transformers `generate` (no vLLM), SGD with constant
    learning rate, no gradient clipping; `trainer.train()` for 1 + --warmup + --steps steps. One iteration
    is the wall time between consecutive `on_step_end` callbacks (prompt tokenization, generation, reward,
    reference log-probs, forward, backward, optimizer step); "first" is from `on_train_begin` to the first
    `on_step_end`. Trainer construction is reported separately as setup.

The steady-state time is the median over --steps iterations after the first and --warmup more. Memory,
measured the same way for both: peak resident set size of the subprocess (`resource.getrusage`) at the end,
and its increase over the RSS just before the first iteration (so it covers compilation for rljax).

Work that differs. rljax's `collect` always runs a training forward for `old_logp` (the importance ratio is
then exactly 1 in the first update) and one for `ref_logp` (even with β = 0); TRL skips the old log-probs
when `num_iterations = 1` (it uses the detached current ones) and the reference when β = 0. With the
default β = 0.04 rljax therefore runs one forward pass more per iteration than TRL. Completions are
sampled independently on each side, so their lengths differ (both stop early only when every row has
emitted EOS); the mean completion length of each is printed with the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.dpo_step import EOS, PAD, add_model_args, compare, make_pairs, peak_rss_mib, rss_mib, serve_worker

MiB = 2**20

# TRL GRPOTrainer `loss_type` -> the rljax preset with the same aggregation. "bnpo" (token mean over the
# local batch) and "dapo" (token mean over the accumulated batch) agree for one batch without accumulation.
TRL_LOSS_PRESETS = {"grpo": "grpo", "dr_grpo": "dr_grpo", "dapo": "dapo", "bnpo": "dapo"}
TRL_STD_EPS = 1e-4  # hard-coded in GRPOTrainer._generate_and_score_completions (not a GRPOConfig field)


def trl_settings(loss_type: str, *, beta: float, num_generations: int, epsilon: float = 0.2,
                 epsilon_high: float | None = None) -> dict:
  """`GRPOConfig` keyword arguments of TRL 1.13 that fix the objective and the sampling, for `loss_type` and
  KL coefficient `beta`; `rljax_config` turns them into the equivalent rljax preset.

  Set here because TRL's default differs from what rljax can express or from our preset:
  * `use_bias_correction_kl=False`: TRL's default (True) multiplies the per-token k3 by the importance
    ratio π_θ/π_old, which changes the KL gradient even on-policy (the ratio is differentiable at 1); no
    rljax config field does this.
  * `scale_rewards="none"` for "dr_grpo": TRL scales by the group std ("group") whatever the loss_type.
  * `epsilon_high = epsilon` unless given (TRL's default; our dapo preset has 0.28).
  * `temperature=1.0`: TRL's training forward divides the logits by the sampling temperature; rljax's
    online loss always uses the raw policy (temperature 1), so only temperature 1 matches.
  """
  if loss_type not in TRL_LOSS_PRESETS:
    raise ValueError(f"`loss_type` must be one of {sorted(TRL_LOSS_PRESETS)}, got {loss_type!r}.")
  return {"loss_type": loss_type, "beta": beta, "num_generations": num_generations, "epsilon": epsilon,
          "epsilon_high": epsilon if epsilon_high is None else epsilon_high,
          "scale_rewards": "none" if loss_type == "dr_grpo" else "group", "use_bias_correction_kl": False,
          "temperature": 1.0, "importance_sampling_level": "token", "top_k": 0, "top_p": 1.0}


def rljax_config(trl: dict):
  """The rljax preset (`rljax.algorithms.get`) with the objective of TRL's GRPOTrainer under the
  `GRPOConfig` settings `trl` (as returned by `trl_settings`).

  Our presets differ from TRL's defaults in: std eps 1e-6 (TRL 1e-4: `advantage_kwargs.eps`), k3 clamped
  at ±20 (TRL unclamped: `kl.clamp=None`), the KL coefficient (grpo preset 0.04, TRL `beta` 0.0), the
  group size, clip-higher 0.28 (dapo; TRL `epsilon_high` = `epsilon`) and, in dapo, dynamic sampling and
  overlong shaping (not in TRL: off here). Aggregation: TRL "dr_grpo" divides by B · max_completion_length,
  ours by (non-empty rows) · T with T the padded width, which the online loop pads to `max_new_tokens`; so
  the two agree when no completion is empty (only TRL's `mask_truncated_completions` empties one, and then
  "grpo" differs in the same way: TRL's mean counts empty rows).
  """
  from rljax import algorithms

  unsupported = {"use_bias_correction_kl": True, "importance_sampling_level": "sequence"}
  for key, value in unsupported.items():
    if trl.get(key) == value:
      raise ValueError(f"`trl`: {key}={value!r} has no rljax equivalent.")
  if trl.get("temperature", 1.0) != 1.0:
    raise ValueError(f"`trl`: temperature={trl['temperature']} scales TRL's training log-probs; rljax's online "
                     "loss uses temperature 1.")
  cfg = algorithms.get(TRL_LOSS_PRESETS[trl["loss_type"]])
  cfg.group_size = trl["num_generations"]
  cfg.advantage_kwargs.scale = trl["scale_rewards"]
  cfg.advantage_kwargs.eps = TRL_STD_EPS
  cfg.loss_kwargs.clip_low, cfg.loss_kwargs.clip_high = trl["epsilon"], trl["epsilon_high"]
  cfg.kl.kind, cfg.kl.clamp, cfg.kl.coef = "k3", None, trl["beta"]
  cfg.kl.where = "loss" if trl["beta"] else "none"
  cfg.dynamic_sampling.enabled = False
  cfg.overlong.enabled = False
  return cfg


def trl_reward(completions, completion_ids, **_) -> list[float]:
  """TRL reward function: the fraction of even token ids among each completion's tokens (EOS included)."""
  del completions
  return [sum(t % 2 == 0 for t in ids) / max(len(ids), 1) for ids in completion_ids]


def rljax_reward(tokens, response_mask):
  """`trl_reward` as rljax's jittable `reward_fn(tokens i32[B, L], response_mask bool[B, L]) -> f32[B]`.

  The only reward glue: a host-side reward would replace this function."""
  import jax.numpy as jnp

  hits = jnp.sum(response_mask & (tokens % 2 == 0), axis=-1)
  return hits / jnp.maximum(jnp.sum(response_mask, axis=-1), 1)


def make_prompts(n: int, *, vocab: int, prompt_len: int, seed: int = 0) -> list[str]:
  """`n` random text prompts of `prompt_len` one-token words (the prompts of `make_pairs`)."""
  return [p["prompt"] for p in make_pairs(n, vocab=vocab, prompt_len=prompt_len, completion_len=2, seed=seed)]


def encode_prompts(path: str, prompts: list[str]) -> tuple[np.ndarray, np.ndarray, int, int]:
  """(ids i32[G, P], mask bool[G, P], eos_id, pad_id): the prompts tokenized as TRL does for plain-text
  prompts (the tokenizer without special tokens: it has no BOS), left-padded."""
  from tokenizers import Tokenizer

  tok = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
  rows = [tok.encode(p).ids for p in prompts]
  pad_id, width = tok.token_to_id(PAD), max(map(len, rows))
  ids, mask = np.full((len(rows), width), pad_id, np.int32), np.zeros((len(rows), width), bool)
  for i, row in enumerate(rows):
    ids[i, width - len(row):], mask[i, width - len(row):] = row, True
  return ids, mask, tok.token_to_id(EOS), pad_id


def _settings(a) -> dict:
  return trl_settings(a.loss_type, beta=a.beta, num_generations=a.n, epsilon=a.epsilon)


def _worker_rljax(a) -> dict:
  import jax

  from rljax import training as T
  from rljax.models import from_pretrained
  from rljax.training.online import init_online_state, make_online_rl

  prompts, prompt_mask, eos_id, pad_id = encode_prompts(
      a.ckpt, make_prompts(a.prompts, vocab=a.vocab, prompt_len=a.prompt_len))
  t0 = time.perf_counter()
  optimizer = T.make_optimizer(a.lr, name="sgd", clip_norm=None)
  graphdef, state = init_online_state(from_pretrained(a.ckpt), optimizer, rng=jax.random.key(0))
  rl = make_online_rl(rljax_config(_settings(a)), graphdef=graphdef, reward_fn=rljax_reward,
                      max_new_tokens=a.max_new_tokens, eos_token_id=eos_id, pad_token_id=pad_id)
  step = rl.make_step(optimizer)
  setup = time.perf_counter() - t0
  rss0 = rss_mib()
  key, times, lengths = jax.random.key(a.seed), [], []
  for i in range(1 + a.warmup + a.steps):
    t0 = time.perf_counter()
    # rl_iteration returns host floats, so the iteration has finished when it returns.
    state, metrics = rl.rl_iteration(state, step, prompts, prompt_mask, jax.random.fold_in(key, i))
    times.append(time.perf_counter() - t0)
    lengths.append(metrics["response_length"])
  return {"setup_s": setup, "first_s": times[0], "times": times[1 + a.warmup:], "lengths": lengths[1 + a.warmup:],
          "rss_before_mib": rss0, "peak_rss_mib": peak_rss_mib()}


def _worker_trl(a) -> dict:
  import torch
  from datasets import Dataset
  from transformers import TrainerCallback
  from trl import GRPOConfig, GRPOTrainer

  torch.set_num_threads(a.threads)
  stamps, lengths, trainer = [], [], None

  class Clock(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
      stamps.append(time.perf_counter())

    def on_step_end(self, args, state, control, **kwargs):
      stamps.append(time.perf_counter())
      lengths.append(trainer._metrics["train"]["completions/mean_length"][-1])

  prompts = make_prompts(a.prompts, vocab=a.vocab, prompt_len=a.prompt_len)
  total = 1 + a.warmup + a.steps
  with tempfile.TemporaryDirectory() as out:
    t0 = time.perf_counter()
    args = GRPOConfig(
        output_dir=out, per_device_train_batch_size=a.prompts * a.n, max_completion_length=a.max_new_tokens,
        max_steps=total, learning_rate=a.lr, optim="sgd", lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=0.0, max_grad_norm=0.0, use_vllm=False, use_cpu=True, bf16=False, fp16=False, report_to=[],
        save_strategy="no", logging_steps=10**9, disable_tqdm=True, seed=a.seed, **_settings(a))
    trainer = GRPOTrainer(model=a.ckpt, reward_funcs=trl_reward, args=args,
                          train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]), callbacks=[Clock()])
    setup = time.perf_counter() - t0
    rss0 = rss_mib()
    trainer.train()
  times = list(np.diff(stamps))
  return {"setup_s": setup, "first_s": times[0], "times": times[1 + a.warmup:], "lengths": lengths[1 + a.warmup:],
          "rss_before_mib": rss0, "peak_rss_mib": peak_rss_mib()}


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  add_model_args(p, d_model=128, d_ff=256)
  p.add_argument("--prompts", type=int, default=4, help="G, prompts per iteration")
  p.add_argument("--n", type=int, default=4, help="completions per prompt (num_generations)")
  p.add_argument("--prompt-len", type=int, default=16)
  p.add_argument("--max-new-tokens", type=int, default=32, help="max_completion_length")
  p.add_argument("--loss-type", choices=sorted(TRL_LOSS_PRESETS), default="grpo")
  p.add_argument("--beta", type=float, default=0.04)
  p.add_argument("--epsilon", type=float, default=0.2)
  p.add_argument("--lr", type=float, default=1e-2)
  p.add_argument("--steps", type=int, default=5, help="timed iterations")
  p.add_argument("--warmup", type=int, default=1, help="untimed iterations after the first")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", help="write the results as JSON to this path")
  a = p.parse_args()
  if serve_worker(a, {"rljax": _worker_rljax, "trl": _worker_trl}):
    return

  spec, res, med = compare(__file__, a)  # the workers ignore --out
  print(f"GRPO iteration, Qwen2 {spec}, {a.prompts} prompts × {a.n} completions, prompt {a.prompt_len} tokens, "
        f"max_new_tokens {a.max_new_tokens}, loss_type {a.loss_type}, beta {a.beta}, {a.threads} core(s) per worker, "
        f"median of {a.steps} iterations")
  print("| impl | setup | first iteration | first − steady (rljax: compilation) | time / iteration | "
        "mean completion length | peak RSS | RSS increase during training |")
  print("|---|---|---|---|---|---|---|---|")
  for k, r in res.items():
    print(f"| {k} | {r['setup_s']:.2f} s | {r['first_s']:.2f} s | {r['first_s'] - med[k]:.2f} s | "
          f"{1e3 * med[k]:.0f} ms | {statistics.mean(r['lengths']):.1f} | {r['peak_rss_mib']:.0f} MiB | "
          f"{r['peak_rss_mib'] - r['rss_before_mib']:.0f} MiB |")
  ratio = med["trl"] / med["rljax"]
  print(f"speed ratio TRL / rljax time per iteration: {ratio:.2f}")
  if a.out:
    summary = {"args": {k: v for k, v in vars(a).items() if k not in ("worker", "ckpt", "out")},
               "median_s": med, "speed_ratio_trl_over_rljax": ratio, "results": res}
    with open(a.out, "w") as f:
      json.dump(summary, f, indent=2)


if __name__ == "__main__":
  main()
