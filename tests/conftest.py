"""Shared test fixtures.

`x64` enables float64 for one test only (`jax.enable_x64` is a context manager), so float32 tests in
the same pytest-xdist worker are unaffected.
"""

import os
import tempfile

# One persistent XLA compilation cache for the session, its subprocesses and notebook kernels: the
# notebook tests and the multi-process tests compile the same programs as the in-process tests.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "rljax-test-xla-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


@pytest.fixture(params=[True, False], ids=["jit", "nojit"])
def maybe_jit(request):
  """Runs a function under `jax.jit` and eagerly; static kwargs pass through `functools.partial`."""
  return jax.jit if request.param else (lambda f: f)


# The two longest tests (subprocesses that import and compile everything) are collected first:
# pytest-xdist hands tests out in collection order, and a minute-long test collected last would run
# alone at the end while the other worker idles.
_LONG = ("tests/training/test_sentiment_dpo.py::test_sentiment_dpo_smoke", "tests/experiments/test_rlvr.py::test_quickstart",
         "tests/training/test_multiprocess.py")


def pytest_collection_modifyitems(items):
  items.sort(key=lambda item: not item.nodeid.startswith(_LONG))  # stable: the rest keep their order
