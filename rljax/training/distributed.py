"""Multi-host setup through `jax.distributed` and per-process data sharding.

`maybe_initialize()` calls `jax.distributed.initialize` when the process was started with the
coordinator environment variables (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID), or,
when asked (`auto=True`), with whatever jax detects of the cluster (Cloud TPU, SLURM, Open MPI,
Kubernetes); otherwise a single process does nothing.
Each process then loads only its rows of a global batch (`process_rows`), and
`global_batch` assembles the global `jax.Array` from the per-process pieces, so the train step sees
the same global batch whatever the number of processes.

Host code between jitted steps (rewards, evaluation tables, logging) reads global arrays through
`host_all` (every row, on every process) or `host_rows` (this process's rows), and `gather_rows`
concatenates NumPy rows computed per process back into the global rows, in process order. Files
shared by the run (metrics, summaries, a trained tokenizer) are written by `is_primary()` alone, the
others waiting at a `barrier`. In one process all of these are plain host transfers or no-ops.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.experimental import multihost_utils

_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def maybe_initialize(auto: bool = False) -> bool:
  """Initialises `jax.distributed` from the JAX_* variables, or without them and with `auto` from the
  cluster jax detects; returns whether it did.

  Detection is opt-in because it changes a single process too: under SLURM it makes each task see one
  GPU (`SLURM_LOCALID`), which suits one task per GPU but not one process using a whole node.
  """
  explicit = all(v in os.environ for v in _ENV)
  if not (explicit or auto):
    return False
  # CPU devices exchange collectives through gloo (GPU/TPU backends ignore this option). Nothing
  # here may touch the backend before `initialize`.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if explicit:
    jax.distributed.initialize(coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
                               num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                               process_id=int(os.environ["JAX_PROCESS_ID"]))
  else:
    jax.distributed.initialize()
  return True


def process_rows(global_batch_size: int) -> slice:
  """The rows of a global batch that this process loads (contiguous, equal shares)."""
  n, i = jax.process_count(), jax.process_index()
  if global_batch_size % n:
    raise ValueError(f"global batch {global_batch_size} does not split over {n} processes.")
  share = global_batch_size // n
  return slice(i * share, (i + 1) * share)


def global_batch(local_batch, sharding: jax.sharding.NamedSharding):
  """A global `jax.Array` pytree from this process's rows (`process_rows`), laid out by `sharding`.

  The rows a process supplies land where its devices sit in the mesh, so the mesh must list each
  process's batch devices as one block, in process order (as `jax.devices()` does on CPU and GPU);
  otherwise the host code that pairs rows with their data would pair them wrongly, so this raises.
  """

  def one(x):
    out = jax.make_array_from_process_local_data(sharding, np.asarray(x))
    held = [s.index[0] for s in out.addressable_shards]
    start, stop = min(s.start or 0 for s in held), max(out.shape[0] if s.stop is None else s.stop for s in held)
    if jax.process_count() > 1 and slice(start, stop) != process_rows(out.shape[0]):
      raise ValueError(f"process {jax.process_index()} holds rows {start}:{stop} of the global batch, not its "
                       f"`process_rows` {process_rows(out.shape[0])}: order the mesh's devices by process.")
    return out

  return jax.tree.map(one, local_batch)


def is_primary() -> bool:
  """Whether this is process 0, the one that writes the files every process would write alike."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Blocks until every process reaches `barrier(name)` (the same name everywhere); nothing in one process."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def host_all(tree):
  """Every row of the `jax.Array`s of `tree` as NumPy, on every process, whatever their sharding.

  In one process `jax.device_get`; otherwise `process_allgather` of each global array, which replicates
  it (a collective: every process must call it, in the same order). An array on this process's devices
  alone already holds every row (computed alike everywhere) and is read as it is.
  """
  if jax.process_count() == 1:
    return jax.device_get(tree)
  def gather(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return multihost_utils.process_allgather(x, tiled=True)
    return np.asarray(x)

  return jax.tree.map(gather, tree)


def host_rows(tree):
  """This process's rows (`process_rows` of the leading axis) of the `jax.Array`s of `tree`, as NumPy."""
  return jax.tree.map(lambda x: x[process_rows(x.shape[0])], host_all(tree))


def gather_rows(tree):
  """The global rows from each process's NumPy rows (equal shapes everywhere), concatenated in process
  order on every process: the inverse of `host_rows`. Scalars become one entry per process."""
  if jax.process_count() == 1:
    return jax.tree.map(np.atleast_1d, tree)
  return multihost_utils.process_allgather(jax.tree.map(np.asarray, tree), tiled=True)


def replicate_host_local(tree, mesh: jax.sharding.Mesh | None = None):
  """The arrays of `tree` made outside jit (a step counter, a fresh RNG key, a freshly built head) placed
  replicated on `mesh`, the rest unchanged: under jax.distributed its host-local arrays become global
  ones (on every device without a mesh); in one process its single-device arrays move onto `mesh` (a
  no-op without one).

  Orbax saves only global arrays in a multi-process run, and a jitted step whose input mixes such arrays
  with mesh-placed ones compiles again once its outputs (all on the mesh) come back. The values must be
  equal on every process: they are declared replicated, not gathered.
  """
  multi = jax.process_count() > 1
  if mesh is None and not multi:
    return tree
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("devices",)) if mesh is None else mesh
  everywhere = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

  def one(x):
    if not isinstance(x, jax.Array):
      return x
    if multi:
      return jax.make_array_from_process_local_data(everywhere, np.asarray(x)) if x.is_fully_addressable else x
    return jax.device_put(x, everywhere) if isinstance(x.sharding, jax.sharding.SingleDeviceSharding) else x

  return jax.tree.map(one, tree)
