"""Shared test fixtures.

`x64` enables float64 for one test only (`jax.enable_x64` is a context manager), so float32 tests in
the same pytest-xdist worker are unaffected.
"""

import jax
import pytest


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


@pytest.fixture(params=[True, False], ids=["jit", "nojit"])
def maybe_jit(request):
  """Runs a function under `jax.jit` and eagerly; static kwargs pass through `functools.partial`."""
  return jax.jit if request.param else (lambda f: f)


def execute_notebook(name: str, preset: str = "smoke"):
  """Runs `notebooks/<name>` top to bottom with `RLJAX_NOTEBOOK_PRESET=preset`; returns the notebook
  and the text its code cells printed."""
  import os
  import pathlib

  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  root = pathlib.Path(__file__).resolve().parents[1]
  nb = nbformat.read(root / "notebooks" / name, as_version=4)
  os.environ["RLJAX_NOTEBOOK_PRESET"] = preset
  try:
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(root / "notebooks")}}).execute()
  finally:
    del os.environ["RLJAX_NOTEBOOK_PRESET"]
  printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
  return nb, printed
