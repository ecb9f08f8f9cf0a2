"""Decode speed of `rljax.sampling.generate` against transformers' `generate`, and against the
memory-bandwidth roofline on an accelerator.

    python benchmarks/sampler.py                  # CPU: generated tokens/s, rljax vs transformers, batch 1 and 32
    python benchmarks/sampler.py --preset tiny    # CPU: 2-layer d_model 64 Llama, vocab 100, batch 32 x 64 tokens
    python benchmarks/sampler.py --preset qwen-vocab --processor top_p   # 2-layer Qwen2, vocab 151936, batch 8 x 32
    python benchmarks/sampler.py --gpu            # ~1B bf16 model: decode tokens/s vs the bandwidth roofline
    python benchmarks/sampler.py --gpu --tiny     # smoke test of the --gpu path (runs on CPU)

CPU mode: the --preset model (`CPU_PRESETS`; default: Llama d_model 256, 4 layers, vocab 8192, batch 1
and 32) is created in transformers, saved, and loaded into rljax with `from_pretrained`, so both run the
same weights. Each generates the preset's new tokens after its prompt (--new, --prompt override them)
by sampling at temperature 1 with the --processor filter (none, top_k 50, top_p 0.9 or min_p 0.05, given
to both; transformers' default top_k=50 switched off otherwise), no early stop. rljax's first call
(compilation + run) is reported separately; then --repeats rljax and transformers calls alternate, and
the table gives their medians. Ratio = rljax tokens/s over transformers tokens/s. Targets: ≥ 10 for
`--preset tiny`, ≥ 3 for `--preset qwen-vocab` with every processor.

--gpu mode: a ~1B Llama-style config in bf16 with a bf16 KV cache. A decode step must read every
weight once (the input embedding only for the batch's rows, a gather) plus the KV cache filled so far,
so its time is at least
    (param bytes - input-embedding bytes + KV bytes at the mean filled length) / memory bandwidth;
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

# HBM bandwidth in bytes/s (vendor datasheets), matched by substring of `device.device_kind` (first match
# wins, so "GH200" precedes "H200" and the A100 variants precede plain "A100", the 40 GB part).
BANDWIDTH = (("H100 PCIe", 2.0e12), ("H100 NVL", 3.9e12), ("H100", 3.35e12), ("GH200", 4.0e12), ("H200", 4.8e12),
             ("B200", 8.0e12), ("A100-SXM4-80GB", 2.039e12), ("A100 80GB PCIe", 1.935e12), ("A100", 1.555e12),
             ("L40S", 0.864e12), ("L4", 0.3e12),
             ("TPU v5e", 0.819e12), ("TPU v5p", 2.765e12), ("TPU v6", 1.64e12), ("TPU v4", 1.2e12))


def _time(fn, repeats):
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


# CPU presets: transformers config class and size, batch sizes, prompt tokens, new tokens.
CPU_PRESETS = {
    "default": ("LlamaConfig", dict(vocab_size=8192, hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                                    num_attention_heads=8, num_key_value_heads=4), (1, 32), 16, 64),
    "tiny": ("LlamaConfig", dict(vocab_size=100, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2), (32,), 16, 64),
    "qwen-vocab": ("Qwen2Config", dict(vocab_size=151936, hidden_size=128, intermediate_size=352, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2), (8,), 16, 32),
}
# Sampling settings given to both samplers (temperature 1); HF's defaults (top_k=50) are switched off.
PROCESSORS = {"none": {}, "top_k": dict(top_k=50), "top_p": dict(top_p=0.9), "min_p": dict(min_p=0.05)}


def run_cpu(args):
  import torch
  import transformers

  torch.set_num_threads(available_cores())
  family, size, batches, prompt_len, new = CPU_PRESETS[args.preset]
  prompt_len, new = args.prompt or prompt_len, args.new or new
  hf_cfg = getattr(transformers, family)(**size, max_position_embeddings=512, tie_word_embeddings=False,
                                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
  torch.manual_seed(0)
  hf = transformers.AutoModelForCausalLM.from_config(hf_cfg).eval()
  with tempfile.TemporaryDirectory() as d:
    hf.save_pretrained(d)
    ours = models.from_pretrained(d)
  processors = PROCESSORS[args.processor]
  hf_processors = {**dict(top_k=0, top_p=1.0, min_p=None), **processors}
  print(device_line(), f"| torch {torch.__version__} ({torch.get_num_threads()} threads) | transformers "
        f"{transformers.__version__} | load average {os.getloadavg()[0]:.1f}")
  print(f"preset {args.preset}: {family[:-6]} d_model {size['hidden_size']}, {size['num_hidden_layers']} layers, vocab "
        f"{size['vocab_size']}; prompt {prompt_len} tokens, {new} new tokens, sampling {processors or 'plain'} "
        f"(temperature 1, no early stop); medians of {args.repeats} interleaved calls\n")
  print("| batch | rljax compile+first call | rljax | transformers generate | rljax tok/s | HF tok/s | ratio |")
  print("|---|---|---|---|---|---|---|")
  for batch in batches:
    tokens = np.random.default_rng(0).integers(3, size["vocab_size"], (batch, prompt_len))
    mask = np.ones_like(tokens)
    prompt = jnp.asarray(tokens)

    def ours_run():
      r = sampling.generate(ours, prompt, jnp.ones_like(prompt, jnp.bool_), key=jax.random.PRNGKey(0),
                            max_new_tokens=new, **processors)
      jax.block_until_ready(r.tokens)

    def hf_run():
      with torch.no_grad():
        hf.generate(input_ids=torch.tensor(tokens), attention_mask=torch.tensor(mask), do_sample=True,
                    temperature=1.0, max_new_tokens=new, min_new_tokens=new, **hf_processors)

    first = _time(ours_run, 1)
    hf_run()
    # Interleaved, so that a change in the machine's load hits both alike.
    times = [(_time(ours_run, 1), _time(hf_run, 1)) for _ in range(args.repeats)]
    t_ours, t_hf = (statistics.median(t) for t in zip(*times))
    n = batch * new
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
    bytes_step = param_bytes - cfg.vocab_size * cfg.d_model * 2 + kv_bytes  # untied: the embedding is a gather
    roof = None if bw is None else bytes_step / bw
    pct = "n/a" if roof is None else f"{100 * roof / step:.1f}%"
    print(f"| {batch} | {step * 1e3:.2f} ms | {batch / step:,.0f} | {bytes_step / 2**30:.2f} GiB | "
          f"{'n/a' if roof is None else f'{roof * 1e3:.2f} ms'} | {pct} |")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--gpu", action="store_true", help="~1B bf16 decode vs the bandwidth roofline")
  p.add_argument("--tiny", action="store_true", help="with --gpu: a tiny config (smoke test)")
  p.add_argument("--preset", choices=sorted(CPU_PRESETS), default="default", help="CPU model and batch")
  p.add_argument("--processor", choices=sorted(PROCESSORS), default="none", help="CPU sampling filter")
  p.add_argument("--prompt", type=int, default=None, help="prompt length (CPU: the preset's, --gpu 128)")
  p.add_argument("--new", type=int, default=None, help="new tokens (CPU: the preset's, --gpu 256)")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--bandwidth-gbs", type=float, default=None, help="memory bandwidth in GB/s for the roofline")
  args = p.parse_args(argv)
  if args.gpu:
    args.prompt, args.new = args.prompt or 128, args.new or 256
  (run_gpu if args.gpu else run_cpu)(args)


if __name__ == "__main__":
  main()
