"""Regret of NeuSquareCB and NeuFastCB (Deb, Ban, Zuo, He, Banerjee, "Contextual Bandits with Online
Neural Regression", ICLR 2024) on a realizable teacher-network bandit.

Predicted: NeuSquareCB regret Õ(√(KT)) (log–log slope 0.5); NeuFastCB regret Õ(√(K L*) + K), lower and
flatter than NeuSquareCB when the best arm's cumulative loss L* is small (large sharpness s). The table
also reports the oracle's mean squared error over all arms in the first and last blocks: the regret
bound only applies once this error is small.

    python -m rljax.run --config configs/neucb.py:full --workdir results/neucb
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from rljax.theory.bandits import neucb as nc
from experiments.slopes import fit_slope
from experiments import cli

NAMES = {"square": "NeuSquareCB", "fast": "NeuFastCB"}


def run(cfg) -> dict[str, Any]:
  """Per (sharpness, algo): regret, L*, oracle MSE [S, C]; checkpoints t [C]."""
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)
  out: dict[str, Any] = {"sharpness": tuple(cfg.sharpness), "algos": tuple(cfg.algos)}
  for s in cfg.sharpness:
    env = nc.make_env(jax.random.PRNGKey(cfg.env_seed), cfg.n_arms, cfg.dim, sharpness=s)
    for algo in cfg.algos:
      ncfg = nc.NeuCBConfig(algo=algo, n_arms=cfg.n_arms, dim=cfg.dim, width=cfg.width, horizon=cfg.horizon,
                            lr_scale=cfg.lr_scale, gamma_scale=cfg.gamma_scale, n_steps=cfg.n_steps,
                            window=cfg.window)
      t, reg, lstar, mse = jax.device_get(jax.jit(jax.vmap(lambda k: nc.run(k, ncfg, env, cfg.n_checkpoints)))(keys))
      out["t"] = np.asarray(t[0])
      out[(s, algo)] = {"regret": np.asarray(reg), "lstar": np.asarray(lstar), "mse": np.asarray(mse)}
  return out


def slope_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per (sharpness, algo): the regret slope and its seed-bootstrap CI, final regret, L*, oracle MSE."""
  rows = []
  for s in results["sharpness"]:
    for algo in results["algos"]:
      r = results[(s, algo)]
      fit = fit_slope(results["t"], r["regret"], n_boot=200)
      rows.append({"sharpness": s, "algo": algo, "slope": fit.slope, "ci_low": fit.ci_low, "ci_high": fit.ci_high,
                   "regret": float(np.median(r["regret"][:, -1])), "lstar": float(np.median(r["lstar"][:, -1])),
                   "mse_first": float(np.median(r["mse"][:, 0])), "mse_last": float(np.median(r["mse"][:, -1]))})
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  return [cli.Table(slope_rows(results), {
      "s": "{sharpness:g}", "algo": "{algo}", "regret slope (pred. 0.5 square)": "{slope:.2f}",
      "95% CI": "[{ci_low:.2f}, {ci_high:.2f}]", "final regret": "{regret:.1f}", "L*": "{lstar:.1f}",
      "oracle MSE first block": "{mse_first:.4f}", "oracle MSE last block": "{mse_last:.4f}"})]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """NeuSquareCB's regret slope (the steeper sharpness), NeuFastCB's final regret ÷ NeuSquareCB's (the
  larger over sharpness levels), and NeuFastCB's slope minus NeuSquareCB's at the largest sharpness."""
  rows = {(r["sharpness"], r["algo"]): r for r in slope_rows(results)}
  sharp = results["sharpness"]
  return {
      "square_slope": max(rows[(s, "square")]["slope"] for s in sharp),
      "fast_square_ratio": max(rows[(s, "fast")]["regret"] / rows[(s, "square")]["regret"] for s in sharp),
      "fast_slope_gap_small_lstar": rows[(max(sharp), "fast")]["slope"] - rows[(max(sharp), "square")]["slope"],
  }


def plot(results: dict[str, Any], path: str | None = None):
  """Left: regret vs t log–log with √t and t guides; right: oracle MSE per block."""
  plt = cli.pyplot(path)

  t = results["t"]
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
  for s in results["sharpness"]:
    for algo in results["algos"]:
      r = results[(s, algo)]
      ls = "-" if algo == "square" else "--"
      cli.median_band(axes[0], t, r["regret"], label=f"{NAMES[algo]} s={s:g}", ls=ls)
      cli.median_band(axes[1], t, r["mse"], label=f"{algo} s={s:g}", ls=ls)
  ref = max(np.median(results[k]["regret"][:, -1]) for k in results if isinstance(k, tuple))
  cli.power_guide(axes[0], t, ref, 0.5, label="∝ √t", style="k-.")
  cli.power_guide(axes[0], t, ref, 1.0, label="∝ t")
  cli.loglog(axes[0], "round t", "cumulative pseudo-regret (median)")
  cli.loglog(axes[1], "round t", "oracle MSE over all arms (block mean)")
  return cli.finish_figure(fig, path, title="NeuSquareCB / NeuFastCB on a teacher-network bandit")
