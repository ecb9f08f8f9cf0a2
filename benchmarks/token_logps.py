"""Memory and speed of chunked `token_logps` vs the float32 `log_softmax` baseline.

    python benchmarks/token_logps.py [--vocab 151936 --tokens 16384 --batch 1 --chunk N --sweep 8,128,4096]

Runs on JAX's default device (CPU, GPU or TPU) unchanged.

Memory is read from the compiled executables (`jit(f).lower(...).compile().memory_analysis()`, no
execution): "extra" is temp + output bytes, i.e. what a call allocates beyond its bf16 input. For the
backward pass (grad of Σ token_logps w.r.t. the logits) the output includes the `[B, T, V]` gradient
itself, which both versions must return.

Wall time is the median of `--repeats` calls after one warm-up call, with `block_until_ready`. A pair
(baseline and chunked) is timed at the requested size if its peak (inputs + temp + output) fits in
`--mem-fraction` of the device memory (GPU: `bytes_limit`; CPU: MemAvailable); otherwise the token
count is halved until it does, and the table says which size was used.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
from jax import lax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rljax.ops.logps import default_chunk_size, token_logps  # noqa: E402

GiB = 2**30


def baseline(logits, targets):
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]


def chunked(chunk_size):
  return functools.partial(token_logps, chunk_size=chunk_size)


def backward(f):
  return jax.grad(lambda z, y: jnp.sum(f(z, y)))


def shapes(batch, tokens, vocab, dtype):
  return jax.ShapeDtypeStruct((batch, tokens, vocab), dtype), jax.ShapeDtypeStruct((batch, tokens), jnp.int32)


def memory(f, batch, tokens, vocab, dtype):
  """(argument, temp, output) bytes of the compiled `f`, or None where the backend does not say."""
  stats = jax.jit(f).lower(*shapes(batch, tokens, vocab, dtype)).compile().memory_analysis()
  if stats is None:
    return None
  return stats.argument_size_in_bytes, stats.temp_size_in_bytes, stats.output_size_in_bytes


def device_memory_bytes() -> int | None:
  device = jax.devices()[0]
  try:
    stats = device.memory_stats()
  except Exception:  # noqa: BLE001 - backends differ in what they implement
    stats = None
  if stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
  try:
    with open("/proc/meminfo") as fh:
      for line in fh:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


def fits(fns, batch, tokens, vocab, dtype, budget):
  if budget is None:
    return True
  for f in fns:
    mem = memory(f, batch, tokens, vocab, dtype)
    # The input is created once and shared; a call needs its temp + output on top.
    if mem is not None and sum(mem) > budget:
      return False
  return True


def timing_size(fns, batch, tokens, vocab, dtype, budget):
  while tokens > 1 and not fits(fns, batch, tokens, vocab, dtype, budget):
    tokens //= 2
  return tokens


def make_inputs(batch, tokens, vocab, dtype, seed=0):
  """Uniform pseudo-random logits in [-6, 6) and targets, from a hash of the element index.

  One fused elementwise kernel writing `dtype` directly: `jax.random.normal` at this size keeps
  ~16 bytes per element of intermediates on CPU (40 GB at 16k x 152k).
  """
  shape = (batch, tokens, vocab)

  @jax.jit
  def gen():
    idx = [lax.broadcasted_iota(jnp.uint32, shape, d) for d in range(3)]
    h = (idx[0] * jnp.uint32(tokens) + idx[1]) * jnp.uint32(vocab) + idx[2] + jnp.uint32(seed * 0x9E3779B9)
    for shift, mult in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):  # murmur3 finalizer
      h = (h ^ (h >> shift)) * jnp.uint32(mult)
    h = h ^ (h >> 16)
    u = (h >> 8).astype(jnp.float32) * (2.0**-24)
    return (12.0 * u - 6.0).astype(dtype)

  targets = jax.random.randint(jax.random.key(seed), (batch, tokens), 0, vocab, jnp.int32)
  return jax.block_until_ready((gen(), targets))


def wall_time(f, args, repeats):
  f = jax.jit(f)
  out = f(*args)
  jax.block_until_ready(out)
  del out
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    out = f(*args)
    jax.block_until_ready(out)
    times.append(time.perf_counter() - t0)
    del out
  return statistics.median(times)


def fmt_bytes(n):
  return "n/a" if n is None else f"{n / GiB:.3f} GiB"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--vocab", type=int, default=151936)
  parser.add_argument("--tokens", type=int, default=16384)
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--chunk", type=int, default=None,
                      help='chunk size to compare (default: what chunk_size="auto" picks on this backend)')
  parser.add_argument("--sweep", default="8,32,128,256,512,1024,2048,4096,16384",
                      help="comma-separated chunk sizes to time (forward); empty to skip")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--dtype", default="bfloat16")
  parser.add_argument("--mem-fraction", type=float, default=0.8,
                      help="fraction of free device memory a timed pair may use")
  parser.add_argument("--no-backward-time", action="store_true", help="skip timing the backward pass")
  args = parser.parse_args(argv)

  dtype = jnp.dtype(args.dtype)
  B, T, V = args.batch, args.tokens, args.vocab
  default_chunk = default_chunk_size(B, V)  # what token_logps(..., chunk_size="auto") uses here
  chunk = args.chunk if args.chunk is not None else default_chunk
  device = jax.devices()[0]
  free = device_memory_bytes()
  budget = None if free is None else int(args.mem_fraction * free)
  print(f"device: {device.platform} {device.device_kind} | jax {jax.__version__} | "
        f"free memory: {fmt_bytes(free)}, timing budget {fmt_bytes(budget)}")
  print(f"logits: {dtype.name}[{B}, {T}, {V}] = {fmt_bytes(B * T * V * dtype.itemsize)} | chunk_size={chunk} "
        f"(\"auto\" = {default_chunk} on {jax.default_backend()})\n")

  # (a) memory, compile only, at the full size.
  rows = []
  for name, base_f, new_f in [("forward", baseline, chunked(chunk)),
                              ("fwd+bwd (grad)", backward(baseline), backward(chunked(chunk)))]:
    mb, mc = memory(base_f, B, T, V, dtype), memory(new_f, B, T, V, dtype)
    rows.append((name, mb, mc))
  print(f"### Memory beyond the input (compiled memory_analysis, B={B}, T={T}, V={V})\n")
  print("| pass | baseline temp | baseline temp+out | chunked temp | chunked temp+out | ratio (temp+out) |")
  print("|---|---|---|---|---|---|")
  for name, mb, mc in rows:
    if mb is None or mc is None:
      print(f"| {name} | n/a | n/a | n/a | n/a | memory_analysis() unavailable |")
      continue
    eb, ec = mb[1] + mb[2], mc[1] + mc[2]
    print(f"| {name} | {fmt_bytes(mb[1])} | {fmt_bytes(eb)} | {fmt_bytes(mc[1])} | {fmt_bytes(ec)} | {ec / eb:.4f} |")
  print("\n(target: forward ratio <= 0.25; the backward output includes the [B, T, V] gradient both return)")
  fwd_base = rows[0][1]
  if fwd_base is not None and fwd_base[1] < B * T * V * 4:
    print("(note: this backend fused the baseline's float32 upcast away in the forward, so its forward "
          "temp is already small and the forward ratio compares two small numbers)")
  print()

  # (b) wall time, at the largest size that fits.
  pairs = [("forward", baseline, chunked(chunk))]
  if not args.no_backward_time:
    pairs.append(("fwd+bwd (grad)", backward(baseline), backward(chunked(chunk))))
  print("### Wall time (median of %d after warm-up)\n" % args.repeats)
  print("| pass | tokens timed | baseline | chunked | speed ratio baseline/chunked |")
  print("|---|---|---|---|---|")
  timed_tokens = {}
  for name, base_f, new_f in pairs:
    t = timing_size([base_f, new_f], B, T, V, dtype, budget)
    timed_tokens[name] = t
    inputs = make_inputs(B, t, V, dtype)
    tb = wall_time(base_f, inputs, args.repeats)
    tc = wall_time(new_f, inputs, args.repeats)
    del inputs
    note = "" if t == T else f" (full size {T} does not fit)"
    print(f"| {name} | {t}{note} | {tb * 1e3:.1f} ms | {tc * 1e3:.1f} ms | {tb / tc:.2f} |", flush=True)
  print("\n(target: speed ratio >= 1)\n")

  # Chunk-size sweep, at the smallest size timed above (so the backward fits too).
  sweep = [int(c) for c in args.sweep.split(",") if c.strip()]
  if sweep:
    sweep = sorted(set(sweep) | {default_chunk})
    t = min(timed_tokens.values())
    inputs = make_inputs(B, t, V, dtype)
    tb = wall_time(baseline, inputs, args.repeats)
    print(f"### Chunk-size sweep (tokens={t}; baseline forward {tb * 1e3:.1f} ms)\n")
    print("| chunk_size | forward time | forward speed ratio | forward temp (full size) | fwd+bwd time |")
    print("|---|---|---|---|---|")
    for c in sweep:
      tc = wall_time(chunked(c), inputs, args.repeats)
      mem = memory(chunked(c), B, T, V, dtype)
      bwd = "-"
      if not args.no_backward_time:
        bwd = f"{wall_time(backward(chunked(c)), inputs, args.repeats) * 1e3:.1f} ms"
      print(f"| {c}{' (auto)' if c == default_chunk else ''} | {tc * 1e3:.1f} ms | {tb / tc:.2f} | "
            f"{fmt_bytes(None if mem is None else mem[1])} | {bwd} |", flush=True)


if __name__ == "__main__":
  main()
