"""The experiment template (`experiments.cli`): one run writes the table, results, figure and a
summary.json of the one schema; the status follows from the paper index's bands."""

from __future__ import annotations

import json
import pickle
import types

import ml_collections
import numpy as np
import pytest

from experiments import cli
from rljax import papers


def _module(name: str, value: float = 0.25):
  """A minimal experiment module named `experiments.<name>`."""
  m = types.ModuleType(f"experiments.{name}")
  m.run = lambda cfg: {"x": np.arange(cfg.n, dtype=np.float32), "value": value}
  m.tables = lambda r: [cli.Table([{"n": len(r["x"]), "v": r["value"], "bad": float("nan")}],
                                  {"n": "{n:d}", "v": "{v:.3f}", "ratio": lambda row: f"{row['v'] / 2:.2f}"})]
  m.headline = lambda r: {}

  def plot(r, path=None):
    plt = cli.pyplot(path)
    fig, ax = plt.subplots()
    ax.plot(r["x"])
    return cli.finish_figure(fig, path, title="t")

  m.plot = plot
  return m


def _cfg(tmp_path, **kw):
  return ml_collections.ConfigDict({"preset": "smoke", "out_dir": str(tmp_path), "n": 3, **kw})


def test_execute_writes_the_one_schema(tmp_path, capsys):
  results, summary = cli.execute(_module("not_a_paper"), _cfg(tmp_path))
  printed = capsys.readouterr().out
  assert set(summary) == {"paper", "preset", "config", "metrics", "predicted", "measured", "status", "table"}
  assert summary["paper"] is None and summary["status"] is None and summary["predicted"] == {}
  assert summary["metrics"] == {"table": [{"n": 3, "v": 0.25, "bad": None}]}  # NaN -> null in JSON
  assert summary["preset"] == "smoke" and summary["config"]["n"] == 3
  assert "| 3 | 0.250 | 0.12 |" in summary["table"] and summary["table"] in printed
  on_disk = json.loads((tmp_path / "summary.json").read_text())
  assert on_disk == summary
  with open(tmp_path / "results.pkl", "rb") as f:
    np.testing.assert_array_equal(pickle.load(f)["x"], results["x"])
  assert (tmp_path / "not_a_paper.md").read_text().strip() == summary["table"]
  assert (tmp_path / "not_a_paper.png").stat().st_size > 0
  assert cli.load_run(tmp_path)[1] == summary


def test_x64_only_when_the_config_asks(tmp_path):
  import jax
  import jax.numpy as jnp

  cli.prepare(_cfg(tmp_path, x64=True))
  assert jnp.zeros(1, float).dtype == jnp.float64
  cli.prepare(_cfg(tmp_path))
  assert jnp.zeros(1, float).dtype == jnp.float32
  # execute switches it on for the run only: the caller's setting is restored.
  m = _module("x64_probe")
  m.run = lambda cfg: {"x": jnp.zeros(cfg.n, float), "value": 0.0}
  results, _ = cli.execute(m, _cfg(tmp_path, x64=True), figure=False)
  assert results["x"].dtype == np.float64 and isinstance(results["x"], np.ndarray)
  assert not jax.config.read("jax_enable_x64")


def test_summary_status_follows_the_index_bands(tmp_path):
  entry = papers.get("did")
  inside = {c.name: sum(c.band) / 2 for c in entry.claims}
  table = [cli.Table([{"a": 1}], {"a": "{a}"})]
  assert cli.summarize("did", _cfg(tmp_path), table, inside)["status"] == "reproduced"
  one_off = dict(inside, **{entry.claims[0].name: entry.claims[0].band[1] + 1.0})
  s = cli.summarize("did", _cfg(tmp_path), table, one_off)
  assert s["status"] == "differs" and s["predicted"][entry.claims[0].name]["band"] == list(entry.claims[0].band)
  lines = cli.headline_lines(s)
  assert len(lines) == len(entry.claims) and sum(line.endswith(c.text) and "✗" in line
                                                  for line in lines for c in entry.claims[:1]) == 1
  with pytest.raises(ValueError, match="predicts"):
    cli.summarize("did", _cfg(tmp_path), table, {entry.claims[0].name: 0.0})
