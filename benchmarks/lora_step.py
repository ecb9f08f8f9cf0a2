"""LoRA against full fine-tuning of the same decoder: training-step time and memory.

    python benchmarks/lora_step.py                                   # model_step.py's default CPU size
    python benchmarks/lora_step.py --rank 64 --targets q_proj,v_proj
    python benchmarks/lora_step.py --d-model 2048 --n-layers 16 --n-heads 32 --n-kv-heads 8 --d-ff 8192 \\
        --vocab 128256 --batch 4 --seq 2048 --dtype bfloat16        # ~1B Llama on a GPU

Both runs use rljax's own training stack on the same model and batch: `init_train_state` + `make_train_step` with
`objectives.sft_loss` (fused LM head), AdamW in `make_optimizer` (clipping, non-finite guard), the state donated.
Full fine-tuning differentiates and updates every parameter; LoRA (`rljax.models.lora.apply_lora`, rank `--rank`
on `--targets`) differentiates and updates the adapters only, the base weights frozen. Reported per mode:

  step time     median of --steps steps after --warmup, timed steps interleaved between the two modes
  compiled      argument and temp bytes of the compiled step (`memory_analysis()`): arguments are the
                state (parameters + optimizer state) and the batch, temp the activations and gradients
  optimizer     bytes of the optimizer state (AdamW's two moments of what is trained)
  checkpoint    bytes on disk of a `Checkpointer` save of the state after the timed steps (LoRA: adapters only)
  trainable     trained parameters

Timings on a shared machine are noisy; run on an otherwise idle one, and the ratios come from one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from model_step import add_model_args, device_line, llama_config, time_interleaved  # noqa: E402
from rljax import training as T  # noqa: E402
from rljax.models import lora  # noqa: E402
from rljax.models.decoder import Decoder  # noqa: E402


def _bytes(tree) -> int:
  return sum(int(np.prod(x.shape)) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def _mib(n: int | None) -> str:
  return "n/a" if n is None else f"{n / 2**20:,.2f} MiB"


def _dir_bytes(path: str) -> int:
  return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def _batch(cfg, batch: int, seq: int):
  tokens = jnp.asarray(np.random.default_rng(0).integers(0, cfg.vocab_size, (batch, seq)), jnp.int32)
  mask = jnp.ones((batch, seq), bool)
  return {"tokens": tokens, "mask": mask, "loss_mask": mask}


def setup(cfg, lora_cfg: lora.LoRAConfig | None, batch: dict):
  """(run one step, stats) for full fine-tuning (`lora_cfg` None) or LoRA."""
  model = Decoder(cfg, rngs=nnx.Rngs(0))
  if lora_cfg is not None:
    lora.apply_lora(model, lora_cfg, rngs=nnx.Rngs(1))
  opt = T.make_optimizer(1e-4)
  graphdef, state = T.init_train_state(model, opt, rng=jax.random.PRNGKey(0))
  del model
  step = T.make_train_step(graphdef, T.objectives.sft_loss(), opt)
  mem = step.lower(state, batch).compile().memory_analysis()
  stats = {"trainable": sum(x.size for x in jax.tree.leaves(lora.split_frozen(state.params)[0])),
           "params": sum(x.size for x in jax.tree.leaves(state.params)), "optimizer": _bytes(state.opt_state),
           "arguments": None if mem is None else mem.argument_size_in_bytes,
           "temp": None if mem is None else mem.temp_size_in_bytes}
  holder = {"state": state}

  def run():
    holder["state"], metrics = step(holder["state"], batch)
    jax.block_until_ready(metrics["loss"])

  def checkpoint_bytes() -> int:
    """Bytes of a save of the current state (after the timed steps: moments are nonzero, as in a real run)."""
    with tempfile.TemporaryDirectory() as tmp:
      ckpt = T.Checkpointer(tmp)
      ckpt.save(int(holder["state"].step), holder["state"])
      ckpt.close()
      return _dir_bytes(tmp)

  return run, stats, checkpoint_bytes


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  add_model_args(p)
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--seq", type=int, default=256)
  p.add_argument("--dtype", default="float32", help="parameter and compute dtype")
  p.add_argument("--rank", type=int, default=16)
  p.add_argument("--alpha", type=float, default=32.0)
  p.add_argument("--targets", default=",".join(lora.ALL_TARGETS), help="comma-separated projections")
  p.add_argument("--steps", type=int, default=5, help="timed steps (median)")
  p.add_argument("--warmup", type=int, default=2, help="warm-up steps (the first compiles)")
  args = p.parse_args(argv)

  cfg = llama_config(d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads, n_kv_heads=args.n_kv_heads,
                     d_ff=args.d_ff, vocab=args.vocab, max_positions=max(args.seq, 2048), dtype=jnp.dtype(args.dtype))
  lora_cfg = lora.LoRAConfig(rank=args.rank, alpha=args.alpha, targets=tuple(args.targets.split(",")))
  batch = _batch(cfg, args.batch, args.seq)
  print(device_line())
  print(f"\n### LoRA vs full fine-tuning: llama d_model={cfg.d_model}, layers={cfg.n_layers}, heads={cfg.n_heads}/"
        f"{cfg.n_kv_heads} kv, d_ff={cfg.d_ff}, vocab={cfg.vocab_size}, {args.dtype}; B={args.batch}, T={args.seq}; "
        f"LoRA rank {lora_cfg.rank} on {', '.join(lora_cfg.targets)}; AdamW; median of {args.steps} steps after "
        f"{args.warmup} warm-up, interleaved\n")
  modes = {"full": setup(cfg, None, batch), "lora": setup(cfg, lora_cfg, batch)}
  timings = dict(zip(modes, time_interleaved([run for run, _, _ in modes.values()], args.steps, args.warmup)))
  for _, stats, checkpoint_bytes in modes.values():
    stats["checkpoint"] = checkpoint_bytes()
  print("| mode | trainable params | step time | compiled arguments | compiled temp | optimizer state | checkpoint |")
  print("|---|---|---|---|---|---|---|")
  for name, (_, s, _) in modes.items():
    print(f"| {name} | {s['trainable'] / 1e6:.3f} M of {s['params'] / 1e6:.3f} M | {timings[name][0] * 1e3:.1f} ms | "
          f"{_mib(s['arguments'])} | {_mib(s['temp'])} | {_mib(s['optimizer'])} | {_mib(s['checkpoint'])} |")
  full, low = modes["full"][1], modes["lora"][1]
  ratio = lambda k: "n/a" if not full[k] or low[k] is None else f"{low[k] / full[k]:.3f}"
  print(f"\nLoRA / full: step time {timings['lora'][0] / timings['full'][0]:.3f}, compiled arguments "
        f"{ratio('arguments')}, temp {ratio('temp')}, optimizer state {ratio('optimizer')}, checkpoint "
        f"{ratio('checkpoint')}")


if __name__ == "__main__":
  main()
