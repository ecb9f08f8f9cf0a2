"""The paper index: every paper rljax implements, what it predicts, what we measured, and its status.

    python -m rljax.papers                         # every paper, one line each
    python -m rljax.papers --status differs        # only those whose measurement misses a prediction
    python -m rljax.papers --search nash           # title, authors, key or claim containing a word
    python -m rljax.papers --write                 # regenerate docs/papers/*.md and the README's table
    python -m rljax.papers --publish KEY WORKDIR   # record a run (summary.json, figure), then --write

The entries are data, one TOML file per paper in `rljax/paper_index/<key>.toml`, named by the paper's
stem: its module `rljax/<area>/<key>.py`, `configs/<key>.py`, `experiments/<key>.py`,
`notebooks/<key>.ipynb` and `tests/papers/test_<key>.py` share it. Fields: `title`, `authors`,
`year`, `arxiv`, `venue`; `module` (where the method lives); `predicted` (the headline prediction in
words); `experiment = false` for a kernel without an experiment; `note` (where the measurement
differs from the prediction, and why); `shared_module = true` when the method lives in shared code
named for what it holds (the survey's advantage kernels, the Lite PPO preset); and `[[claims]]`, the
predicted numbers, each with a `name` (a key of the experiment's `headline()`), a `text`, a
`band = [lo, hi]` and optionally a looser `smoke = [lo, hi]` that the tests' small run must reach (`at_smoke =
false`: a claim only the cpu and gpu presets measure, e.g. a transformer half too slow for the tests).

What was measured is not typed in by hand: `--publish` copies the `summary.json` of a run (normally
the `full` preset) to `docs/papers/<key>.json`, and the status follows from it:

* `reproduced`: every claim's measured value lies in its predicted band;
* `differs`: some do and some do not (the page and the entry's `note` say where and why);
* `not reproduced`: no claim lands in its band, or no run has been recorded yet;
* `kernel only`: the paper's loss or update rule is implemented and tested, without an experiment.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import shutil
import sys
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

STATUSES = ("reproduced", "differs", "not reproduced", "kernel only")
ROOT = pathlib.Path(__file__).resolve().parents[1]  # the repository (docs/ and README.md live there)
INDEX = pathlib.Path(__file__).with_name("paper_index")
# README and `python -m rljax.papers` order: LM losses and training recipes first, then the theory
# areas, each by year.
AREAS = ("losses", "algorithms", "training", "curricula", "schedules", "preference", "pg", "games", "experts", "bandits",
         "linear_mdp", "tabular", "ct", "stats")
DOCS = ROOT / "docs" / "papers"
FIGURES = ROOT / "docs" / "figures"
README_START, README_END = "<!-- papers:start -->", "<!-- papers:end -->"


@dataclasses.dataclass(frozen=True)
class Claim:
  """One predicted number: `text` says what it is, `band` where the paper puts it."""

  name: str
  text: str
  band: tuple[float, float]
  smoke: tuple[float, float] | None = None  # what the tests' smoke-size run must reach, when looser
  at_smoke: bool = True  # False: measured only at the cpu / gpu presets (a part too slow for the tests' run)

  def holds(self, value: float | None, *, smoke: bool = False) -> bool:
    if smoke and not self.at_smoke:
      return True
    lo, hi = self.smoke if smoke and self.smoke is not None else self.band
    return value is not None and math.isfinite(value) and lo <= value <= hi


@dataclasses.dataclass(frozen=True)
class Paper:
  key: str
  title: str
  authors: str
  year: int
  arxiv: str
  module: str
  predicted: str  # the headline prediction in words
  experiment: bool = True  # False: kernel only
  venue: str = ""
  claims: tuple[Claim, ...] = ()
  note: str = ""  # where and why the measurement differs from the prediction
  # The method is shared machinery named for what it holds (a survey's canonical kernels, a preset of known
  # tricks), not a module of the paper's own: `module` then need not carry the key.
  shared_module: bool = False

  @property
  def summary(self) -> dict[str, Any] | None:
    """The recorded run (`docs/papers/<key>.json`), or None."""
    path = DOCS / f"{self.key}.json"
    return json.loads(path.read_text()) if path.exists() else None

  @property
  def measured(self) -> dict[str, float]:
    s = self.summary
    return dict(s["measured"]) if s else {}

  @property
  def status(self) -> str:
    if not self.experiment:
      return "kernel only"
    return status(self.claims, self.measured) if self.summary else "not reproduced"

  @property
  def area(self) -> str:
    """The package under `rljax` (`losses` for `rljax.losses.*`), or the theory area of
    `rljax.theory.<area>.*`."""
    parts = self.module.split(".")
    return parts[2] if parts[1] == "theory" else parts[1]

  @property
  def cite(self) -> str:
    return f"{self.authors} ({self.year})"


def status(claims: Sequence[Claim], measured: Mapping[str, float | None], *, smoke: bool = False) -> str:
  """`reproduced` when every claim holds, `not reproduced` when none does, `differs` otherwise."""
  held = [c.holds(measured.get(c.name), smoke=smoke) for c in claims]
  if held and all(held):
    return "reproduced"
  return "differs" if any(held) else "not reproduced"


def _parse(key: str, raw: Mapping[str, Any]) -> Paper:
  raw = dict(raw)
  claims = tuple(Claim(name=c["name"], text=c["text"], band=tuple(c["band"]),
                       smoke=tuple(c["smoke"]) if "smoke" in c else None,
                       at_smoke=bool(c.get("at_smoke", True))) for c in raw.pop("claims", ()))
  unknown = set(raw) - {f.name for f in dataclasses.fields(Paper)}
  if unknown:
    raise ValueError(f"paper {key!r}: unknown fields {sorted(unknown)} in {INDEX.name}/{key}.toml.")
  paper = Paper(key=key, claims=claims, **raw)
  for c in claims:
    if not c.band[0] <= c.band[1] or (c.smoke and not c.smoke[0] <= c.smoke[1]):
      raise ValueError(f"paper {key!r}, claim {c.name!r}: a band must be [lo, hi] with lo <= hi.")
  if paper.experiment and not claims:
    raise ValueError(f"paper {key!r} has an experiment but predicts no claim.")
  return paper


def load(path: pathlib.Path = INDEX) -> dict[str, Paper]:
  """Every entry of the index, ordered by area (`AREAS`), year and key."""
  entries = []
  for file in sorted(path.glob("*.toml")):
    with open(file, "rb") as f:
      entries.append(_parse(file.stem, tomllib.load(f)))
  rank = lambda p: (AREAS.index(p.area) if p.area in AREAS else len(AREAS), p.year, p.key)
  return {p.key: p for p in sorted(entries, key=rank)}


def get(key: str) -> Paper:
  """The entry of one paper; a KeyError lists the known keys otherwise."""
  papers = load()
  try:
    return papers[key]
  except KeyError:
    raise KeyError(f"unknown paper {key!r}; known: {', '.join(papers)}") from None


def predicted(paper: Paper) -> dict[str, dict[str, Any]]:
  """The `predicted` block of a summary: each claim's text and band."""
  return {c.name: {"text": c.text, "band": list(c.band)} for c in paper.claims}


# ------------------------------------------------------------------------------------------ rendering


def fmt(value: float | None) -> str:
  """A measured number with three significant digits (scientific when tiny or huge)."""
  if value is None or not math.isfinite(value):
    return "—"
  if value != 0 and not 1e-3 <= abs(value) < 1e4:
    return f"{value:.2e}"
  return f"{value:.3g}"


def claim_line(paper: Paper) -> str:
  """`claim: measured (band)` for each claim of the recorded run, `✓` where it holds."""
  measured = paper.measured
  if not paper.experiment:
    return "kernel, no experiment yet"
  if not measured:
    return "no recorded run"
  parts = []
  for c in paper.claims:
    v = measured.get(c.name)
    parts.append(f"{c.name} {fmt(v)} [{fmt(c.band[0])}, {fmt(c.band[1])}] {'✓' if c.holds(v) else '✗'}")
  return "; ".join(parts)


def held(paper: Paper) -> str:
  """`k of n` claims of the recorded run in their bands (`—` without one)."""
  if not paper.experiment or not paper.measured:
    return "—"
  n = sum(c.holds(paper.measured.get(c.name)) for c in paper.claims)
  return f"{n} of {len(paper.claims)}"


def readme_table(papers: Mapping[str, Paper]) -> str:
  """One line per paper: area, title (linked to its page), authors, status, claims in band."""
  rows = ["| area | paper | authors | status | claims in band |", "|---|---|---|---|---|"]
  for p in papers.values():
    title = f"[{p.title}](docs/papers/{p.key}.md)" if p.experiment else f"{p.title} (`{p.module}`)"
    rows.append(f"| {p.area} | {title} | {p.cite} | {p.status} | {held(p)} |")
  return "\n".join(rows)


def page(paper: Paper) -> str:
  """`docs/papers/<key>.md`: claim, command, figure, predicted-vs-measured, where it differs, tables."""
  s = paper.summary
  when = paper.venue if str(paper.year) in paper.venue else f"{paper.venue} {paper.year}".strip()
  lines = [f"# {paper.title}", "",
           f"{paper.authors}, {when} "
           f"([arXiv:{paper.arxiv}](https://arxiv.org/abs/{paper.arxiv})). Status: **{paper.status}**.", "",
           f"**Predicted.** {paper.predicted}", "",
           f"**Code.** `{paper.module}` · `experiments/{paper.key}.py` · `configs/{paper.key}.py` · "
           f"`notebooks/{paper.key}.ipynb` · `tests/papers/test_{paper.key}.py`", "",
           f"**Run.** `python -m rljax.run --config configs/{paper.key}.py:{s['preset'] if s else 'full'} "
           f"--workdir results/{paper.key}`", ""]
  if (FIGURES / f"{paper.key}.png").exists():
    lines += [f"![{paper.key}](../figures/{paper.key}.png)", ""]
  lines += ["| claim | predicted | measured | |", "|---|---|---|---|"]
  for c in paper.claims:
    v = paper.measured.get(c.name)
    lines.append(f"| {c.text} | [{fmt(c.band[0])}, {fmt(c.band[1])}] | {fmt(v)} | {'✓' if c.holds(v) else '✗'} |")
  lines.append("")
  if paper.note:
    lines += [f"**Where it differs.** {paper.note}", ""]
  if s:
    lines += [f"Recorded run: preset `{s['preset']}`.", "", s.get("table", "").strip(), ""]
  return "\n".join(lines).rstrip() + "\n"


def readme_with_table(text: str, papers: Mapping[str, Paper]) -> str:
  head, rest = text.split(README_START, 1)
  _, tail = rest.split(README_END, 1)
  return f"{head}{README_START}\n{readme_table(papers)}\n{README_END}{tail}"


def write_docs(papers: Mapping[str, Paper] | None = None) -> list[pathlib.Path]:
  """Regenerates `docs/papers/<key>.md` for every paper with an experiment and the README table."""
  papers = load() if papers is None else papers
  DOCS.mkdir(parents=True, exist_ok=True)
  written = []
  for p in papers.values():
    if p.experiment:
      path = DOCS / f"{p.key}.md"
      path.write_text(page(p))
      written.append(path)
  readme = ROOT / "README.md"
  readme.write_text(readme_with_table(readme.read_text(), papers))
  return written + [readme]


def publish(key: str, workdir: str | pathlib.Path) -> None:
  """Records the run in `workdir` as the paper's measurement: its summary.json and figure."""
  paper, workdir = get(key), pathlib.Path(workdir)
  summary = json.loads((workdir / "summary.json").read_text())
  if summary.get("paper") != key:
    raise ValueError(f"{workdir}/summary.json is a run of {summary.get('paper')!r}, not {key!r}.")
  DOCS.mkdir(parents=True, exist_ok=True)
  FIGURES.mkdir(parents=True, exist_ok=True)
  (DOCS / f"{key}.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
  if (workdir / f"{key}.png").exists():
    shutil.copyfile(workdir / f"{key}.png", FIGURES / f"{key}.png")
  print(f"{paper.key}: {paper.status} ({claim_line(paper)})")


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m rljax.papers", description=__doc__.split("\n")[0])
  parser.add_argument("--status", choices=STATUSES, help="only papers with this status")
  parser.add_argument("--search", help="only papers whose key, title, authors or prediction contain this word")
  parser.add_argument("--write", action="store_true", help="regenerate docs/papers/*.md and the README table")
  parser.add_argument("--publish", nargs=2, metavar=("KEY", "WORKDIR"), help="record a run, then regenerate")
  args = parser.parse_args(argv)
  if args.publish:
    publish(*args.publish)
  if args.publish or args.write:
    for path in write_docs():
      print(f"wrote {path.relative_to(ROOT)}")
    return 0
  papers = list(load().values())
  if args.status:
    papers = [p for p in papers if p.status == args.status]
  if args.search:
    word = args.search.lower()
    papers = [p for p in papers if any(word in x.lower() for x in (p.key, p.title, p.authors, p.predicted))]
  for p in papers:
    print(f"{p.key:<22} {p.status:<15} {p.year}  {p.title} — {p.cite}")
    print(f"{'':<22} predicted: {p.predicted}")
    print(f"{'':<22} measured:  {claim_line(p)}")
  print(f"{len(papers)} paper{'s' if len(papers) != 1 else ''}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
