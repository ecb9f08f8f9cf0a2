"""The rDPO reproduction at a small size: predicted slopes, outputs, and the notebook."""

import pathlib

import jax
import numpy as np
import pytest
from conftest import execute_notebook

from configs.rdpo_loglinear import get_config
from experiments import rdpo_loglinear as ex

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke():
  with jax.enable_x64(True):
    results = ex.run(get_config("smoke"), progress=False)
  return results, {(r["loss"], r["epsilon"]): r for r in ex.slope_rows(results)}


def test_predicted_rates(smoke):
  results, rows = smoke
  assert results["error"].shape == (3, 2, 4, 8)
  assert results["grad_norm"].max() < 1e-6  # every fit converged
  for name in ("dpo", "cdpo", "rdpo"):  # without noise all three are the same MLE, rate n^{-1/2}
    assert -0.8 < rows[(name, 0.0)]["slope"] < -0.3
  assert rows[("rdpo", 0.2)]["slope"] < -0.2  # rDPO keeps converging under noise ...
  for name in ("dpo", "cdpo"):  # ... while DPO and cDPO sit on a bias floor
    assert abs(rows[(name, 0.2)]["slope"]) < 0.1
    assert rows[(name, 0.2)]["error_nmax"] > 2 * rows[("rdpo", 0.2)]["error_nmax"]
    assert rows[(name, 0.2)]["kl_gap_nmax"] > 5 * rows[("rdpo", 0.2)]["kl_gap_nmax"]
  # The 1/(1−2ε) factor: scaled rDPO errors land within a factor 2 of the noiseless curve.
  ratio = rows[("rdpo", 0.2)]["scaled_error_nmax"] / rows[("rdpo", 0.0)]["scaled_error_nmax"]
  assert 0.5 < ratio < 2.0


def test_outputs_written(smoke, tmp_path):
  results, rows = smoke
  ex.write_csv(results, tmp_path / "fits.csv")
  lines = (tmp_path / "fits.csv").read_text().splitlines()
  assert lines[0].startswith("loss,epsilon,n,seed,error")
  assert len(lines) == 1 + results["error"].size
  ex.plot(results, str(tmp_path / "fig.png"))
  assert (tmp_path / "fig.png").stat().st_size > 10_000
  table = ex.format_table(list(rows.values()), results["n"])
  assert table.count("\n") == 1 + len(rows)


def test_unknown_loss_fails_before_compute():
  cfg = get_config("smoke")
  cfg.losses = ("dpo", "rdpoo")
  with pytest.raises(KeyError, match="rdpoo"):
    ex.run(cfg, progress=False)
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")


def test_notebook_executes():
  _, printed = execute_notebook("rdpo_bound.ipynb")
  assert (ROOT / get_config("smoke").out_dir / "rdpo_bound_notebook.png").stat().st_size > 10_000
  assert "| rdpo | 0.2 |" in printed
