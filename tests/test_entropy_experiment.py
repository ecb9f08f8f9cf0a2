"""(c) Entropy collapse and the covariance interventions at a small size, and the notebook."""

import pathlib

import numpy as np
import pytest
from conftest import execute_notebook

from configs.entropy_mechanism import get_config
from experiments import entropy_mechanism as ex

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke():
  results = ex.run(get_config("smoke"))
  return results, {r["arm"]: r for r in ex.summary_rows(results, 1 / 3)}


def test_entropy_collapses_and_interventions_keep_it_higher(smoke):
  results, rows = smoke
  assert set(results) == {"grpo", "clip_higher", "clip_cov", "kl_cov"}
  grpo = rows["grpo"]
  h = results["grpo"]["entropy"].mean(0)
  assert grpo["H_end"] < 0.3 * grpo["H_start"]  # collapse ...
  assert np.all(np.diff(h[::10]) < 0)  # ... monotone at this resolution
  assert grpo["R_end"] > results["grpo"]["reward"].mean(0)[0] + 0.1  # while the reward rises
  for arm in ("clip_cov", "kl_cov"):
    assert rows[arm]["H_quarter"] > rows["grpo"]["H_quarter"] + 0.1
  assert rows["grpo"]["r2"] > 0.7 and rows["grpo"]["a"] > 0


def test_outputs(smoke, tmp_path):
  results, rows = smoke
  ex.plot(results, str(tmp_path / "fig.png"))
  assert (tmp_path / "fig.png").stat().st_size > 10_000
  assert ex.format_table(list(rows.values())).count("\n") == 1 + len(rows)
  cfg = get_config("smoke")
  cfg.arms.grpo.loss = "ppo_clipp"
  with pytest.raises(KeyError, match="ppo_clipp"):
    ex.run(cfg)


def test_notebook_executes():
  _, printed = execute_notebook("entropy_mechanism.ipynb")
  assert (ROOT / get_config("smoke").out_dir / "entropy_mechanism_notebook.png").stat().st_size > 10_000
  assert "| kl_cov |" in printed
