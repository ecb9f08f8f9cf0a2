"""Decode speed of `rljax.sampling.generate` against transformers' `generate`, and against the
memory-bandwidth roofline on an accelerator.

    python benchmarks/sampler.py                  # CPU: generated tokens/s, rljax vs transformers, batch 1 and 32
    python benchmarks/sampler.py --gpu            # ~1B bf16 model: decode tokens/s vs the bandwidth roofline
    python benchmarks/sampler.py --gpu --tiny     # smoke test of the --gpu path (runs on CPU)

CPU mode: a small Llama (d_model 256, 4 layers, vocab 8192) is created in transformers, saved, and
loaded into rljax with `from_pretrained`, so both run the same weights. Each generates --new tokens
after a --prompt-token prompt by plain sampling (temperature 1, no top-k/top-p, no early stop) at
batch 1 and 32. rljax's first call (compilation + run) is reported separately; speeds are medians of
--repeats calls after it. Ratio = rljax tokens/s over transformers tokens/s (target ≥ 10 at batch 32).

--gpu mode: a ~1B Llama-style config in bf16 with a bf16 KV cache. A decode step must read every
weight once plus the KV cache filled so far, so its time is at least
    (param bytes + KV bytes at the mean filled length) / memory bandwidth;
the table reports achieved decode tokens/s and the fraction of that roofline (target ≥ 70% at batch 1).
Decode time is measured as (time of prompt + N tokens − time of prompt + 1 token) / (N − 1), which
removes the prefill. Bandwidth by device kind, or --bandwidth-gbs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from model_step import available_cores, device_line, llama_config  # noqa: E402

from rljax import models, sampling  # noqa: E402

# HBM bandwidth in bytes/s, matched by substring of `device.device_kind` (first match wins).
BANDWIDTH = (("H100 PCIe", 2.0e12), ("H100 NVL", 3.9e12), ("H100", 3.35e12), ("H200", 4.8e12),
             ("GH200", 4.0e12), ("B200", 8.0e12), ("A100", 2.0e12), ("L40S", 0.864e12), ("L4", 0.3e12),
             ("TPU v5e", 0.819e12), ("TPU v5p", 2.765e12), ("TPU v6", 1.64e12), ("TPU v4", 1.2e12))


def _time(fn, repeats):
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def rljax_generate(model, prompt, mask, new):
  def run(n=new, key=0):
    r = sampling.generate(model, prompt, mask, key=jax.random.PRNGKey(key), max_new_tokens=n)
    return jax.block_until_ready(r.tokens)
  return run


def run_cpu(args):
  import torch
  import transformers

  torch.set_num_threads(available_cores())
  hf_cfg = transformers.LlamaConfig(vocab_size=8192, hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                                    num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512,
                                    tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0)
  torch.manual_seed(0)
  hf = transformers.LlamaForCausalLM(hf_cfg).eval()
  with tempfile.TemporaryDirectory() as d:
    hf.save_pretrained(d)
    ours = models.from_pretrained(d)
  print(device_line(), f"| torch {torch.__version__} ({torch.get_num_threads()} threads) | transformers "
        f"{transformers.__version__}")
  print(f"Llama d_model 256, 4 layers, vocab 8192; prompt {args.prompt} tokens, {args.new} new tokens, sampling\n")
  print("| batch | rljax compile+first call | rljax | transformers generate | rljax tok/s | HF tok/s | ratio |")
  print("|---|---|---|---|---|---|---|")
  for batch in (1, 32):
    tokens = np.random.default_rng(0).integers(3, 8192, (batch, args.prompt))
    mask = np.ones_like(tokens)
    run = rljax_generate(ours, jnp.asarray(tokens), jnp.asarray(mask), args.new)
    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    t_ours = _time(run, args.repeats)

    def hf_run():
      with torch.no_grad():
        hf.generate(input_ids=torch.tensor(tokens), attention_mask=torch.tensor(mask), do_sample=True, top_k=0,
                    top_p=1.0, temperature=1.0, max_new_tokens=args.new, min_new_tokens=args.new)

    hf_run()
    t_hf = _time(hf_run, args.repeats)
    n = batch * args.new
    print(f"| {batch} | {first:.2f} s | {t_ours * 1e3:.0f} ms | {t_hf * 1e3:.0f} ms | {n / t_ours:,.0f} | "
          f"{n / t_hf:,.0f} | {t_hf / t_ours:.2f} |")


def run_gpu(args):
  from flax import nnx

  from rljax.models.decoder import Decoder

  dev = jax.devices()[0]
  bw = args.bandwidth_gbs * 1e9 if args.bandwidth_gbs else next(
      (b for k, b in BANDWIDTH if k in dev.device_kind), None)
  if args.tiny:
    cfg = llama_config(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=128, vocab=512, max_positions=1024,
                       dtype=jnp.bfloat16)
  else:
    cfg = llama_config(d_model=2048, n_layers=16, n_heads=16, n_kv_heads=8, d_ff=5632, vocab=32000,
                       max_positions=4096, dtype=jnp.bfloat16)
  model = Decoder(cfg, rngs=nnx.Rngs(0))
  param_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  print(device_line(), f"| params {param_bytes / 2 / 1e9:.3f} B ({param_bytes / 2**30:.2f} GiB bf16) | bandwidth "
        f"{'unknown' if bw is None else f'{bw / 1e12:.2f} TB/s'}")
  print(f"prompt {args.prompt} tokens, {args.new} new tokens, bf16 KV cache\n")
  print("| batch | decode step | tokens/s | bytes read per step | roofline step | % of roofline |")
  print("|---|---|---|---|---|---|")
  for batch in (1, 64):
    prompt = jnp.asarray(np.random.default_rng(0).integers(3, cfg.vocab_size, (batch, args.prompt)), jnp.int32)
    mask = jnp.ones_like(prompt, jnp.bool_)

    def run(n):
      r = sampling.generate(model, prompt, mask, key=jax.random.PRNGKey(0), max_new_tokens=n,
                            cache_dtype=jnp.bfloat16, cache_len=args.prompt + args.new)
      return jax.block_until_ready(r.tokens)

    run(1), run(args.new)  # compile both shapes
    step = (_time(lambda: run(args.new), args.repeats) - _time(lambda: run(1), args.repeats)) / (args.new - 1)
    kv_bytes = 2 * cfg.n_layers * batch * (args.prompt + args.new / 2) * cfg.n_kv_heads * cfg.head_dim * 2
    bytes_step = param_bytes + kv_bytes
    roof = None if bw is None else bytes_step / bw
    pct = "n/a" if roof is None else f"{100 * roof / step:.1f}%"
    print(f"| {batch} | {step * 1e3:.2f} ms | {batch / step:,.0f} | {bytes_step / 2**30:.2f} GiB | "
          f"{'n/a' if roof is None else f'{roof * 1e3:.2f} ms'} | {pct} |")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--gpu", action="store_true", help="~1B bf16 decode vs the bandwidth roofline")
  p.add_argument("--tiny", action="store_true", help="with --gpu: a tiny config (smoke test)")
  p.add_argument("--prompt", type=int, default=None, help="prompt length (CPU 16, --gpu 128)")
  p.add_argument("--new", type=int, default=None, help="new tokens (CPU 64, --gpu 256)")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--bandwidth-gbs", type=float, default=None, help="memory bandwidth in GB/s for the roofline")
  args = p.parse_args(argv)
  args.prompt = args.prompt or (128 if args.gpu else 16)
  args.new = args.new or (256 if args.gpu else 64)
  (run_gpu if args.gpu else run_cpu)(args)


if __name__ == "__main__":
  main()
