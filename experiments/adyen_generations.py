"""Generations of a batch-logged regression-oracle CB: SquareCB vs ε-uniform, and the oscillation effect
("Contextual Bandits in Payment Processing: Non-uniform Exploration and Supervised Learning at Adyen", 2024).

Predicted: SquareCB (IGW + unweighted logistic ERM) earns more per generation than ε-uniform exploration
with IPS-weighted ERM; its logs concentrate on the best route; with a misspecified model and one
generation of memory, later generations do worse than the first refit, and V_g oscillates across
generations (lag-1 autocorrelation of ΔV_g = V_{g+1} − V_g below −0.2). Four runs: {uniform, SquareCB} ×
{κ = 0 (realizable), κ > 0 (misspecified)}, vmapped over seeds.

Caveat on the oscillation statistic: for V_g = constant + i.i.d. noise, ΔV has lag-1 autocorrelation
−0.5, so the statistic alone cannot tell an oscillation from sampling noise; the table therefore also
gives the RMS of ΔV of the seed-mean curve (the oscillation must stand out of the realizable run's).
In this simulator the degradation is robust, the oscillation is not (see the notebook).

    python -m experiments.adyen_generations [--config=configs/adyen_generations.py:full]
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from rljax.theory.bandits import adyen_generations as ag
from rljax.theory.envs import payment_sim as env
from rljax.theory.kernels.slopes import autocorrelation
from experiments import cli

RUNS = (("uniform", "realizable"), ("squarecb", "realizable"), ("uniform", "misspecified"),
        ("squarecb", "misspecified"))
METRICS = ("value", "greedy", "optimal", "top_frac", "model_err")


def make_params(cfg, kappa) -> env.PaymentParams:
  return env.make_params(jax.random.PRNGKey(cfg.env_seed), dim=cfg.dim, n_actions=cfg.n_actions, kappa=kappa,
                         p_avail=cfg.p_avail, route0_w_scale=cfg.route0_w_scale, route0_bias=cfg.route0_bias)


def run(cfg) -> dict[str, Any]:
  """Per run name "policy/model": arrays [S, G] for every metric."""
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)
  out: dict[str, Any] = {"generation": np.arange(cfg.n_generations), "runs": [f"{p}/{m}" for p, m in RUNS]}
  for policy in ("uniform", "squarecb"):
    acfg = ag.AdyenConfig(n_generations=cfg.n_generations, batch=cfg.batch, policy=policy, gamma_c=cfg.gamma_c,
                          epsilon=cfg.epsilon, memory=cfg.memory, l2=cfg.l2, newton_iters=cfg.newton_iters)
    fn = jax.jit(jax.vmap(lambda k, p: ag.run_generations(k, acfg, p), in_axes=(0, None)))
    for model, kappa in (("realizable", cfg.kappa_realizable), ("misspecified", cfg.kappa_misspecified)):
      res = jax.device_get(fn(keys, make_params(cfg, kappa)))
      out[f"{policy}/{model}"] = {m: np.asarray(res[m]) for m in METRICS}
  return out


def trend_rows(results: dict[str, Any], burn_in: int = 4) -> list[dict[str, Any]]:
  """Per run: mean V over generations ≥ burn_in, the lag-1 autocorrelation of ΔV of the seed-mean curve,
  its RMS amplitude, the median per-seed autocorrelation, and the top-route share of the logs."""
  rows = []
  for name in results["runs"]:
    v = results[name]["value"]  # [S, G]
    dv = np.diff(v.mean(0)[burn_in:])
    rows.append({
        "run": name,
        "value_mean": float(v[:, burn_in:].mean()),
        "value_g1": float(v[:, 1].mean()),
        "optimal": float(results[name]["optimal"].mean()),
        "autocorr_dv": autocorrelation(dv),
        "rms_dv": float(np.sqrt(np.mean(dv**2))),
        "seed_autocorr_dv": float(np.median([autocorrelation(np.diff(s[burn_in:])) for s in v])),
        "top_frac": float(results[name]["top_frac"][:, burn_in:].mean()),
        "model_err": float(results[name]["model_err"][:, burn_in:].mean()),
    })
  return rows


def format_table(rows: list[dict[str, Any]]) -> str:
  head = ("| run | V (g ≥ burn-in) | V at g=1 | optimal | lag-1 autocorr ΔV (seed mean) | RMS ΔV (seed mean) "
          "| median per-seed autocorr | top-route share | model error |\n|---|---|---|---|---|---|---|---|---|")
  body = [f"| {r['run']} | {r['value_mean']:.4f} | {r['value_g1']:.4f} | {r['optimal']:.4f} | {r['autocorr_dv']:+.2f} "
          f"| {r['rms_dv']:.4f} | {r['seed_autocorr_dv']:+.2f} | {r['top_frac']:.3f} | {r['model_err']:.3f} |"
          for r in rows]
  return "\n".join([head, *body])


def plot(results: dict[str, Any], path: str | None = None):
  """Left: expected success rate V_g (seed mean, IQR band) per run; right: top-route share of the logs."""
  plt = cli.pyplot(path)

  g = results["generation"]
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
  for name, col in zip(results["runs"], ("tab:gray", "tab:blue", "tab:orange", "tab:red")):
    for ax, metric in zip(axes, ("value", "top_frac")):
      y = results[name][metric]
      lo, hi = np.quantile(y, [0.25, 0.75], axis=0)
      ax.plot(g, y.mean(0), "o-", ms=3, color=col, label=name)
      ax.fill_between(g, lo, hi, color=col, alpha=0.12)
  axes[0].plot(g, results[results["runs"][0]]["optimal"].mean(0), "k--", lw=1, label="oracle (κ = 0)")
  axes[0].set_ylabel("expected success rate V_g")
  axes[1].set_ylabel("share of logged decisions on the best open route")
  for ax in axes:
    ax.set_xlabel("generation g")
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.suptitle("Batch-logged generations: SquareCB vs ε-uniform, realizable vs misspecified (memory W=1)")
  fig.tight_layout()
  return cli.finish_figure(fig, path)


def main(cfg) -> None:
  cli.prepare(cfg)
  print(f"Adyen generations: G={cfg.n_generations} N={cfg.batch} seeds={cfg.seeds} κ={cfg.kappa_misspecified}")
  results = run(cfg)
  table = format_table(trend_rows(results, cfg.burn_in))
  cli.report(cfg.out_dir, table, table_file="trends.md", figure_file="adyen_generations.png",
             plot_fn=lambda path: plot(results, path))


if __name__ == "__main__":
  cli.launch(main, "adyen_generations.py", "cpu (default), full or smoke")
