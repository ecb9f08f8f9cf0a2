"""The smoke run every paper test file asserts on: `notebooks/<key>.ipynb` executed once per file."""

import pytest

from tests.helpers import run_paper_notebook


@pytest.fixture(scope="module")
def smoke(request, tmp_path_factory):
  """The notebook of the paper `test_<key>.py` tests, run at the smoke preset (a `NotebookRun`)."""
  return run_paper_notebook(request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"), tmp_path_factory)
