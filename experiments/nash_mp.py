"""Tabular rates of Nash-MP (Tiapkin et al., 2025, arXiv 2505.19731) against an independent oracle for the
regularised equilibrium π*_β, on random intransitive preference games.

Reproduction targets (theory spec §22):
  R3–R5  Nash-MP's KL, exploitability and log-probability span decay linearly in the number of
      preference queries N, with slope ≤ −½·log(1+2β) per query at η = 2;
  R6  that slope does not depend on the number of actions K;
  R7  with each prox step solved by M natural-PG steps on sampled preferences the error floor falls
      ∝ 1/M; Nash-MP needs fewer queries than Nash-MD with its best constant η.
Every curve is vmapped over random games (seeds). Games, oracle and the Nash-MD baseline are those of
`experiments.nash_md` (same seed → same games).

    python -m rljax.run --config configs/nash_mp.py:full --workdir results/nash_mp
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np

from rljax.theory.preference import nash_mp
from experiments.nash_md import TREND_COLUMNS, constant_md_curves, game_keys, make_games, oracle, per_query_slope
from experiments.slopes import fit_slope
from experiments import cli

FLOOR_FRACTION = 4  # R7 floor: mean KL over the last 1/4 of the iterations
METRICS = ("kl_to_star", "exploit", "span")


@functools.partial(jax.jit, static_argnames="T")
def mp_metrics(P, log_mu, log_star, beta, eta, T):
  """Exact Nash-MP on every game: metrics [S, T+1] (`kl_to_star`, `exploit`, `span`, ...)."""
  run = lambda p, lm, ls: nash_mp.nash_mp(p, lm, lm, eta=eta, beta=beta, T=T, log_pi_star=ls)[1]
  return jax.vmap(run)(P, log_mu, log_star)


@functools.partial(jax.jit, static_argnames=("T", "n_samples"))
def approx_kl(keys, P, log_mu, log_star, beta, eta, T, inner_steps, n_samples):
  """KL(π*‖π_t) of Nash-MP with PG-solved prox steps on sampled preferences, for each number of inner
  steps in `inner_steps: i[M]` (one compilation): [M, S, T+1]."""
  def run(m, k, p, lm, ls):
    return nash_mp.nash_mp_approx(k, p, lm, lm, eta=eta, beta=beta, T=T, inner_steps=m, n_samples=n_samples,
                                  log_pi_star=ls)[1]["kl_to_star"]
  per_game = jax.vmap(run, in_axes=(None, 0, 0, 0, 0))
  return jax.vmap(per_game, in_axes=(0, None, None, None, None))(inner_steps, keys, P, log_mu, log_star)


def run(cfg) -> dict[str, Any]:
  """All curves as numpy arrays; the axes and settings ride along for the table and the plot."""
  k_games, k_sizes, k_approx = game_keys(cfg.seed)
  tau = float(cfg.tau)
  P, log_mu = make_games(k_games, cfg.seeds, cfg.n_actions)
  sol = oracle(P, log_mu, tau)
  res: dict[str, Any] = {"oracle_residual": np.asarray(sol.residual)}

  # R3–R5: Nash-MP for each β.
  per_beta = []
  for beta in cfg.betas:
    sol_b = oracle(P, log_mu, beta)
    per_beta.append(mp_metrics(P, log_mu, sol_b.log_pi, beta, cfg.mp_eta, cfg.mp_T))
    res["oracle_residual"] = np.maximum(res["oracle_residual"], np.asarray(sol_b.residual))
  for name in METRICS:
    res[f"mp_{name}"] = np.stack([np.asarray(m[name]) for m in per_beta])  # [B, S, T+1]
  res["mp_tau_kl"] = np.asarray(mp_metrics(P, log_mu, sol.log_pi, tau, cfg.mp_eta, cfg.mp_T)["kl_to_star"])
  # The baseline: constant-η Nash-MD (one query per step) for as many queries as Nash-MP used.
  res["md_const_kl"] = constant_md_curves(cfg.md_etas, 2 * cfg.mp_T, P, log_mu, sol.log_pi, tau)

  # R6: the same β = τ on games with K actions.
  size_kl = []
  for K in cfg.mp_sizes:
    Pk, lmk = make_games(jax.random.fold_in(k_sizes, K), cfg.seeds, K)
    sk = oracle(Pk, lmk, tau)
    size_kl.append(np.asarray(mp_metrics(Pk, lmk, sk.log_pi, tau, cfg.mp_eta, cfg.mp_T)["kl_to_star"]))
  res["size_kl"] = np.stack(size_kl)

  # R7: approximate prox steps.
  keys = jax.random.split(k_approx, cfg.seeds)
  res["approx_kl"] = np.asarray(approx_kl(keys, P, log_mu, sol.log_pi, tau, float(cfg.mp_eta), cfg.approx_T,
                                          np.asarray(cfg.inner_steps), cfg.n_samples))
  res.update({k: tuple(cfg[k]) for k in ("md_etas", "betas", "mp_sizes", "inner_steps")})
  res.update(tau=tau, mp_eta=float(cfg.mp_eta), n_samples=cfg.n_samples)
  return res


def approx_floors(res) -> np.ndarray:
  """Per-seed R7 error floors [M, S]: the mean KL over the last 1/FLOOR_FRACTION of the iterations."""
  tail = res["approx_kl"].shape[-1] // FLOOR_FRACTION
  return res["approx_kl"][..., -tail:].mean(-1)


def rate_ratios(res) -> np.ndarray:
  """[B, 3] per-query slope of log KL / exploitability / span ÷ the predicted −½·log(1+2β)."""
  return np.array([[per_query_slope(res[f"mp_{m}"][b]) / (-0.5 * np.log(1 + 2 * beta)) for m in METRICS]
                   for b, beta in enumerate(res["betas"])])


def size_slopes(res) -> list[float]:
  """Per-query slope of log KL for each K of `mp_sizes` (R6)."""
  return [per_query_slope(c) for c in res["size_kl"]]


def versus_md(res) -> tuple[int, np.ndarray, np.ndarray]:
  """(N, Nash-MP KL [S], best constant-η Nash-MD KL [S]) after N preference queries; a KL that
  round-off made negative counts as 0."""
  n_q = min(res["md_const_kl"].shape[-1] - 1, 2 * (res["mp_tau_kl"].shape[-1] - 1))
  return n_q, np.maximum(res["mp_tau_kl"][:, n_q // 2], 0.0), np.maximum(res["md_const_kl"][:, :, n_q].min(0), 0.0)


def trend_rows(res) -> list[dict[str, Any]]:
  """One row per target: what is predicted and what is measured (median over games)."""
  tau = res["tau"]
  rows = [{"target": "oracle: max residual", "predicted": "0", "measured": f"{res['oracle_residual'].max():.1e}",
           "value": float(res["oracle_residual"].max())}]
  for b, beta in enumerate(res["betas"]):
    pred = -0.5 * np.log(1 + 2 * beta)
    ms = [per_query_slope(res[f"mp_{m}"][b]) for m in METRICS]
    rows.append({"target": f"R3–R5 Nash-MP β={beta:g}: slope per query of log KL/exploit/span",
                 "predicted": f"≤ {pred:.4f}", "measured": "/".join(f"{s:.4f}" for s in ms), "value": max(ms) - pred})
  sl = size_slopes(res)
  rows.append({"target": f"R6 Nash-MP slope per query, K={'/'.join(map(str, res['mp_sizes']))}",
               "predicted": f"equal, ≤ {-0.5 * np.log(1 + 2 * tau):.4f}", "measured": "/".join(f"{s:.4f}" for s in sl),
               "value": min(sl, key=abs) / max(sl, key=abs)})
  fit = fit_slope(np.asarray(res["inner_steps"]), approx_floors(res).T, last_decades=None)
  rows.append({"target": f"R7 approx. Nash-MP floor vs inner steps M (n={res['n_samples']})", "predicted": "−1 [D]",
               "measured": f"{fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}]", "value": fit.slope})
  n_q, mp, md_best = versus_md(res)
  rows.append({"target": f"Nash-MP vs best constant-η Nash-MD at N={n_q} queries (median KL)",
               "predicted": "MP < MD", "measured": f"{np.median(mp):.1e} vs {np.median(md_best):.1e}, "
               f"MP ≤ MD on {np.mean(mp <= md_best):.0%} of games", "value": float(np.mean(mp <= md_best))})
  return rows


def tables(res) -> list[cli.Table]:
  return [cli.Table(trend_rows(res), TREND_COLUMNS)]


def headline(res) -> dict[str, float]:
  """Slowest per-query rate ÷ the predicted −½·log(1+2β) (over β and KL/exploitability/span), slowest ÷
  fastest rate over K, the R7 floor slope in M, and Nash-MP's median KL ÷ the best constant-η Nash-MD's
  at equal queries."""
  sl = np.abs(size_slopes(res))
  _, mp, md_best = versus_md(res)
  return {
      "rate_over_bound": float(rate_ratios(res).min()),
      "size_rate_ratio": float(sl.min() / sl.max()),
      "approx_floor_slope": fit_slope(np.asarray(res["inner_steps"]), approx_floors(res).T, last_decades=None).slope,
      "mp_over_md": float(np.median(mp) / np.median(md_best)),
  }


def plot(res, path: str | None = None):
  """2×2 panels: Nash-MP vs Nash-MD, R3–R5, R6, R7 (median over games, IQR shaded)."""
  plt = cli.pyplot(path)

  tau = res["tau"]
  fig, ax = plt.subplots(2, 2, figsize=(12, 9.5))
  a = ax[0, 0]
  t = np.arange(res["md_const_kl"].shape[-1])
  for e, c in zip(res["md_etas"], res["md_const_kl"]):
    cli.median_band(a, t, c, label=f"Nash-MD η={e:g}")
  n = 2 * np.arange(res["mp_tau_kl"].shape[-1])
  cli.median_band(a, n, res["mp_tau_kl"], label=f"Nash-MP η={res['mp_eta']:g}", color="k")
  a.set(yscale="log", xlabel="preference queries N", ylabel="KL(π*‖π)", ylim=(1e-14, None),
        title=f"Nash-MP vs constant-η Nash-MD, β=τ={tau:g}")
  a.legend(fontsize=7)
  a = ax[0, 1]
  n = 2 * np.arange(res["mp_kl_to_star"].shape[-1])
  for b, beta in enumerate(res["betas"]):
    for m, ls in zip(METRICS, ("-", "--", ":")):
      cli.median_band(a, n, res[f"mp_{m}"][b], label=f"β={beta:g} {m}", ls=ls, color=f"C{b}")
    a.plot(n, np.median(res["mp_kl_to_star"][b][:, 0]) * (1 + 2 * beta) ** (-n / 2), color=f"C{b}", lw=0.6, alpha=0.6)
  a.set(yscale="log", ylim=(1e-14, 1e2), xlabel="preference queries N", title="R3–R5: Nash-MP (thin: (1+2β)^{-N/2})")
  a.legend(fontsize=6, ncol=2)
  a = ax[1, 0]
  n = 2 * np.arange(res["size_kl"].shape[-1])
  for K, c in zip(res["mp_sizes"], res["size_kl"]):
    cli.median_band(a, n, c, label=f"K={K}")
  a.set(yscale="log", ylim=(1e-14, None), xlabel="preference queries N", title=f"R6: Nash-MP, β={tau:g}, several K")
  a.legend(fontsize=7)
  a = ax[1, 1]
  it = np.arange(res["approx_kl"].shape[-1])
  for M, c in zip(res["inner_steps"], res["approx_kl"]):
    cli.median_band(a, it, c, label=f"M={M} inner PG steps")
  a.set(yscale="log", xlabel="outer iteration", title=f"R7: approximate Nash-MP, n={res['n_samples']} labels")
  a.legend(fontsize=7)
  for a in ax.flat:
    a.grid(True, which="both", alpha=0.3)
  return cli.finish_figure(fig, path, title="Nash-MP on random intransitive games: median over games, IQR shaded")
