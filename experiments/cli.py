"""Command-line entry shared by the experiment modules: an ml_collections config file with presets."""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")


def launch(main: Callable, config_file: str, presets: str) -> None:
  """Runs `main(config)` under absl with `--config=configs/<config_file>[:preset]` and overrides."""
  from absl import app
  from ml_collections import config_flags

  flag = config_flags.DEFINE_config_file(
      "config", os.path.join(CONFIG_DIR, config_file), f"experiment config; `path:preset` picks {presets}"
  )
  app.run(lambda argv: main(flag.value))


def prepare(cfg) -> None:
  """Creates `cfg.out_dir` and turns on float64 when the config asks for it (`cfg.x64`)."""
  if cfg.get("x64", False):
    import jax
    jax.config.update("jax_enable_x64", True)
  os.makedirs(cfg.out_dir, exist_ok=True)


def pyplot(path: str | None):
  """matplotlib.pyplot, switched to the non-interactive Agg backend when the figure goes to a file
  (scripts, tests); a notebook (path None) keeps its inline backend."""
  import matplotlib

  if path is not None:
    matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def finish_figure(fig, path: str | None):
  """Saves `fig` to `path` and closes it (scripts); with no path, returns it open (notebooks)."""
  if path is not None:
    import matplotlib.pyplot as plt
    fig.savefig(path, dpi=120)
    plt.close(fig)
  return fig


def report(out_dir: str, table: str, *, table_file: str, figure_file: str, plot_fn: Callable[[str], object]) -> None:
  """Prints `table`, writes it to out_dir/table_file and the figure `plot_fn(path)` to out_dir/figure_file."""
  print(table)
  with open(os.path.join(out_dir, table_file), "w") as f:
    f.write(table + "\n")
  plot_fn(os.path.join(out_dir, figure_file))
  print(f"wrote {out_dir}/{figure_file}, {table_file}")


def save_results(results: dict[str, Any], path) -> None:
  """Writes the results dict to an .npz file (tuples become arrays)."""
  np.savez(path, **{k: np.asarray(v) for k, v in results.items()})


def load_results(path) -> dict[str, Any]:
  """Reads `save_results` output back: 0-d arrays become scalars, string arrays tuples."""
  with np.load(path) as f:
    out = {k: f[k] for k in f.files}
  return {k: v.item() if v.ndim == 0 else tuple(v.tolist()) if v.dtype.kind == "U" else v for k, v in out.items()}
