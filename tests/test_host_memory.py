"""`rljax.host_memory`: importing rljax.ops (under losses, models, sampling) installs the listener that
trims the heap after long compilations."""

import jax
import jax.numpy as jnp
import pytest

import rljax.ops  # noqa: F401  (installs the listener)
from rljax import host_memory


def test_trim_runs_after_a_compilation_longer_than_the_threshold(monkeypatch):
  if host_memory._malloc_trim() is None:
    pytest.skip("no glibc malloc_trim on this platform")
  assert host_memory._trim is not None and host_memory.trim_after_compiles()
  calls = []
  monkeypatch.setattr(host_memory, "_trim", calls.append)
  monkeypatch.setattr(host_memory, "_min_seconds", 0.0)
  jax.jit(lambda x: jnp.sin(x) * 3.0 + 0.5)(jnp.arange(7.0)).block_until_ready()  # a fresh compilation
  assert calls and set(calls) == {0}
  calls.clear()
  monkeypatch.setattr(host_memory, "_min_seconds", 1e9)
  jax.jit(lambda x: jnp.cos(x) * 3.0 + 0.5)(jnp.arange(7.0)).block_until_ready()
  assert not calls


def test_host_only_imports_do_not_load_jax():
  """Reward-pool workers import rljax.rewards only: no jax, so a replacement worker starts fast."""
  import subprocess
  import sys
  code = "import sys, rljax, rljax.rewards; print('jax' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
  assert out.strip() == "False"
