"""Curricula on the toy-suite testbed: the transformer half of the curricula papers (SEC, DUMP, balanced online
difficulty filtering, GHPO, Train Long Think Short).

One start, then arms × seeds (`rljax.training.testbed`):

  1. SFT of the small decoder on the reference traces of the levels `curricula.sft_levels` of every family
     (30 % wrong answers: the noisy start).
  2. Per arm (an algorithm preset, GRPO by default, and a curriculum config `{"name": ..., options}` of
     `rljax.curricula`) and seed: `rl.steps` online iterations whose prompts' arms — family × level over
     `curricula.train_levels` — the curriculum draws (`Testbed.run_arm(..., curriculum=...)`), its state in the
     checkpoint. Options a factory takes but the config leaves out are filled from the run: `total_steps`
     (`rl.steps`) and `levels` (each training arm's level).
  3. Held-out accuracy every `rl.eval_every` steps on every family × level of the suite, levels harder than any
     trained included (`eval/acc/<family>/d<level>/mean@k`).

`run(cfg, arms)` returns per arm and seed the final accuracy (overall, on the trained levels, on the harder
ones), the accuracy curve, the curriculum's arm probabilities per step (`curriculum/p<arm>`), the prompt batches
generated per step (filters refill), GHPO's stage fractions and the response length; `table_rows` and
`plot_probs` turn them into the papers' tables and probability curves.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from rljax import curricula
from rljax.training.metrics import MetricsWriter, read_metrics
from rljax.training.testbed import Testbed, accuracy, mean_sd, testbed_config


def curriculum_testbed_config(preset: str) -> ml_collections.ConfigDict:
  """`testbed_config(preset)` with four levels per family (three at smoke), training on all but the hardest."""
  c = testbed_config(preset)
  c.task.difficulties = {"smoke": 3, "cpu": 4, "gpu": 6}[preset]
  top = c.task.difficulties - 1
  c.curricula = ml_collections.ConfigDict(dict(train_levels=tuple(range(top)), sft_levels=tuple(range(top))))
  return c


def _arm_ids(tb_or_cfg, levels: Sequence[int]) -> list[int]:
  d = int(tb_or_cfg.task.difficulties)
  return [f * d + lv for f in range(len(tb_or_cfg.task.families)) for lv in levels]


def _check(cfg, arms: Mapping[str, Mapping]) -> None:
  d = int(cfg.task.difficulties)
  for name in ("train_levels", "sft_levels"):
    lv = tuple(cfg.curricula[name])
    if not lv or any(not 0 <= x < d for x in lv) or len(set(lv)) != len(lv):
      raise ValueError(f"`curricula.{name}` must be distinct levels in [0, {d}), got {lv}.")
  if not arms:
    raise ValueError("`arms` must name at least one curriculum arm.")
  for name, spec in arms.items():
    if "curriculum" not in spec:
      raise ValueError(f"arm {name!r} needs a `curriculum` config ({{'name': ...}}).")


def build(cfg, spec: Mapping, num_arms: int, levels: Sequence[int]) -> curricula.Curriculum:
  """The curriculum of one arm's `spec["curriculum"]`, with `total_steps` and `levels` filled from the run."""
  c = spec["curriculum"]
  c = dict(c.to_dict() if hasattr(c, "to_dict") else c)
  factory_params = inspect.signature(curricula.base._REGISTRY[c["name"]]).parameters \
      if c.get("name") in curricula.names() else {}
  if "total_steps" in factory_params and "total_steps" not in c:
    c["total_steps"] = int(cfg.rl.steps)
  if "levels" in factory_params and "levels" not in c:
    c["levels"] = tuple(levels)
  return curricula.make(c, num_arms)


def run(cfg, arms: Mapping[str, Mapping], *, writer: MetricsWriter | None = None) -> dict[str, Any]:
  """SFT start, then every arm × seed (module docstring). `arms`: name → {"curriculum": {...}, "preset": ...}."""
  _check(cfg, arms)
  train = _arm_ids(cfg, cfg.curricula.train_levels)
  d = int(cfg.task.difficulties)
  levels = [a % d for a in train]
  built = {name: build(cfg, spec, len(train), levels) for name, spec in arms.items()}  # fail before compute
  tb = Testbed(cfg, arms=train, eval_arms=range(len(cfg.task.families) * d),
               hint=any(c.hints for c in built.values()))
  own = writer is None
  writer = writer or MetricsWriter(cfg.out_dir)
  start = tb.sft(writer, arms=_arm_ids(cfg, cfg.curricula.sft_levels))
  k = int(cfg.eval.k)
  out = {"arms": list(arms), "seeds": list(cfg.rl.seeds), "k": k, "train_arms": train, "levels": levels,
         "families": list(cfg.task.families), "train_levels": list(cfg.curricula.train_levels),
         "difficulties": d, "start": _scores(tb.eval_fn(start), cfg), "runs": {}}
  for name, spec in arms.items():
    for seed in cfg.rl.seeds:
      tb.run_arm(writer, name, spec.get("preset", "grpo"), seed=int(seed), params=start, curriculum=built[name])
      out["runs"][f"{name}/seed{seed}"] = _record(tb, f"{name}/seed{seed}", cfg, len(train))
  if own:
    writer.close()
  return out


def run_transformer(cfg) -> dict[str, Any] | None:
  """A paper experiment's transformer half: `run(cfg.transformer, cfg.transformer.arms)` written to
  `<cfg.out_dir>/transformer`, or None when the preset has none (`cfg.transformer` None: the smoke preset)."""
  t = cfg.get("transformer")
  if not t:
    return None
  t.out_dir = os.path.join(cfg.out_dir, "transformer")
  with jax.enable_x64(False):  # float32 like every testbed run, whatever the paper's exact half asked for
    return run(t, t.arms.to_dict())


def _scores(metrics: Mapping[str, float], cfg) -> dict[str, float]:
  """mean@k overall, on the trained levels and on the harder ones (means over families), and the length."""
  k, d = int(cfg.eval.k), int(cfg.task.difficulties)
  per = lambda lv: float(np.mean([accuracy(metrics, k, f"{f}/d{lv}")["mean"] for f in cfg.task.families]))
  trained = set(cfg.curricula.train_levels)
  harder = [lv for lv in range(d) if lv > max(trained)]
  a = accuracy(metrics, k)
  return {"all": a["mean"], "greedy": a["greedy"], "length": a["length"],
          "trained": float(np.mean([per(lv) for lv in sorted(trained)])),
          "harder": float(np.mean([per(lv) for lv in harder])) if harder else float("nan"),
          "per_level": [per(lv) for lv in range(d)]}


def _record(tb: Testbed, phase: str, cfg, num_arms: int) -> dict[str, Any]:
  m = read_metrics(tb.workdir, phase=phase)
  k = int(cfg.eval.k)
  by_step = lambda key: sorted({x["step"]: x[key] for x in m if key in x}.items())
  stages = sorted({key for x in m for key in x if key.startswith("ghpo/stage")})
  return {"final": _scores(tb.last_eval(phase), cfg),
          "accuracy": by_step(f"eval/acc/all/mean@{k}"),
          "probs": np.asarray([[v for _, v in by_step(f"curriculum/p{a}")] for a in range(num_arms)]).T,
          "gen_batches": [v for _, v in by_step("gen_batches")],
          "reward": [v for _, v in by_step("reward_mean")],
          "length": [v for _, v in by_step("response_length")],
          "stages": np.asarray([[v for _, v in by_step(s)] for s in stages]).T if stages else None}


def table_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
  """One row per arm: final held-out mean@k (overall, trained levels, harder levels) as mean ± sd over seeds,
  prompt batches generated per step, and the final rollout response length."""
  rows = []
  for name in results["arms"]:
    runs = [results["runs"][f"{name}/seed{s}"] for s in results["seeds"]]
    row = {"arm": name, "seeds": len(runs)}
    for key in ("all", "trained", "harder", "greedy", "length"):
      row[key], row[f"{key}_sd"] = mean_sd([r["final"][key] for r in runs])
    row["batches"] = float(np.mean([np.mean(r["gen_batches"]) for r in runs]))
    rows.append(row)
  return rows


# `str.format` templates of `table_rows`' columns (for `experiments.cli.Table`).
COLUMNS = {"arm": "{arm}", "seeds": "{seeds}", "held-out mean@k, all levels": "{all:.3f} ± {all_sd:.3f}",
           "trained levels": "{trained:.3f} ± {trained_sd:.3f}", "harder levels": "{harder:.3f} ± {harder_sd:.3f}",
           "greedy": "{greedy:.3f}", "length": "{length:.2f}", "prompt batches / step": "{batches:.2f}"}


def table_args(results: Mapping[str, Any] | None, title: str) -> list[dict[str, Any]]:
  """`[dict(rows, columns, title, name="transformer")]` for an `experiments.cli.Table` of the transformer half, or
  `[]` when the run has none (the smoke preset)."""
  return [dict(rows=table_rows(results), columns=COLUMNS, title=title, name="transformer")] if results else []


def gain(results: Mapping[str, Any], arm: str, base: str, scope: str = "all") -> float:
  """Final held-out mean@k of `arm` minus `base`'s on `scope` (all, trained, harder), seed means."""
  final = lambda a: np.mean([results["runs"][f"{a}/seed{s}"]["final"][scope] for s in results["seeds"]])
  return float(final(arm) - final(base))


def mean_depth_drift(results: Mapping[str, Any], arm: str) -> float:
  """Mean level under the curriculum's probabilities, last third of training minus first third (seed mean):
  > 0 when the curriculum's mass moves to harder levels."""
  lv = np.asarray(results["levels"], np.float64)
  drifts = []
  for s in results["seeds"]:
    p = results["runs"][f"{arm}/seed{s}"]["probs"]
    third = max(len(p) // 3, 1)
    drifts.append(float((p[-third:] @ lv).mean() - (p[:third] @ lv).mean()))
  return float(np.mean(drifts))


def plot_accuracy(ax, results: Mapping[str, Any]) -> None:
  """Held-out mean@k (all levels) along training per arm, seed means, from the SFT start."""
  for name in results["arms"]:
    curves = [results["runs"][f"{name}/seed{s}"]["accuracy"] for s in results["seeds"]]
    steps = [st for st, _ in curves[0]]
    ax.plot([0] + steps, [results["start"]["all"]] + list(np.mean([[v for _, v in c] for c in curves], 0)),
            marker="o", ms=3, label=name)
  ax.set_xlabel("RL step")
  ax.set_ylabel("held-out mean@k")
  ax.set_title("transformer: held-out accuracy")
  ax.legend(fontsize=7)


def plot_curve(ax, results: Mapping[str, Any], key: str, ylabel: str) -> None:
  """A per-step record (`gen_batches`, `reward`, `length`) along training per arm, seed means."""
  for name in results["arms"]:
    ax.plot(np.mean([results["runs"][f"{name}/seed{s}"][key] for s in results["seeds"]], 0), label=name)
  ax.set_xlabel("RL step")
  ax.set_ylabel(ylabel)
  ax.set_title(f"transformer: {ylabel}")
  ax.legend(fontsize=7)


def plot_probs(ax, results: Mapping[str, Any], arm: str) -> None:
  """The arm's curriculum probability per level along training (seed mean, summed over families)."""
  lv = np.asarray(results["levels"])
  p = np.mean([results["runs"][f"{arm}/seed{s}"]["probs"] for s in results["seeds"]], axis=0)
  for level in sorted(set(lv.tolist())):
    ax.plot(p[:, lv == level].sum(axis=1), label=f"level {level}")
  ax.set_xlabel("RL step")
  ax.set_ylabel("P(level)")
  ax.set_title(f"{arm}: curriculum over levels")
  ax.legend(fontsize=7)


__all__ = ["COLUMNS", "build", "curriculum_testbed_config", "gain", "mean_depth_drift", "plot_accuracy", "plot_curve",
           "plot_probs", "run_transformer",
           "run", "table_rows"]
