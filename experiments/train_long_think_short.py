"""Train Long, Think Short: a length-budget curriculum for GRPO (Hammoud et al. 2025, arXiv 2508.08940).

Question: does a token budget that starts generous and shrinks (256 → 87) end with higher accuracy than training
at the final budget (87) from the start, at about the same final length? And does the exponential decay give
shorter outputs, the linear one higher accuracy (the paper: 57.9 % at 135 tokens vs 60.0 % at 140)?

Part A, the spec's tabular "explore then compress" toy (`rljax.theory.curricula.strategy_toy`): three strategies
(long / medium / short, think lengths (220, 140, 70) ± 10), P(correct | k) = σ(θ − h_k) with h = (−1, 1, h_short),
a softmax policy over k; GRPO advantages (G = 8, B = 64) of the length-budget reward (`rljax.curricula.length_budget`,
triangular r_len), 400 SGD steps on θ and the logits, vmapped over seeds.
Arms: the exponential curriculum (256, 179, 125, 87 on quarters of training: γ ≈ 0.7, T_d = 100), the linear one
(256, 200, 143, 87) and the fixed budget 87. Settings: h_short ∈ {3 (spec), 4, 5 (the spec's remedy when the gap
does not appear)}, rewards weighted correctness-heavy (0.6, 0.3, 0.1; rljax's default) and length-heavy
(0.3, 0.6, 0.1; the paper's ablation). Accuracy and length are exact expectations under the final policy.

    python -m rljax.run --config configs/train_long_think_short.py:cpu --workdir results/train_long_think_short
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments import cli
from rljax.curricula import length_budget as lb
from rljax.theory.curricula import strategy_toy
from rljax.training import curriculum_testbed as ct

ARMS = ("exponential", "linear", "fixed")


def _check(t) -> None:
  if not t.arms or any(a not in ARMS for a in t.arms) or len(set(t.arms)) != len(t.arms):
    raise ValueError(f"`chain.arms` must be distinct names from {ARMS}, got {tuple(t.arms)}.")
  if not t.h_short:
    raise ValueError("`chain.h_short` must list at least one hardness of the short strategy.")
  if t.headline_weighting not in t.weightings:
    raise ValueError(f"`chain.headline_weighting` {t.headline_weighting!r} is not one of the weightings "
                     f"{sorted(t.weightings)}.")


def curriculum(t, arm: str, weights):
  """The length-budget curriculum of an arm: step-wise 256 → 87 (exponential or linear) or a fixed 87."""
  kind = "exponential" if arm == "fixed" else arm
  b0 = t.b_final if arm == "fixed" else t.b0
  return lb.length_budget(1, b0=b0, b_final=t.b_final, n_decays=t.n_decays, total_steps=t.steps, kind=kind,
                          shape=t.shape, weights=tuple(weights))


def run(cfg) -> dict[str, Any]:
  """Per weighting and arm, the toy's records `[H, seeds, T, ...]` for every h_short; and each arm's budget."""
  t = cfg.chain
  _check(t)
  toy = strategy_toy.toy_config(**{k: t[k] for k in strategy_toy.toy_config()})
  hardness = [tuple(t.hardness[:-1]) + (float(h),) for h in t.h_short]
  steps = np.arange(t.steps)
  budget = {a: np.asarray(lb.stepwise_budget(
      t.b_final if a == "fixed" else t.b0, t.b_final, t.n_decays, t.steps,
      "exponential" if a == "fixed" else a)(steps)) for a in t.arms}
  runs = {w: {a: strategy_toy.run_seeds(toy, curriculum(t, a, weights), t.seeds, hardness) for a in t.arms}
          for w, weights in t.weightings.items()}
  return {"arms": tuple(t.arms), "h_short": tuple(float(h) for h in t.h_short),
          "weightings": tuple(t.weightings), "headline_weighting": t.headline_weighting, "budget": budget,
          "runs": runs, "transformer": ct.run_transformer(cfg)}


def _final(rec, key, i):
  x = rec[key][i, :, -1]
  return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """One row per (weighting, h_short, arm): final accuracy and length (mean ± s.e. over seeds), final θ and
  π(short), accuracy after the first quarter, and the accuracy / length differences to the fixed budget."""
  out = []
  for w in results["weightings"]:
    run = results["runs"][w]
    for i, h in enumerate(results["h_short"]):
      fixed = run.get("fixed")
      for a in results["arms"]:
        rec = run[a]
        acc, acc_se = _final(rec, "accuracy", i)
        ln, ln_se = _final(rec, "length", i)
        T = rec["accuracy"].shape[-1]
        row = {"weighting": w, "h_short": h, "arm": a, "acc": acc, "acc_se": acc_se, "length": ln,
               "length_se": ln_se, "theta": _final(rec, "theta", i)[0],
               "pi_short": float(rec["pi"][i, :, -1, -1].mean()),
               "acc_quarter": float(rec["accuracy"][i, :, T // 4 - 1].mean()),
               "d_acc": float("nan"), "d_length": float("nan")}
        if fixed is not None:
          row["d_acc"] = acc - _final(fixed, "accuracy", i)[0]
          row["d_length"] = ln - _final(fixed, "length", i)[0]
        out.append(row)
  return out


def tables(results: dict[str, Any]) -> list[cli.Table]:
  return [_toy_table(results)] + [cli.Table(**a) for a in ct.table_args(
      results.get("transformer"), "Toy-suite transformer, GRPO on the budget reward (length = response tokens): final "
                                  "held-out mean@k (± sd over seeds) and sampled response length")]


def _toy_table(results: dict[str, Any]) -> cli.Table:
  return cli.Table(rows(results), {
      "weights": "{weighting}", "h_short": "{h_short:g}", "budget": "{arm}",
      "final accuracy": "{acc:.3f} ± {acc_se:.3f}", "final think length": "{length:.1f} ± {length_se:.1f}",
      "Δacc vs fixed-87": "{d_acc:+.3f}", "Δlength vs fixed-87": "{d_length:+.1f}",
      "θ": "{theta:.2f}", "π(short)": "{pi_short:.2f}", "accuracy at T/4": "{acc_quarter:.3f}",
  }, title="Strategy toy: final exact accuracy and mean think length (mean ± s.e. over seeds)", name="toy")


def headline(results: dict[str, Any]) -> dict[str, float]:
  """At the headline weighting: the exponential curriculum's final accuracy minus fixed-87's and their final
  length gap at the spec's h_short (the first) and the accuracy gain at the largest h_short; linear minus
  exponential accuracy, and exponential minus linear length, at the spec's h_short."""
  by = {(r["weighting"], r["h_short"], r["arm"]): r for r in rows(results)}
  w, h0, hmax = results["headline_weighting"], results["h_short"][0], max(results["h_short"])
  exp, lin = by[(w, h0, "exponential")], by[(w, h0, "linear")]
  return {
      "acc_gain_exp_vs_fixed": exp["d_acc"],
      "length_gap_exp_vs_fixed": abs(exp["d_length"]),
      "acc_gain_exp_vs_fixed_max_h": by[(w, hmax, "exponential")]["d_acc"],
      "acc_linear_minus_exp": lin["acc"] - exp["acc"],
      "length_exp_minus_linear": exp["length"] - lin["length"],
  } | _transformer_headline(results.get("transformer"))


def _transformer_headline(tr) -> dict[str, float]:
  """On the transformer: the exponential curriculum's final held-out mean@k minus the fixed budget's, and the
  absolute gap of their final sampled response lengths."""
  if not tr:
    return {}
  return {"tf_acc_gain_exp_vs_fixed": ct.gain(tr, "exponential", "fixed"),
          "tf_length_gap_exp_vs_fixed": abs(ct.gain(tr, "exponential", "fixed", "length"))}


def plot(results: dict[str, Any], path: str | None = None):
  """Budgets; mean think length and exact accuracy per step (headline weighting, spec h_short; median and IQR
  over seeds); final accuracy against final length for every setting."""
  plt = cli.pyplot(path)
  tr = results.get("transformer")
  fig, axes = plt.subplots(1, 6 if tr else 4, figsize=(27 if tr else 18, 4.2))
  if tr:
    ct.plot_accuracy(axes[4], tr)
    ct.plot_curve(axes[5], tr, "length", "rollout response length")
    axes = axes[:4]
  colors = {"exponential": "C0", "linear": "C2", "fixed": "C3"}
  run = results["runs"][results["headline_weighting"]]
  for a in results["arms"]:
    T = len(results["budget"][a])
    axes[0].plot(np.arange(T), results["budget"][a], color=colors[a], label=a)
    cli.median_band(axes[1], np.arange(T), run[a]["length"][0], label=a, color=colors[a])
    cli.median_band(axes[2], np.arange(T), run[a]["accuracy"][0], label=a, color=colors[a])
  axes[0].set(xlabel="step", ylabel="budget B(t) (tokens)", title="length budgets")
  axes[1].set(xlabel="step", ylabel="mean think length Σπ_k μ_k",
              title=f"{results['headline_weighting']}, h_short={results['h_short'][0]:g}")
  axes[2].set(xlabel="step", ylabel="exact accuracy Σπ_k σ(θ−h_k)", title="accuracy")
  markers = {"correctness_heavy": "o", "length_heavy": "s"}
  for r in rows(results):
    axes[3].scatter(r["length"], r["acc"], color=colors[r["arm"]], marker=markers.get(r["weighting"], "^"),
                    s=20 + 15 * (r["h_short"] - min(results["h_short"])))
  axes[3].axvline(87, color="k", ls=":", lw=1)
  axes[3].set(xlabel="final think length", ylabel="final accuracy",
              title="final, all settings (o / ■: corr. / length-heavy)")
  for ax in axes[:3]:
    ax.legend(fontsize=8)
  return cli.finish_figure(fig, path, title="Train Long, Think Short: strategy toy, curricula 256→87 vs fixed 87")
