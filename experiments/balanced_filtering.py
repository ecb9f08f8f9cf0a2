"""Balanced online difficulty filtering (Bae, Hong, Lee, Kim, Nam & Kwak 2025, arXiv 2504.03380), part A: skill chain.

Question: GRPO learns nothing from a group whose G rollouts all succeed or all fail. Does keeping only the groups of
intermediate pass rate p̂ (and refilling the batch with more kept groups) speed learning per optimiser step, and
what does it cost in rollouts? The paper predicts balanced filtering (0 < p̂ < 1) beats plain GRPO and the
one-sided filters per step; its theory is that KL(π*‖π_0) of the KL-regularised optimum grows with the reward
variance p(1−p).

Arms (`configs/balanced_filtering.py`): GRPO (G = 8, B = 32, Adam 0.05) on a uniform pool over depths 1–10 of the
skill chain (`rljax.theory.curricula.chain_rl`) with no filter; balanced (0, 1); narrow [0.25, 0.75]; drop-easy
only (p̂ < 1); drop-hard only (p̂ > 0). Each filter draws 8·B candidates per step and trains on the first B kept;
rollouts are counted up to the B-th kept candidate. Measured: exact mean success over the training depths per
optimiser step and per rollout generated, the fraction of candidates kept, and rollouts per kept prompt. The KL
identities of `rljax.curricula.difficulty` are checked in float64 on a grid of (p, λ).

    python -m rljax.run --config configs/balanced_filtering.py:cpu --workdir results/balanced_filtering
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import cli
from rljax import curricula
from rljax.curricula import difficulty
from rljax.theory.curricula import chain_rl
from rljax.training import curriculum_testbed as ct

REQUIRED = ("none", "balanced", "narrow", "drop_easy", "drop_hard")
ONE_SIDED = ("drop_easy", "drop_hard")


def _check(cfg) -> None:
  names = tuple(cfg.variant_names)
  if set(names) != set(REQUIRED) or len(names) != len(REQUIRED):
    raise ValueError(f"`variant_names` must be a permutation of {REQUIRED}, got {names}.")
  missing = [n for n in names if n not in cfg.variants]
  if missing:
    raise ValueError(f"`variants` has no curriculum config for {missing}.")
  if not 0.0 < float(cfg.compare_fraction) <= 1.0:
    raise ValueError(f"`compare_fraction` must be in (0, 1], got {cfg.compare_fraction}.")
  if int(cfg.seeds) < 1:
    raise ValueError(f"`seeds` must be >= 1, got {cfg.seeds}.")


def run_kl(kl) -> dict[str, Any]:
  """The tilt-KL identities in float64: the closed form against the two-point Bernoulli KL computed directly from
  q = p·e^λ/(1 − p + p·e^λ), Pinsker ≤ exact, the second-order term at small λ, E[p̂(1−p̂)] by the exact binomial
  sum, the argmax over p, and curves for the figure."""
  p = np.linspace(0.5 / kl.n_p, 1 - 0.5 / kl.n_p, kl.n_p)
  lam = np.geomspace(kl.lam_min, kl.lam_max, kl.n_lam)
  pp, ll = np.meshgrid(p, lam, indexing="ij")
  fine = np.linspace(1e-5, 1 - 1e-5, 100_001)  # for the argmax
  coarse = np.linspace(1e-3, 1 - 1e-3, 999)  # for the figure
  with jax.enable_x64(True):
    f64 = lambda x: jnp.asarray(x, jnp.float64)
    exact = np.asarray(difficulty.kl_tilted_binary(f64(pp), f64(ll)))
    pinsker = np.asarray(difficulty.kl_lower_bound_pinsker(f64(pp), f64(ll)))
    small = np.asarray(difficulty.kl_tilted_binary(f64(p), kl.lam_small))
    second = np.asarray(difficulty.kl_second_order(f64(p), kl.lam_small))
    argmax = {lm: float(fine[np.argmax(np.asarray(difficulty.kl_tilted_binary(f64(fine), lm)))])
              for lm in (*kl.lam_plot, 0.1, 1.0)}
    curves = {lm: {"exact": np.asarray(difficulty.kl_tilted_binary(f64(coarse), lm)),
                   "second_order": np.asarray(difficulty.kl_second_order(f64(coarse), lm)),
                   "pinsker": np.asarray(difficulty.kl_lower_bound_pinsker(f64(coarse), lm))}
              for lm in kl.lam_plot}
  q = pp * np.exp(ll) / (1 - pp + pp * np.exp(ll))
  direct = q * np.log(q / pp) + (1 - q) * np.log((1 - q) / (1 - pp))
  binom = []
  for g in (2, 4, 8, 16):
    k = np.arange(g + 1)
    pmf = np.array([math.comb(g, int(i)) for i in k])[None] * p[:, None] ** k * (1 - p[:, None]) ** (g - k)
    binom.append(np.max(np.abs(pmf @ (k / g * (1 - k / g)) - p * (1 - p) * (g - 1) / g)))
  return {"identity_error": float(np.max(np.abs(exact - direct))),
          "pinsker_excess": float(np.max(pinsker - exact)),
          "second_order_rel_error": float(np.max(np.abs(second / small - 1))),
          "binomial_error": float(max(binom)), "argmax": argmax, "p": coarse,
          "curves": curves, "lam_small": float(kl.lam_small)}


def run(cfg) -> dict[str, Any]:
  """Per variant, `[seeds, steps]` arrays: `success` (exact P(solved) per eval depth, `[S, T, E]`), `kept`,
  `rollouts`, `zero_adv`, `batch` (groups in the update); and the KL checks (`run_kl`)."""
  _check(cfg)
  chain = cfg.chain
  k = len(chain.train_depths)
  out: dict[str, Any] = {"variants": tuple(cfg.variant_names), "train_depths": tuple(chain.train_depths),
                         "eval_depths": tuple(chain.eval_depths), "prompts": int(chain.prompts),
                         "group_size": int(chain.group_size), "compare_fraction": float(cfg.compare_fraction),
                         "arms": {}}
  for name in cfg.variant_names:
    cur = curricula.make(cfg.variants[name], k)
    _, _, rec = chain_rl.run_seeds(chain, cur, int(cfg.seeds))
    n_cand = chain.prompts * (chain.refill_factor if cur.keep is not None else 1)
    out["arms"][name] = {"success": rec["success"], "kept": rec["kept"], "rollouts": rec["rollouts"],
                         "zero_adv": rec["zero_adv"], "depth": rec["depth"],
                         "batch": np.minimum(chain.prompts, np.round(rec["kept"] * n_cand))}
  out["kl"] = run_kl(cfg.kl)
  out["transformer"] = ct.run_transformer(cfg)
  return out


def train_success(results, name) -> np.ndarray:
  """`[S, T]` exact success averaged over the training depths."""
  cols = [i for i, d in enumerate(results["eval_depths"]) if d in results["train_depths"]]
  return results["arms"][name]["success"][:, :, cols].mean(-1)


def _compare_step(results) -> int:
  t = train_success(results, "none").shape[1]
  return max(int(round(results["compare_fraction"] * t)) - 1, 0)


def success_at_rollouts(results, name, budget: float) -> np.ndarray:
  """`[S]` train success of each seed when its cumulative rollouts reach `budget` (linear interpolation)."""
  s = train_success(results, name)
  cum = np.cumsum(results["arms"][name]["rollouts"], axis=1)
  return np.array([np.interp(budget, c, y) for c, y in zip(cum, s)])


def rows(results) -> list[dict[str, Any]]:
  t_star = _compare_step(results)
  steps = train_success(results, "none").shape[1]
  budget = float(np.mean(np.cumsum(results["arms"]["none"]["rollouts"], axis=1)[:, t_star]))
  quarter = max(steps // 4, 1)
  out = []
  for name in results["variants"]:
    a = results["arms"][name]
    s = train_success(results, name)
    at_budget = success_at_rollouts(results, name, budget)
    kept = a["kept"].mean(0)
    out.append({
        "variant": name, "s_quarter": s[:, quarter - 1].mean(), "s_star": s[:, t_star].mean(),
        "s_star_se": s[:, t_star].std() / math.sqrt(s.shape[0]), "s_end": s[:, -1].mean(),
        "s_budget": at_budget.mean(), "s_budget_se": at_budget.std() / math.sqrt(len(at_budget)),
        "kept_first": kept[:quarter].mean(), "kept_peak": kept.max(), "kept_last": kept[-quarter:].mean(),
        "rpp": a["rollouts"].sum() / max(a["batch"].sum(), 1.0), "rollouts_total": a["rollouts"].sum(1).mean(),
        "zero_adv": a["zero_adv"].mean(), "t_star": t_star + 1, "budget": budget, "quarter": quarter,
    })
  return out


def tables(results) -> list[cli.Table]:
  r = rows(results)
  t_star, budget, quarter = r[0]["t_star"], r[0]["budget"], r[0]["quarter"]
  main = cli.Table(r, {
      "filter": "{variant}", f"success @ step {quarter}": "{s_quarter:.3f}",
      f"success @ step {t_star} [±SE]": "{s_star:.3f} ± {s_star_se:.3f}", "success @ end": "{s_end:.3f}",
      f"success @ {budget:.0f} rollouts [±SE]": "{s_budget:.3f} ± {s_budget_se:.3f}",
      "kept: first ¼ / peak / last ¼": "{kept_first:.2f} / {kept_peak:.2f} / {kept_last:.2f}",
      "rollouts per kept prompt": "{rpp:.1f}", "rollouts (total)": "{rollouts_total:.0f}",
      "zero-adv. groups in batch": "{zero_adv:.2f}",
  }, title="Skill chain, uniform pool over depths 1–10: exact success averaged over the training depths "
           "(mean over seeds)", name="chain")
  kl = results["kl"]
  kl_rows = [{"check": "max |closed form − two-point KL| (f64 grid)", "value": kl["identity_error"]},
             {"check": "max (Pinsker bound − exact KL)", "value": kl["pinsker_excess"]},
             {"check": f"max rel. error of (λ²/2)p(1−p) at λ = {kl['lam_small']}",
              "value": kl["second_order_rel_error"]},
             {"check": "max |E[p̂(1−p̂)] − p(1−p)(G−1)/G| (G = 2..16)", "value": kl["binomial_error"]}]
  kl_rows += [{"check": f"argmax_p KL at λ = {lm:g}", "value": v} for lm, v in sorted(kl["argmax"].items())]
  out = [main, cli.Table(kl_rows, {"identity": "{check}", "value": "{value:.4g}"}, name="kl")]
  title = ("Toy-suite transformer, GRPO from one SFT start at equal optimiser steps: final "
           "held-out mean@k (± sd over seeds); prompt batches generated per step")
  out += [cli.Table(**a) for a in ct.table_args(results.get("transformer"), title)]
  return out


def headline(results) -> dict[str, float]:
  r = {row["variant"]: row for row in rows(results)}
  s = {n: row["s_star"] for n, row in r.items()}
  b = {n: row["s_budget"] for n, row in r.items()}
  one_best = max(s[n] for n in ONE_SIDED)
  one_worst = min(s[n] for n in ONE_SIDED)
  kl = results["kl"]
  return {
      "step_gap_balanced_vs_none": s["balanced"] - s["none"],
      "step_gap_balanced_vs_one_sided": s["balanced"] - one_best,
      "step_gap_one_sided_vs_none": one_worst - s["none"],
      "step_gap_narrow_vs_balanced": s["narrow"] - s["balanced"],
      "rollout_gap_change": (b["balanced"] - b["none"]) - (s["balanced"] - s["none"]),
      "narrow_rollouts_per_prompt_ratio": r["narrow"]["rpp"] / r["balanced"]["rpp"],
      "kept_fraction_change": r["balanced"]["kept_last"] - r["balanced"]["kept_first"],
      "kl_identity_max_error": kl["identity_error"],
      "kl_second_order_rel_error": kl["second_order_rel_error"],
      "kl_argmax_p_at_lambda_1": kl["argmax"][1.0],
  } | _transformer_headline(results.get("transformer"))


def _transformer_headline(tr) -> dict[str, float]:
  """Balanced (0, 1) and the narrow band minus no filter on the transformer, final held-out mean@k at equal
  optimiser steps, and the narrow band's prompt batches per step over balanced's."""
  if not tr:
    return {}
  batches = {r["arm"]: r["batches"] for r in ct.table_rows(tr)}
  return {"tf_balanced_gain": ct.gain(tr, "balanced", "none"), "tf_narrow_gain": ct.gain(tr, "narrow", "none"),
          "tf_narrow_batch_ratio": batches["narrow"] / batches["balanced"]}


def plot(results, path: str | None = None):
  """Success vs step and vs rollouts, the kept fraction and rollouts per step, the zero-advantage fraction of the
  batch, and the tilt KL against p with its second-order term and Pinsker bound."""
  plt = cli.pyplot(path)
  tr = results.get("transformer")
  fig, ax = plt.subplots(2, 4 if tr else 3, figsize=(20 if tr else 15, 8))
  ax = ax.ravel()
  if tr:
    ct.plot_accuracy(ax[3], tr)
    ct.plot_curve(ax[7], tr, "gen_batches", "prompt batches generated per step")
    ax = np.delete(ax, [3, 7])
  t_star = _compare_step(results)
  for i, name in enumerate(results["variants"]):
    a, s, c = results["arms"][name], train_success(results, name), f"C{i}"
    x = np.arange(1, s.shape[1] + 1)
    cli.median_band(ax[0], x, s, label=name, color=c)
    cum = np.cumsum(a["rollouts"], axis=1)
    ax[1].plot(np.median(cum, 0), np.median(s, 0), color=c, label=name)
    cli.median_band(ax[2], x, a["kept"], label=name, color=c)
    ax[3].plot(x, a["rollouts"].mean(0), color=c, label=name)
    ax[4].plot(x, a["zero_adv"].mean(0), color=c, label=name)
  ax[0].axvline(t_star + 1, color="k", ls=":", lw=1)
  ax[0].set(xlabel="optimiser step", ylabel="success, mean over depths 1–10", title="per optimiser step")
  ax[1].set(xscale="log", xlabel="rollouts generated", ylabel="success", title="per rollout")
  ax[2].set(xlabel="optimiser step", ylabel="fraction of candidates kept", title="kept fraction")
  ax[3].set(yscale="log", xlabel="optimiser step", ylabel="rollouts per step", title="generation cost")
  ax[4].set(xlabel="optimiser step", ylabel="fraction of batch groups", title="zero-advantage groups in the batch")
  kl = results["kl"]
  for j, (lm, cv) in enumerate(sorted(kl["curves"].items())):
    peak = cv["exact"].max()
    ax[5].plot(kl["p"], cv["exact"] / peak, color=f"C{j}", label=f"exact KL, λ = {lm:g}")
    ax[5].plot(kl["p"], cv["second_order"] / peak, color=f"C{j}", ls="--", lw=1)
    ax[5].plot(kl["p"], cv["pinsker"] / peak, color=f"C{j}", ls=":", lw=1)
  ax[5].plot([], [], "k--", lw=1, label="(λ²/2)p(1−p)")
  ax[5].plot([], [], "k:", lw=1, label="Pinsker 2(q−p)²")
  ax[5].set(xlabel="base success rate p", ylabel="÷ max exact KL", title="KL(π*‖π0) of the tilt", ylim=(0, 1.3))
  for a in ax:  # (the transformer panels have their own legends)
    a.legend(fontsize=7, loc="lower right")
    a.grid(alpha=0.3)
  return cli.finish_figure(fig, path, title="Balanced online difficulty filtering on the skill chain")
