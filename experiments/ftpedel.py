"""FTPedel: online samples vs the amount of offline data on the hard-direction bandit (Wagenmaker &
Pacchiano, ICML 2023).

Predicted: the online samples FTPedel needs for a certified ε-optimal arm fall as the offline data
covers the hard direction e_2 and saturate at the floor set by the uncovered directions, tracking
the complexity N*(ε) with Λ_off = n_off e_2e_2ᵀ (ratio within 3×, same ordering). Offline data alone
(pessimistic LCB) cannot certify its choice; online-only exploration (n_off = 0) pays the most.
Instance: d = 4, arms e_1..e_4 and x' = cos(ω)e_1 + sin(ω)e_2, θ* = e_1, σ = 1. One compile; seeds
are vmapped and the offline buffer is masked to n_off.

    python -m rljax.run --config configs/ftpedel.py:full --workdir results/ftpedel
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.linear_mdp import ftpedel as fp
from experiments import cli


def instance(cfg) -> tuple[jax.Array, jax.Array]:
  """Arms `[d + 1, d]` (e_1..e_d, x') and θ* = e_1."""
  eye = jnp.eye(cfg.dim)
  x_prime = jnp.cos(cfg.omega) * eye[0] + jnp.sin(cfg.omega) * eye[1]
  return jnp.concatenate([eye, x_prime[None]]), eye[0]


def algo_config(cfg) -> fp.Config:
  """The algorithm's settings (ε, δ, σ and the design solver's sizes) from the experiment config."""
  return fp.Config(epsilon=cfg.epsilon, delta=cfg.delta, sigma=cfg.sigma, design_iters=cfg.design_iters,
                   n_bisect=cfg.n_bisect)


def run(cfg) -> dict[str, Any]:
  """Per n_off and seed: FTPedel's online samples, its output's gap and certificate, and the
  offline-only LCB arm's gap and certificate; N*(ε) per n_off."""
  arms, theta = instance(cfg)
  algo = algo_config(cfg)
  gaps = np.asarray(jnp.max(arms @ theta) - arms @ theta)
  n_pad = max(max(cfg.n_offline), 1)
  off_x = jnp.tile(jnp.eye(cfg.dim)[1], (n_pad, 1))

  def one(key, n_off):
    k_off, k_on = jax.random.split(key)
    off_y = off_x @ theta + cfg.sigma * jax.random.normal(k_off, (n_pad,))
    mask = jnp.arange(n_pad) < n_off
    res = fp.bandit(k_on, algo, arms, theta, off_x, off_y, mask)
    pick, cert = fp.offline_lcb(algo, arms, off_x, off_y, mask)
    return res.online_samples, res.arm, res.certified, pick, cert

  batched = jax.jit(jax.vmap(one, in_axes=(0, None)))
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)
  out = {m: [] for m in ("samples", "gap", "certified", "lcb_gap", "lcb_certified")}
  n_star = []
  complexity = jax.jit(fp.complexity)  # one compile: Λ_off is traced
  c_beta = cfg.c_complexity * float(fp.beta(fp.n_rounds(cfg.epsilon), arms.shape[0], cfg.delta, cfg.sigma))
  for n_off in cfg.n_offline:
    samples, arm, cert, pick, lcb_cert = jax.device_get(batched(keys, n_off))
    out["samples"].append(samples)
    out["gap"].append(gaps[arm])
    out["certified"].append(cert)
    out["lcb_gap"].append(gaps[pick])
    out["lcb_certified"].append(lcb_cert)
    lam_off = n_off * jnp.outer(jnp.eye(cfg.dim)[1], jnp.eye(cfg.dim)[1])
    n_star.append(float(complexity(arms, theta, lam_off, cfg.epsilon, c_beta)))
  return {"n_offline": np.asarray(cfg.n_offline), "n_star": np.asarray(n_star), "epsilon": cfg.epsilon,
          **{m: np.asarray(v) for m, v in out.items()}}


def trend_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """One row per n_off: median online samples, N*, their ratio, FTPedel's worst output gap and
  certificate rate, and the offline-only LCB arm's mean gap and certificate rate."""
  rows = []
  for i, n_off in enumerate(results["n_offline"]):
    med = float(np.median(results["samples"][i]))
    rows.append({
        "n_off": int(n_off), "samples": med, "n_star": float(results["n_star"][i]),
        "ratio": med / max(float(results["n_star"][i]), 1.0),
        "max_gap": float(np.max(results["gap"][i])), "certified": float(np.mean(results["certified"][i])),
        "lcb_gap": float(np.mean(results["lcb_gap"][i])), "lcb_certified": float(np.mean(results["lcb_certified"][i])),
    })
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  return [cli.Table(trend_rows(results), {
      "n_off": "{n_off}", "FTPedel online samples (median)": "{samples:.0f}",
      f"N*(ε={results['epsilon']})": "{n_star:.0f}", "ratio": "{ratio:.2f}", "max output gap": "{max_gap:.4f}",
      "certified": "{certified:.2f}", "offline-only LCB gap": "{lcb_gap:.3f}", "LCB certified": "{lcb_certified:.2f}"})]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """Online samples at the largest n_off ÷ at n_off = 0; the smallest and largest ratio of online
  samples to N*(ε) over n_off; the fraction of FTPedel's outputs that are certified and ε-optimal."""
  rows = trend_rows(results)
  eps = results["epsilon"]
  return {
      "offline_saving": rows[-1]["samples"] / rows[0]["samples"],
      "ratio_to_n_star_min": min(r["ratio"] for r in rows),
      "ratio_to_n_star_max": max(r["ratio"] for r in rows),
      "certified_eps_optimal": float(np.mean((results["gap"] <= eps) & results["certified"])),
  }


def plot(results: dict[str, Any], path: str | None = None):
  """Left: online samples vs n_off with the N* curve. Right: online samples and certified ε-optimal
  rate of offline-only (LCB), online-only (n_off = 0) and FTPedel at the largest n_off."""
  plt = cli.pyplot(path)

  n_off, samples = results["n_offline"], results["samples"]
  x = np.maximum(n_off, 1)
  fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2))
  med = np.median(samples, axis=1)
  lo, hi = np.quantile(samples, [0.25, 0.75], axis=1)
  ax0.errorbar(x, med, yerr=[med - lo, hi - med], fmt="o-", capsize=3, label="FTPedel (median, IQR)")
  ax0.plot(x, results["n_star"], "k--", label="N*(ε) (complexity formula)")
  cli.loglog(ax0, "offline samples on e₂ (n_off; 0 drawn at 1)", "online samples")
  eps = results["epsilon"]
  good = lambda gap, cert: np.mean((gap <= eps) & cert)
  names = ("offline-only LCB", "online-only", "FTPedel")
  used = (0.0, np.median(samples[0]), med[-1])
  rate = (good(results["lcb_gap"][-1], results["lcb_certified"][-1]),
          good(results["gap"][0], results["certified"][0]), good(results["gap"][-1], results["certified"][-1]))
  bars = ax1.bar(names, used, color=["tab:gray", "tab:orange", "tab:blue"])
  for b, r in zip(bars, rate):
    ax1.annotate(f"certified ε-opt: {r:.0%}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center",
                 va="bottom", fontsize=9)
  ax1.set_ylabel(f"online samples (n_off = {n_off[-1]})")
  return cli.finish_figure(fig, path, title=f"FTPedel, hard-direction bandit, ε = {eps}")
