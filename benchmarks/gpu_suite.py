"""The GPU benchmarks in one run (one GPU, under 10 minutes): training-step MFU, decode against the HBM-bandwidth
roofline, and the RL iteration throughput of the RLVR `gpu` preset.

    python benchmarks/gpu_suite.py                         # on one GPU; writes results/gpu_suite/
    python benchmarks/gpu_suite.py --smoke                 # tiny sizes on any backend: checks the script runs

Each benchmark runs in its own process (fresh device memory) under its own time limit, cut to what is
left of --budget-s:

  model_step  `benchmarks/model_step.py --gpu`: a ~1B Llama in bf16 at B x T = 8 x 2048, fused LM head,
              attention "auto" (cuDNN's flash kernel); step time, MFU, the attention implementation the
              compiled step holds, its temporaries.
  sampler     `benchmarks/sampler.py --gpu`: decode tokens/s of the same model at batch 1 and 64, and the
              fraction of the roofline (bytes a decode step must read / peak bandwidth).
  rlvr        `python -m rljax.run --config configs/rlvr.py:gpu` shortened (a small task split, a few SFT
              steps, GRPO, one seed, --rl-steps iterations, held-out evaluation only at the start and end).
              The loop writes one metrics.jsonl row per iteration right after the device finishes it, so
              the interval between consecutive rows is one iteration's wall time; the first row (compile)
              and the last interval (final evaluation) are left out.

Writes --out/gpu_suite.json (device, and per benchmark: command, return code, wall time, every markdown
table of its output as a list of row dicts; for rlvr the iteration times and throughput) and
--out/gpu_suite.md (the same as text, with each benchmark's full output).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RL_PHASE = "grpo/seed0"


def markdown_tables(text: str) -> list[list[dict]]:
  """Every markdown table in `text` (a header row, a |---| row, then rows) as a list of {header: cell}."""
  tables, block = [], []
  for line in text.splitlines() + [""]:
    if line.startswith("|"):
      block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
      continue
    if len(block) >= 2 and set("".join(block[1])) <= set("-: "):
      tables.append([dict(zip(block[0], row)) for row in block[2:]])
    block = []
  return tables


def rlvr_command(args, workdir: str) -> list[str]:
  preset = "smoke" if args.smoke else "gpu"
  overrides = {"rl.algorithms": "('grpo',)", "rl.seeds": "(0,)", "rl.steps": args.rl_steps, "rl.eval_every": 10**6,
               "ckpt_every": 10**6, "log_every": 1}
  if not args.smoke:
    overrides.update({"task.train_size": 4000, "task.heldout_size": 64, "sft.steps": 30, "eval.n_prompts": 64,
                      "eval.k": 1})
  return ([sys.executable, "-m", "rljax.run", f"--config=configs/rlvr.py:{preset}", f"--workdir={workdir}"]
          + [f"--config.{k}={v}" for k, v in overrides.items()])


def run(cmd: list[str], log_path: str, timeout_s: float, on_poll=None) -> dict:
  """Runs `cmd` from the repository root with stdout+stderr to `log_path`; calls `on_poll()` every 20 ms."""
  t0 = time.perf_counter()
  with open(log_path, "w") as log:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    while proc.poll() is None and time.perf_counter() - t0 < timeout_s:
      if on_poll is not None:
        on_poll()
      time.sleep(0.02)
    timed_out = proc.poll() is None
    if timed_out:
      proc.kill()
    proc.wait()
  if on_poll is not None:
    on_poll()
  with open(log_path) as f:
    output = f.read()
  return {"command": " ".join(cmd), "returncode": proc.returncode, "timed_out": timed_out,
          "wall_s": round(time.perf_counter() - t0, 1), "tables": markdown_tables(output), "output": output}


class RowClock:
  """Arrival time of each new RL-phase row of a metrics.jsonl (polled while the run goes on)."""

  def __init__(self, path: str):
    self.path, self.offset, self.rows = path, 0, []

  def __call__(self):
    if not os.path.exists(self.path):
      return
    now = time.perf_counter()
    with open(self.path) as f:
      f.seek(self.offset)
      chunk = f.read()
    complete = chunk[:chunk.rfind("\n") + 1]  # a line still being written is read at the next poll
    self.offset += len(complete)
    for line in complete.splitlines():
      row = json.loads(line) if line.strip() else {}
      if row.get("phase") == RL_PHASE:
        self.rows.append((now, row))


def rl_throughput(rows: list[tuple[float, dict]], samples_per_iteration: int) -> dict:
  """Mean iteration time from the first row (after the compiling iteration) to the second-to-last (the last
  one also holds the final evaluation); only those two arrival times carry polling error."""
  intervals = [b[0] - a[0] for a, b in zip(rows, rows[1:])][:-1]
  if not intervals:
    return {"iterations_logged": len(rows), "note": "too few iterations to time"}
  t = (rows[-2][0] - rows[0][0]) / len(intervals)
  length = statistics.mean(r.get("response_length", float("nan")) for _, r in rows[1:])
  return {"iterations_logged": len(rows), "iteration_s": round(t, 4), "iterations_timed": len(intervals),
          "all_iteration_s": [round(x, 4) for x in intervals], "samples_per_iteration": samples_per_iteration,
          "samples_per_s": round(samples_per_iteration / t, 1), "mean_response_tokens": round(length, 2),
          "generated_tokens_per_s": round(samples_per_iteration * length / t, 1)}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--out", default=os.path.join(ROOT, "results", "gpu_suite"))
  p.add_argument("--smoke", action="store_true", help="tiny sizes (--tiny / the smoke preset), any backend")
  p.add_argument("--budget-s", type=float, default=570.0, help="total wall-time budget of the suite")
  p.add_argument("--rl-steps", type=int, default=None, help="RL iterations (default 12; --smoke 4)")
  p.add_argument("--only", default="model_step,sampler,rlvr", help="comma-separated subset to run")
  args = p.parse_args(argv)
  args.rl_steps = args.rl_steps or (4 if args.smoke else 12)
  os.makedirs(args.out, exist_ok=True)
  tiny = ["--tiny"] if args.smoke else []
  py = sys.executable
  # (name, command, own time limit in s); the smoke sizes keep the same structure at toy scale.
  benches = {
      "model_step": ([py, "benchmarks/model_step.py", "--gpu", *tiny, "--steps", "5", "--warmup", "2"], 240),
      "sampler": ([py, "benchmarks/sampler.py", "--gpu", *tiny, *(["--new", "16"] if args.smoke else [])], 180),
      "rlvr": (None, 300),
  }
  device = subprocess.run([py, "-c", "import jax; d = jax.devices()[0]; print(d.platform, '|', d.device_kind, '|', "
                           "jax.__version__)"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
  results = {"device": device, "smoke": args.smoke, "benchmarks": {}}
  deadline = time.perf_counter() + args.budget_s
  for name in args.only.split(","):
    cmd, limit = benches[name]
    limit = min(limit, deadline - time.perf_counter())
    if limit <= 10:
      results["benchmarks"][name] = {"skipped": "suite budget spent"}
      continue
    print(f"[gpu_suite] {name} (limit {limit:.0f} s)", flush=True)
    clock = None
    if name == "rlvr":
      workdir = os.path.join(args.out, "rlvr")
      shutil.rmtree(workdir, ignore_errors=True)  # a leftover checkpoint would resume instead of iterating
      cmd = rlvr_command(args, workdir)
      clock = RowClock(os.path.join(workdir, "metrics.jsonl"))
    res = run(cmd, os.path.join(args.out, f"{name}.log"), limit, clock)
    if clock is not None:
      sys.path.insert(0, ROOT)
      from configs import rlvr as rlvr_config

      base = rlvr_config.get_config("smoke" if args.smoke else "gpu")
      res["rl"] = rl_throughput(clock.rows, base.rl.prompts * base.rl.group_size)
    results["benchmarks"][name] = res
    print(f"[gpu_suite] {name}: return code {res['returncode']}{' (timed out)' if res['timed_out'] else ''}, "
          f"{res['wall_s']} s", flush=True)

  with open(os.path.join(args.out, "gpu_suite.json"), "w") as f:
    json.dump({**results, "benchmarks": {k: {kk: vv for kk, vv in v.items() if kk != "output"}
                                         for k, v in results["benchmarks"].items()}}, f, indent=2)
  with open(os.path.join(args.out, "gpu_suite.md"), "w") as f:
    f.write(f"# GPU suite{' (smoke sizes)' if args.smoke else ''}\n\ndevice: {device}\n")
    for name, res in results["benchmarks"].items():
      f.write(f"\n## {name}\n\n")
      if "skipped" in res:
        f.write(f"skipped: {res['skipped']}\n")
        continue
      f.write(f"`{res['command']}` (return code {res['returncode']}, {res['wall_s']} s)\n\n")
      if "rl" in res:
        f.write("RL iterations: " + ", ".join(f"{k} {v}" for k, v in res["rl"].items() if k != "all_iteration_s")
                + "\n\n")
      f.write("```\n" + res["output"][-20000:] + "\n```\n")
  print(f"[gpu_suite] wrote {args.out}/gpu_suite.json and gpu_suite.md")
  summary = {k: (v.get("tables"), v.get("rl")) for k, v in results["benchmarks"].items() if "skipped" not in v}
  print(json.dumps(summary, indent=1))
  return 0 if all(v.get("returncode") == 0 for v in results["benchmarks"].values()) else 1


if __name__ == "__main__":
  sys.exit(main())
