"""Helpers shared by the tests: trend assertions and running a notebook the way a reader would.

`execute_notebook` runs the code cells of `notebooks/<name>` top to bottom at a preset (the tests use
`smoke`). The trend assertions compare a measured curve with a predicted rate or direction, and
say by how much they miss.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import pathlib

import numpy as np
import pytest

from experiments import cli
from experiments.slopes import SlopeFit, autocorrelation, fit_slope
from rljax import papers

ROOT = pathlib.Path(__file__).resolve().parents[1]
VOCAB = 97  # vocabulary of the tiny parity models: odd, so no dimension is accidentally a multiple of another


def execute_notebook(name: str, preset: str = "smoke", workdir: str | os.PathLike | None = None):
  """Runs the code cells of `notebooks/<name>` top to bottom, as a reader's kernel would, with
  `RLJAX_NOTEBOOK_PRESET=preset` (and `RLJAX_NOTEBOOK_WORKDIR=workdir`); returns the notebook and the
  text its cells printed.

  The cells run in this process, in a fresh namespace: a kernel per notebook would import jax again
  for each of the thirty papers. (The committed notebooks are executed in a real kernel at their
  `cpu` preset.)"""
  nbformat = pytest.importorskip("nbformat")
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
  env = {"RLJAX_NOTEBOOK_PRESET": preset, **({"RLJAX_NOTEBOOK_WORKDIR": str(workdir)} if workdir else {})}
  os.environ.update(env)
  printed, namespace = io.StringIO(), {"__name__": "__main__"}
  try:
    with contextlib.redirect_stdout(printed):
      for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        exec(compile(cell.source, f"<{name} cell {i}>", "exec"), namespace)
  finally:
    for k in env:
      del os.environ[k]
    plt.close("all")
    # The experiment's compiled programs are not reused by later tests; dropping them keeps a
    # worker that runs many notebooks from growing by gigabytes.
    import jax

    jax.clear_caches()
  return nb, printed.getvalue()


@dataclasses.dataclass
class NotebookRun:
  """What a paper's notebook computed at the smoke preset: the experiment's results, its summary.json,
  the text it printed and its work directory."""

  results: dict
  summary: dict
  printed: str
  workdir: pathlib.Path


def run_paper_notebook(key: str, tmp_path_factory) -> NotebookRun:
  """Executes `notebooks/<key>.ipynb` at the smoke preset, once per test module (use it in a
  module-scoped fixture): the tests then assert on what the notebook itself computed, so the
  experiment runs once."""
  workdir = tmp_path_factory.mktemp(key)
  _, printed = execute_notebook(f"{key}.ipynb", "smoke", workdir)
  results, summary = cli.load_run(workdir)
  return NotebookRun(results, summary, printed, workdir)


def assert_smoke_claims(run: NotebookRun) -> None:
  """Each claim the paper index predicts, measured by the notebook's smoke run, lies in its smoke band
  (the predicted band unless a looser one is given); the notebook printed every one of them."""
  entry = papers.get(run.summary["paper"])
  misses = []
  for claim in (c for c in entry.claims if c.at_smoke):
    value = run.summary["measured"].get(claim.name)
    assert f"{claim.name}: " in run.printed, f"the notebook did not print the claim {claim.name!r}"
    if not claim.holds(value, smoke=True):
      misses.append(f"{claim.name} = {value} not in {claim.smoke or claim.band} ({claim.text})")
  assert not misses, "; ".join(misses)


def assert_fails_before_compute(module, cfg, workdir, error=ValueError, match: str | None = None) -> None:
  """`module.run(cfg)`, writing under `workdir/run`, raises `error` (matching `match`) before computing anything:
  no metrics, checkpoint or other file is written there."""
  run = pathlib.Path(workdir) / "run"
  cfg.out_dir = str(run)
  with pytest.raises(error, match=match):
    module.run(cfg)
  written = [p for p in run.rglob("*") if p.is_file()] if run.exists() else []
  assert not written, f"files written before the config error: {written[:5]}"


def assert_slope(
    x: np.ndarray, y_seeds: np.ndarray, target: float, tol: float, *, last_decades: float | None = 1.5
) -> SlopeFit:
  """Raises AssertionError unless |slope − target| ≤ tol for the median-over-seeds curve; returns the fit."""
  if tol <= 0:
    raise ValueError(f"`tol` must be positive, got {tol}.")
  fit = fit_slope(x, y_seeds, last_decades=last_decades)
  if not abs(fit.slope - target) <= tol:
    raise AssertionError(
        f"log-log slope {fit.slope:.3f} (95% CI [{fit.ci_low:.3f}, {fit.ci_high:.3f}]) is not within "
        f"{tol} of the predicted {target}.")
  return fit


def assert_monotone(y: np.ndarray, *, increasing: bool = True, rtol: float = 0.0) -> None:
  """Raises AssertionError unless consecutive values of the 1-D `y` move in one direction.

  A step against the direction is tolerated up to `rtol`·|previous value| (noise in a Monte-Carlo curve).
  """
  y = np.asarray(y, np.float64)
  if y.ndim != 1 or y.size < 2:
    raise ValueError(f"`y` must be 1-D with at least 2 values, got shape {y.shape}.")
  step = np.diff(y) if increasing else -np.diff(y)
  bad = np.nonzero(step < -rtol * np.abs(y[:-1]))[0]
  if bad.size:
    raise AssertionError(f"not {'increasing' if increasing else 'decreasing'} at indices {bad.tolist()}: {y.tolist()}")


def assert_oscillation(x: np.ndarray, *, max_autocorr: float = -0.2, lag: int = 1) -> float:
  """Raises AssertionError unless the lag-`lag` autocorrelation of `x` is below `max_autocorr`."""
  rho = autocorrelation(x, lag)
  if not rho < max_autocorr:
    raise AssertionError(f"lag-{lag} autocorrelation {rho:.3f} is not below {max_autocorr}: no oscillation.")
  return rho


def hf_model(family: str, tied: bool = False):
  """A tiny random transformers model of `family` (llama, qwen2, qwen3, gpt2) for parity tests; norms and
  biases perturbed away from their initial values so that their mapping is tested too."""
  import torch
  import transformers

  torch.manual_seed(0)
  ids = dict(bos_token_id=1, eos_token_id=2, pad_token_id=0)
  if family == "gpt2":
    cfg = transformers.GPT2Config(vocab_size=VOCAB, n_embd=48, n_head=3, n_layer=2, n_positions=64,
                                  **ids)
    return transformers.GPT2LMHeadModel(cfg).eval()
  common = dict(vocab_size=VOCAB, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                num_attention_heads=3, num_key_value_heads=1, max_position_embeddings=64,
                tie_word_embeddings=tied, rms_norm_eps=1e-6, **ids)
  if family == "llama":
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**common))
  elif family == "qwen3":
    # head_dim 8 != hidden_size / heads = 16, as in real Qwen3 checkpoints.
    model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(head_dim=8, **common))
  else:
    model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common))
  # Random init leaves norms at 1 and biases at 0; perturb them so the mapping of those is tested too.
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "norm" in name or name.endswith(".bias"):
        p.add_(0.1 * torch.randn_like(p))
  return model.eval()
