"""The DPO / cDPO / rDPO sentiment run end to end at smoke size through `python -m rljax.run`, and the command
line's checks."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*args, timeout=600):
  env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
  return subprocess.run([sys.executable, "-m", "rljax.run", *args], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=timeout)


def test_sentiment_dpo_smoke_writes_table_metrics_and_plot(tmp_path):
  proc = _run("--config=configs/sentiment_dpo.py:smoke", f"--workdir={tmp_path}", "--config.dpo.steps=6")
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert "| rdpo |" in proc.stdout and "win rate vs SFT" in proc.stdout
  rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  phases = {r["phase"] for r in rows}
  assert phases == {"sft", "dpo", "cdpo", "rdpo"}
  assert max(r["step"] for r in rows if r["phase"] == "rdpo") == 6  # the override reached the run
  sft = [r["loss"] for r in rows if r["phase"] == "sft"]
  assert sft[-1] < sft[0]
  assert (tmp_path / "sentiment_dpo.png").stat().st_size > 10_000
  summary = json.load(open(tmp_path / "summary.json"))  # the template's summary: the table's numbers
  assert summary["paper"] is None and summary["preset"] == "smoke"
  assert [r["policy"] for r in summary["metrics"]["table"]] == ["sft", "dpo", "cdpo", "rdpo"]
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "tb"))


def test_unknown_field_and_wrong_type_fail_before_compute(tmp_path):
  unknown = _run("--config=configs/sentiment_dpo.py:smoke", f"--workdir={tmp_path}", "--config.dpo.stepz=3", timeout=120)
  assert unknown.returncode != 0 and "stepz" in unknown.stderr
  wrong = _run("--config=configs/sentiment_dpo.py:smoke", f"--workdir={tmp_path}", "--config.dpo.steps=many",
               timeout=120)
  assert wrong.returncode != 0 and "many" in wrong.stderr
  assert not os.path.exists(tmp_path / "metrics.jsonl")
