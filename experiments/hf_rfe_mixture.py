"""Reward-free exploration in linear mixture MDPs: suboptimality vs K and vs H (Zhang, Zhang & Gu, ICML 2023).

Predicted (theory spec §2): after K reward-free episodes the planner is ε-optimal for every reward with
Σ_h r_h ≤ 1, with K = Õ(d²ε⁻²): the worst suboptimality over the test rewards falls with slope −0.5
in K, its level grows with d (about 2× from d = 4 to d = 8), and it is flat in H (within 1.5×) for
the weighted algorithm; the unweighted VTR ablation is expected to degrade with H. Every seed draws
its own hard instance (random signs and log-stratified magnitudes of μ) and explores it once.

    python -m experiments.hf_rfe_mixture [--config=configs/hf_rfe_mixture.py:full] [--config.seeds=8]
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import jax
import numpy as np

from rljax.theory.envs import linear_mixture_mdp as lmm
from rljax.theory.kernels.slopes import fit_slope, loglog_slope
from rljax.theory.linear_mdp import hf_rfe_mixture as hf
from experiments import cli
from experiments.cli import load_results, save_results  # noqa: F401  (notebook and tests)

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
  t0 = time.perf_counter()
  for d in cfg.dims:
    tr = jax.device_get(_batch(key, _alg(cfg, d, cfg.horizon, cfg.n_episodes), cfg.seeds, cfg.spread, cfg.n_rewards, cps))
    out["subopt_d"].append(np.asarray(tr.subopt).max(-1))
    out["theta_d"].append(np.asarray(tr.theta_error))
  t1 = time.perf_counter()
  for H in cfg.horizons:
    sub, th = [], []
    for v in cfg.variants:
      alg = _alg(cfg, cfg.h_dim, H, cfg.h_episodes, weighted=v == "weighted")
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


def format_table(results: dict[str, Any]) -> str:
  k_cmp = int(results["k"][_at(results, results["compare_at"])])
  lines = [f"H = {results['horizon']}, K ∈ [{results['k'][0]}, {results['k'][-1]}], predicted slope −0.5 ± 0.1",
           f"| d | slope of median, last 1.5 dec. [95% CI] | slope of mean | ‖θ̂−θ*‖ slope | max-reward subopt at K={k_cmp} "
           "| ÷ smallest d (median) | ÷ smallest d (mean) |", "|---|---|---|---|---|---|---|"]
  lines += [f"| {r['d']} | {r['slope']:.3f} [{r['slope_lo']:.3f}, {r['slope_hi']:.3f}] | {r['slope_mean']:.3f} "
            f"| {r['theta_slope']:.3f} | {r['level']:.2e} | {r['ratio']:.2f} | {r['ratio_mean']:.2f} |" for r in k_rows(results)]
  lines += ["", f"d = {results['h_dim']}, K = {results['h_episodes']}: flat in H within 1.5× predicted for the weighted algorithm",
            "| H | variant | max-reward subopt (median) | ÷ smallest H | mean | ÷ smallest H | H·‖θ̂−θ*‖ |",
            "|---|---|---|---|---|---|---|"]
  lines += [f"| {r['H']} | {r['variant']} | {r['subopt']:.2e} | {r['ratio']:.2f} | {r['subopt_mean']:.2e} "
            f"| {r['ratio_mean']:.2f} | {r['rel_theta']:.3f} |"
            for r in h_rows(results)]
  return "\n".join(lines)


def plot(results: dict[str, Any], path: str | None = None):
  """Left: max-over-rewards suboptimality vs K (log–log, median and IQR) per d, with a K^{-1/2} guide;
  right: the same at K = h_episodes vs H, weighted against unweighted VTR."""
  plt = cli.pyplot(path)

  k = results["k"]
  fig, (ax_k, ax_h) = plt.subplots(1, 2, figsize=(11, 4.2))
  for i, d in enumerate(results["dims"]):
    lo, med, hi = np.quantile(results["subopt_d"][i], [0.25, 0.5, 0.75], axis=0)
    ax_k.plot(k, med, "o-", ms=3, color=f"C{i}", label=f"d={d} (median)")
    ax_k.plot(k, results["subopt_d"][i].mean(0), ":", color=f"C{i}", label=f"d={d} (mean)")
    ax_k.fill_between(k, lo, hi, color=f"C{i}", alpha=0.12)
  anchor = np.median(results["subopt_d"][-1][:, -1])
  ax_k.plot(k, anchor * np.sqrt(k[-1] / k), "k-", lw=0.8, label="∝ K^(−1/2)")
  ax_k.set(xscale="log", yscale="log", xlabel="exploration episodes K", ylabel="max_r V*_r − V^π̂_r",
           title=f"reward-free exploration, H={results['horizon']}")
  for v, name in enumerate(results["variants"]):
    y = results["subopt_h"][:, v]
    lo, med, hi = np.quantile(y, [0.25, 0.5, 0.75], axis=1)
    ax_h.errorbar(results["horizons"], med, yerr=[med - lo, hi - med], fmt="o-", capsize=3, label=name)
  ax_h.set(xscale="log", yscale="log", xlabel="horizon H", ylabel=f"max-reward subopt at K={results['h_episodes']}",
           title=f"horizon dependence (d={results['h_dim']}, median, IQR)")
  for ax in (ax_k, ax_h):
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  return cli.finish_figure(fig, path)


def main(cfg) -> None:
  cli.prepare(cfg)
  print(f"hard instance d={tuple(cfg.dims)} H={cfg.horizon} K={cfg.n_episodes} seeds={cfg.seeds}; "
        f"H={tuple(cfg.horizons)} at K={cfg.h_episodes}, d={cfg.h_dim}, seeds={cfg.h_seeds}")
  results = run(cfg)
  save_results(results, os.path.join(cfg.out_dir, "results.npz"))
  cli.report(cfg.out_dir, format_table(results), table_file="trends.md", figure_file="hf_rfe_mixture.png",
             plot_fn=lambda path: plot(results, path))
  print(f"wall time: {results['seconds_k']:.0f} s (vs K), {results['seconds_h']:.0f} s (vs H)")


if __name__ == "__main__":
  cli.launch(main, "hf_rfe_mixture.py", "cpu (default), full or smoke")
