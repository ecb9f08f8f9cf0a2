"""Command line for every experiment: an ml_collections config file, a work directory, overrides.

    python -m rljax.run --config configs/<name>.py[:preset] --workdir DIR [--config.<field>=<value> ...]

The module `experiments.<name>` (the config file's stem) runs through the shared experiment
template, `experiments.cli.execute`, with `config.out_dir` set to DIR: it writes the tables, the
figure and `summary.json` there. Overrides are parsed and type-checked by `ml_collections.config_flags`
before any computation: an unknown field or a value of the wrong type is an error. When the standard
multi-process environment variables are set, `jax.distributed` is initialised first (see
`rljax.training.distributed`). `experiments` and `configs` are packages of the repository, importable
after `pip install -e .`.
"""

from __future__ import annotations

import importlib
import os

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file, `path[:preset]`",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for metrics, checkpoints and plots")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from absl import logging

  from rljax.training import distributed

  logging.set_verbosity(logging.WARNING)  # orbax reports every save at INFO
  distributed.maybe_initialize()
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
