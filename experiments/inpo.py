"""INPO on random intransitive preference games (Zhang et al., "Iterative Nash Policy Optimization",
2024, arXiv 2407.00617).

Predicted: the exact minimiser of INPO's squared pair loss is the online-mirror-descent step
π_{t+1} ∝ π_t^{1−ητ}π_ref^{ητ}exp(η·P(·≻π_t)) (gap ~1e-12 in float64), and iterating it converges
linearly to the τ-regularised equilibrium π*_τ of the independent oracle; with n sampled pairs per
iteration INPO tracks the exact curve down to a floor ∝ 1/n in KL. Every curve is vmapped over games.

    python -m experiments.inpo [--config=configs/inpo.py:full] [--config.seeds=8]
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.nash_rates import make_games, oracle, per_query_slope
from rljax.theory import nash
from rljax.theory.kernels.slopes import fit_slope
from experiments import cli


@functools.partial(jax.jit, static_argnames=("T", "n_pairs"))
def inpo_kl(keys, P, log_ref, log_star, eta, tau, T, n_pairs):
  """KL(π*‖π_t) of INPO on every game [S, T+1]; exact when n_pairs == 0."""
  def one(k, p, lr, ls):
    key = None if n_pairs == 0 else k
    return nash.inpo(p, lr, lr, eta=eta, tau=tau, T=T, key=key, n_pairs=n_pairs or None, log_pi_star=ls)[1]["kl_to_star"]
  return jax.vmap(one)(keys, P, log_ref, log_star)


@jax.jit
def omd_gap(P, log_ref, eta, tau):
  """max |log π_{t+1} − OMD step| of the first exact INPO step from π_0 = π_ref, per game."""
  def one(p, lr):
    return jnp.max(jnp.abs(nash.inpo_tabular_step(lr, lr, p, eta=eta, tau=tau) - nash.inpo_omd_step(lr, lr, p, eta=eta, tau=tau)))
  return jax.vmap(one)(P, log_ref)


def run(cfg) -> dict[str, Any]:
  """KL curves [R, 1 + len(n_pairs), S, T+1] for ητ ∈ eta_taus (R) and exact + sampled INPO."""
  k_games, k_run = jax.random.split(jax.random.PRNGKey(cfg.seed))
  P, log_ref = make_games(k_games, cfg.seeds, cfg.n_actions)
  sol = oracle(P, log_ref, cfg.tau)
  keys = jax.random.split(k_run, cfg.seeds)
  kl, gaps = [], []
  for r in cfg.eta_taus:
    eta = r / cfg.tau
    gaps.append(np.asarray(omd_gap(P, log_ref, eta, cfg.tau)))
    kl.append([np.asarray(inpo_kl(keys, P, log_ref, sol.log_pi, eta, cfg.tau, cfg.T, n)) for n in (0, *cfg.n_pairs)])
  return {"kl": np.asarray(kl), "omd_gap": np.stack(gaps), "oracle_residual": np.asarray(sol.residual),
          "eta_taus": tuple(cfg.eta_taus), "n_pairs": tuple(cfg.n_pairs), "tau": cfg.tau,
          "floor_window": cfg.floor_window}


def trend_rows(res) -> list[dict[str, Any]]:
  """Per ητ: OMD gap, exact rate per iteration, final exact KL, and the slope of the sampled floor vs n."""
  rows = []
  for i, r in enumerate(res["eta_taus"]):
    exact = res["kl"][i, 0]
    floor = res["kl"][i, 1:, :, -res["floor_window"]:].mean(-1)  # [N, S]
    fit = fit_slope(np.asarray(res["n_pairs"]), floor.T, last_decades=None)
    rows.append({
        "eta_tau": r, "omd_gap": float(res["omd_gap"][i].max()),
        "rate": per_query_slope(exact, 1), "exact_final": float(np.median(exact[:, -1])),
        "floor_slope": fit.slope, "floor_lo": fit.ci_low, "floor_hi": fit.ci_high,
        "floors": np.median(floor, 1),
    })
  return rows


def format_table(rows, n_pairs) -> str:
  head = ("| ητ | max gap exact-min vs OMD | log-KL slope per iteration (exact) | final exact KL | "
          + " | ".join(f"floor n={n}" for n in n_pairs) + " | floor slope vs n (pred. −1) |\n|"
          + "---|" * (5 + len(n_pairs)))
  body = [f"| {r['eta_tau']:.3f} | {r['omd_gap']:.1e} | {r['rate']:.3f} | {r['exact_final']:.1e} | "
          + " | ".join(f"{f:.1e}" for f in r["floors"])
          + f" | {r['floor_slope']:.2f} [{r['floor_lo']:.2f}, {r['floor_hi']:.2f}] |" for r in rows]
  return "\n".join([head, *body])


def plot(res, path: str | None = None):
  """KL(π*_τ‖π_t) for exact and sampled INPO, one panel per ητ (median over games, IQR shaded)."""
  plt = cli.pyplot(path)

  R = len(res["eta_taus"])
  fig, axes = plt.subplots(1, R, figsize=(5.5 * R, 4.2), squeeze=False, sharey=True)
  t = np.arange(res["kl"].shape[-1])
  labels = ["exact", *(f"n={n} pairs" for n in res["n_pairs"])]
  for i, ax in enumerate(axes[0]):
    for j, lab in enumerate(labels):
      y = res["kl"][i, j]
      (line,) = ax.plot(t, np.median(y, 0), label=lab)
      ax.fill_between(t, *np.quantile(y, [0.25, 0.75], 0), color=line.get_color(), alpha=0.15)
    ax.set(yscale="log", xlabel="INPO iteration t", title=f"ητ = {res['eta_taus'][i]:.3g}, τ = {res['tau']:g}")
    ax.grid(True, which="both", alpha=0.3)
  axes[0, 0].set_ylabel("KL(π*_τ‖π_t)")
  axes[0, 0].legend(fontsize=8)
  fig.tight_layout()
  return cli.finish_figure(fig, path)


def main(cfg) -> None:
  cli.prepare(cfg)
  res = run(cfg)
  table = format_table(trend_rows(res), res["n_pairs"])
  print(f"oracle: max residual {res['oracle_residual'].max():.1e}")
  cli.report(cfg.out_dir, table, table_file="inpo.md", figure_file="inpo.png",
             plot_fn=lambda path: plot(res, path))


if __name__ == "__main__":
  cli.launch(main, "inpo.py", "cpu (default), full or smoke")
