"""Misbehaving rewards for the pool tests. They live in an importable module because the pool's worker
processes receive rewards by reference (module and name) and import them."""

from __future__ import annotations

import ctypes
import resource
import sys
import time


def behave(prompt: str, completion: str, **_) -> float:
  """len(completion), unless the completion names a failure to act out."""
  del prompt
  if completion == "hang":
    time.sleep(3600)
  elif completion == "segfault":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file in the working directory
    ctypes.string_at(0)
  elif completion == "raise":
    raise ValueError("verifier bug")
  elif completion == "exit":
    sys.exit(3)
  elif completion == "nan":
    return float("nan")
  elif completion == "inf":
    return float("inf")
  elif completion == "none":
    return None
  return float(len(completion))


def scaled(prompt: str, completion: str, *, scale: float, **_) -> float:
  """A row column (`scale`) times the completion length: checks that rows reach the rewards."""
  del prompt
  return scale * len(completion)


def _fail_warmup() -> None:
  raise RuntimeError("warmup exploded")


def broken_warmup(prompt: str, completion: str, **_) -> float:
  """A reward whose warmup raises: the pool must refuse to start."""
  del prompt, completion
  return 0.0


broken_warmup.warmup = _fail_warmup
