"""GFUCB: per-task regret vs the number of tasks M, and vs T (Lu, Zhao, Du, Huang, NeurIPS 2022).

Predicted: sharing the representation search over a finite class Φ across M tasks amortises its
log|Φ| cost, so the average per-task regret at T decreases in M, while one single-task GFUCB per
task (the independent baseline) stays flat; per-task regret grows like √T (log–log slope 0.5).
Environment: φ*(x) = tanh(W*ᵀx) with n = 20, k = 3, 10 arms per task, Φ = φ* plus 63 perturbed nets.
Seeds are vmapped; the M tasks are the first M of a 16-task problem, masked (one compile for every M).

    python -m rljax.run --config configs/gfucb.py:full --workdir results/gfucb
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.bandits import gfucb
from rljax.theory.envs import linear_bandit as lbenv
from experiments.slopes import fit_slope
from experiments import cli


def _problem(key, cfg):
  k_env, k_phi, k_run = jax.random.split(key, 3)
  env = lbenv.multitask_bandit(k_env, n=cfg.n, k=cfg.k, n_tasks=max(cfg.tasks), n_arms=cfg.n_arms,
                               noise_std=cfg.noise_std)
  return env, lbenv.representation_class(k_phi, env, cfg.n_phi, scales=tuple(cfg.phi_scales)), k_run


def _algo_config(cfg) -> gfucb.Config:
  return gfucb.Config(lam=cfg.lam, sigma=cfg.noise_std, delta=cfg.delta, beta_scale=cfg.beta_scale,
                      radius_scale=cfg.radius_scale, heads_term=cfg.heads_term)


def run(cfg) -> dict[str, Any]:
  """Per-task cumulative regret `[len(tasks), S, n_grid]` on a log grid of t, |C_t| on the same grid,
  and the independent baseline's per-task regret at T `[len(tasks), S]` (mean over the first M tasks)."""
  algo = _algo_config(cfg)
  grid = np.unique(np.geomspace(1, cfg.horizon, cfg.n_grid).astype(int))
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)

  m_max = max(cfg.tasks)

  def one(key, active, independent: bool):
    env, phis, k_run = _problem(key, cfg)
    if independent:
      tr = gfucb.run_independent(k_run, algo, env, phis, cfg.horizon)
      return jnp.cumsum(tr.regret, axis=0)[grid - 1], tr.set_size.mean(axis=1)[grid - 1]
    tr = gfucb.run(k_run, algo, env, phis, cfg.horizon, active)
    per_task = jnp.cumsum(tr.regret, axis=0).sum(axis=1) / jnp.sum(active)
    return per_task[grid - 1], tr.set_size[grid - 1]

  shared = jax.jit(jax.vmap(lambda k, a: one(k, a, False), in_axes=(0, None)))  # one compile for every M
  regret = np.zeros((len(cfg.tasks), cfg.seeds, len(grid)))
  set_size = np.zeros_like(regret)
  for i, m in enumerate(cfg.tasks):
    regret[i], set_size[i] = jax.device_get(shared(keys, jnp.arange(m_max) < m))
  indep = np.full((len(cfg.tasks), cfg.seeds), np.nan)
  if cfg.independent:
    cum, _ = jax.device_get(jax.jit(jax.vmap(lambda k: one(k, None, True)))(keys))
    final = np.asarray(cum)[:, -1, :]  # [S, M_max]
    indep = np.stack([final[:, :m].mean(-1) for m in cfg.tasks])
  return {"tasks": np.asarray(cfg.tasks), "t": grid, "regret": regret, "set_size": set_size, "independent": indep}


def trend_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """One row per M: per-task regret at T (median over seeds), the baseline's, the regret-vs-T slope
  over the last 1.5 decades with its seed-bootstrap CI, and |C_T|."""
  rows = []
  for i, m in enumerate(results["tasks"]):
    fit = fit_slope(results["t"], results["regret"][i])
    rows.append({
        "M": int(m), "regret_T": float(np.median(results["regret"][i, :, -1])),
        "independent_T": float(np.median(results["independent"][i])),
        "slope": fit.slope, "slope_lo": fit.ci_low, "slope_hi": fit.ci_high,
        "set_size_T": float(np.mean(results["set_size"][i, :, -1])),
    })
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  return [cli.Table(trend_rows(results), {
      "M": "{M}", f"per-task regret at T={int(results['t'][-1])}": "{regret_T:.2f}",
      "independent baseline": "{independent_T:.2f}", "slope vs T [95% CI]": "{slope:.3f} [{slope_lo:.3f}, {slope_hi:.3f}]",
      "mean |C_T|": "{set_size_T:.1f}"})]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """Per-task regret at T for the largest M ÷ M = 1 (GFUCB and the independent baseline), and the
  smallest and largest regret-vs-T slope over M."""
  rows = trend_rows(results)
  slopes = [r["slope"] for r in rows]
  return {
      "regret_ratio": rows[-1]["regret_T"] / rows[0]["regret_T"],
      "independent_ratio": rows[-1]["independent_T"] / rows[0]["independent_T"],
      "slope_low": min(slopes),
      "slope_high": max(slopes),
  }


def plot(results: dict[str, Any], path: str | None = None):
  """Left: per-task regret at T vs M (GFUCB and the independent baseline). Right: regret vs t, log–log."""
  plt = cli.pyplot(path)

  tasks, t, reg = results["tasks"], results["t"], results["regret"]
  fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2))
  med = np.median(reg[:, :, -1], axis=1)
  lo, hi = np.quantile(reg[:, :, -1], [0.25, 0.75], axis=1)
  ax0.errorbar(tasks, med, yerr=[med - lo, hi - med], fmt="o-", capsize=3, label="GFUCB (shared Φ search)")
  if not np.all(np.isnan(results["independent"])):
    ax0.plot(tasks, np.median(results["independent"], axis=1), "s--", label="independent single-task GFUCB")
  ax0.set_xscale("log", base=2)
  ax0.set_xlabel("number of tasks M")
  ax0.set_ylabel(f"per-task regret at T={t[-1]}")
  ax0.legend()
  colors = plt.cm.viridis(np.linspace(0, 0.9, len(tasks)))
  for i, (m, col) in enumerate(zip(tasks, colors)):
    ax1.plot(t, np.median(reg[i], axis=0), "o-", ms=3, color=col, label=f"M={m}")
  cli.power_guide(ax1, t, np.median(reg[0, :, -1]), 0.5, label="∝ √T", style="k--")
  cli.loglog(ax1, "t", "per-task cumulative regret")
  ax0.grid(True, which="both", alpha=0.3)
  return cli.finish_figure(fig, path, title="GFUCB: median over seeds (IQR bars)")
