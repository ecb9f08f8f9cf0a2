"""The experiment template, written once: run → table → figure → summary.json (→ the paper's docs).

An experiment module `experiments/<key>.py` supplies only what differs between papers:

    def run(cfg) -> dict                   # the computation (arrays, scalars, nested dicts of them)
    def tables(results) -> list[Table]     # the printed table(s): rows of numbers and their columns
    def headline(results) -> dict          # the measured value of each claim the paper index predicts
    def plot(results, path=None)           # the figure (saved to `path`; returned open without one)

and `execute(module, cfg)` does the rest in every entry point (`python -m rljax.run`, the notebooks,
the tests): switches float64 on when the config asks (`cfg.x64`) for the run (the caller's setting
is restored after it), creates `cfg.out_dir`, runs,
prints and writes the tables (`<key>.md`), pickles the results (`results.pkl`, which the tests read),
draws `<key>.png`, and writes `summary.json`:

    {"paper": key, "preset": ..., "config": {...},
     "metrics": {table name: [row, ...]},            # the numbers of the printed tables
     "predicted": {claim: {"text", "band"}},          # from the paper index (rljax/paper_index/<key>.toml)
     "measured": {claim: value},                      # from `headline(results)`
     "status": "reproduced" | "differs" | "not reproduced",
     "table": the printed markdown}

A module whose stem is not in the paper index (the quickstart, kernel checks) has no claims:
`predicted` and `measured` are empty and `status` is null.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import pickle
from typing import Any, Callable

import numpy as np

from rljax import papers

ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Table:
  """Rows of numbers and how to print them: `columns` maps a header to a `str.format` template over
  a row (`"{slope:.2f}"`, `"[{lo:.2f}, {hi:.2f}]"`) or to a function of the row."""

  rows: list[dict[str, Any]]
  columns: dict[str, str | Callable[[dict[str, Any]], str]]
  title: str = ""
  name: str = "table"  # its key in summary.json's `metrics`

  def markdown(self) -> str:
    cell = lambda fmt, row: fmt(row) if callable(fmt) else fmt.format(**row)
    lines = [f"{self.title}\n"] if self.title else []
    lines.append("| " + " | ".join(self.columns) + " |")
    lines.append("|" + "---|" * len(self.columns))
    lines += ["| " + " | ".join(cell(f, row) for f in self.columns.values()) + " |" for row in self.rows]
    return "\n".join(lines)


def key_of(module) -> str:
  """The paper key of an experiment module: its stem (`experiments.did` -> `did`)."""
  return module.__name__.rsplit(".", 1)[-1]


def prepare(cfg) -> None:
  """Float64 on when the config asks for it (`cfg.x64`), and `cfg.out_dir` created."""
  import jax

  jax.config.update("jax_enable_x64", bool(cfg.get("x64", False)))
  os.makedirs(cfg.out_dir, exist_ok=True)


def jsonable(x: Any) -> Any:
  """numpy/jax scalars and arrays to floats and lists, tuples to lists, non-finite floats to None."""
  if isinstance(x, dict):
    return {str(k): jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [jsonable(v) for v in x]
  if hasattr(x, "tolist") and not isinstance(x, (str, bytes)):
    return jsonable(x.tolist())
  if isinstance(x, float):
    return x if math.isfinite(x) else None
  return x


def summarize(key: str, cfg, tables: list[Table], measured: dict[str, float]) -> dict[str, Any]:
  """The summary.json of a run (schema in the module docstring)."""
  entry = papers.load().get(key)
  measured = {k: float(v) for k, v in measured.items()}
  # Claims a smoke run does not measure (`at_smoke = false`) may be absent there, and only there.
  optional = {c.name for c in entry.claims if not c.at_smoke} if entry is not None and cfg.get("preset") == "smoke" \
      else set()
  if entry is not None and not set(measured) <= {c.name for c in entry.claims} <= set(measured) | optional:
    raise ValueError(f"{key}: headline() measured {sorted(measured)}, but the paper index predicts "
                     f"{sorted(c.name for c in entry.claims)}.")
  return jsonable({
      "paper": key if entry is not None else None,
      "preset": cfg.get("preset"),
      "config": cfg.to_dict(),
      "metrics": {t.name: t.rows for t in tables},
      "predicted": papers.predicted(entry) if entry is not None else {},
      "measured": measured,
      "status": papers.status(entry.claims, measured) if entry is not None else None,
      "table": "\n\n".join(t.markdown() for t in tables),
  })


def headline_lines(summary: dict[str, Any]) -> list[str]:
  """`claim: measured (predicted [lo, hi]) ✓/✗` for each claim."""
  out = []
  for name, p in summary["predicted"].items():
    v = summary["measured"].get(name)
    ok = v is not None and p["band"][0] <= v <= p["band"][1]
    out.append(f"{name}: {papers.fmt(v)} (predicted [{papers.fmt(p['band'][0])}, {papers.fmt(p['band'][1])}]) "
               f"{'✓' if ok else '✗'}  {p['text']}")
  return out


def execute(module, cfg, *, figure: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
  """Runs one experiment end to end (see the module docstring); returns `(results, summary)`."""
  import jax

  x64 = jax.config.read("jax_enable_x64")
  try:
    return _execute(module, cfg, figure)
  finally:  # the caller's precision is restored (the tests run several experiments in one process)
    jax.config.update("jax_enable_x64", x64)


def to_host(x: Any) -> Any:
  """jax arrays to numpy, through dicts (any keys), lists and tuples (results pickle without jax)."""
  import jax

  if isinstance(x, dict):
    return {k: to_host(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
    return type(x)(to_host(v) for v in x)
  if hasattr(x, "_fields"):  # a NamedTuple
    return type(x)(*(to_host(v) for v in x))
  return np.asarray(x) if isinstance(x, jax.Array) else x


def _execute(module, cfg, figure: bool) -> tuple[dict[str, Any], dict[str, Any]]:
  key = key_of(module)
  prepare(cfg)
  entry = papers.load().get(key)
  print(f"{key} [{cfg.get('preset')}]" + (f": {entry.title} — {entry.cite}" if entry else ""))
  results = to_host(module.run(cfg))
  tables = module.tables(results)
  summary = summarize(key, cfg, tables, module.headline(results) if entry is not None else {})
  from rljax.training import distributed

  if not distributed.is_primary():  # under jax.distributed every process has the same results; one writes them
    return results, summary
  print(summary["table"])
  for line in headline_lines(summary):
    print(line)
  if summary["status"]:
    print(f"status at this preset: {summary['status']}")
  out = pathlib.Path(cfg.out_dir)
  (out / f"{key}.md").write_text(summary["table"] + "\n")
  with open(out / "results.pkl", "wb") as f:
    pickle.dump(results, f)
  (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
  if figure:
    module.plot(results, str(out / f"{key}.png"))
  print(f"wrote {out}/summary.json, {key}.md" + (f", {key}.png" if figure else ""))
  return results, summary


def notebook(key: str):
  """For `notebooks/<key>.ipynb`: the experiment module and its config at the preset in
  `$RLJAX_NOTEBOOK_PRESET` (default `cpu`), writing to `$RLJAX_NOTEBOOK_WORKDIR` (default
  `results/notebooks/<key>_<preset>`)."""
  import importlib

  preset = os.environ.get("RLJAX_NOTEBOOK_PRESET", "cpu")
  module = importlib.import_module(f"experiments.{key}")
  cfg = importlib.import_module(f"configs.{key}").get_config(preset)
  cfg.out_dir = os.environ.get("RLJAX_NOTEBOOK_WORKDIR", str(ROOT / "results" / "notebooks" / f"{key}_{preset}"))
  return module, cfg


def load_run(workdir) -> tuple[dict[str, Any], dict[str, Any]]:
  """`(results, summary)` written by `execute` in `workdir`."""
  workdir = pathlib.Path(workdir)
  with open(workdir / "results.pkl", "rb") as f:
    results = pickle.load(f)
  return results, json.loads((workdir / "summary.json").read_text())


# ------------------------------------------------------------------------------------------- figures


def pyplot(path: str | None):
  """matplotlib.pyplot, switched to the non-interactive Agg backend when the figure goes to a file
  (scripts, tests); a notebook (path None) keeps its inline backend."""
  import matplotlib

  if path is not None:
    matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def finish_figure(fig, path: str | None, *, title: str | None = None):
  """Titles and lays out `fig`, then saves it to `path` and closes it (scripts); with no path,
  returns it open (notebooks)."""
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  if path is not None:
    import matplotlib.pyplot as plt
    fig.savefig(path, dpi=120)
    plt.close(fig)
  return fig


def median_band(ax, x, y_seeds, *, label: str | None = None, color=None, ls="-", quantiles=(0.25, 0.75)):
  """The median over seeds (axis 0) of `y_seeds: [S, N]` against `x`, its inter-quantile range shaded."""
  y_seeds = np.asarray(y_seeds)
  line, = ax.plot(x, np.median(y_seeds, 0), ls, color=color, label=label)
  ax.fill_between(x, *np.quantile(y_seeds, quantiles, axis=0), color=line.get_color(), alpha=0.15)
  return line


def power_guide(ax, x, anchor: float, slope: float, *, label: str | None = None, style="k:"):
  """A reference line ∝ x^slope through (x[-1], anchor): the predicted rate on log–log axes."""
  x = np.asarray(x, float)
  ax.plot(x, anchor * (x / x[-1]) ** slope, style, lw=1, label=label or f"∝ x^{slope:g}")


def loglog(ax, xlabel: str, ylabel: str, *, title: str | None = None, legend: bool = True):
  """Log–log axes with labels, a light grid and a small legend."""
  ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel)
  if title:
    ax.set_title(title)
  ax.grid(alpha=0.3, which="both")
  if legend:
    ax.legend(fontsize=8)
