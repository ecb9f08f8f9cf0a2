"""What the README states about the code: its loss tables list exactly the registry, the Quickstart is
two commands, and every module, config and file it names exists."""

from __future__ import annotations

import importlib
import re

from rljax import losses
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
  return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_loss_tables_list_exactly_the_registry():
  rows = [line for line in _section("Losses").splitlines() if line.startswith("| `")]
  listed = {name for line in rows for name in re.findall(r"`(\w+)`", line.split("|")[1])}
  assert listed == set(losses.names())
  for line in rows:  # the function column names functions that rljax.losses exports
    for fn in re.findall(r"`(\w+)`", line.split("|")[2]):
      assert hasattr(losses, fn), fn


def test_quickstart_is_two_commands():
  block = _section("Quickstart").split("```bash\n", 1)[1].split("```", 1)[0]
  commands = [line for line in block.splitlines() if line.strip()]
  assert len(commands) == 2
  assert "python -m rljax.run --config configs/rlvr.py:quickstart" in commands[0]
  assert commands[1].endswith("python -m pytest -n 2 -q")


def test_named_modules_configs_and_files_exist():
  for module in set(re.findall(r"python -m ([\w.]+)", README)) - {"pytest"}:
    importlib.import_module(module)
  for path in set(re.findall(r"\b((?:configs|experiments|notebooks|benchmarks|docs|tests)/[\w./]+\.(?:py|ipynb|md|png))",
                             README)):
    assert (ROOT / path).exists(), path
  for name in re.findall(r"rljax\.algorithms\.get\(name\)` returns our preset of\n(.*?) as an", README, re.S)[0].split(","):
    from rljax import algorithms
    algorithms.get(name.strip(" `\n"))
