"""Command-line entry shared by the experiment modules: an ml_collections config file with presets."""

from __future__ import annotations

import os
from typing import Callable

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")


def launch(main: Callable, config_file: str, presets: str) -> None:
  """Runs `main(config)` under absl with `--config=configs/<config_file>[:preset]` and overrides."""
  from absl import app
  from ml_collections import config_flags

  flag = config_flags.DEFINE_config_file(
      "config", os.path.join(CONFIG_DIR, config_file), f"experiment config; `path:preset` picks {presets}"
  )
  app.run(lambda argv: main(flag.value))
