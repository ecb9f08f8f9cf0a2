"""GHPO — Guided Hybrid Policy Optimization (arXiv 2507.10628; github.com/hkgc-1/GHPO), part A: the skill chain.

Question: when every problem of the training pool is too hard for the current policy (all G rollouts fail, so
GRPO's group advantages are all zero), does GHPO's staged hinting (resample an all-wrong group with a solution
prefix of ratio ω = 0.25, then 0.5, then 0.75) give a learning signal that transfers to the un-hinted problems,
where plain GRPO and GRPO with balanced online difficulty filtering stall?

Setup (spec §4.4): the skill chain (`rljax.tasks.skill_chain`, 12 skills, θ_s = −2 at init) trained by GRPO +
REINFORCE with Adam (`rljax.theory.curricula.chain_rl`) on depths 6..10 only, where P(solved | d) ≤ 3·10⁻⁶ at
init. A hint ω on a depth-d problem forces the first ⌊ω·d⌋ steps; the policy's log-probability covers only
the remaining steps (the hinted prompt is context, never trained on).

Arms: `grpo` (uniform over the depths), `balanced` (GRPO + the filter 0 < p̂ < 1 with refill from a pool of
4B candidates, `rljax.curricula.difficulty`), `ghpo` (`rljax.curricula.ghpo`, uniform depths + staged hints).

Measured: the exact un-hinted success P(solved | d) averaged over d = 6..10 per step, the fraction of
zero-advantage groups, the rollouts generated, for GHPO the fraction of groups resampled at each hint stage and
when each skill σ(θ_s) first reaches 1/2. Predicted [D, spec §4.4]: GRPO stalls (every group all-wrong),
filtering stalls (nothing survives the filter), GHPO learns (deep skills first, then the early ones), and the
hinted fraction per stage falls over training as the policy improves.

    python -m rljax.run --config configs/ghpo.py:cpu --workdir results/notebooks/ghpo_cpu
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments import cli
from rljax import curricula
from rljax.theory.curricula import chain_rl
from rljax.training import curriculum_testbed as ct

LABELS = {"grpo": "GRPO", "balanced": "GRPO + balanced filter", "ghpo": "GHPO"}


def run(cfg) -> dict[str, Any]:
  """Per arm, the chain_rl records of every seed (`[seeds, T, ...]`): success f[n, T, E], zero_adv, rollouts,
  kept f[n, T], stage_frac f[n, T, S + 1], theta f[n, T, S]."""
  unknown = [a for a in cfg.arm_names if a not in cfg.curricula]
  if unknown:
    raise ValueError(f"arms {unknown} have no entry in `curricula` (known: {sorted(cfg.curricula)}).")
  num_arms = len(cfg.chain.train_depths)
  out: dict[str, Any] = {"arm_names": tuple(cfg.arm_names), "eval_depths": tuple(cfg.chain.eval_depths),
                         "window": float(cfg.window), "early_skills": tuple(cfg.early_skills),
                         "deep_skills": tuple(cfg.deep_skills)}
  for arm in cfg.arm_names:
    curriculum = curricula.make(cfg.curricula[arm], num_arms)
    _, _, rec = chain_rl.run_seeds(cfg.chain, curriculum, int(cfg.seeds))
    out[arm] = {k: rec[k] for k in ("success", "zero_adv", "rollouts", "kept", "stage_frac", "theta")}
  out["transformer"] = ct.run_transformer(cfg)
  return out


def _window(results, t_len: int) -> tuple[slice, slice]:
  w = max(1, int(round(results["window"] * t_len)))
  return slice(0, w), slice(t_len - w, t_len)


def hinted_per_stage(stage_frac: np.ndarray) -> np.ndarray:
  """`[..., S]`: the fraction of groups resampled at hint stage k = 1..S, i.e. still all-wrong after the stages
  before it (a group ends at stage ≥ k), from the fraction ending at each stage `[..., S + 1]`."""
  return 1.0 - np.cumsum(stage_frac, axis=-1)[..., :-1]


def success_at_rollouts(rec: dict, budget: float) -> float:
  """Mean un-hinted success (over seeds and depths) at the first step whose cumulative rollouts reach `budget`
  (the last step if they never do)."""
  cum = np.cumsum(rec["rollouts"], axis=1)  # [n, T]
  t = np.where((cum >= budget).any(1), np.argmax(cum >= budget, axis=1), cum.shape[1] - 1)
  return float(np.mean(rec["success"][np.arange(len(t)), t]))


def half_steps(theta: np.ndarray) -> np.ndarray:
  """`[n, S]`: the first step at which σ(θ_s) ≥ 1/2 (θ_s ≥ 0) per seed and skill; T when it never does."""
  up = theta >= 0.0
  return np.where(up.any(1), np.argmax(up, axis=1), theta.shape[1])


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """One row per arm: un-hinted success at T/2 and T (mean ± s.e. over seeds), at GHPO's rollout budget,
  zero-advantage fraction early/late, kept fraction, rollouts; for GHPO the hinted fraction per stage."""
  out = []
  ghpo_budget = float(np.mean(results["ghpo"]["rollouts"].sum(1))) if "ghpo" in results else float("nan")
  for arm in results["arm_names"]:
    rec = results[arm]
    n, t_len = rec["zero_adv"].shape
    early, late = _window(results, t_len)
    final = rec["success"][:, -1].mean(-1)
    hinted = hinted_per_stage(rec["stage_frac"])
    fmt_h = lambda sl: "—" if hinted.shape[-1] == 0 else " / ".join(f"{v:.2f}" for v in hinted[:, sl].mean((0, 1)))
    out.append({
        "arm": arm, "label": LABELS.get(arm, arm), "steps": t_len,
        "success_half": float(rec["success"][:, t_len // 2 - 1].mean()),
        "success": float(final.mean()), "success_se": float(final.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0,
        "success_budget": success_at_rollouts(rec, ghpo_budget),
        "zero_adv_early": float(rec["zero_adv"][:, early].mean()),
        "zero_adv_late": float(rec["zero_adv"][:, late].mean()),
        "kept": float(rec["kept"].mean()), "rollouts_k": float(rec["rollouts"].sum(1).mean() / 1e3),
        "hinted_early": fmt_h(early), "hinted_late": fmt_h(late),
    })
  return out


def tables(results: dict[str, Any]) -> list[cli.Table]:
  d = results["eval_depths"]
  table = cli.Table(rows(results), {
      "arm": "{label}",
      f"un-hinted success d={d[0]}..{d[-1]} at T/2": "{success_half:.3f}",
      "at T (± s.e.)": "{success:.3f} ± {success_se:.3f}",
      "at GHPO's rollouts": "{success_budget:.3f}",
      "zero-adv groups first/last 10 %": "{zero_adv_early:.2f} / {zero_adv_late:.2f}",
      "kept by filter": "{kept:.3f}",
      "rollouts (k)": "{rollouts_k:.0f}",
      "resampled at ω=.25/.5/.75, first 10 %": "{hinted_early}",
      "last 10 %": "{hinted_late}",
  }, title="Skill chain, training pool depths 6..10 only, θ0 = −2 (mean over seeds)", name="arms")
  out = [table]
  title = ("Toy-suite transformer, SFT on levels 0-1, GRPO on levels 2-3 only: final held-out "
           "mean@k (± sd over seeds; 'trained levels' = 2-3, un-hinted prompts)")
  out += [cli.Table(**a) for a in ct.table_args(results.get("transformer"), title)]
  return out


def headline(results: dict[str, Any]) -> dict[str, float]:
  """GRPO's final un-hinted success; the balanced filter's at GHPO's rollout budget; GHPO's final success minus
  the better baseline's (both at the same number of optimiser steps); the largest ratio, over hint stages, of
  the fraction of groups resampled in the last 10 % of the steps to the first 10 %; and the median over seeds
  of mean half-step(early skills) / mean half-step(deep skills) for GHPO (> 1: deep skills learned first)."""
  by = {r["arm"]: r for r in rows(results)}
  g = results["ghpo"]
  t_len = g["zero_adv"].shape[1]
  early, late = _window(results, t_len)
  hinted = hinted_per_stage(g["stage_frac"])
  ratio = hinted[:, late].mean((0, 1)) / np.maximum(hinted[:, early].mean((0, 1)), 1e-9)
  half = half_steps(g["theta"])
  lag = half[:, list(results["early_skills"])].mean(1) / half[:, list(results["deep_skills"])].mean(1)
  return {
      "grpo_final_success": by["grpo"]["success"],
      "filter_success_at_ghpo_rollouts": by["balanced"]["success_budget"],
      "ghpo_gain_over_baselines": by["ghpo"]["success"] - max(by["grpo"]["success"], by["balanced"]["success"]),
      "hinted_fraction_late_over_early": float(np.max(ratio)),
      "early_over_deep_skill_lag": float(np.median(lag)),
  } | _transformer_headline(results.get("transformer"))


def _transformer_headline(tr) -> dict[str, float]:
  """GHPO minus the better of GRPO and the balanced filter on the trained (hard) levels, un-hinted held-out
  mean@k; the fraction of GHPO's groups that needed a hint, last third of training ÷ first third."""
  if not tr:
    return {}
  runs = [tr["runs"][f"ghpo/seed{s}"]["stages"] for s in tr["seeds"]]
  third = max(len(runs[0]) // 3, 1)
  hinted = lambda part: float(np.mean([1.0 - st[part, 0].mean() for st in runs]))
  return {"tf_ghpo_gain": min(ct.gain(tr, "ghpo", a, "trained") for a in ("grpo", "balanced")),
          "tf_hinted_late_over_early": hinted(slice(-third, None)) / max(hinted(slice(0, third)), 1e-9)}


def plot(results: dict[str, Any], path: str | None = None):
  """Un-hinted success per step and per rollout, zero-advantage groups per step, GHPO's resampled fraction
  per hint stage, and GHPO's skills σ(θ_s) per step (median over seeds, quartiles shaded)."""
  plt = cli.pyplot(path)
  tr = results.get("transformer")
  fig, axes = plt.subplots(1, 7 if tr else 5, figsize=(31 if tr else 22, 4.2))
  if tr:
    ct.plot_accuracy(axes[5], tr)
    ct.plot_curve(axes[6], tr, "reward", "rollout reward (hinted groups included)")
    axes = axes[:5]
  colors = {"grpo": "C3", "balanced": "C1", "ghpo": "C0"}
  for arm in results["arm_names"]:
    rec = results[arm]
    t = np.arange(1, rec["zero_adv"].shape[1] + 1)
    s = rec["success"].mean(-1)
    cli.median_band(axes[0], t, s, label=LABELS.get(arm, arm), color=colors.get(arm))
    axes[1].plot(np.median(np.cumsum(rec["rollouts"], 1), 0) / 1e3, np.median(s, 0), color=colors.get(arm),
                 label=LABELS.get(arm, arm))
    cli.median_band(axes[2], t, rec["zero_adv"], label=LABELS.get(arm, arm), color=colors.get(arm))
  d = results["eval_depths"]
  axes[0].set(xlabel="optimiser step", ylabel=f"un-hinted P(solved), mean over d={d[0]}..{d[-1]}",
              title="test success (no hints)")
  axes[1].set(xlabel="rollouts generated (thousands)", ylabel="un-hinted P(solved)", title="per rollout")
  axes[2].set(xlabel="optimiser step", ylabel="fraction of batch groups", title="zero-advantage groups")
  g = results["ghpo"]
  t = np.arange(1, g["zero_adv"].shape[1] + 1)
  hinted = hinted_per_stage(g["stage_frac"])
  for k, w in enumerate((0.25, 0.5, 0.75)[: hinted.shape[-1]]):
    cli.median_band(axes[3], t, hinted[..., k], label=f"resampled at ω = {w}", color=f"C{k + 4}")
  axes[3].set(xlabel="optimiser step", ylabel="fraction of groups", title="GHPO: hinted fraction per stage")
  sig = 1.0 / (1.0 + np.exp(-g["theta"]))
  cmap = plt.get_cmap("viridis")
  n_skill = max(d)
  for s in range(n_skill):
    axes[4].plot(t, np.median(sig[..., s], 0), color=cmap(s / max(n_skill - 1, 1)), label=f"s={s}")
  axes[4].set(xlabel="optimiser step", ylabel="σ(θ_s)", title="GHPO: skills (deep first)")
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if ax is axes[4] else 1)
  return cli.finish_figure(fig, path, title="GHPO on a pool of too-hard problems: GRPO and filtering stall, "
                           "hints give signal, and fade as the policy improves")
