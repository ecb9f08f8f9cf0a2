"""DUMP: distribution-level curriculum with UCB (Wang et al. 2025, arXiv 2504.09710), part A: the skill chain.

Question: a training mixture of K distributions over-represents easy data. Does scheduling the distributions by
a UCB on their recent mean |advantage| (DUMP, `rljax.curricula.dump`) move the sampling mass from shallow to
deep distributions as they become learnable, and does it reach higher success on the hardest distributions
than drawing prompts uniformly from the pool, at equal optimiser steps? The paper (K&K puzzles, 12
distributions of 3–14 characters) predicts both, with the largest gains on the 6–12 character puzzles.

Arms (`configs/dump.py`): GRPO (G = 8, B = 16, Adam 0.02, θ0 = 1) on the 12-step skill chain
(`rljax.theory.curricula.chain_rl`) with one distribution per depth 1–12; the pool holds three times as many
prompts of depths 1–6 as of depths 7–12. "pool": a prompt uniformly from the pool (`uniform` with
weights = pool sizes); "uniform": a distribution uniformly; "dump": W = 300, τ = 0.1, c = 1, n counted in
responses (the released code); "sec": SEC (α = 0.5, τ = 0.2) when `rljax.curricula.sec` is present.
Measured: exact P(solved | d) for every depth after every step, the curricula's P_j per step, and the parity of
DUMP's probabilities with a NumPy port of the reference controller (tests/curricula/test_dump.py), replayed on the
Feedback every seed of the DUMP run produced (the port, `RefSampler` below, is also the unit tests' oracle).

The start matters. θ0 = 1 puts the chain where the paper's model starts (shallow distributions mostly solved,
deep ones rarely). From θ0 = 0 (depth 1 a coin flip, the SEC target's start) DUMP first concentrates on depths
1–3, where |A| is largest, while the deep steps of the chain get no gradient; with Adam every coordinate moves at
about the learning rate once its gradient is consistent, so the uniform arms, which keep some deep groups with
mixed outcomes in every batch, stay ahead (an exploratory run, 8 seeds, 300 steps, B = 16, lr 0.02: deep success
0.871 for DUMP against 0.889 for the pool at the end, 0.185 against 0.536 at step 150).

    python -m rljax.run --config configs/dump.py:cpu --workdir results/notebooks/dump_cpu
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from experiments import cli
from rljax import curricula
from rljax.theory.curricula import chain_rl
from rljax.training import curriculum_testbed as ct

REQUIRED = ("pool", "dump")


def _check(cfg) -> None:
  names = tuple(cfg.arm_names)
  if not set(REQUIRED) <= set(names) or len(set(names)) != len(names):
    raise ValueError(f"`arm_names` must be distinct and include {REQUIRED}, got {names}.")
  missing = [n for n in names if n not in cfg.arms]
  if missing:
    raise ValueError(f"`arms` has no curriculum config for {missing}.")
  k = len(cfg.chain.train_depths)
  if len(cfg.pool_sizes) != k or min(cfg.pool_sizes) <= 0:
    raise ValueError(f"`pool_sizes` must give a positive size for each of the {k} depths, got {cfg.pool_sizes}.")
  if not set(cfg.deep_depths) <= set(cfg.chain.eval_depths):
    raise ValueError(f"`deep_depths` {tuple(cfg.deep_depths)} must be among `chain.eval_depths`.")
  for name in ("early_fraction", "late_fraction"):
    if not 0.0 < float(cfg[name]) <= 0.5:
      raise ValueError(f"`{name}` must be in (0, 0.5], got {cfg[name]}.")
  if int(cfg.seeds) < 1:
    raise ValueError(f"`seeds` must be >= 1, got {cfg.seeds}.")
  if not cfg.chain.get("record_feedback", False):
    raise ValueError("`chain.record_feedback` must be True (the parity replay reads the DUMP run's Feedback).")


def _curriculum(cfg, name: str) -> curricula.Curriculum:
  opts = {"weights": tuple(cfg.pool_sizes)} if name == "pool" else {}
  return curricula.make(cfg.arms[name], len(cfg.chain.train_depths), **opts)


# ------------------------------------------------------ the NumPy port of the reference controller (test oracle)
class RefEstimator:
  """`LearnabilityEstimator` of ZhentingWang/DUMP `verl/utils/curriculum_learning.py`, the fields that reach the
  weights: a list window truncated to its last `window_size` entries after each extend, mu = mean |window|,
  n_samples += number of values (one per response: the trainer pushes every response)."""

  def __init__(self, window_size: int = 300):
    self.window_size, self.mu, self.n_samples, self.recent_advantages = window_size, 0.0, 0, []

  def update(self, rewards, advantages) -> None:
    n = len(rewards)
    if n == 0:
      return
    self.recent_advantages.extend(advantages.tolist())
    if len(self.recent_advantages) > self.window_size:
      self.recent_advantages = self.recent_advantages[-self.window_size:]
    self.mu = np.mean(np.abs(np.array(self.recent_advantages)))
    self.n_samples += n


class RefSampler:
  """`CurriculumSampler` (initial weights 1/K, `update_weights`) with `CurriculumController.compute_sampling_weights`:
  total = max(1, Σ n), score = mu + 1.0·sqrt(2 ln(total + 1)/(n + 1)), weights = exp((score − max)/0.1) normalised.
  `update_weights(source_rewards, source_advantages)` takes dicts source → list of per-response values."""

  def __init__(self, sources, window_size: int = 300):
    self.sources = list(sources)
    self.estimators = {s: RefEstimator(window_size) for s in self.sources}
    self.weights = {s: 1.0 / len(self.sources) for s in self.sources}

  def update_weights(self, source_rewards, source_advantages) -> None:
    for s in source_rewards:
      if s in self.estimators:
        self.estimators[s].update(np.array(source_rewards[s]), np.array(source_advantages[s]))
    total = max(1, sum(e.n_samples for e in self.estimators.values()))
    scores = np.array([e.mu + 1.0 * np.sqrt(2 * np.log(total + 1) / (e.n_samples + 1))
                       for e in (self.estimators[s] for s in self.sources)])
    e = np.exp((scores - scores.max()) / 0.1)
    self.weights = dict(zip(self.sources, e / e.sum()))


def reference_parity(rec, num_arms: int, window: int) -> float:
  """max over seeds and steps of |P_kernel − P_reference|: the NumPy port of the reference controller
  (`RefSampler`) is fed every step's valid responses, per source in batch order, and its weights are compared
  with the probabilities the kernel used at the next step (`probs` is recorded before each update)."""
  worst = 0.0
  arms, adv, valid, probs = rec["arm_ids"], rec["advantages"], rec["valid"], rec["probs"]
  for s in range(arms.shape[0]):
    ref = RefSampler(range(num_arms), window_size=window)
    for t in range(arms.shape[1]):
      p_ref = np.array([ref.weights[j] for j in range(num_arms)])
      worst = max(worst, float(np.abs(probs[s, t] - p_ref).max()))
      src: dict[int, list[float]] = {}
      for b in np.flatnonzero(valid[s, t]):
        src.setdefault(int(arms[s, t, b]), []).extend(adv[s, t, b].astype(np.float32).astype(np.float64).tolist())
      ref.update_weights(src, src)  # (the rewards only set the count, one per response)
  return worst


def run(cfg) -> dict[str, Any]:
  """Per arm, `[seeds, steps, ...]` arrays: `success` (exact P(solved) per eval depth), `probs` (P_j before each
  step), `zero_adv`; the DUMP run's parity with the reference port; the transformer half (cpu and gpu presets)."""
  _check(cfg)
  chain = cfg.chain
  names = list(cfg.arm_names)
  out: dict[str, Any] = {"arm_names": tuple(names), "transformer": ct.run_transformer(cfg),
                         "train_depths": tuple(chain.train_depths), "eval_depths": tuple(chain.eval_depths),
                         "deep_depths": tuple(cfg.deep_depths), "pool_sizes": tuple(cfg.pool_sizes),
                         "early_fraction": float(cfg.early_fraction), "late_fraction": float(cfg.late_fraction),
                         "arms": {}}
  for name in names:
    _, _, rec = chain_rl.run_seeds(chain, _curriculum(cfg, name), int(cfg.seeds))
    out["arms"][name] = {"success": rec["success"], "probs": rec["probs"], "zero_adv": rec["zero_adv"]}
    if name == "dump":
      out["parity_max_error"] = reference_parity(rec, len(chain.train_depths), int(cfg.arms.dump.window))
  return out


def deep_success(results, name) -> np.ndarray:
  """`[S, T]` exact success averaged over the deep depths."""
  cols = [i for i, d in enumerate(results["eval_depths"]) if d in results["deep_depths"]]
  return results["arms"][name]["success"][:, :, cols].mean(-1)


def mean_depth(results, name) -> np.ndarray:
  """`[S, T]` E_P[depth] under the arm's sampling distribution at each step."""
  return results["arms"][name]["probs"] @ np.asarray(results["train_depths"], float)


def mass_sweep(results, name) -> float:
  """E_P[depth] over the last `late_fraction` of the steps minus over the first `early_fraction` (seed mean)."""
  md = mean_depth(results, name).mean(0)
  t = md.shape[0]
  early, late = max(int(round(results["early_fraction"] * t)), 1), max(int(round(results["late_fraction"] * t)), 1)
  return float(md[-late:].mean() - md[:early].mean())


def rows(results) -> list[dict[str, Any]]:
  out = []
  for name in results["arm_names"]:
    s, a = deep_success(results, name), results["arms"][name]
    t = s.shape[1]
    md = mean_depth(results, name).mean(0)
    out.append({
        "arm": name, "s_quarter": s[:, t // 4 - 1].mean(), "s_half": s[:, t // 2 - 1].mean(),
        "s_end": s[:, -1].mean(), "s_end_se": s[:, -1].std() / math.sqrt(s.shape[0]), "auc": s.mean(),
        "all_end": a["success"][:, -1].mean(), "md_min": md.min(), "md_end": md[-1],
        "sweep": mass_sweep(results, name), "zero_adv": a["zero_adv"].mean(), "steps": t,
    })
  return out


def tables(results) -> list[cli.Table]:
  r = rows(results)
  t = r[0]["steps"]
  deep = "–".join(str(d) for d in (results["deep_depths"][0], results["deep_depths"][-1]))
  main = cli.Table(r, {
      "curriculum": "{arm}", f"deep success @ {t // 4}": "{s_quarter:.3f}", f"@ {t // 2}": "{s_half:.3f}",
      f"@ {t} [±SE]": "{s_end:.3f} ± {s_end_se:.3f}", "mean over steps": "{auc:.3f}",
      "all depths @ end": "{all_end:.3f}", "E_P[depth]: min / end": "{md_min:.2f} / {md_end:.2f}",
      "sweep (late − early)": "{sweep:+.2f}", "zero-adv. groups": "{zero_adv:.2f}",
  }, title=f"Skill chain, 12 depth distributions (pool 3:1 shallow): exact success over depths {deep} "
           "(mean over seeds)",
      name="chain")
  d = results["arms"]["dump"]["probs"].mean(0)
  steps = sorted({0, t // 10, t // 4, t // 2, 3 * t // 4, t - 1})
  pj = cli.Table([{"step": i + 1, "p": d[i], "parity": results["parity_max_error"]} for i in steps],
                 {"step": "{step}", **{f"P(d={j})": (lambda row, j=j: f"{row['p'][j - 1]:.3f}")
                                       for j in results["train_depths"]}},
                 title=f"DUMP's P_j (seed mean); max |P − P_reference port| = {results['parity_max_error']:.2e}",
                 name="dump_probs")
  out = [main, pj]
  title = ("Toy-suite transformer, GRPO from one SFT start: final held-out mean@k "
           "(± sd over seeds)")
  out += [cli.Table(**a) for a in ct.table_args(results.get("transformer"), title)]
  return out


def headline(results) -> dict[str, float]:
  r = {row["arm"]: row for row in rows(results)}
  return {
      "mass_sweep_depth": mass_sweep(results, "dump"),
      "deep_success_gain_vs_pool": r["dump"]["s_end"] - r["pool"]["s_end"],
      "reference_parity_max_error": results["parity_max_error"],
  } | _transformer_headline(results.get("transformer"))


def _transformer_headline(tr) -> dict[str, float]:
  """DUMP minus uniform on the transformer (all levels; the level harder than any trained) and the drift of
  DUMP's mean level."""
  if not tr:
    return {}
  return {"tf_dump_gain": ct.gain(tr, "dump", "uniform"),
          "tf_dump_harder_gain": ct.gain(tr, "dump", "uniform", "harder"),
          "tf_dump_level_drift": ct.mean_depth_drift(tr, "dump")}


def plot(results, path: str | None = None):
  """Deep-depth success vs step per arm; success per depth at mid-run and at the end; DUMP's P_j vs step with
  E_P[depth] (and SEC's when run)."""
  plt = cli.pyplot(path)
  heat = [n for n in ("dump", "sec") if n in results["arm_names"]]
  tr = results.get("transformer")
  n = 2 + len(heat) + (2 if tr else 0)
  fig, ax = plt.subplots(1, n, figsize=(5 * n, 4))
  if tr:
    ct.plot_accuracy(ax[-2], tr)
    ct.plot_probs(ax[-1], tr, "dump")
    ax = ax[:-2]
  depths = np.asarray(results["train_depths"])
  for i, name in enumerate(results["arm_names"]):
    s = deep_success(results, name)
    cli.median_band(ax[0], np.arange(1, s.shape[1] + 1), s, label=name, color=f"C{i}")
    per = results["arms"][name]["success"].mean(0)
    ev = np.asarray(results["eval_depths"])
    ax[1].plot(ev, per[per.shape[0] // 2 - 1], "--", color=f"C{i}")
    ax[1].plot(ev, per[-1], "-", color=f"C{i}", label=name)
  ax[0].set(xlabel="step", ylabel=f"success, depths {results['deep_depths'][0]}–{results['deep_depths'][-1]}",
            title="hard distributions")
  ax[0].legend(fontsize=8)
  ax[1].set(xlabel="depth", ylabel="exact success", title="per depth: mid-run (dashed), end (solid)")
  ax[1].legend(fontsize=8)
  for a, name in zip(ax[2:], heat):
    p = results["arms"][name]["probs"].mean(0)
    im = a.imshow(p.T, aspect="auto", origin="lower", cmap="viridis",
                  extent=(0.5, p.shape[0] + 0.5, depths[0] - 0.5, depths[-1] + 0.5))
    a.plot(np.arange(1, p.shape[0] + 1), mean_depth(results, name).mean(0), "w-", lw=1, label="E_P[depth]")
    a.set(xlabel="step", ylabel="depth j", title=f"{name}: P_j (seed mean)")
    a.legend(fontsize=8, loc="lower right")
    fig.colorbar(im, ax=a)
  return cli.finish_figure(fig, path, title="DUMP on the skill chain (Wang et al. 2025)")
