"""Checkpoints with orbax `CheckpointManager`: save a `TrainState` whole, restore the newest readable one.

What is saved is everything a run needs to continue bit-for-bit: parameters, optimizer state, step,
RNG key, data position and controller states (`TrainState.extra`). Restoring into an abstract target
built from a freshly initialised state keeps dtypes and shardings (so a run restores onto its mesh).

Frozen weights are not saved: every `nnx.State` in the saved tree loses its `FrozenParam`s (the base of a
LoRA run, `rljax.models.lora`), so a LoRA checkpoint holds the adapters, their optimizer state and the
rest; restore takes the frozen weights from the target, i.e. from the pretrained model the run starts
from (training never changes them).

Robustness:
- orbax writes each step to a temporary directory and renames it when complete, so a run killed
  mid-save leaves no partial step behind; a step directory that is damaged later (missing or
  truncated files) fails to restore, and `restore_latest` falls back to the previous step with a warning.
- `PreemptionGuard` turns SIGTERM (what schedulers and TPU maintenance send) into a flag the training
  loop polls after each step: it saves and exits cleanly instead of dying mid-update.
"""

from __future__ import annotations

import os
import signal
import warnings
from typing import Any

import jax
from flax import nnx

from rljax.models import lora
from rljax.training import distributed


class Checkpointer:
  """A `CheckpointManager` on `directory` keeping the `max_to_keep` newest steps."""

  def __init__(self, directory: str, *, max_to_keep: int = 2):
    if max_to_keep < 1:
      raise ValueError(f"`max_to_keep` must be >= 1, got {max_to_keep}.")
    # orbax is imported where it is used: it loads tensorstore (~40 MiB resident), which a process that
    # never checkpoints (a benchmark, an evaluation) need not hold.
    import orbax.checkpoint as ocp

    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                                             enable_async_checkpointing=False))

  def save(self, step: int, state: Any) -> None:
    """Saves `state` (any pytree of arrays) as `step`, synchronously (every process calls it under
    jax.distributed; host-local leaves are saved as replicated global arrays)."""
    import orbax.checkpoint as ocp

    state = distributed.replicate_host_local(_without_frozen(state))
    self.manager.save(int(step), args=ocp.args.StandardSave(state), force=True)
    self.manager.wait_until_finished()

  def steps(self) -> list[int]:
    self.manager.reload()
    return sorted(self.manager.all_steps())

  def restore_latest(self, target: Any) -> tuple[int | None, Any]:
    """(step, state) of the newest checkpoint that restores into the structure of `target`, or
    (None, target) when there is none. Unreadable steps are skipped with a warning."""
    import orbax.checkpoint as ocp

    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                            distributed.replicate_host_local(_without_frozen(target)))
    for step in reversed(self.steps()):
      try:
        restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        return step, jax.tree.map(lambda r, t: lora.with_frozen(r, t) if _is_state(r) else r, restored, target,
                                  is_leaf=_is_state)
      except Exception as err:  # noqa: BLE001 — any failure to read a step means: try the previous one
        warnings.warn(f"checkpoint step {step} in {self.directory} is unreadable ({type(err).__name__}: "
                      f"{str(err)[:200]}); falling back to an earlier step.", stacklevel=2)
    return None, target

  def close(self) -> None:
    self.manager.close()


def _is_state(x) -> bool:
  return isinstance(x, nnx.State)


def _without_frozen(tree: Any) -> Any:
  return jax.tree.map(lambda x: lora.split_frozen(x)[0] if _is_state(x) else x, tree, is_leaf=_is_state)


class PreemptionGuard:
  """Context manager: while active, SIGTERM sets `.requested` instead of killing the process."""

  def __init__(self, signals=(signal.SIGTERM,)):
    self.signals = signals
    self.requested = False
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    self.requested = True

  def __enter__(self):
    for s in self.signals:
      self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    return False
