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
