"""The RLVR job end to end at smoke size through `python -m rljax.run`: tokenizer, SFT, DAPO (dynamic sampling with
refill) with host rewards in worker processes, held-out evaluation inside training, the table and summary, and
exact resume."""

import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(workdir, *overrides, timeout=600):
  env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
  return subprocess.run([sys.executable, "-m", "rljax.run", "--config=configs/rlvr.py:smoke", f"--workdir={workdir}",
                         *overrides], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_quickstart(tmp_path):
  proc = _run(tmp_path)
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert "| dapo | all |" in proc.stdout and "| dapo | chain_sum |" in proc.stdout
  # The tokenizer is a Hugging Face directory that transformers loads as it is.
  from transformers import AutoTokenizer

  tok = AutoTokenizer.from_pretrained(tmp_path / "tokenizer", local_files_only=True)
  assert tok.convert_tokens_to_ids("<answer>") > 4 and tok.eos_token_id == 2
  rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  phases = {r["phase"] for r in rows}
  assert phases == {"sft", "dapo/seed0"}
  sft = [r["loss"] for r in rows if r["phase"] == "sft"]
  assert sft[-1] < sft[0]
  rl = [r for r in rows if r["phase"] == "dapo/seed0"]
  assert [r["step"] for r in rl] == [1, 2]
  assert all(r["reward/timeouts"] == 0 and r["reward/errors"] == 0 for r in rl)
  assert 0.0 <= rl[-1]["eval/acc/all/mean@2"] <= 1.0 and "eval/acc/chain_sum/greedy" in rl[-1]
  assert all(1 <= r["gen_batches"] <= 10 for r in rl)
  summary = json.load(open(tmp_path / "summary.json"))
  assert summary["paper"] is None and summary["preset"] == "smoke"
  table = summary["metrics"]["table"]
  assert {(r["algorithm"], r["family"]) for r in table} == {("dapo", "all"), ("dapo", "chain_sum")}
  # The row's RL accuracy is the run's last logged held-out evaluation.
  dapo_all = next(r for r in table if r["family"] == "all")
  np.testing.assert_allclose(dapo_all["rl"], rl[-1]["eval/acc/all/mean@2"])
  assert (tmp_path / "rlvr.png").stat().st_size > 10_000
  # A second run resumes every phase from its final checkpoint: nothing is trained or logged again, and
  # the table is the same.
  again = _run(tmp_path)
  assert again.returncode == 0, again.stderr[-4000:]
  assert len([json.loads(line) for line in open(tmp_path / "metrics.jsonl")]) == len(rows)
  assert json.load(open(tmp_path / "summary.json"))["metrics"]["table"] == table
