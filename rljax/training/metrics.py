"""Run logging: `DIR/metrics.jsonl` (one JSON object per logged step), TensorBoard events, a progress bar.

Each JSON line holds `step`, `loss`, every other scalar metric, and `phase` when the run has several
(e.g. "sft" then "dpo"). On resume from step k the lines of that phase past k are dropped, so the file
reads as if the run had never stopped.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np

from rljax.training import distributed


def _scalar(v):
  v = np.asarray(v)
  return v.item() if v.size == 1 else v.tolist()


class MetricsWriter:
  """Appends metrics to `workdir/metrics.jsonl` and TensorBoard event files under `workdir/tb`.

  Under `jax.distributed` every process logs the same global metrics, so process 0 alone writes them
  (`write` still returns the row everywhere)."""

  def __init__(self, workdir: str, *, tensorboard: bool = True):
    os.makedirs(workdir, exist_ok=True)
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.primary = distributed.is_primary()
    self._tb = None
    if tensorboard and self.primary:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(os.path.join(workdir, "tb"))

  def truncate(self, phase: str | None, after_step: int) -> None:
    """Drops the lines of `phase` with step > `after_step` (a resumed run rewrites them)."""
    if not self.primary or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      rows = [json.loads(line) for line in f if line.strip()]
    keep = [r for r in rows if r.get("phase") != phase or r["step"] <= after_step]
    with open(self.path, "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in keep)

  def write(self, step: int, metrics: dict[str, Any], *, phase: str | None = None) -> dict:
    row = {"step": int(step), **({"phase": phase} if phase else {}),
           **{k: _scalar(v) for k, v in metrics.items()}}
    if not self.primary:
      return row
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    if self._tb is not None:
      prefix = f"{phase}/" if phase else ""
      for k, v in row.items():
        if isinstance(v, (int, float)) and k != "step":
          self._tb.add_scalar(prefix + k, v, int(step))
    return row

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def read_metrics(workdir: str, phase: str | None = None) -> list[dict]:
  """The rows of `workdir/metrics.jsonl` (of one phase when given)."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  return [r for r in rows if phase is None or r.get("phase") == phase]


class Throughput:
  """Tokens per second over the interval since the last call."""

  def __init__(self):
    self._t = time.perf_counter()

  def __call__(self, tokens: float) -> float:
    now = time.perf_counter()
    rate = tokens / max(now - self._t, 1e-9)
    self._t = now
    return rate
