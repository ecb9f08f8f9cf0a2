"""Name -> loss function registry, so configs select a loss by string (`rljax.losses.get("rdpo")`)."""

from __future__ import annotations

import functools
import inspect
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)
_REGISTRY: dict[str, Callable] = {}


def register(name: str) -> Callable[[F], F]:
  """Decorator adding a loss under `name`; names are unique."""

  def wrap(fn: F) -> F:
    if name in _REGISTRY:
      raise ValueError(f"loss {name!r} is already registered (by {_REGISTRY[name].__module__}).")
    _REGISTRY[name] = fn
    return fn

  return wrap


def get(name: str) -> Callable:
  """The loss registered under `name`; a `KeyError` lists the known names otherwise."""
  try:
    return _REGISTRY[name]
  except KeyError:
    raise KeyError(f"unknown loss {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def names() -> list[str]:
  """Sorted registered loss names."""
  return sorted(_REGISTRY)


def bind(fn_or_name: str | Callable, **available) -> Callable:
  """`functools.partial` of a loss with those of `available` that it takes as keywords.

  Lets a generic driver offer everything it has (e.g. `epsilon=`, `key=`) to losses that differ in
  which of them they use; names the loss does not take are dropped.
  """
  fn = get(fn_or_name) if isinstance(fn_or_name, str) else fn_or_name
  params = inspect.signature(fn).parameters
  return functools.partial(fn, **{k: v for k, v in available.items() if k in params})
