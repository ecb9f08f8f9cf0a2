"""Name -> loss registry with the metadata a trainer needs to call each loss.

    from rljax import losses
    losses.get("rdpo")                 # the function itself (configs pick losses by name)
    spec = losses.spec("rdpo")         # LossSpec: kind, the batch fields it reads, how to call it
    losses.names(kind="pairwise")      # every registered DPO-family loss

A loss is registered where it is defined, with what a trainer must know about it:

    @register("kdrl", kind="policy", reads=("logp", "old_logp", "advantages", "mask", "rewards"),
              own_kl=True, call=_kdrl_call)
    def kdrl_loss(...): ...

* `kind` says which trainer family can drive it: `"policy"` (token-level policy losses on
  `[B, T]` log-probs, driven by `rljax.algorithms.resolve`), `"pairwise"` (DPO family on sequence
  log-probs, driven by `rljax.training.objectives.preference_loss`), `"listwise"`,
  `"reward_model"`, `"regression"` (REBEL/REFUEL), `"sequence"` (sequence-level losses such as DPG)
  and `"value"` (critics).
* `reads` names the batch fields the loss consumes, in the order of its positional arguments. The
  field names are the trainers' batch conventions (spec §0.1): `logp` is always the log-probs being
  differentiated; pairwise fields are `chosen_logps`, `rejected_logps`, `ref_chosen_logps`,
  `ref_rejected_logps`, the length-averaged `chosen_mean_logps` / `rejected_mean_logps` (SimPO) and
  the previous iterate's `prev_chosen_logps` / `prev_rejected_logps` (INPO).
* `own_kl`: the kernel computes its KL term itself (KDRL, OREAL), so a trainer must not add a
  generic KL penalty and must supply the KL target (`kl.target`) instead.
* `call(fn, batch, ctx) -> (loss, metrics)`: how to call a loss whose arguments are not just the
  `reads` fields in order (a keyword-only input, a derived one such as a group's accuracy, or
  the KL coefficient). `ctx` carries the trainer's `group_size`, `kl_coef`, `kl_kind` and
  `kl_target`. Without `call`, the loss is called as `fn(*(batch[k] for k in reads))`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable)

KINDS = ("policy", "pairwise", "listwise", "reward_model", "regression", "sequence", "value")


@dataclasses.dataclass(frozen=True)
class LossSpec:
  """A registered loss and how to call it (see the module docstring)."""

  name: str
  fn: Callable
  kind: str
  reads: tuple[str, ...]
  own_kl: bool = False
  call: Callable[[Callable, Mapping[str, Any], Mapping[str, Any]], Any] | None = None

  def __call__(self, fn: Callable, batch: Mapping[str, Any], ctx: Mapping[str, Any] | None = None):
    """Calls `fn` (this loss, possibly with hyperparameters bound) on the fields of `batch`."""
    if self.call is not None:
      return self.call(fn, batch, dict(ctx or {}))
    return fn(*(batch[k] for k in self.reads))


_REGISTRY: dict[str, LossSpec] = {}


def register(name: str, *, kind: str, reads: tuple[str, ...], own_kl: bool = False,
             call: Callable | None = None) -> Callable[[F], F]:
  """Decorator adding a loss under `name` with its call metadata; names are unique."""
  if kind not in KINDS:
    raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}.")
  if not reads or not all(isinstance(k, str) for k in reads):
    raise ValueError(f"`reads` must name the batch fields the loss consumes, got {reads!r}.")

  def wrap(fn: F) -> F:
    if name in _REGISTRY:
      raise ValueError(f"loss {name!r} is already registered (by {_REGISTRY[name].fn.__module__}).")
    if call is None:
      positional = [p for p in inspect.signature(fn).parameters.values()
                    if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
      required = [p for p in positional if p.default is p.empty]
      if not len(required) <= len(reads) <= len(positional):
        raise ValueError(f"loss {name!r} takes {len(required)} to {len(positional)} positional arguments but "
                         f"`reads` names {len(reads)} fields; give a `call` adapter.")
    _REGISTRY[name] = LossSpec(name, fn, kind, tuple(reads), own_kl, call)
    return fn

  return wrap


def spec(name: str) -> LossSpec:
  """The `LossSpec` registered under `name`; a `KeyError` lists the known names otherwise."""
  try:
    return _REGISTRY[name]
  except KeyError:
    raise KeyError(f"unknown loss {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def get(name: str) -> Callable:
  """The loss function registered under `name`."""
  return spec(name).fn


def names(kind: str | None = None) -> list[str]:
  """Sorted registered loss names, all of them or those of one `kind`."""
  if kind is not None and kind not in KINDS:
    raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}.")
  return sorted(n for n, s in _REGISTRY.items() if kind is None or s.kind == kind)


def bind(fn_or_name: str | Callable, **available) -> Callable:
  """`functools.partial` of a loss with those of `available` that it takes as keywords.

  Lets a generic driver offer everything it has (e.g. `epsilon=`, `key=`) to losses that differ in
  which of them they use; names the loss does not take are dropped.
  """
  fn = get(fn_or_name) if isinstance(fn_or_name, str) else fn_or_name
  params = inspect.signature(fn).parameters
  return functools.partial(fn, **{k: v for k, v in available.items() if k in params})
