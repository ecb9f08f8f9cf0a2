"""Multi-host setup through `jax.distributed` and per-process data sharding.

`maybe_initialize()` calls `jax.distributed.initialize` when the process was started with the
coordinator environment variables (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID) or
under a cluster jax detects itself (SLURM, Cloud TPU, Kubernetes...); a single process does nothing.
Each process then loads only its rows of a global batch (`process_rows`), and
`global_batch` assembles the global `jax.Array` from the per-process pieces, so the train step sees
the same global batch whatever the number of processes.
"""

from __future__ import annotations

import os

import jax
import numpy as np

_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def maybe_initialize() -> bool:
  """Initialises `jax.distributed` from the environment; returns whether it did."""
  if not all(v in os.environ for v in _ENV):
    return False
  # CPU devices exchange collectives through gloo (GPU/TPU backends ignore this option). Nothing
  # here may touch the backend before `initialize`.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
                             num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                             process_id=int(os.environ["JAX_PROCESS_ID"]))
  return True


def process_rows(global_batch_size: int) -> slice:
  """The rows of a global batch that this process loads (contiguous, equal shares)."""
  n, i = jax.process_count(), jax.process_index()
  if global_batch_size % n:
    raise ValueError(f"global batch {global_batch_size} does not split over {n} processes.")
  share = global_batch_size // n
  return slice(i * share, (i + 1) * share)


def global_batch(local_batch, sharding: jax.sharding.NamedSharding):
  """A global `jax.Array` pytree from this process's rows (`process_rows`), laid out by `sharding`."""
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)
