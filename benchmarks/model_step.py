"""Training-step speed and memory of the NNX `Decoder` with the fused LM head (`model_token_logps`).

    python benchmarks/model_step.py                      # CPU: speed vs transformers (PyTorch eager) + memory
    python benchmarks/model_step.py --skip-torch         # rljax only (no torch import)
    python benchmarks/model_step.py --gpu [--batch 8 --seq 2048 --steps 5 --peak-tflops 989]
    python benchmarks/model_step.py --gpu --tiny         # smoke test of the --gpu path (runs on CPU)

One training step = loss = -mean_t log p(target_t) (via `model_token_logps`, which never materialises the
float32 [B, T, V] logits), its gradient w.r.t. every parameter, and an optax AdamW update, all in one
`jax.jit` (params and optimizer state donated). The step is a pure function of (params, opt_state,
tokens, targets): the model is `nnx.split` once and `nnx.merge`d inside the traced loss.

Default mode (runs on any backend, meant for CPU):
  (1) speed: tokens/s (median of --steps steps after --warmup) of a small Llama config in rljax (fused
      head, and the unfused head for reference) vs transformers `LlamaForCausalLM` in PyTorch eager
      (same config, same batch, float32, `loss.backward()` + `torch.optim.AdamW`, `torch.set_num_threads`
      = available cores). Ratio rljax / torch (targets >= 1.2 at the default size, >= 2 at the tiny size
      `--d-model 64 --n-layers 2 --n-heads 4 --n-kv-heads 2 --d-ff 176 --vocab 1024 --batch 8 --seq 64
      --skip-memory`). Also printed: CPU time per step (user + system, all threads) and model GFLOP/s
      (the MFU FLOP count). On a shared machine run it pinned to one core (`taskset -c 0 python ...`:
      XLA and torch then both use one thread) and compare CPU times; wall-clock ratios need an idle one.
      Both libraries lose CPU time to page faults on their large per-step buffers (XLA allocates the
      step's temporaries afresh every call); `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` (transparent huge
      pages for malloc) removed most of them and cut each side's CPU time by 14-16% at the default size.
  (2) memory: temp bytes of the compiled training step (`memory_analysis()`, compile only) at vocab
      151936 with the fused head vs the unfused head (full float32 logits, log_softmax, gather).
      Ratio unfused / fused (target >= 3).

--gpu mode: a ~1B-parameter Llama config in bf16 (params, compute and AdamW moments) on the default
device; tokens/s of the jitted step (median of --steps after --warmup) and
MFU = (6 N tokens/s + 12 n_layers d_model T tokens/s) / peak, where N counts the matmul parameters
(all parameters except the input embedding table, which is a gather; the untied LM head is included).
The peak dense bf16 FLOP/s comes from a table by device kind or --peak-tflops. The batch is fitted to
the device: the step is compiled (shapes only) with 1 and 2 layers, its temp bytes extrapolated to all
layers, and B halved until arguments + temp fit 90% of the device limit (`bytes_limit`, or
--mem-limit-gib); the table says when B was reduced. --attention defaults to "auto" (cuDNN's fused flash
kernel on a CUDA GPU in bf16, `rljax.models.attention`); the table names the implementation taken, whether
the compiled step really holds cuDNN's fused-attention call, and the step's temporaries. With --attention
einsum the [B, heads, T, T] float32 scores are materialised per layer (B of 2-4 at T=2048 on 80 GB).
XLA_PYTHON_CLIENT_MEM_FRACTION defaults to 0.9 in this mode. torch is never imported in this mode.

Timings on a shared CPU are noisy; ratios come from one run of the script.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import resource
import statistics
import sys
import time

if "--gpu" in sys.argv:
  # Before jax initialises its backend: let the GPU allocator use 90% of memory (jax's default is 75%).
  os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.9")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rljax.models import attention  # noqa: E402
from rljax.models.config import ATTENTION_IMPLEMENTATIONS, DecoderConfig  # noqa: E402
from rljax.models.decoder import Decoder  # noqa: E402

GiB = 2**30

# Dense (no sparsity) bf16 peak FLOP/s, matched by substring of `device.device_kind` (first match wins).
PEAK_BF16_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM
    ("H200", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("A10G", 70e12),
    ("L4", 121e12),
    ("TPU v4", 275e12),
    ("TPU v5 lite", 197e12),
    ("TPU v5e", 197e12),
    ("TPU v5p", 459e12),
    ("TPU v5", 459e12),
    ("TPU v6", 918e12),
)


# ----------------------------------------------------------------------------------------------
# Model + training step


def llama_config(*, d_model, n_layers, n_heads, n_kv_heads, d_ff, vocab, max_positions,
                 dtype=jnp.float32) -> DecoderConfig:
  return DecoderConfig(
      family="llama", vocab_size=vocab, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
      n_kv_heads=n_kv_heads, head_dim=d_model // n_heads, d_ff=d_ff, max_positions=max_positions,
      norm_eps=1e-5, activation="silu", tie_word_embeddings=False, qkv_bias=False,
      rope_theta=10000.0, param_dtype=dtype, compute_dtype=dtype)


def unfused_token_logps(model, tokens, targets, attention_mask=None, positions=None, **_):
  """Reference head: full float32 logits [B, T, V], log_softmax, gather."""
  logits = model(tokens, attention_mask, positions)
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]


def fused_token_logps(chunk_size):
  from rljax.models.heads import model_token_logps  # written separately; imported when first needed
  return functools.partial(model_token_logps, chunk_size=chunk_size)


def make_step(cfg: DecoderConfig, head, *, lr=1e-4, seed=0):
  """Returns (jitted step, params, opt_state). step(params, opt_state, tokens, targets) -> (..., loss)."""
  model = Decoder(cfg, rngs=nnx.Rngs(seed))
  graphdef, params = nnx.split(model, nnx.Param)
  del model
  # AdamW moments in the parameter dtype (optax default), i.e. bf16 in the --gpu config.
  tx = optax.adamw(lr, weight_decay=0.01)
  opt_state = tx.init(params)

  def loss_fn(p, tokens, targets):
    m = nnx.merge(graphdef, p)
    return -jnp.mean(head(m, tokens, targets))

  def step(p, s, tokens, targets):
    loss, grads = jax.value_and_grad(loss_fn)(p, tokens, targets)
    updates, s = tx.update(grads, s, p)
    return optax.apply_updates(p, updates), s, loss

  return jax.jit(step, donate_argnums=(0, 1)), params, opt_state


def abstract(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


def count_params(params) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


def step_memory(cfg, head, batch, seq):
  """(argument, temp, output) bytes of the compiled step, compiled from shapes only (nothing allocated)."""
  step, params, opt_state = make_step_abstract(cfg, head)
  tok = jax.ShapeDtypeStruct((batch, seq), jnp.int32)
  compiled = step.lower(params, opt_state, tok, tok).compile()
  stats = compiled.memory_analysis()
  if stats is None:
    return None, compiled
  return (stats.argument_size_in_bytes, stats.temp_size_in_bytes, stats.output_size_in_bytes), compiled


def make_step_abstract(cfg, head):
  """Like make_step, but params / optimizer state as ShapeDtypeStructs (eval_shape; no memory used)."""
  holder = {}

  def build():
    step, params, opt_state = make_step(cfg, head)
    holder["step"] = step
    return params, opt_state

  params, opt_state = jax.eval_shape(build)
  return holder["step"], params, opt_state


def random_batch(batch, seq, vocab, seed=0):
  rng = np.random.default_rng(seed)
  data = rng.integers(0, vocab, size=(batch, seq + 1), dtype=np.int64)
  return data[:, :-1], data[:, 1:]


def rljax_runner(cfg, head, batch, seq):
  """A callable running one training step to completion; returns (run, info) with info() -> (loss, n)."""
  step, params, opt_state = make_step(cfg, head)
  tokens, targets = (jnp.asarray(a, jnp.int32) for a in random_batch(batch, seq, cfg.vocab_size))
  state = {"params": params, "opt": opt_state, "loss": None}
  n = count_params(params)
  del params, opt_state

  def run():
    state["params"], state["opt"], state["loss"] = step(state["params"], state["opt"], tokens, targets)
    jax.block_until_ready((state["params"], state["opt"], state["loss"]))

  return run, lambda: (float(state["loss"]), n)


def torch_runner(cfg, batch, seq, threads):
  import torch  # CPU comparison only
  import transformers

  torch.set_num_threads(threads)
  torch.manual_seed(0)
  hf = cfg.to_hf()
  for key in ("architectures", "model_type", "dtype"):
    hf.pop(key, None)
  hf_cfg = transformers.LlamaConfig(**hf)
  hf_cfg._attn_implementation = "sdpa"
  model = transformers.LlamaForCausalLM(hf_cfg).float().train()
  opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
  tokens, targets = (torch.from_numpy(a) for a in random_batch(batch, seq, cfg.vocab_size))
  state = {"loss": None}
  n = sum(p.numel() for p in model.parameters())

  def run():
    opt.zero_grad(set_to_none=True)
    logits = model(input_ids=tokens).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))
    loss.backward()
    opt.step()
    state["loss"] = loss.detach()

  return run, lambda: (float(state["loss"]), n)


def time_interleaved(runners, steps, warmup):
  """Median step time per runner; the timed steps alternate between runners (round-robin), so load
  from other processes on a shared machine hits every runner alike. Returns [(median, first, all steps,
  median CPU time), ...]; the CPU time (user + system, all threads of the process) is the load-independent
  measure when the process is pinned to one core."""
  firsts = []
  for run in runners:
    t0 = time.perf_counter()
    run()  # compile (jax) / allocator warm-up (torch)
    firsts.append(time.perf_counter() - t0)
    for _ in range(max(warmup - 1, 0)):
      run()
  times, cpu = [[] for _ in runners], [[] for _ in runners]
  for _ in range(steps):
    for i, run in enumerate(runners):
      t0, c0 = time.perf_counter(), cpu_seconds()
      run()
      times[i].append(time.perf_counter() - t0)
      cpu[i].append(cpu_seconds() - c0)
  return [(statistics.median(t), f, t, statistics.median(c)) for t, f, c in zip(times, firsts, cpu)]


def cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def available_cores() -> int:
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


def fmt_bytes(n):
  return "n/a" if n is None else f"{n / GiB:.3f} GiB"


def device_line():
  d = jax.devices()[0]
  return f"device: {d.platform} {d.device_kind} | jax {jax.__version__} | backend {jax.default_backend()}"


# ----------------------------------------------------------------------------------------------
# Modes


def run_cpu(args):
  cores = available_cores()
  print(device_line() + f" | cores available: {cores}\n")
  chunk = args.chunk if args.chunk is not None else "auto"
  fused = fused_token_logps(chunk)
  B, T = args.batch or 8, args.seq or 256

  if not args.skip_speed:
    cfg = llama_config(d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads,
                       n_kv_heads=args.n_kv_heads, d_ff=args.d_ff, vocab=args.vocab, max_positions=max(T, 2048))
    print(f"### (1) Training step speed: llama d_model={cfg.d_model}, layers={cfg.n_layers}, heads="
          f"{cfg.n_heads}/{cfg.n_kv_heads} kv, d_ff={cfg.d_ff}, vocab={cfg.vocab_size}; B={B}, T={T} "
          f"({B * T} tokens/step), float32; median of {args.steps} steps after {args.warmup} warm-up, "
          f"timed steps interleaved across implementations\n")
    names, runners, infos = [], [], []
    for name, make in [(f"rljax jit, fused head (chunk_size={chunk})", lambda: rljax_runner(cfg, fused, B, T)),
                       ("rljax jit, unfused head", lambda: rljax_runner(cfg, unfused_token_logps, B, T)),
                       ("torch", lambda: torch_runner(cfg, B, T, cores))]:
      if (name == "torch" and args.skip_torch) or (name.startswith("rljax jit, unfused")
                                                   and args.skip_unfused_speed):
        continue
      if name == "torch":
        import torch
        import transformers
        name = (f"transformers {transformers.__version__} + torch {torch.__version__} eager "
                f"({cores} threads)")
      run, info = make()
      names.append(name)
      runners.append(run)
      infos.append(info)
    timed = time_interleaved(runners, args.steps, args.warmup)
    rows = [(name, t, first, *info(), all_t, c) for name, (t, first, all_t, c), info in zip(names, timed, infos)]
    base = None if args.skip_torch else rows[-1]
    # Model FLOPs of one step (as for MFU): 6 N_matmul per token (the embedding table is a gather) plus
    # 12 n_layers d_model T for the scores and the weighted sum, forward and backward, over the full T x T.
    flops = (6 * (rows[0][4] - cfg.vocab_size * cfg.d_model) + 12 * cfg.n_layers * cfg.d_model * T) * B * T
    print("| implementation | params | step time | CPU time / step | tokens/s | model GFLOP/s | "
          "first step (incl. compile) | loss | speed vs torch (CPU time) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, t, first, loss, n, _, c in rows:
      ratio = "-" if base is None else f"{base[1] / t:.2f} ({base[6] / c:.2f})"
      print(f"| {name} | {n / 1e6:.2f} M | {t * 1e3:.0f} ms | {c * 1e3:.0f} ms | {B * T / t:,.0f} | "
            f"{flops / t / 1e9:.0f} | {first:.1f} s | {loss:.3f} | {ratio} |")
    print(f"\nmodel FLOPs per step: {flops / 1e9:.1f} GFLOP. All timed steps (ms, interleaved round-robin): " +
          "; ".join(f"{name.split(' (')[0].split(' + ')[0]}: " + ", ".join(f"{x * 1e3:.0f}" for x in all_t)
                    for name, _, _, _, _, all_t, _ in rows))
    print("\n(targets: rljax fused / torch tokens/s >= 1.2 at the default size, >= 2 at the tiny size; the CPU-time "
          "ratio is the load-independent one when the process is pinned to one core, e.g. `taskset -c 0`; loss ≈ "
          f"ln(vocab) = {np.log(cfg.vocab_size):.3f} at init)\n", flush=True)

  if not args.skip_memory:
    mB, mT, V = args.mem_batch, args.mem_seq, args.mem_vocab
    cfg = llama_config(d_model=args.mem_d_model, n_layers=args.mem_layers, n_heads=args.n_heads,
                       n_kv_heads=args.n_kv_heads, d_ff=args.mem_d_model * 11 // 4, vocab=V,
                       max_positions=max(mT, 2048))
    print(f"### (2) Training step memory (compiled memory_analysis, no execution): llama d_model="
          f"{cfg.d_model}, layers={cfg.n_layers}, vocab={V}; B={mB}, T={mT}, float32\n")
    mf, _ = step_memory(cfg, fused, mB, mT)
    mu, _ = step_memory(cfg, unfused_token_logps, mB, mT)
    logits_bytes = mB * mT * V * 4
    print(f"float32 logits [B, T, V] = {fmt_bytes(logits_bytes)}\n")
    print("| head | arguments (params + Adam + batch) | temp | ratio unfused / fused (temp) |")
    print("|---|---|---|---|")
    if mf is None or mu is None:
      print("| - | n/a | n/a | memory_analysis() unavailable on this backend |")
    else:
      print(f"| fused (`model_token_logps`, chunk_size={chunk}) | {fmt_bytes(mf[0])} | {fmt_bytes(mf[1])} | 1 |")
      print(f"| unfused (logits, log_softmax, gather) | {fmt_bytes(mu[0])} | {fmt_bytes(mu[1])} | "
            f"{mu[1] / mf[1]:.2f} |")
    print("\n(target: ratio >= 3. Outputs alias the donated params / optimizer state, so temp is the "
          "step's peak beyond its inputs.)\n", flush=True)


def run_gpu(args):
  device = jax.devices()[0]
  print(device_line())
  if args.tiny:
    cfg = llama_config(d_model=128, n_layers=3, n_heads=4, n_kv_heads=2, d_ff=352, vocab=1024,
                       max_positions=4096, dtype=jnp.bfloat16)
    B, T = args.batch or 2, args.seq or 128
  else:
    cfg = llama_config(d_model=2048, n_layers=16, n_heads=16, n_kv_heads=8, d_ff=5632, vocab=32000,
                       max_positions=4096, dtype=jnp.bfloat16)
    B, T = args.batch or 8, args.seq or 2048
  cfg = dataclasses.replace(cfg, attention=args.attention)
  chunk = args.chunk if args.chunk is not None else "auto"
  head = fused_token_logps(chunk) if not args.unfused else unfused_token_logps
  head_name = "unfused head" if args.unfused else f"fused head (chunk_size={chunk})"

  # Fit the batch without compiling the full model more than needed: compile the step (shapes only) with
  # 1 and 2 layers at the requested batch, extrapolate the temp bytes linearly to n_layers (and in B),
  # halve B until arguments + temp fit 90% of the device limit, then compile the full step once (and
  # halve again only if its own memory_analysis says it does not fit).
  try:
    stats = device.memory_stats() or {}
  except Exception:  # noqa: BLE001 - backends differ in what they implement
    stats = {}
  limit = stats.get("bytes_limit")
  if args.mem_limit_gib is not None:
    limit = int(args.mem_limit_gib * GiB)
  requested_B = B
  t0 = time.perf_counter()
  if limit is not None and cfg.n_layers > 2:
    small = [step_memory(dataclasses.replace(cfg, n_layers=n), head, B, T)[0] for n in (1, 2)]
    if None not in small:
      per_layer = small[1][1] - small[0][1]
      temp_est = small[0][1] + (cfg.n_layers - 1) * per_layer
      _, p_abs, s_abs = make_step_abstract(cfg, head)
      arg_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves((p_abs, s_abs))) + 2 * B * T * 4
      while B > 1 and arg_bytes + temp_est * B / requested_B > 0.9 * limit:
        B //= 2
      print(f"fit estimate: arguments {fmt_bytes(arg_bytes)}, temp at B={requested_B} ~ {fmt_bytes(temp_est)} "
            f"({fmt_bytes(per_layer)} per layer) vs limit {fmt_bytes(limit)} -> B={B}", flush=True)
  while True:
    mem, compiled = step_memory(cfg, head, B, T)
    need = None if mem is None else mem[0] + mem[1]  # outputs alias the donated arguments
    if limit is None or need is None or need <= 0.95 * limit or B == 1:
      break
    print(f"B={B}: step needs {fmt_bytes(need)} > 95% of {fmt_bytes(limit)}; halving batch", flush=True)
    B //= 2
  compile_s = time.perf_counter() - t0

  # Run the executable compiled above (same shapes and tree structure): no second compile.
  _, params, opt_state = make_step(cfg, head)
  step = compiled
  n_total = count_params(params)
  n_matmul = n_total - cfg.vocab_size * cfg.d_model  # input embedding is a gather, not a matmul
  tokens, targets = (jax.device_put(jnp.asarray(a, jnp.int32)) for a in random_batch(B, T, cfg.vocab_size))
  t0 = time.perf_counter()
  params, opt_state, loss = step(params, opt_state, tokens, targets)
  jax.block_until_ready(loss)
  first = time.perf_counter() - t0
  for _ in range(max(args.warmup - 1, 0)):
    params, opt_state, loss = step(params, opt_state, tokens, targets)
  jax.block_until_ready((params, opt_state, loss))
  times = []
  for _ in range(args.steps):
    t0 = time.perf_counter()
    params, opt_state, loss = step(params, opt_state, tokens, targets)
    jax.block_until_ready((params, opt_state, loss))
    times.append(time.perf_counter() - t0)
  t = statistics.median(times)
  tps = B * T / t
  flops_per_token = 6 * n_matmul + 12 * cfg.n_layers * cfg.d_model * T
  achieved = flops_per_token * tps

  peak = args.peak_tflops * 1e12 if args.peak_tflops else None
  if peak is None:
    for key, value in PEAK_BF16_FLOPS:
      if key.lower() in device.device_kind.lower():
        peak = value
        break
  mfu = "n/a (unknown device kind; pass --peak-tflops)" if peak is None else f"{100 * achieved / peak:.1f}%"
  peak_s = "n/a" if peak is None else f"{peak / 1e12:.0f} TFLOP/s"
  peak_mem = None
  try:
    peak_mem = (device.memory_stats() or {}).get("peak_bytes_in_use")
  except Exception:  # noqa: BLE001
    pass

  print(f"\n### Training step, llama d_model={cfg.d_model}, layers={cfg.n_layers}, heads={cfg.n_heads}/"
        f"{cfg.n_kv_heads} kv, d_ff={cfg.d_ff}, vocab={cfg.vocab_size}, bf16 params/compute/Adam, "
        f"{head_name}\n")
  # The fused kernel is a custom call in the compiled HLO; its absence means XLA ran the attention itself.
  cudnn_call = "__cudnn$fmha" in compiled.as_text()
  taken = f"{cfg.attention} -> {attention.resolve(cfg, T)} (cuDNN fused call: {'yes' if cudnn_call else 'no'})"
  print("| device kind | params (matmul) | B x T | attention | step time | tokens/s | model TFLOP/s | peak | MFU | "
        "temp |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  bt = f"{B} x {T}" + ("" if B == requested_B else f" (requested B={requested_B} does not fit)")
  print(f"| {device.device_kind} | {n_total / 1e9:.3f} B ({n_matmul / 1e9:.3f} B) | {bt} | {taken} | "
        f"{t * 1e3:.1f} ms | {tps:,.0f} | {achieved / 1e12:.1f} | {peak_s} | {mfu} | "
        f"{'n/a' if mem is None else fmt_bytes(mem[1])} |")
  print(f"\nXLA_PYTHON_CLIENT_MEM_FRACTION={os.environ.get('XLA_PYTHON_CLIENT_MEM_FRACTION')}")
  print(f"steps timed: {args.steps} after {args.warmup} warm-up (median; all: "
        f"{', '.join(f'{x * 1e3:.1f}' for x in times)} ms) | shape-only compile + fit: {compile_s:.1f} s | "
        f"first step (compile + run): {first:.1f} s | loss {float(loss):.3f}")
  if mem is not None:
    print(f"compiled memory: arguments {fmt_bytes(mem[0])}, temp {fmt_bytes(mem[1])}, device limit "
          f"{fmt_bytes(limit)}, peak in use {fmt_bytes(peak_mem)}")
  print("MFU = (6 N_matmul + 12 n_layers d_model T) x tokens/s / peak dense bf16 FLOP/s")


def add_model_args(p: argparse.ArgumentParser) -> None:
  """The Llama sizes of the CPU speed config (the default size of this benchmark and of lora_step.py)."""
  p.add_argument("--d-model", type=int, default=256)
  p.add_argument("--n-layers", type=int, default=4)
  p.add_argument("--n-heads", type=int, default=8)
  p.add_argument("--n-kv-heads", type=int, default=4)
  p.add_argument("--d-ff", type=int, default=704)
  p.add_argument("--vocab", type=int, default=8192)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--gpu", action="store_true", help="~1B-param bf16 tokens/s + MFU on the default device")
  p.add_argument("--tiny", action="store_true", help="with --gpu: a tiny config (smoke test, runs on CPU)")
  p.add_argument("--unfused", action="store_true", help="with --gpu: use the unfused head")
  p.add_argument("--attention", default="auto", choices=ATTENTION_IMPLEMENTATIONS,
                 help="with --gpu: attention kernel (DecoderConfig.attention)")
  p.add_argument("--mem-limit-gib", type=float, default=None,
                 help="with --gpu: device memory limit for fitting the batch (default: the device's bytes_limit)")
  p.add_argument("--peak-tflops", type=float, default=None, help="peak dense bf16 TFLOP/s for MFU")
  p.add_argument("--batch", type=int, default=None, help="batch (default 8 for both modes)")
  p.add_argument("--seq", type=int, default=None, help="sequence length (default CPU 256, --gpu 2048)")
  p.add_argument("--steps", type=int, default=5, help="timed steps (median)")
  p.add_argument("--warmup", type=int, default=2, help="warm-up steps (the first compiles)")
  p.add_argument("--chunk", type=int, default=None, help='chunk_size for model_token_logps (default "auto")')
  add_model_args(p)  # CPU speed config
  p.add_argument("--skip-torch", action="store_true")
  p.add_argument("--skip-unfused-speed", action="store_true")
  p.add_argument("--skip-speed", action="store_true")
  p.add_argument("--skip-memory", action="store_true")
  # memory config
  p.add_argument("--mem-vocab", type=int, default=151936)
  p.add_argument("--mem-batch", type=int, default=1)
  p.add_argument("--mem-seq", type=int, default=1024)
  p.add_argument("--mem-d-model", type=int, default=256)
  p.add_argument("--mem-layers", type=int, default=2)
  args = p.parse_args(argv)
  if args.tiny and not args.gpu:
    p.error("--tiny goes with --gpu")
  if args.gpu:
    run_gpu(args)
  else:
    run_cpu(args)


if __name__ == "__main__":
  main()
