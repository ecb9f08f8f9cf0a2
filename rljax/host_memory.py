"""Handing the host memory that XLA's compiler frees back to the operating system.

Compiling a program allocates a large, short-lived working set (HLO passes, one LLVM module per fused
kernel). glibc's malloc keeps the pages it frees when they are not at the top of a heap, so after
compilation they stay resident although nothing uses them, and on CPU the executable's own buffers
are then allocated on top of them. In a DPO update (benchmarks/dpo_step.py, 4 layers, 16 rows of 127
tokens) compilation left ~260 MiB resident that `malloc_trim(0)` returned, and the process's peak
resident set fell from ~960 MiB (after compilation plus the step's temporaries) to ~700 MiB (the
compiler's own peak).

`trim_after_compiles()` registers a `jax.monitoring` listener that calls glibc's `malloc_trim(0)` once
after every backend compilation that took at least `min_seconds` (short compilations leave little
behind, and trimming walks the whole heap, a few milliseconds). It is installed when `rljax.ops` (under
losses, models and sampling) is imported, on any backend (compilers for GPU and TPU free host memory the
same way); without glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import jax

# Recorded by jax after each XLA compilation (not for executables loaded from the persistent cache).
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_trim = None  # glibc's malloc_trim once the listener is installed
_min_seconds = 1.0


def _malloc_trim():
  """glibc's `malloc_trim`, or None where the C library has none."""
  try:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
  except (OSError, AttributeError):
    return None


def _after_event(event: str, duration_secs: float, **_) -> None:
  if event == _COMPILE_EVENT and duration_secs >= _min_seconds and _trim is not None:
    _trim(0)


def trim_after_compiles(min_seconds: float = 1.0) -> bool:
  """Installs the listener (once per process; a later call only changes `min_seconds`); returns whether
  trimming is available."""
  global _trim, _min_seconds
  _min_seconds = min_seconds
  if _trim is None:
    _trim = _malloc_trim()
    if _trim is None:
      return False
    jax.monitoring.register_event_duration_secs_listener(_after_event)
  return True
