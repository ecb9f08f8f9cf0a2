"""Speed and memory of one DPO update: rljax vs TRL's `DPOTrainer`, on the same Qwen2 checkpoint and data.

DPO: Rafailov, Sharma, Mitchell, Ermon, Manning, Finn, "Direct Preference Optimization: Your Language
Model is Secretly a Reward Model", NeurIPS 2023, arXiv:2305.18290. Per pair (x, y_w, y_l),

    L = −log σ(β [(log π_θ(y_w|x) − log π_ref(y_w|x)) − (log π_θ(y_l|x) − log π_ref(y_l|x))]),

averaged over the batch, log π(y|x) = Σ_{t ∈ completion} log π(y_t | x, y_<t) (a sum, not a mean).

    python benchmarks/dpo_step.py                     # hidden 256, 4 layers, vocab 1000, 8 pairs, seq 128
    python benchmarks/dpo_step.py --steps 20 --ref precomputed
    python benchmarks/dpo_step.py --d-model 48 --layers 2 --heads 3 --kv-heads 1 --vocab 97   # test size

What is measured. A random Qwen2 checkpoint (transformers `Qwen2ForCausalLM`, float32) and a byte-level
BPE tokenizer are written to a temporary directory; random text preference pairs (prompt of --prompt-len
tokens, chosen/rejected completions of different lengths up to --completion-len tokens, EOS appended
as TRL does) are tokenized identically on both sides (`tokenize_pairs` reproduces TRL's prompt /
prompt+completion split; tests/test_trl_parity.py checks the ids against TRL's own). Each
implementation then runs in its own fresh subprocess:

  rljax: `from_pretrained`, `T.make_train_step` with `T.objectives.preference_loss("dpo")` and
    `T.make_optimizer(lr, name="sgd", clip_norm=None)`; one update = one call of the jitted step on a
    host (numpy) batch, `block_until_ready`. Compilation is excluded (one warm-up call after AOT
    compilation), as are --warmup further calls.
  TRL: `DPOTrainer(model=<checkpoint dir>, args=DPOConfig(optim="sgd", max_grad_norm=0, ...))` and
    `trainer.train()` for --warmup + --steps updates over the same pairs in the same order
    (`train_sampling_strategy="sequential"`); one update = the wall time between consecutive
    `on_step_end` callbacks (collation, forward, backward, optimizer step and TRL's metric logging).

`--ref online` (default, TRL's default) runs the frozen reference forward inside every update on both
sides (rljax: `preference_loss(..., ref_graphdef=...)` with `extra["ref_params"]`); `--ref precomputed`
computes the reference log-probs once beforehand on both sides (rljax: `T.objectives.pair_logps`;
TRL: `precompute_ref_log_probs=True`).

Time per update is the median over --steps, as wall-clock time and as the process's CPU time (user +
system, all threads), which is the load-independent measure with --threads 1. Memory, measured the
same way for both: the subprocess's peak resident set size (`resource.getrusage(RUSAGE_SELF).ru_maxrss`)
at the end, and its increase over the RSS just before the first update (after imports, checkpoint loading and data preparation, so
it covers compilation for rljax and the autograd/optimizer buffers for TRL). For rljax the compiled
step's `memory_analysis()` (arguments + temporaries) is printed as well. rljax's peak is the larger of
the compiler's own working set and, after it, the step's temporaries on top of what compilation left
resident; `rljax.host_memory` trims the heap after each compilation so that the second term does not
count the compiler's freed memory again. Each worker is pinned to
--threads cores (`os.sched_setaffinity`, and `torch.set_num_threads`). Timings on a shared CPU are
noisy and the ratio comes from one run; there use `--threads 1`: torch's OpenMP threads spin at
barriers, so with 2 threads on an oversubscribed CPU its steps slowed ~8x in one measurement while
XLA's thread pool was little affected, which says nothing about either library on an idle machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

PAD, EOS, UNK, SPACE = "<pad>", "</s>", "<unk>", "\u0120"  # byte-level BPE writes " " as "Ġ"
MiB = 2**20


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """Size of the random Qwen2 checkpoint; `vocab` is the number of ids, special tokens included."""
  vocab: int = 1000
  d_model: int = 256
  layers: int = 4
  heads: int = 4
  kv_heads: int = 2
  d_ff: int = 512
  init_std: float = 0.1


def _bpe_vocab(size: int) -> tuple[dict[str, int], list[tuple[str, str]], list[str]]:
  """(vocab, merges, words) of a byte-level BPE tokenizer with `size` ids: `<pad>`, `</s>`, `<unk>`,
  "Ġ" (a space), a…z, then merge-built words "Ġa", …, "Ġz", "Ġaa", … in a prefix-closed order, so
  that " " + word always encodes to exactly one id (every prefix chain of merges exists)."""
  letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
  base = [PAD, EOS, UNK, SPACE] + letters
  if size < len(base) + len(letters):
    raise ValueError(f"`vocab` must be >= {len(base) + len(letters)}, got {size}.")
  merges, frontier = [], [SPACE]
  while len(base) + len(merges) < size:
    frontier = [w + c for w in frontier for c in letters]
    merges += [(w[:-1], w[-1]) for w in frontier[:size - len(base) - len(merges)]]
  words = [a + b for a, b in merges]
  return {t: i for i, t in enumerate(base + words)}, merges, [w[1:] for w in words]


def write_checkpoint(path: str, spec: ModelSpec, *, seed: int = 0) -> None:
  """A random float32 `Qwen2ForCausalLM` (untied head, no dropout, random q/k/v biases) and a
  `Qwen2Tokenizer` over `_bpe_vocab(spec.vocab)` (no BOS), both saved to `path`, so that
  `AutoModelForCausalLM`, `AutoTokenizer` (which picks Qwen2's byte-level BPE class for a qwen2
  config) and `rljax.models.from_pretrained` load them."""
  import torch
  from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

  vocab, merges, _ = _bpe_vocab(spec.vocab)
  Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=UNK, eos_token=EOS, pad_token=PAD).save_pretrained(path)
  config = Qwen2Config(
      vocab_size=spec.vocab, hidden_size=spec.d_model, intermediate_size=spec.d_ff,
      num_hidden_layers=spec.layers, num_attention_heads=spec.heads, num_key_value_heads=spec.kv_heads,
      max_position_embeddings=512, initializer_range=spec.init_std, tie_word_embeddings=False,
      attention_dropout=0.0, use_sliding_window=False, bos_token_id=None, eos_token_id=vocab[EOS],
      pad_token_id=vocab[PAD])
  torch.manual_seed(seed)
  model = Qwen2ForCausalLM(config).to(torch.float32)
  # HF zero-initialises the q/k/v biases; random ones make the bias <-> NNX mapping matter.
  with torch.no_grad():
    for layer in model.model.layers:
      for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
        proj.bias.normal_(0.0, spec.init_std)
  model.save_pretrained(path)


def make_pairs(n: int, *, vocab: int, prompt_len: int, completion_len: int, seed: int = 0) -> list[dict]:
  """`n` random text pairs {"prompt", "chosen", "rejected"} of one-token words of `_bpe_vocab(vocab)`:
  a prompt of `prompt_len` tokens and two completions of different random lengths in
  [completion_len/2, completion_len] tokens (no EOS: TRL appends it)."""
  words = _bpe_vocab(vocab)[2]
  rng = np.random.default_rng(seed)
  text = lambda k: "".join(" " + words[i] for i in rng.integers(0, len(words), k))
  pairs = []
  for _ in range(n):
    lc, lr = rng.choice(np.arange(max(completion_len // 2, 1), completion_len + 1), 2, replace=False)
    pairs.append({"prompt": text(prompt_len), "chosen": text(lc), "rejected": text(lr)})
  return pairs


def tokenize_pairs(path: str, pairs: list[dict]) -> list[tuple[list[int], list[int], list[int]]]:
  """(prompt_ids, chosen_ids, rejected_ids) exactly as TRL's `DPOTrainer._prepare_dataset` builds them
  for non-conversational data: EOS text appended to each completion, then the completion ids are
  tok(prompt + completion)[len(tok(prompt)):]. Uses `tokenizers` directly (no torch import)."""
  from tokenizers import Tokenizer

  tok = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
  ids = lambda s: tok.encode(s).ids
  out = []
  for p in pairs:
    prompt = ids(p["prompt"])
    split = lambda c: ids(p["prompt"] + c + EOS)[len(prompt):]
    out.append((prompt, split(p["chosen"]), split(p["rejected"])))
  return out


def rljax_batch(tokenized, *, pad_id: int = 0) -> dict[str, np.ndarray]:
  """The `preference_loss` batch: `{chosen,rejected}_{tokens,mask,loss_mask}` right-padded with `pad_id`
  to one length T = the longest prompt+completion (TRL's collator pads chosen and rejected together);
  loss_mask = 1 on completion tokens (TRL's `completion_mask`)."""
  length = max(len(p) + max(len(c), len(r)) for p, c, r in tokenized)
  batch = {}
  for side, idx in (("chosen", 1), ("rejected", 2)):
    tokens = np.full((len(tokenized), length), pad_id, np.int32)
    mask, loss_mask = np.zeros_like(tokens), np.zeros_like(tokens)
    for b, row in enumerate(tokenized):
      prompt, completion = row[0], row[idx]
      n = len(prompt) + len(completion)
      tokens[b, :n] = prompt + completion
      mask[b, :n] = 1
      loss_mask[b, len(prompt):n] = 1
    batch.update({f"{side}_tokens": tokens, f"{side}_mask": mask, f"{side}_loss_mask": loss_mask})
  return batch


def rljax_setup(path: str, batch: dict, *, lr: float, beta: float, ref_path: str | None = None,
                online_ref: bool = False, loss: str = "dpo", loss_kwargs: dict | None = None):
  """(graphdef, step, state, batch) for one rljax update of the pairwise `loss` (default DPO) from the
  checkpoint at `path`; the reference is the checkpoint at `ref_path` (default: `path`), either run
  inside the step (`online_ref`) or precomputed with `pair_logps` into
  `batch["ref_chosen_logps"/"ref_rejected_logps"]`."""
  import jax
  from flax import nnx

  from rljax import training as T
  from rljax.models import from_pretrained

  model, ref = from_pretrained(path), from_pretrained(ref_path or path)
  optimizer = T.make_optimizer(lr, name="sgd", clip_norm=None)
  ref_graphdef, ref_params = nnx.split(ref, nnx.Param)
  if online_ref:
    loss_fn = T.objectives.preference_loss(loss, ref_graphdef=ref_graphdef, beta=beta, **(loss_kwargs or {}))
    extra = {"ref_params": ref_params}
  else:
    ref_c, ref_r = jax.jit(lambda p, b: T.objectives.pair_logps(nnx.merge(ref_graphdef, p), b))(ref_params, batch)
    batch = {**batch, "ref_chosen_logps": np.asarray(ref_c), "ref_rejected_logps": np.asarray(ref_r)}
    loss_fn, extra = T.objectives.preference_loss(loss, beta=beta, **(loss_kwargs or {})), None
  graphdef, state = T.init_train_state(model, optimizer, rng=jax.random.key(0), extra=extra)
  return graphdef, T.make_train_step(graphdef, loss_fn, optimizer), state, batch


def trl_trainer(path: str, pairs: list[dict], out_dir: str, *, lr: float, beta: float, steps: int,
                batch_size: int | None = None, ref_path: str | None = None, precompute_ref: bool = False,
                callbacks=None, loss_type: str = "sigmoid", label_smoothing: float = 0.0):
  """TRL `DPOTrainer` with `loss_type` (default "sigmoid", DPO) on `pairs` in order, `batch_size`
  (default: all) pairs per update, with plain SGD: no warmup, constant learning rate, no weight decay,
  no gradient clipping (`max_grad_norm=0`), float32 on CPU. The reference is TRL's default (a fresh
  copy of `path`) unless `ref_path` is given."""
  from datasets import Dataset
  from transformers import AutoModelForCausalLM, AutoTokenizer
  from trl import DPOConfig, DPOTrainer

  args = DPOConfig(
      output_dir=out_dir, per_device_train_batch_size=batch_size or len(pairs), max_steps=steps, learning_rate=lr,
      optim="sgd", lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=0.0,
      beta=beta, loss_type=[loss_type], label_smoothing=label_smoothing, max_length=None, precompute_ref_log_probs=precompute_ref,
      train_sampling_strategy="sequential", use_cpu=True, bf16=False, fp16=False, report_to="none",
      save_strategy="no", logging_steps=1, disable_tqdm=True, seed=0)
  ref = None if ref_path is None else AutoModelForCausalLM.from_pretrained(ref_path, dtype="float32")
  return DPOTrainer(model=path, ref_model=ref, args=args, train_dataset=Dataset.from_list(pairs),
                    processing_class=AutoTokenizer.from_pretrained(path), callbacks=callbacks)


def rss_mib() -> float:
  """The process's resident set size now (MiB)."""
  with open("/proc/self/status") as f:
    return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def peak_rss_mib() -> float:
  """The process's peak resident set size (MiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds() -> float:
  """User + system CPU time of the process so far, all threads (seconds)."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def _worker_rljax(a) -> dict:
  import jax

  pairs = make_pairs(a.batch, vocab=a.vocab, prompt_len=a.prompt_len, completion_len=a.completion_len)
  batch = rljax_batch(tokenize_pairs(a.ckpt, pairs))
  _, step, state, batch = rljax_setup(a.ckpt, batch, lr=a.lr, beta=a.beta, online_ref=a.ref == "online")
  rss0 = rss_mib()
  compiled = step.lower(state, batch).compile()
  mem = compiled.memory_analysis()
  times, cpu_times = [], []
  for i in range(1 + a.warmup + a.steps):
    t0, c0 = time.perf_counter(), cpu_seconds()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics["loss"])
    if i > a.warmup:
      times.append(time.perf_counter() - t0)
      cpu_times.append(cpu_seconds() - c0)
  return {"times": times, "cpu_times": cpu_times, "rss_before_mib": rss0, "peak_rss_mib": peak_rss_mib(),
          "compiled_mib": (mem.argument_size_in_bytes + mem.temp_size_in_bytes) / MiB,
          "seq": int(batch["chosen_tokens"].shape[1])}


def _worker_trl(a) -> dict:
  import torch
  from transformers import TrainerCallback

  torch.set_num_threads(a.threads)
  stamps = []

  class Clock(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
      stamps.append((time.perf_counter(), cpu_seconds()))

  pairs = make_pairs(a.batch, vocab=a.vocab, prompt_len=a.prompt_len, completion_len=a.completion_len)
  total = 1 + a.warmup + a.steps
  with tempfile.TemporaryDirectory() as out:
    # Update k sees the same pairs in the same order as rljax's single batch.
    trainer = trl_trainer(a.ckpt, pairs * total, out, lr=a.lr, beta=a.beta, steps=total, batch_size=a.batch,
                          precompute_ref=a.ref == "precomputed", callbacks=[Clock()])
    rss0 = rss_mib()
    trainer.train()
  wall, cpu = np.diff(np.asarray(stamps), axis=0)[a.warmup:].T
  return {"times": list(wall), "cpu_times": list(cpu), "rss_before_mib": rss0, "peak_rss_mib": peak_rss_mib()}


def run_worker(script: str, name: str, argv: list[str]) -> dict:
  """Runs `script --worker name *argv` in a fresh process and returns the JSON it printed last."""
  out = subprocess.run([sys.executable, os.path.abspath(script), "--worker", name, *argv],
                       check=False, capture_output=True, text=True)
  if out.returncode:
    raise RuntimeError(f"{name} worker failed:\n{out.stderr[-4000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def compare(script: str, a) -> tuple[ModelSpec, dict, dict]:
  """Writes the checkpoint of `a`'s shape flags, runs the rljax and TRL workers of `script` on it (they parse
  the same flags), and returns `(spec, results, median time per step of each)`."""
  spec = ModelSpec(a.vocab, a.d_model, a.layers, a.heads, a.kv_heads, a.d_ff)
  with tempfile.TemporaryDirectory() as ckpt:
    write_checkpoint(ckpt, spec)
    res = {name: run_worker(script, name, sys.argv[1:] + ["--ckpt", ckpt]) for name in ("rljax", "trl")}
  return spec, res, {k: statistics.median(v["times"]) for k, v in res.items()}


def add_model_args(p: argparse.ArgumentParser, *, d_model: int, d_ff: int) -> None:
  """The checkpoint's shape flags and the worker plumbing shared by the benchmarks against TRL."""
  p.add_argument("--vocab", type=int, default=1000)
  p.add_argument("--d-model", type=int, default=d_model)
  p.add_argument("--layers", type=int, default=4)
  p.add_argument("--heads", type=int, default=4)
  p.add_argument("--kv-heads", type=int, default=2)
  p.add_argument("--d-ff", type=int, default=d_ff)
  p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                 help="cores each worker is pinned to (default: all available)")
  p.add_argument("--worker", choices=("rljax", "trl"), help=argparse.SUPPRESS)
  p.add_argument("--ckpt", help=argparse.SUPPRESS)


def serve_worker(a, workers: dict) -> bool:
  """In a worker process (`--worker`): pin it to `--threads` cores, run it, print its JSON; True if so."""
  if not a.worker:
    return False
  # Before jax / torch start their thread pools, which size themselves by the affinity mask.
  os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:a.threads])
  print(json.dumps(workers[a.worker](a)))
  return True


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  add_model_args(p, d_model=256, d_ff=512)
  p.add_argument("--batch", type=int, default=8, help="preference pairs per update")
  p.add_argument("--prompt-len", type=int, default=64)
  p.add_argument("--completion-len", type=int, default=63, help="longest completion (seq <= prompt + this + EOS)")
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--lr", type=float, default=1e-2)
  p.add_argument("--beta", type=float, default=0.1)
  p.add_argument("--ref", choices=("online", "precomputed"), default="online")
  a = p.parse_args()
  if serve_worker(a, {"rljax": _worker_rljax, "trl": _worker_trl}):
    return

  spec, res, med = compare(__file__, a)
  print(f"DPO update, Qwen2 {spec}, {a.batch} pairs, seq {res['rljax']['seq']}, ref {a.ref}, "
        f"{a.threads} core(s) per worker, median of {a.steps} updates")
  cpu = {k: statistics.median(r["cpu_times"]) for k, r in res.items()}
  print("| impl | time / update | CPU time / update | peak RSS | RSS increase during training | compiled args+temp |")
  print("|---|---|---|---|---|---|")
  for k, r in res.items():
    extra = f"{r['compiled_mib']:.1f} MiB" if "compiled_mib" in r else "-"
    print(f"| {k} | {1e3 * med[k]:.1f} ms | {1e3 * cpu[k]:.1f} ms | {r['peak_rss_mib']:.0f} MiB | "
          f"{r['peak_rss_mib'] - r['rss_before_mib']:.0f} MiB | {extra} |")
  print(f"speed ratio TRL / rljax time per update: {med['trl'] / med['rljax']:.2f} (CPU time: "
        f"{cpu['trl'] / cpu['rljax']:.2f}; with one core per worker the CPU-time ratio is the load-independent one)")


if __name__ == "__main__":
  main()
