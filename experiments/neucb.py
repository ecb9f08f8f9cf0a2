"""Regret of NeuSquareCB and NeuFastCB (Deb, Ban, Zuo, He, Banerjee, "Contextual Bandits with Online
Neural Regression", ICLR 2024) on a realizable teacher-network bandit.

Predicted: NeuSquareCB regret Õ(√(KT)) (log–log slope 0.5); NeuFastCB regret Õ(√(K L*) + K), lower and
flatter than NeuSquareCB when the best arm's cumulative loss L* is small (large sharpness s). The table
also reports the oracle's mean squared error over all arms in the first and last blocks: the regret
bound only applies once this error is small.

    python -m experiments.neucb [--config=configs/neucb.py:full]
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from rljax.theory.bandits import neucb as nc
from rljax.theory.kernels.slopes import fit_slope
from experiments import cli


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
  rows = []
  for s in results["sharpness"]:
    for algo in results["algos"]:
      r = results[(s, algo)]
      fit = fit_slope(results["t"], r["regret"], n_boot=200)
      rows.append({"sharpness": s, "algo": algo, "slope": fit.slope, "ci": (fit.ci_low, fit.ci_high),
                   "regret": float(np.median(r["regret"][:, -1])), "lstar": float(np.median(r["lstar"][:, -1])),
                   "mse_first": float(np.median(r["mse"][:, 0])), "mse_last": float(np.median(r["mse"][:, -1]))})
  return rows


def format_table(rows: list[dict[str, Any]]) -> str:
  head = ("| s | algo | regret slope (pred. 0.5 square) | 95% CI | final regret | L* | oracle MSE first block "
          "| oracle MSE last block |\n|---|---|---|---|---|---|---|---|")
  body = [f"| {r['sharpness']:g} | {r['algo']} | {r['slope']:.2f} | [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}] "
          f"| {r['regret']:.1f} | {r['lstar']:.1f} | {r['mse_first']:.4f} | {r['mse_last']:.4f} |" for r in rows]
  return "\n".join([head, *body])


def plot(results: dict[str, Any], path: str | None = None):
  """Left: regret vs t log–log with √t and t guides; right: oracle MSE per block."""
  plt = cli.pyplot(path)

  t = results["t"]
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
  for s in results["sharpness"]:
    for algo in results["algos"]:
      r = results[(s, algo)]
      ls = "-" if algo == "square" else "--"
      axes[0].plot(t, np.median(r["regret"], 0), ls, label=f"Neu{'Square' if algo == 'square' else 'Fast'}CB s={s:g}")
      axes[1].plot(t, np.median(r["mse"], 0), ls, label=f"{algo} s={s:g}")
  ref = max(np.median(results[k]["regret"][:, -1]) for k in results if isinstance(k, tuple))
  axes[0].plot(t, ref * np.sqrt(t / t[-1]), "k-.", lw=1, label="∝ √t")
  axes[0].plot(t, ref * t / t[-1], "k:", lw=1, label="∝ t")
  axes[0].set(xscale="log", yscale="log", xlabel="round t", ylabel="cumulative pseudo-regret (median)")
  axes[1].set(xscale="log", yscale="log", xlabel="round t", ylabel="oracle MSE over all arms (block mean)")
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle("NeuSquareCB / NeuFastCB on a teacher-network bandit")
  fig.tight_layout()
  return cli.finish_figure(fig, path)


def main(cfg) -> None:
  cli.prepare(cfg)
  print(f"NeuCB: T={cfg.horizon} seeds={cfg.seeds} sharpness={tuple(cfg.sharpness)}")
  results = run(cfg)
  table = format_table(slope_rows(results))
  cli.report(cfg.out_dir, table, table_file="slopes.md", figure_file="neucb.png",
             plot_fn=lambda path: plot(results, path))


if __name__ == "__main__":
  cli.launch(main, "neucb.py", "cpu (default), full or smoke")
