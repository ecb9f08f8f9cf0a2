"""Argument checks and the float dtype policy shared by every layer of rljax.

Shapes and hyperparameters are static under `jax.jit`, so they are checked in Python at trace time
and raise `ValueError` naming the offending argument. Hyperparameters may also be traced arrays
(e.g. vmapped over a sweep of `epsilon`); range checks then apply only to concrete values.
Values (NaN, Inf) are not inspected: that would need a host sync inside a jitted step.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

REDUCTIONS = ("mean", "sum", "none")


def compute_dtype(*arrays: Any) -> jnp.dtype:
  """float32 for half/float32/int inputs, float64 when any input is float64 (x64 enabled)."""
  return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


def as_compute(*arrays: Any) -> tuple[jax.Array, ...]:
  """Casts all arrays to the common loss dtype (never below float32)."""
  dtype = compute_dtype(*arrays)
  return tuple(jnp.asarray(a, dtype) for a in arrays)


def check_same_shape(ndim: int | None = None, **arrays: Any) -> tuple[int, ...]:
  """All named arrays share one shape (of rank `ndim` when given); returns it."""
  names = list(arrays)
  ref_name = names[0]
  ref = jnp.shape(arrays[ref_name])
  if ndim is not None and len(ref) != ndim:
    raise ValueError(f"`{ref_name}` must have rank {ndim}, got shape {ref}.")
  for name in names[1:]:
    shape = jnp.shape(arrays[name])
    if shape != ref:
      raise ValueError(f"`{name}` has shape {shape}, expected {ref} (the shape of `{ref_name}`).")
  return ref


def concrete_value(value: Any) -> float | None:
  """The float value of a static scalar hyperparameter, or None when it is traced."""
  if isinstance(value, numbers.Real):
    return float(value)
  if isinstance(value, jax.core.Tracer):
    return None
  arr = jnp.asarray(value)
  return float(arr) if arr.ndim == 0 else None


def is_concrete(x: Any) -> bool:
  """True unless `x` is a tracer: value checks run on concrete inputs only (under jit they would need
  a host sync)."""
  return not isinstance(x, jax.core.Tracer)


def concrete_array(x: Any):
  """The numpy value of a concrete input (array-valued checks), or None when it is traced."""
  try:
    return np.asarray(x)
  except jax.errors.TracerArrayConversionError:
    return None


def check_positive(name: str, value: Any) -> None:
  v = concrete_value(value)
  if v is not None and not v > 0:
    raise ValueError(f"`{name}` must be > 0, got {v}.")


def check_nonnegative(name: str, value: Any) -> None:
  v = concrete_value(value)
  if v is not None and not v >= 0:
    raise ValueError(f"`{name}` must be >= 0, got {v}.")


def check_flip_rate(name: str, value: Any) -> None:
  """A label-flip rate must lie in [0, 1/2): at 1/2 the labels carry no information."""
  v = concrete_value(value)
  if v is not None and not 0.0 <= v < 0.5:
    raise ValueError(f"`{name}` must be in [0, 0.5), got {v}.")


def check_in_range(name: str, value: Any, lo: float, hi: float) -> None:
  v = concrete_value(value)
  if v is not None and not lo <= v <= hi:
    raise ValueError(f"`{name}` must be in [{lo}, {hi}], got {v}.")


def check_clip(name: str, value: Any, *, allow_none: bool = False) -> None:
  """A clip range ε ≥ 0 (`jnp.inf` disables it); None only where `allow_none` (one-sided clipping)."""
  if value is None:
    if not allow_none:
      raise ValueError(f"`{name}` must be a number >= 0 (jnp.inf disables it), got None.")
    return
  check_nonnegative(name, value)


def check_optional_positive(name: str, value: Any) -> None:
  """None, or > 0."""
  if value is not None:
    check_positive(name, value)


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
  if value not in choices:
    raise ValueError(f"`{name}` must be one of {choices}, got {value!r}.")


def reduce_examples(per_example: jax.Array, reduction: str) -> jax.Array:
  """Batch reduction of a per-example loss `f[B]`: "mean", "sum" or "none"."""
  check_choice("reduction", reduction, REDUCTIONS)
  if reduction == "none":
    return per_example
  if reduction == "sum":
    return jnp.sum(per_example)
  return jnp.mean(per_example)


def stop_metrics(metrics: dict[str, Any]) -> dict[str, jax.Array]:
  """Metrics are reported, never differentiated: every value behind `stop_gradient`."""
  return {k: jax.lax.stop_gradient(v) for k, v in metrics.items()}
