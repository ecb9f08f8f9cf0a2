"""Purely periodic policies under recovering rewards (Simchi-Levi, Zheng & Zhu, "Offline Planning and
Online Learning under Recovering Rewards", arXiv 2106.14813).

Predicted: (1) rounding the LP relaxation to a purely periodic schedule loses a fraction O(1/√K):
1 − value/LP has log–log slope −0.5 in K (N = 4K arms, R_i(d) = a_i(1 − e^{−d/τ_i}), d_max = 10);
(2) periodic UCB (LP on optimistic indices, doubling epochs) has Õ(N√T) regret against the offline
periodic benchmark (slope 0.5 in T). Instances and roundings are vmapped over seeds; one compile per K.

At the horizons we reach (T ≤ 10^4.5) periodic UCB is still exploring, and the online slope is
about 0.78, above the predicted 0.5 (see the paper index's note).

    python -m rljax.run --config configs/recovering_ppp.py:full --workdir results/recovering_ppp
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.bandits import recovering_ppp as rp
from rljax.theory.envs import recovering_bandit as env
from experiments.slopes import fit_slope
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


def tables(results: dict[str, Any]) -> list[cli.Table]:
  return [cli.Table(slope_rows(results), {
      "target": "{target}", "slope [95% CI]": "{slope:+.3f} [{lo:+.3f}, {hi:+.3f}]", "predicted": "{predicted:+.1f}",
      "values": lambda r: ", ".join(f"{v:.3g}" for v in r["values"])})]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """The two log–log slopes: the offline rounding gap vs K and the online regret vs T."""
  offline, online = slope_rows(results)
  return {"offline_gap_slope": offline["slope"], "online_regret_slope": online["slope"]}


def plot(results: dict[str, Any], path: str | None = None):
  """(1) 1 − value/LP vs K with a K^{-1/2} guide; (2) online regret vs T with a √T guide."""
  plt = cli.pyplot(path)

  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  ks, gap = results["ks"], 1 - results["periodic"] / results["lp"]
  med = np.median(gap, 1)
  axes[0].errorbar(ks, med, yerr=np.abs(np.quantile(gap, [0.25, 0.75], 1) - med), fmt="o-", label="rounded periodic")
  cli.power_guide(axes[0], ks, med[-1], -0.5, label="∝ K^{-1/2}", style="k--")
  cli.loglog(axes[0], "K (pulls per period), N = 4K", "1 − value / LP")
  t, reg = results["t"], results["regret"]
  axes[1].plot(t, reg.mean(0), "o-", label="periodic UCB (mean over seeds)")
  axes[1].fill_between(t, *np.quantile(reg, [0.25, 0.75], 0), alpha=0.2)
  cli.power_guide(axes[1], t, reg.mean(0)[-1], 0.5, label="∝ √T", style="k--")
  cli.loglog(axes[1], "T (periods)", "regret vs offline periodic benchmark")
  return cli.finish_figure(fig, path, title="Recovering rewards: purely periodic policies")
