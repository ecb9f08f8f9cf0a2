"""LOOP on RiverSwim: regret and policy switches vs T (He, Zhong & Yang, ICLR 2024).

Predicted (theory spec §12): regret Õ(sp(h*)·S√(AT)), i.e. log–log slope ≤ 0.5 after burn-in, and
O(SA log T) policy switches (≤ SA(log2 T + 1) for the doubling trigger). On one fixed instance the
optimistic learner eventually enters the gap-dependent O(log T) regime, so the measured slope is an
upper-bound check; the certainty-equivalent learner (zero confidence radii) never leaves the
small left reward and has linear regret (slope 1). One run per learner, seeds vmapped.

    python -m rljax.run --config configs/loop_amdp.py:full --workdir results/loop_amdp [--config.seeds=4]
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from rljax.theory.envs import amdp
from experiments.slopes import log_grid, regret_slopes
from rljax.theory.tabular import loop_amdp as la
from experiments import cli

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


def trend_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per learner: regret slope over the last 1.5 decades and over [t_min, T], final regret and
  regret/√T, final switches vs the bound SA(log2 T + 1), switches added in the last decade."""
  t = results["t"]
  SA = results["n_states"] * results["n_actions"]
  last_decade = np.searchsorted(t, t[-1] / 10)
  rows = []
  for i, name in enumerate(results["learners"]):
    fit, whole = regret_slopes(t, results["regret"][i], results["t_min"])
    sw = np.median(results["switches"][i], 0)
    rows.append({
        "learner": name, "slope": fit.slope, "slope_lo": fit.ci_low, "slope_hi": fit.ci_high,
        "slope_whole": whole.slope, "regret_T": float(np.median(results["regret"][i][:, -1])),
        "regret_over_sqrtT": float(np.median(results["regret"][i][:, -1]) / np.sqrt(t[-1])),
        "switches_T": float(sw[-1]), "switch_bound": float(SA * (np.log2(t[-1]) + 1)),
        "switches_last_decade": float(sw[-1] - sw[last_decade]), "per_decade_bound": float(SA * np.log2(10)),
    })
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  T = int(results["t"][-1])
  return [cli.Table(trend_rows(results), {
      "learner": "{learner}", "regret slope, last 1.5 dec. [95% CI]": "{slope:.3f} [{slope_lo:.3f}, {slope_hi:.3f}]",
      "slope over whole range": "{slope_whole:.3f}", f"regret at T={T}": "{regret_T:.1f}",
      "regret/√T": "{regret_over_sqrtT:.2f}", "switches at T": "{switches_T:.1f}",
      "bound SA(log2T+1)": "{switch_bound:.0f}", "switches in last decade": "{switches_last_decade:.1f}",
      "bound SA·log2(10)": "{per_decade_bound:.1f}"},
      title=f"RiverSwim-{results['n_states']}: J* = {results['gain']:.4f}, sp(h*) = {results['span']:.2f}",
      name="learners")]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """LOOP's and the certainty-equivalent control's regret slopes (last 1.5 decades), and LOOP's policy
  switches at T ÷ the O(SA log T) bound SA(log2 T + 1)."""
  rows = {r["learner"]: r for r in trend_rows(results)}
  return {"loop_regret_slope": rows["loop"]["slope"], "control_regret_slope": rows["certainty_equivalent"]["slope"],
          "switches_over_bound": rows["loop"]["switches_T"] / rows["loop"]["switch_bound"]}


def plot(results: dict[str, Any], path: str | None = None):
  """Left: regret vs T (log–log) with a √T guide; right: switches vs T (semilog) with the bound."""
  plt = cli.pyplot(path)

  t = results["t"]
  idx = log_grid(t, results["t_min"], 80)
  SA = results["n_states"] * results["n_actions"]
  fig, (ax_r, ax_s) = plt.subplots(1, 2, figsize=(11, 4.2))
  for i, name in enumerate(results["learners"]):
    cli.median_band(ax_r, t[idx], results["regret"][i][:, idx], label=name, color=f"C{i}")
    cli.median_band(ax_s, t[idx], results["switches"][i][:, idx], label=name, color=f"C{i}")
  reg0 = np.median(results["regret"][0][:, idx], 0)
  cli.power_guide(ax_r, t[idx], reg0[0] * np.sqrt(t[idx[-1]] / t[idx[0]]), 0.5, label="∝ √T", style="k--")
  cli.loglog(ax_r, "T", "pseudo-regret Σ(J* − r(s_t,a_t))", title=f"RiverSwim-{results['n_states']}: regret (median, IQR)")
  ax_s.plot(t[idx], SA * (np.log2(t[idx]) + 1), "k--", lw=1, label="SA(log2 T + 1)")
  ax_s.set(xscale="log", xlabel="T", ylabel="policy switches", title="switches vs log T")
  ax_s.grid(True, which="both", alpha=0.3)
  ax_s.legend(fontsize=8)
  return cli.finish_figure(fig, path)
