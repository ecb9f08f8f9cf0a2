"""INPO on random intransitive preference games (Zhang et al., "Iterative Nash Policy Optimization",
2024, arXiv 2407.00617).

Predicted: the exact minimiser of INPO's squared pair loss is the online-mirror-descent step
π_{t+1} ∝ π_t^{1−ητ}π_ref^{ητ}exp(η·P(·≻π_t)) (gap ~1e-12 in float64), and iterating it converges
linearly to the τ-regularised equilibrium π*_τ of the independent oracle; with n sampled pairs per
iteration INPO tracks the exact curve down to a floor ∝ 1/n in KL. Every curve is vmapped over games.
The games and the oracle are those of `experiments.nash_md`.

    python -m rljax.run --config configs/inpo.py:full --workdir results/inpo
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.nash_md import make_games, oracle, per_query_slope
from rljax.theory.preference import inpo
from experiments.slopes import fit_slope
from experiments import cli


@functools.partial(jax.jit, static_argnames=("T", "n_pairs"))
def inpo_kl(keys, P, log_ref, log_star, eta, tau, T, n_pairs):
  """KL(π*‖π_t) of INPO on every game [S, T+1]; exact when n_pairs == 0."""
  def one(k, p, lr, ls):
    key = None if n_pairs == 0 else k
    return inpo.inpo(p, lr, lr, eta=eta, tau=tau, T=T, key=key, n_pairs=n_pairs or None, log_pi_star=ls)[1]["kl_to_star"]
  return jax.vmap(one)(keys, P, log_ref, log_star)


@jax.jit
def omd_gap(P, log_ref, eta, tau):
  """max |log π_{t+1} − OMD step| of the first exact INPO step from π_0 = π_ref, per game."""
  def one(p, lr):
    return jnp.max(jnp.abs(inpo.inpo_tabular_step(lr, lr, p, eta=eta, tau=tau) - inpo.inpo_omd_step(lr, lr, p, eta=eta, tau=tau)))
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
  """Per ητ: OMD gap, exact rate per iteration, final exact KL, the sampled floors and their slope vs n."""
  rows = []
  for i, r in enumerate(res["eta_taus"]):
    exact = res["kl"][i, 0]
    floor = res["kl"][i, 1:, :, -res["floor_window"]:].mean(-1)  # [N, S]
    fit = fit_slope(np.asarray(res["n_pairs"]), floor.T, last_decades=None)
    rows.append({
        "eta_tau": r, "omd_gap": float(res["omd_gap"][i].max()),
        "rate": per_query_slope(exact, 1), "exact_final": float(np.median(exact[:, -1])),
        **{f"floor_{n}": float(f) for n, f in zip(res["n_pairs"], np.median(floor, 1))},
        "floor_slope": fit.slope, "floor_lo": fit.ci_low, "floor_hi": fit.ci_high,
    })
  return rows


def tables(res) -> list[cli.Table]:
  columns = {"ητ": "{eta_tau:.3f}", "max gap exact-min vs OMD": "{omd_gap:.1e}",
             "log-KL slope per iteration (exact)": "{rate:.3f}", "final exact KL": "{exact_final:.1e}",
             **{f"floor n={n}": f"{{floor_{n}:.1e}}" for n in res["n_pairs"]},
             "floor slope vs n (pred. −1)": "{floor_slope:.2f} [{floor_lo:.2f}, {floor_hi:.2f}]"}
  return [cli.Table(trend_rows(res), columns, title=f"oracle: max residual {res['oracle_residual'].max():.1e}")]


def headline(res) -> dict[str, float]:
  """The largest gap between the loss minimiser and the OMD step (over ητ and games); at the largest ητ
  (1/3, the paper's default τ/η ratio): exact INPO's median final KL and the sampled floor's slope in n."""
  rows = trend_rows(res)
  top = rows[int(np.argmax(res["eta_taus"]))]
  return {"omd_gap": max(r["omd_gap"] for r in rows), "exact_final_kl": top["exact_final"],
          "floor_slope": top["floor_slope"]}


def plot(res, path: str | None = None):
  """KL(π*_τ‖π_t) for exact and sampled INPO, one panel per ητ (median over games, IQR shaded)."""
  plt = cli.pyplot(path)

  R = len(res["eta_taus"])
  fig, axes = plt.subplots(1, R, figsize=(5.5 * R, 4.2), squeeze=False, sharey=True)
  t = np.arange(res["kl"].shape[-1])
  labels = ["exact", *(f"n={n} pairs" for n in res["n_pairs"])]
  for i, ax in enumerate(axes[0]):
    for j, lab in enumerate(labels):
      cli.median_band(ax, t, res["kl"][i, j], label=lab)
    ax.set(yscale="log", xlabel="INPO iteration t", title=f"ητ = {res['eta_taus'][i]:.3g}, τ = {res['tau']:g}")
    ax.grid(True, which="both", alpha=0.3)
  axes[0, 0].set_ylabel("KL(π*_τ‖π_t)")
  axes[0, 0].legend(fontsize=8)
  return cli.finish_figure(fig, path, title="Exact vs sampled INPO on random intransitive games: median over games, IQR shaded")
