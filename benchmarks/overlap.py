"""Iteration time of online RL with and without overlapped rollouts (`make_online_rl(..., overlap=True)`).

One GRPO iteration on G prompts × n responses is: sample on the device, fetch the tokens, score them with a
host reward, the training forward for old/ref log-probs, then the updates. Without overlap these run one
after another; with overlap the next iteration's batch is sampled (on the current parameters) before the
updates are dispatched, and its host reward runs while the device trains, so per iteration

    synchronous ≈ t_sample + t_reward + t_score + t_update
    overlapped  ≈ max(t_sample + t_score + t_update, t_sample + t_reward)   (one step off-policy)

The model is the RLVR quickstart decoder (`configs/rlvr.py:quickstart`: llama, d_model 128, 2 layers,
4 heads, 2 KV heads, d_ff 384, vocabulary 512) with random weights, on random prompts of --prompt-len tokens;
the defaults are the quickstart's G = 16, n = 8, 28 new tokens. The host reward is the fraction of even
token ids plus a verifier cost of --verifier-ms per batch: slept (verifiers on other cores or machines, as
a `RewardPool` with spare cores) or, with --busy, spun on this process's cores (verifiers competing with the
trainer for the CPU).

    python benchmarks/overlap.py                          # 5 + 1 warm-up iterations each, 300 ms verifier
    python benchmarks/overlap.py --verifier-ms 0          # no host cost: what overlap gains on sampling alone
    python benchmarks/overlap.py --busy --steps 10 --out /tmp/overlap.json

The two runs alternate iteration by iteration (a changing machine load then hits both alike; an overlapped
iteration leaves nothing running on the device when it returns). Reported: median and mean ms per
iteration after the first (compilation) and --warmup more, the host reward's own ms per call, and the
ratio synchronous / overlapped (> 1: overlap is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


class DelayedReward:
  """Host reward: the fraction of even token ids among the response tokens, after `ms` of verifier cost."""

  on_host = True

  def __init__(self, ms: float, busy: bool):
    self.ms, self.busy, self.times = ms, busy, []

  def __call__(self, prompt_ids, prompt_mask, completion_ids, completion_mask, rows):
    t0 = time.perf_counter()
    if self.busy:
      while time.perf_counter() - t0 < self.ms / 1e3:
        pass
    else:
      time.sleep(self.ms / 1e3)
    m = completion_mask.astype(np.float32)
    rewards = ((completion_ids % 2 == 0) * m).sum(-1) / np.maximum(m.sum(-1), 1.0)
    self.times.append(time.perf_counter() - t0)
    return rewards.astype(np.float32), {}


def make_run(a, overlap: bool):
  """`(iterate, reward)`: `iterate()` runs one online-RL iteration (`online_step`) and returns its seconds."""
  import jax
  import jax.numpy as jnp
  from flax import nnx

  from rljax import training as T
  from rljax.models import Decoder, DecoderConfig
  from rljax.training import online

  cfg = DecoderConfig(family="llama", vocab_size=a.vocab, d_model=a.d_model, n_layers=a.n_layers, n_heads=4,
                      n_kv_heads=2, head_dim=a.d_model // 4, d_ff=a.d_ff, max_positions=a.prompt_len + a.max_new_tokens,
                      norm_eps=1e-6, activation="silu", tie_word_embeddings=True, qkv_bias=False)
  model = Decoder(cfg, rngs=nnx.Rngs(0))
  reward = DelayedReward(a.verifier_ms, a.busy)
  opt = T.make_optimizer(a.lr)
  algo = online.make_online_rl("grpo", graphdef=nnx.graphdef(model), reward_fn=reward, group_size=a.n,
                               max_new_tokens=a.max_new_tokens, eos_token_id=1, pad_token_id=0, overlap=overlap)
  _, state = algo.init_state(model, opt, rng=jax.random.PRNGKey(0))

  def prompt_fn(pos):
    ids = np.random.default_rng([a.seed, pos]).integers(2, a.vocab, (a.prompts, a.prompt_len), dtype=np.int32)
    return jnp.asarray(ids), jnp.ones(ids.shape, bool), None, None

  step_fn = online.online_step(algo, algo.make_step(opt), prompt_fn, seed=a.seed)
  box = [state]

  def iterate() -> float:
    t0 = time.perf_counter()
    box[0], _ = step_fn(box[0], prompt_fn(int(box[0].data_pos)))  # host floats: the iteration has finished
    return time.perf_counter() - t0

  return iterate, reward


def summary(times: list[float], reward: DelayedReward, first: float) -> dict:
  return {"first_ms": 1e3 * first, "median_ms": 1e3 * statistics.median(times), "mean_ms": 1e3 * statistics.mean(times),
          "reward_ms": 1e3 * statistics.median(reward.times), "times_ms": [1e3 * t for t in times]}


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--prompts", type=int, default=16, help="G, prompts per iteration")
  p.add_argument("--n", type=int, default=8, help="responses per prompt")
  p.add_argument("--prompt-len", type=int, default=40)
  p.add_argument("--max-new-tokens", type=int, default=28)
  p.add_argument("--vocab", type=int, default=512)
  p.add_argument("--d-model", type=int, default=128)
  p.add_argument("--n-layers", type=int, default=2)
  p.add_argument("--d-ff", type=int, default=384)
  p.add_argument("--lr", type=float, default=1e-4)
  p.add_argument("--verifier-ms", type=float, default=300.0, help="host reward cost per batch")
  p.add_argument("--busy", action="store_true", help="spin for the verifier cost instead of sleeping")
  p.add_argument("--steps", type=int, default=5, help="timed iterations")
  p.add_argument("--warmup", type=int, default=1, help="untimed iterations after the first")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", help="write the results as JSON here")
  a = p.parse_args()
  runs = {"synchronous": make_run(a, overlap=False), "overlapped": make_run(a, overlap=True)}
  first = {name: iterate() for name, (iterate, _) in runs.items()}  # compilation
  times = {name: [] for name in runs}
  for i in range(a.warmup + a.steps):  # alternating, so that a changing machine load hits both alike
    for name, (iterate, _) in runs.items():
      t = iterate()
      if i >= a.warmup:
        times[name].append(t)
  sync, over = (summary(times[name], runs[name][1], first[name]) for name in runs)
  for name, r in zip(runs, (sync, over)):
    print(f"{name:>12}: {r['median_ms']:8.1f} ms/iteration median ({r['mean_ms']:.1f} mean; first "
          f"{r['first_ms']:.0f} ms), host reward {r['reward_ms']:.1f} ms per call")
  ratio = sync["median_ms"] / over["median_ms"]
  print(f"synchronous / overlapped = {ratio:.2f}× (verifier {a.verifier_ms:g} ms per batch, "
        f"{'spinning' if a.busy else 'sleeping'})")
  if a.out:
    with open(a.out, "w") as f:
      json.dump({"args": vars(a), "synchronous": sync, "overlapped": over, "ratio": ratio}, f, indent=2)


if __name__ == "__main__":
  main()
