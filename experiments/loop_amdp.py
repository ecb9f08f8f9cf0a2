"""LOOP on RiverSwim: regret and policy switches vs T (He, Zhong & Yang, ICLR 2024).

Predicted (theory spec §12): regret Õ(sp(h*)·S√(AT)), i.e. log–log slope ≤ 0.5 after burn-in, and
O(SA log T) policy switches (≤ SA(log2 T + 1) for the doubling trigger). On one fixed instance the
optimistic learner eventually enters the gap-dependent O(log T) regime, so the measured slope is an
upper-bound check; the certainty-equivalent learner (zero confidence radii) never leaves the
small left reward and has linear regret (slope 1). One run per learner, seeds vmapped.

    python -m experiments.loop_amdp [--config=configs/loop_amdp.py:full] [--config.seeds=4]
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from rljax.theory.envs import amdp
from rljax.theory.kernels.slopes import fit_slope
from rljax.theory.tabular import loop_amdp as la
from experiments import cli
from experiments.cli import load_results, save_results  # noqa: F401  (notebook and tests)

LEARNERS = ("loop", "certainty_equivalent")
_run = jax.jit(la.run, static_argnums=(1, 3))


def run(cfg) -> dict[str, Any]:
  """Regret and switch curves `[learner, seeds, checkpoints]` on RiverSwim-S, plus the oracle."""
  env = amdp.riverswim(cfg.n_states)
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)
  # Both learners in one batch (same seeds), so one compile serves them.
  scales = np.repeat([cfg.radius_scale, 0.0], cfg.seeds)
  lcfg = la.LoopConfig(cfg.n_states, 2, cfg.horizon, delta=cfg.delta)
  trace = jax.device_get(_run(np.concatenate([keys, keys]), lcfg, env, cfg.n_checkpoints, scales))
  shape = (len(LEARNERS), cfg.seeds, -1)
  orc = amdp.oracle(env)
  return {"t": np.asarray(trace.steps), "regret": np.asarray(trace.regret).reshape(shape),
          "switches": np.asarray(trace.switches).reshape(shape),
          "learners": LEARNERS, "gain": float(orc.gain), "span": float(orc.span), "n_states": cfg.n_states,
          "n_actions": 2, "t_min": cfg.t_min}


def log_grid(t: np.ndarray, t_min: float, n: int = 40) -> np.ndarray:
  """Indices of ~n log-spaced checkpoints in [t_min, t_max] (the fits see every decade equally)."""
  targets = np.logspace(np.log10(t_min), np.log10(t[-1]), n)
  return np.unique(np.searchsorted(t, targets).clip(0, t.size - 1))


def trend_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per learner: regret slope over the last 1.5 decades and over [t_min, T], final regret and
  regret/√T, final switches vs the bound SA(log2 T + 1), switches added in the last decade."""
  t = results["t"]
  idx = log_grid(t, results["t_min"])
  SA = results["n_states"] * results["n_actions"]
  last_decade = np.searchsorted(t, t[-1] / 10)
  rows = []
  for i, name in enumerate(results["learners"]):
    reg = np.maximum(results["regret"][i][:, idx], 1e-9)  # pseudo-regret may dip below 0 early
    fit = fit_slope(t[idx], reg)
    whole = fit_slope(t[idx], reg, last_decades=None)
    sw = np.median(results["switches"][i], 0)
    rows.append({
        "learner": name, "slope": fit.slope, "slope_lo": fit.ci_low, "slope_hi": fit.ci_high,
        "slope_whole": whole.slope, "regret_T": float(np.median(results["regret"][i][:, -1])),
        "regret_over_sqrtT": float(np.median(results["regret"][i][:, -1]) / np.sqrt(t[-1])),
        "switches_T": float(sw[-1]), "switch_bound": SA * (np.log2(t[-1]) + 1),
        "switches_last_decade": float(sw[-1] - sw[last_decade]), "per_decade_bound": SA * np.log2(10),
    })
  return rows


def format_table(rows: list[dict[str, Any]], T: int) -> str:
  head = (f"| learner | regret slope, last 1.5 dec. [95% CI] | slope over whole range | regret at T={T} "
          f"| regret/√T | switches at T | bound SA(log2T+1) | switches in last decade | bound SA·log2(10) |\n"
          "|---|---|---|---|---|---|---|---|---|")
  body = [f"| {r['learner']} | {r['slope']:.3f} [{r['slope_lo']:.3f}, {r['slope_hi']:.3f}] | {r['slope_whole']:.3f} "
          f"| {r['regret_T']:.1f} | {r['regret_over_sqrtT']:.2f} | {r['switches_T']:.1f} | {r['switch_bound']:.0f} "
          f"| {r['switches_last_decade']:.1f} | {r['per_decade_bound']:.1f} |" for r in rows]
  return "\n".join([head, *body])


def plot(results: dict[str, Any], path: str | None = None):
  """Left: regret vs T (log–log) with a √T guide; right: switches vs T (semilog) with the bound."""
  plt = cli.pyplot(path)

  t = results["t"]
  idx = log_grid(t, results["t_min"], 80)
  SA = results["n_states"] * results["n_actions"]
  fig, (ax_r, ax_s) = plt.subplots(1, 2, figsize=(11, 4.2))
  for i, name in enumerate(results["learners"]):
    for ax, key in ((ax_r, "regret"), (ax_s, "switches")):
      y = results[key][i][:, idx]
      lo, med, hi = np.quantile(y, [0.25, 0.5, 0.75], axis=0)
      ax.plot(t[idx], med, label=name)
      ax.fill_between(t[idx], lo, hi, alpha=0.2)
  anchor = np.median(results["regret"][0][:, idx[0]])
  ax_r.plot(t[idx], anchor * np.sqrt(t[idx] / t[idx[0]]), "k--", lw=1, label="∝ √T")
  ax_r.set(xscale="log", yscale="log", xlabel="T", ylabel="pseudo-regret Σ(J* − r(s_t,a_t))",
           title=f"RiverSwim-{results['n_states']}: regret (median, IQR)")
  ax_s.plot(t[idx], SA * (np.log2(t[idx]) + 1), "k--", lw=1, label="SA(log2 T + 1)")
  ax_s.set(xscale="log", xlabel="T", ylabel="policy switches", title="switches vs log T")
  for ax in (ax_r, ax_s):
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  return cli.finish_figure(fig, path)


def main(cfg) -> None:
  cli.prepare(cfg)
  print(f"LOOP on RiverSwim-{cfg.n_states}: T={cfg.horizon} seeds={cfg.seeds} radius_scale={cfg.radius_scale}")
  results = run(cfg)
  table = format_table(trend_rows(results), cfg.horizon)
  print(f"J* = {results['gain']:.4f}, sp(h*) = {results['span']:.2f}")
  save_results(results, os.path.join(cfg.out_dir, "results.npz"))
  cli.report(cfg.out_dir, table, table_file="trends.md", figure_file="loop_amdp.png",
             plot_fn=lambda path: plot(results, path))


if __name__ == "__main__":
  cli.launch(main, "loop_amdp.py", "cpu (default), full or smoke")
