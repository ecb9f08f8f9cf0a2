"""Reward-free exploration in linear mixture MDPs: suboptimality vs K and vs H (Zhang, Zhang & Gu, ICML 2023).

Predicted (theory spec §2): after K reward-free episodes the planner is ε-optimal for every reward with
Σ_h r_h ≤ 1, with K = Õ(d²ε⁻²): the worst suboptimality over the test rewards falls with slope −0.5
in K, its level grows with d (about 2× from d = 4 to d = 8), and it is flat in H (within 1.5×) for
the weighted algorithm; the unweighted VTR ablation is expected to degrade with H. Every seed draws
its own hard instance (random signs and log-stratified magnitudes of μ) and explores it once.

    python -m rljax.run --config configs/hf_rfe_mixture.py:full --workdir results/hf_rfe_mixture
"""

from __future__ import annotations

import functools
import time
from typing import Any

import jax
import numpy as np

from rljax.theory.envs import linear_mixture_mdp as lmm
from experiments.slopes import fit_slope, loglog_slope
from rljax.theory.linear_mdp import hf_rfe_mixture as hf
from experiments import cli


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _batch(key, alg: hf.HfRfeConfig, seeds: int, spread: float, n_rewards: int, checkpoints: tuple) -> hf.Trace:
  k_env, k_rew, k_run = jax.random.split(key, 3)
  envs = jax.vmap(lambda k: lmm.hard_instance(k, alg.dim, alg.horizon, spread=spread))(jax.random.split(k_env, seeds))
  rewards = lmm.random_rewards(k_rew, n_rewards, 2, envs.phi.shape[2], alg.horizon)
  run = jax.vmap(hf.run, in_axes=(0, None, 0, None, None))
  return run(jax.random.split(k_run, seeds), alg, envs, rewards, checkpoints)


def _alg(cfg, dim: int, horizon: int, n_episodes: int, weighted: bool = True) -> hf.HfRfeConfig:
  beta = cfg.beta_scale * hf.HfRfeConfig(dim, horizon, n_episodes).beta
  return hf.HfRfeConfig(dim, horizon, n_episodes, beta=beta, weighted=weighted)


def checkpoints(cfg) -> tuple:
  """`n_checkpoints` log-spaced episode counts from 100 to K (duplicates after rounding dropped)."""
  return tuple(int(k) for k in np.unique(np.round(np.logspace(2, np.log10(cfg.n_episodes), cfg.n_checkpoints))))


def run(cfg) -> dict[str, Any]:
  """Max-over-rewards suboptimality and ‖θ̂₀ − θ*‖: `[d, seeds, checkpoints]` (plot 1) and
  `[H, variant, seeds]` at K = h_episodes (plot 2), plus the wall time of each part."""
  key = jax.random.PRNGKey(cfg.seed)
  cps = checkpoints(cfg)
  out = {"subopt_d": [], "theta_d": [], "subopt_h": [], "theta_h": []}
  runs = {}  # the runs of the K sweep, reused by the H sweep where it asks for the same one
  t0 = time.perf_counter()
  for d in cfg.dims:
    alg = _alg(cfg, d, cfg.horizon, cfg.n_episodes)
    runs[alg, cfg.seeds] = tr = jax.device_get(_batch(key, alg, cfg.seeds, cfg.spread, cfg.n_rewards, cps))
    out["subopt_d"].append(np.asarray(tr.subopt).max(-1))
    out["theta_d"].append(np.asarray(tr.theta_error))
  t1 = time.perf_counter()
  for H in cfg.horizons:
    sub, th = [], []
    for v in cfg.variants:
      alg = _alg(cfg, cfg.h_dim, H, cfg.h_episodes, weighted=v == "weighted")
      # Evaluating at more checkpoints leaves the exploration unchanged: the K sweep's last one is this run.
      tr = runs.get((alg, cfg.h_seeds))
      if tr is None:
        tr = jax.device_get(_batch(key, alg, cfg.h_seeds, cfg.spread, cfg.n_rewards, (cfg.h_episodes,)))
      sub.append(np.asarray(tr.subopt)[:, -1].max(-1))
      th.append(np.asarray(tr.theta_error)[:, -1])
    out["subopt_h"].append(sub)
    out["theta_h"].append(th)
  return {"k": np.asarray(cps), "dims": tuple(cfg.dims), "horizons": tuple(cfg.horizons), "variants": tuple(cfg.variants),
          "horizon": cfg.horizon, "h_dim": cfg.h_dim, "h_episodes": cfg.h_episodes, "compare_at": cfg.compare_at,
          "seconds_k": t1 - t0, "seconds_h": time.perf_counter() - t1,
          **{name: np.asarray(v) for name, v in out.items()}}


def _at(results, K):
  return int(np.searchsorted(results["k"], min(K, results["k"][-1])))


def k_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per d: slope of the median (spec rule, with its seed-bootstrap CI) and of the mean suboptimality
  over the last 1.5 decades of K, the ‖θ̂₀ − θ*‖ slope, and the median level at compare_at with its
  ratio (and the ratio of means) to the smallest d."""
  k, j = results["k"], _at(results, results["compare_at"])
  keep = k >= k[-1] * 10**-1.5
  base = max(float(np.median(results["subopt_d"][0][:, j])), 1e-12)
  base_mean = max(float(results["subopt_d"][0][:, j].mean()), 1e-12)
  rows = []
  for i, d in enumerate(results["dims"]):
    sub = np.maximum(results["subopt_d"][i], 1e-12)
    fit = fit_slope(k, sub)
    level = float(np.median(sub[:, j]))
    rows.append({"d": d, "slope": fit.slope, "slope_lo": fit.ci_low, "slope_hi": fit.ci_high,
                 "slope_mean": loglog_slope(k[keep], sub[:, keep].mean(0))[0],
                 "theta_slope": fit_slope(k, results["theta_d"][i]).slope,
                 "level": level, "ratio": level / base, "ratio_mean": float(sub[:, j].mean()) / base_mean})
  return rows


def h_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per (H, variant) at K = h_episodes: median and mean suboptimality, their ratios to the smallest H, and the
  relative model error H·‖θ̂₀ − θ*‖ (μ scales like 1/H, so this is flat when learning is horizon-free)."""
  rows = []
  for h, H in enumerate(results["horizons"]):
    for v, name in enumerate(results["variants"]):
      med, mean = float(np.median(results["subopt_h"][h, v])), float(results["subopt_h"][h, v].mean())
      rows.append({"H": H, "variant": name, "subopt": med, "subopt_mean": mean,
                   "ratio": med / max(float(np.median(results["subopt_h"][0, v])), 1e-12),
                   "ratio_mean": mean / max(float(results["subopt_h"][0, v].mean()), 1e-12),
                   "rel_theta": float(np.median(H * results["theta_h"][h, v]))})
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  k_cmp = int(results["k"][_at(results, results["compare_at"])])
  vs_k = cli.Table(k_rows(results), {
      "d": "{d}", "slope of median, last 1.5 dec. [95% CI]": "{slope:.3f} [{slope_lo:.3f}, {slope_hi:.3f}]",
      "slope of mean": "{slope_mean:.3f}", "‖θ̂−θ*‖ slope": "{theta_slope:.3f}",
      f"max-reward subopt at K={k_cmp}": "{level:.2e}", "÷ smallest d (median)": "{ratio:.2f}",
      "÷ smallest d (mean)": "{ratio_mean:.2f}"},
      title=f"H = {results['horizon']}, K ∈ [{results['k'][0]}, {results['k'][-1]}], predicted slope −0.5 ± 0.1",
      name="vs_k")
  vs_h = cli.Table(h_rows(results), {
      "H": "{H}", "variant": "{variant}", "max-reward subopt (median)": "{subopt:.2e}", "÷ smallest H": "{ratio:.2f}",
      "mean": "{subopt_mean:.2e}", "÷ smallest H (mean)": "{ratio_mean:.2f}", "H·‖θ̂−θ*‖": "{rel_theta:.3f}"},
      title=f"d = {results['h_dim']}, K = {results['h_episodes']}: flat in H within 1.5× predicted for the weighted "
            "algorithm", name="vs_h")
  return [vs_k, vs_h]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """Slopes vs K of the median max-reward suboptimality and of ‖θ̂₀ − θ*‖ at the largest d, of the mean
  suboptimality at the smallest d, and the weighted algorithm's largest mean-suboptimality ratio over H."""
  rows = k_rows(results)
  weighted = [r["ratio_mean"] for r in h_rows(results) if r["variant"] == "weighted"]
  return {
      "subopt_slope": rows[-1]["slope"],
      "subopt_mean_slope_small_d": rows[0]["slope_mean"],
      "theta_slope": rows[-1]["theta_slope"],
      "h_ratio_weighted": max(weighted),
  }


def plot(results: dict[str, Any], path: str | None = None):
  """Left: max-over-rewards suboptimality vs K (log–log, median and IQR) per d, with a K^{-1/2} guide;
  right: the same at K = h_episodes vs H, weighted against unweighted VTR."""
  plt = cli.pyplot(path)

  k = results["k"]
  fig, (ax_k, ax_h) = plt.subplots(1, 2, figsize=(11, 4.2))
  for i, d in enumerate(results["dims"]):
    cli.median_band(ax_k, k, results["subopt_d"][i], label=f"d={d} (median)", color=f"C{i}", ls="o-")
    ax_k.plot(k, results["subopt_d"][i].mean(0), ":", color=f"C{i}", label=f"d={d} (mean)")
  cli.power_guide(ax_k, k, np.median(results["subopt_d"][-1][:, -1]), -0.5, label="∝ K^(−1/2)", style="k-")
  cli.loglog(ax_k, "exploration episodes K", "max_r V*_r − V^π̂_r", title=f"reward-free exploration, H={results['horizon']}")
  for v, name in enumerate(results["variants"]):
    y = results["subopt_h"][:, v]
    lo, med, hi = np.quantile(y, [0.25, 0.5, 0.75], axis=1)
    ax_h.errorbar(results["horizons"], med, yerr=[med - lo, hi - med], fmt="o-", capsize=3, label=name)
  cli.loglog(ax_h, "horizon H", f"max-reward subopt at K={results['h_episodes']}",
             title=f"horizon dependence (d={results['h_dim']}, median, IQR)")
  return cli.finish_figure(fig, path)
