"""Per-group regret of the sleeping-experts groupwise learner vs one group-blind online ridge model
(Acharya, Arunachaleswaran, Kannan, Roth, Ziani, "Oracle Efficient Algorithms for Groupwise Regret", 2023).

Predicted: against the best linear model fitted in hindsight on each group's own subsequence, the
groupwise learner's regret grows at most like √T (log–log slope ≤ 0.5; it is often negative, because
mixing the learners of intersecting groups beats any single linear model on a group), while the
group-blind baseline has linear regret (slope ≈ 1) on the groups its single model fits badly. Its
final per-group mean squared error is below the baseline's on every group.

    python -m rljax.run --config configs/groupwise.py:full --workdir results/groupwise
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from rljax.theory.envs import groups_regression as env
from rljax.theory.experts import groupwise as gw
from experiments.slopes import fit_slope
from experiments import cli

GROUP_NAMES = ("all", "z1=0", "z1=1", "z2=0", "z2=1", "z3=0", "z3=1")


def run(cfg) -> dict[str, Any]:
  """Per meta: regret and baseline regret [S, C, m], counts, mean squared errors; checkpoints t [C]."""
  params = env.make_params(jax.random.PRNGKey(cfg.env_seed), dim=cfg.dim, scale=cfg.scale, noise=cfg.noise)
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)
  out: dict[str, Any] = {"metas": tuple(cfg.metas)}
  for meta in cfg.metas:
    gcfg = gw.GroupwiseConfig(dim=cfg.dim, lam=cfg.lam, meta=meta, horizon=cfg.horizon)
    tr = jax.device_get(jax.jit(jax.vmap(lambda k: gw.run(k, gcfg, params, cfg.n_checkpoints)))(keys))
    scale = 4.0 * gcfg.bound**2  # back from losses scaled into [0, 1] to squared errors
    out["t"] = np.asarray(tr.t[0])
    out[meta] = {
        "regret": np.asarray(tr.loss - tr.best_loss),
        "base_regret": np.asarray(tr.base_loss - tr.best_loss),
        "count": np.asarray(tr.count),
        "mse": np.asarray(tr.loss[:, -1] / tr.count[:, -1]) * scale,
        "base_mse": np.asarray(tr.base_loss[:, -1] / tr.count[:, -1]) * scale,
        "best_mse": np.asarray(tr.best_loss[:, -1] / tr.count[:, -1]) * scale,
    }
  return out


def _slope(t, y):
  """Slope of the median regret curve (vs t; T_g ∝ t), or nan when the median final regret is ≤ 0."""
  return fit_slope(t, y, n_boot=200).slope if np.median(y[:, -1]) > 0 and np.all(np.median(y, 0)[-10:] > 0) \
      else float("nan")


def slope_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  rows = []
  t = results["t"]
  for meta in results["metas"]:
    r = results[meta]
    for g, name in enumerate(GROUP_NAMES):
      rows.append({
          "meta": meta, "group": name,
          "slope": _slope(t, r["regret"][:, :, g]),
          "base_slope": _slope(t, r["base_regret"][:, :, g]),
          "regret_per_round": float(np.median(r["regret"][:, -1, g] / r["count"][:, -1, g])),
          "base_regret_per_round": float(np.median(r["base_regret"][:, -1, g] / r["count"][:, -1, g])),
          "mse": float(np.median(r["mse"][:, g])), "base_mse": float(np.median(r["base_mse"][:, g])),
          "best_mse": float(np.median(r["best_mse"][:, g])),
      })
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  return [cli.Table(slope_rows(results), {
      "meta": "{meta}", "group": "{group}", "regret slope (nan: regret ≤ 0)": "{slope:+.2f}",
      "baseline regret slope": "{base_slope:+.2f}", "regret / T_g": "{regret_per_round:+.4f}",
      "baseline regret / T_g": "{base_regret_per_round:+.4f}", "MSE": "{mse:.4f}", "baseline MSE": "{base_mse:.4f}",
      "best-in-hindsight MSE": "{best_mse:.4f}"})]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """Over metas and groups: the steepest groupwise regret slope (groups whose regret is ≤ 0 have none;
  −1 when no group has a positive regret), the flattest and steepest group-blind baseline slope on the
  proper groups (not "all"), and the largest ratio of the groupwise to the baseline final MSE."""
  rows = slope_rows(results)
  slopes = [r["slope"] for r in rows if np.isfinite(r["slope"])]
  base = [r["base_slope"] for r in rows if r["group"] != "all"]
  return {
      "groupwise_slope_max": max(slopes, default=-1.0),
      "baseline_slope_low": min(base),
      "baseline_slope_high": max(base),
      "mse_ratio_max": max(r["mse"] / r["base_mse"] for r in rows),
  }


def plot(results: dict[str, Any], path: str | None = None):
  """Left: per-group regret vs t (median over seeds; symlog, since groupwise regret can be negative);
  right: final per-group MSE of groupwise (first meta) vs baseline vs best-in-hindsight."""
  plt = cli.pyplot(path)

  t = results["t"]
  r = results[results["metas"][0]]
  fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
  colors = plt.cm.tab10(np.arange(len(GROUP_NAMES)))
  for g, (name, col) in enumerate(zip(GROUP_NAMES, colors)):
    axes[0].plot(t, np.median(r["regret"][:, :, g], 0), "-", color=col, label=f"groupwise {name}")
    axes[0].plot(t, np.median(r["base_regret"][:, :, g], 0), "--", color=col)
  ref = np.median(r["base_regret"][:, -1, 1:], 0).max()
  cli.power_guide(axes[0], t, ref, 1.0, label="∝ t (dashed: baseline)", style="k:")
  cli.power_guide(axes[0], t, ref, 0.5, label="∝ √t", style="k-.")
  axes[0].set_xscale("log")
  axes[0].set_yscale("symlog", linthresh=1.0)
  axes[0].set_xlabel("round t  (T_g ∝ t)")
  axes[0].set_ylabel("regret vs best linear model on the group")
  axes[0].legend(fontsize=7, ncol=2)
  x = np.arange(len(GROUP_NAMES))
  for off, key, lab in ((-0.27, "mse", "groupwise"), (0.0, "base_mse", "group-blind ridge"),
                        (0.27, "best_mse", "best linear in hindsight")):
    axes[1].bar(x + off, np.median(r[key], 0), 0.27, label=lab)
  axes[1].set_xticks(x, GROUP_NAMES)
  axes[1].set_ylabel("final mean squared error on the group")
  axes[1].legend(fontsize=8)
  for ax in axes:
    ax.grid(alpha=0.3)
  return cli.finish_figure(fig, path, title=f"Groupwise regret ({results['metas'][0]} sleeping experts over per-group "
                           "VAW ridge)")
