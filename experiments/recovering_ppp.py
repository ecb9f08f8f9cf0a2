"""Purely periodic policies under recovering rewards (Simchi-Levi, Zheng & Zhu, "Offline Planning and
Online Learning under Recovering Rewards").

Predicted: (1) rounding the LP relaxation to a purely periodic schedule loses a fraction O(1/√K):
1 − value/LP has log–log slope −0.5 in K (N = 4K arms, R_i(d) = a_i(1 − e^{−d/τ_i}), d_max = 10);
(2) periodic UCB (LP on optimistic indices, doubling epochs) has Õ(N√T) regret against the offline
periodic benchmark (slope 0.5 in T). Instances and roundings are vmapped over seeds; one compile per K.

    python -m experiments.recovering_ppp [--config=configs/recovering_ppp.py:full]
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.bandits import recovering_ppp as rp
from rljax.theory.envs import recovering_bandit as env
from rljax.theory.kernels.slopes import fit_slope
from experiments import cli


def _offline_ratio(key, n_arms: int, k: int, cfg):
  """One random instance and one rounding: (LP value, mean expected reward per period after burn-in)."""
  k_env, k_run = jax.random.split(key)
  params = env.make_params(k_env, n_arms, k, d_max=cfg.d_max, sigma=cfg.sigma)
  value = rp.lp_solve(params.means, k)[1]
  return value, jnp.mean(rp.run_offline(k_run, params, cfg.offline_horizon)[cfg.d_max:])


def run(cfg) -> dict[str, Any]:
  """Offline `lp, periodic: [len(ks), S]`; online regret `[S, len(t)]` against the mean offline value."""
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.offline_seeds)
  lp, per = [], []
  for k in cfg.ks:
    v, r = jax.jit(jax.vmap(lambda key: _offline_ratio(key, 4 * k, k, cfg)))(keys)
    lp.append(np.asarray(v)), per.append(np.asarray(r))
  ts = np.unique(np.round(np.logspace(1, cfg.log10_online_horizon, cfg.n_checkpoints)).astype(int))
  horizon = int(ts[-1])
  params = env.make_params(jax.random.PRNGKey(cfg.seed + 1), cfg.online_arms, cfg.online_k, d_max=cfg.d_max,
                           sigma=cfg.sigma)
  bench_keys = jax.random.split(jax.random.PRNGKey(cfg.seed + 2), 64)
  bench = float(jnp.mean(jax.jit(jax.vmap(lambda key: rp.run_offline(key, params, 2000)[cfg.d_max:]))(bench_keys)))
  online = jax.jit(jax.vmap(lambda key: jnp.cumsum(rp.run_online(key, params, horizon))[ts - 1]))(
      jax.random.split(jax.random.PRNGKey(cfg.seed + 3), cfg.online_seeds))
  return {"ks": np.asarray(cfg.ks), "lp": np.stack(lp), "periodic": np.stack(per), "t": ts,
          "benchmark": bench, "regret": ts * bench - np.asarray(online)}


def slope_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Log–log slopes: 1 − ratio vs K (all K, median over seeds) and online regret vs T (last 1.5 decades,
  mean over seeds, since single seeds can be negative)."""
  gap = 1 - results["periodic"] / results["lp"]  # [K, S]
  fit = fit_slope(results["ks"], gap.T, last_decades=None)
  reg = results["regret"].mean(0)
  online = fit_slope(results["t"], np.maximum(reg, 1e-9))
  return [
      {"target": "1 − value/LP vs K", "slope": fit.slope, "lo": fit.ci_low, "hi": fit.ci_high, "predicted": -0.5,
       "values": np.median(gap, 1).tolist()},
      {"target": "online regret vs T", "slope": online.slope, "lo": online.ci_low, "hi": online.ci_high,
       "predicted": 0.5, "values": reg.tolist()},
  ]


def format_table(rows: list[dict[str, Any]]) -> str:
  head = "| target | slope [95% CI] | predicted | values |\n|---|---|---|---|"
  body = [f"| {r['target']} | {r['slope']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}] | {r['predicted']:+.1f} | "
          + ", ".join(f"{v:.3g}" for v in r["values"]) + " |" for r in rows]
  return "\n".join([head, *body])


def plot(results: dict[str, Any], path: str | None = None):
  """(1) 1 − value/LP vs K with a K^{-1/2} guide; (2) online regret vs T with a √T guide."""
  plt = cli.pyplot(path)

  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  ks, gap = results["ks"], 1 - results["periodic"] / results["lp"]
  med = np.median(gap, 1)
  axes[0].errorbar(ks, med, yerr=np.abs(np.quantile(gap, [0.25, 0.75], 1) - med), fmt="o-", label="rounded periodic")
  axes[0].plot(ks, med[0] / np.sqrt(ks / ks[0]), "k--", lw=1, label="∝ K^{-1/2}")
  axes[0].set_xlabel("K (pulls per period), N = 4K")
  axes[0].set_ylabel("1 − value / LP")
  t, reg = results["t"], results["regret"]
  axes[1].plot(t, reg.mean(0), "o-", label="periodic UCB (mean over seeds)")
  axes[1].fill_between(t, *np.quantile(reg, [0.25, 0.75], 0), alpha=0.2)
  axes[1].plot(t, reg.mean(0)[-1] * np.sqrt(t / t[-1]), "k--", lw=1, label="∝ √T")
  axes[1].set_xlabel("T (periods)")
  axes[1].set_ylabel("regret vs offline periodic benchmark")
  for ax in axes:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle("Recovering rewards: purely periodic policies")
  fig.tight_layout()
  return cli.finish_figure(fig, path)


def main(cfg) -> None:
  cli.prepare(cfg)
  results = run(cfg)
  table = format_table(slope_rows(results))
  cli.report(cfg.out_dir, table, table_file="slopes.md", figure_file="recovering_ppp.png",
             plot_fn=lambda path: plot(results, path))


if __name__ == "__main__":
  cli.launch(main, "recovering_ppp.py", "cpu (default), full or smoke")
