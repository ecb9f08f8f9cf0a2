"""Command line for every experiment: an ml_collections config file, a work directory, overrides.

    python -m rljax.run --config configs/<name>.py[:preset] --workdir DIR [--config.<field>=<value> ...]
                        [--distributed]

The module `experiments.<name>` (the config file's stem) runs through the shared experiment
template, `experiments.cli.execute`, with `config.out_dir` set to DIR: it writes the tables, the
figure and `summary.json` there. Overrides are parsed and type-checked by `ml_collections.config_flags`
before any computation: an unknown field or a value of the wrong type is an error. When the standard
multi-process environment variables are set (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID),
or with `--distributed` on a cluster jax detects (Cloud TPU, SLURM, Open MPI), `jax.distributed` is
initialised first and every process runs the experiment on its share of each batch; process 0 writes
the outputs (see `rljax.training.distributed` and the README's Multi-host section). `experiments` and
`configs` are packages of the repository, importable after `pip install -e .`.
"""

from __future__ import annotations

import importlib
import os

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file, `path[:preset]`",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for metrics, checkpoints and plots")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "initialise jax.distributed from the cluster jax detects "
                                 "(Cloud TPU, SLURM, Open MPI) when the JAX_* variables are not set")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from absl import logging

  from rljax.training import distributed

  logging.set_verbosity(logging.WARNING)  # orbax reports every save at INFO
  distributed.maybe_initialize(auto=_DISTRIBUTED.value)
  config = _CONFIG.value
  if "out_dir" not in config:
    raise app.UsageError("the config has no `out_dir` field for --workdir to set.")
  with config.unlocked():
    config.out_dir = _WORKDIR.value
  stem = os.path.splitext(os.path.basename(flags.FLAGS["config"].config_filename.split(":")[0]))[0]
  cli = importlib.import_module("experiments.cli")
  cli.execute(importlib.import_module(f"experiments.{stem}"), config)


if __name__ == "__main__":
  app.run(main)
