"""The paper index (`rljax.papers`): every entry is complete, every paper's files share its name, and
the README table and the docs pages are what the index generates."""

from __future__ import annotations

import importlib
import json
import re

import pytest

from rljax import papers
from tests.helpers import ROOT

# Experiments that are not papers: the main job and a kernel check (no index entry, no notebook).
NOT_PAPERS = {"rlvr", "sentiment_dpo", "bandit_pg_checks"}
INDEX = papers.load()


def _stems(folder: str, pattern: str, prefix: str = "") -> set[str]:
  return {p.stem[len(prefix):] for p in (ROOT / folder).glob(pattern) if not p.stem.startswith("_")}


@pytest.mark.parametrize("key", list(INDEX))
def test_entry_is_complete_and_its_files_share_its_name(key):
  p = INDEX[key]
  assert p.title and p.authors and p.predicted and 1990 < p.year <= 2026, key
  assert re.fullmatch(r"\d{4}\.\d{4,5}", p.arxiv), (key, p.arxiv)
  importlib.import_module(p.module)
  if not p.experiment:
    assert not p.claims, f"{key} is kernel only but predicts claims"
    return
  # rljax/<area>/<key>.py (theory papers under rljax/theory/<area>/), configs/, experiments/,
  # notebooks/ and tests/papers/ all named by the key.
  parts = p.module.split(".")
  assert parts[0] == "rljax" and (parts[-1] == key or p.shared_module), p.module
  assert len(parts) == (4 if parts[1] == "theory" else 3), f"{p.module}: not rljax/<area>/{key}.py"
  for path in (f"{'/'.join(parts)}.py", f"configs/{key}.py", f"experiments/{key}.py",
               f"notebooks/{key}.ipynb", f"tests/papers/test_{key}.py"):
    assert (ROOT / path).exists(), f"{key}: missing {path}"
  assert len({c.name for c in p.claims}) == len(p.claims), f"{key}: duplicate claim names"


def test_every_experiment_notebook_and_paper_test_is_indexed():
  with_experiment = {k for k, p in INDEX.items() if p.experiment}
  assert _stems("experiments", "*.py") - {"cli", "slopes"} - NOT_PAPERS == with_experiment
  assert _stems("configs", "*.py") - NOT_PAPERS == with_experiment
  assert _stems("notebooks", "*.ipynb") == with_experiment
  assert _stems("tests/papers", "test_*.py", "test_") == with_experiment


def test_no_paper_module_at_the_top_of_theory():
  assert {p.name for p in (ROOT / "rljax" / "theory").glob("*.py")} == {"__init__.py"}


def test_readme_table_is_generated_from_the_index():
  readme = (ROOT / "README.md").read_text()
  assert readme.count(papers.README_START) == 1 and readme.count(papers.README_END) == 1
  assert papers.readme_with_table(readme, INDEX) == readme, "run `python -m rljax.papers --write`"
  lines = readme.splitlines()
  for key, p in INDEX.items():  # one line per paper, linking to its page
    assert sum(p.title in line and p.cite in line for line in lines) == 1, key
    assert (f"(docs/papers/{key}.md)" in readme) == p.experiment, key


def test_docs_pages_are_generated_from_the_index():
  for path in sorted((ROOT / "docs" / "papers").glob("*.md")):
    p = INDEX[path.stem]
    assert path.read_text() == papers.page(p), f"{path.name} is stale: run `python -m rljax.papers --write`"
  for path in sorted((ROOT / "docs" / "papers").glob("*.json")):
    summary = json.loads(path.read_text())
    assert summary["paper"] == path.stem and set(summary["measured"]) == {c.name for c in INDEX[path.stem].claims}


def test_status_rules():
  claims = (papers.Claim("a", "", (0.0, 1.0)), papers.Claim("b", "", (2.0, 3.0), smoke=(1.0, 3.0)))
  assert papers.status(claims, {"a": 0.5, "b": 2.5}) == "reproduced"
  assert papers.status(claims, {"a": 0.5, "b": 1.5}) == "differs"
  assert papers.status(claims, {"a": 0.5, "b": 1.5}, smoke=True) == "reproduced"
  assert papers.status(claims, {"a": 5.0, "b": float("nan")}) == "not reproduced"
  assert papers.status(claims, {"a": 0.5}) == "differs"  # a missing measurement never holds


def test_bad_entries_are_refused(tmp_path):
  base = 'title = "t"\nauthors = "a"\nyear = 2024\narxiv = "2401.00001"\nmodule = "rljax.checks"\npredicted = "p"\n'
  (tmp_path / "x.toml").write_text(base + 'colour = "red"\n')
  with pytest.raises(ValueError, match="unknown fields"):
    papers.load(tmp_path)
  (tmp_path / "x.toml").write_text(base)
  with pytest.raises(ValueError, match="predicts no claim"):
    papers.load(tmp_path)
  (tmp_path / "x.toml").write_text(base + '[[claims]]\nname = "c"\ntext = "t"\nband = [1.0, 0.0]\n')
  with pytest.raises(ValueError, match="lo <= hi"):
    papers.load(tmp_path)
  with pytest.raises(KeyError, match="known"):
    papers.get("no_such_paper")


def test_command_line_filters(capsys):
  papers.main(["--status", "kernel only"])
  out = capsys.readouterr().out
  kernels = [k for k, p in INDEX.items() if not p.experiment]
  assert kernels and all(k in out for k in kernels) and f"{len(kernels)} papers" in out
  papers.main(["--search", "nash"])
  out = capsys.readouterr().out
  assert "nash_md" in out and "did " not in out
