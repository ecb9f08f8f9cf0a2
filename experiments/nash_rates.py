"""Tabular rates of Nash-MD (Munos et al., ICML 2024, arXiv 2312.00886) and Nash-MP (Tiapkin et al.,
2025, arXiv 2505.19731) against an independent oracle for the regularised equilibrium π*_τ.

Reproduction targets (theory spec §22):
  R1  constant-η Nash-MD decays at rate ≈ 1 − ητ to a floor; the floor grows like η² in KL
      (the recursion KL' ≤ (1 − ητ)KL + 2η² only bounds it by 2η/τ);
  R2  the anytime schedule η_t = 2/(τ(t+2)) stays below 8/(τ²(t+1)) (slope ≤ −1), and the horizon-tuned
      constant η = log T/(τT) gives a final KL ∝ 1/T; self-play MWU (τ = 0) cycles instead;
  R3–R5  Nash-MP's KL, exploitability and log-probability span decay linearly in the number of
      preference queries N, with slope ≤ −½·log(1+2β) per query at η = 2;
  R6  that slope does not depend on the number of actions K;
  R7  with each prox step solved by M natural-PG steps on sampled preferences the error floor falls
      ∝ 1/M; Nash-MP needs fewer queries than Nash-MD with its best constant η.
Every curve is vmapped over random games (seeds).

    python -m experiments.nash_rates [--config=configs/nash_rates.py:full] [--config.seeds=8]
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory import nash
from rljax.theory.kernels import preference_games as pg
from rljax.theory.kernels.slopes import fit_slope
from experiments import cli

FLOOR_FRACTION = 4  # R7 floor: mean KL over the last 1/4 of the iterations
TINY = 1e-12  # below this the KL is round-off and is left out of the linear-rate fits


@functools.partial(jax.jit, static_argnums=(1, 2))
def make_games(key, seeds: int, n_actions: int):
  """[S] random intransitive games: P, log μ with μ ~ Dirichlet(1)."""
  k_p, k_mu = jax.random.split(key)
  P = jax.vmap(lambda k: pg.random_preference_matrix(k, n_actions))(jax.random.split(k_p, seeds))
  e = jax.random.exponential(k_mu, (seeds, n_actions))  # normalised Exp(1) draws are Dirichlet(1)
  return P, jnp.log(e / jnp.sum(e, -1, keepdims=True))


@jax.jit
def oracle(P, log_mu, tau):
  return jax.vmap(lambda p, lm: nash.regularized_nash_equilibrium(p, jnp.exp(lm), tau))(P, log_mu)


def _md_kl(etas, P, log_mu, log_star, tau):
  return nash.nash_md(P, log_mu, log_mu, eta=etas, tau=tau, T=etas.shape[0], log_pi_star=log_star)[1]["kl_to_star"]


@functools.partial(jax.jit, static_argnames=("tau",))
def md_curves(etas, P, log_mu, log_star, tau):
  """KL(π*‖π_t) of Nash-MD for step-size rows `etas: [E, T]` on every game: [E, S, T+1]."""
  per_game = jax.vmap(_md_kl, in_axes=(None, 0, 0, 0, None))
  return jax.vmap(per_game, in_axes=(0, None, None, None, None))(etas, P, log_mu, log_star, tau)


@functools.partial(jax.jit, static_argnames="T")
def mp_metrics(P, log_mu, log_star, beta, eta, T):
  run = lambda p, lm, ls: nash.nash_mp(p, lm, lm, eta=eta, beta=beta, T=T, log_pi_star=ls)[1]
  return jax.vmap(run)(P, log_mu, log_star)


@functools.partial(jax.jit, static_argnames=("beta", "eta", "T", "inner_steps", "n_samples"))
def approx_kl(keys, P, log_mu, log_star, beta, eta, T, inner_steps, n_samples):
  run = lambda k, p, lm, ls: nash.nash_mp_approx(
      k, p, lm, lm, eta=eta, beta=beta, T=T, inner_steps=inner_steps, n_samples=n_samples, log_pi_star=ls
  )[1]["kl_to_star"]
  return jax.vmap(run)(keys, P, log_mu, log_star)


@functools.partial(jax.jit, static_argnames="T")
def _rps_log_pis(taus, eta, T):
  P = pg.cyclic_matrix(3)
  log_u = jnp.full(3, -jnp.log(3.0))
  log_pi0 = jax.nn.log_softmax(jnp.array([0.6, 0.0, -0.6]))
  return jax.vmap(lambda tau: nash.nash_md(P, log_u, log_pi0, eta=eta, tau=tau, T=T)[0])(taus)


def mwu_cycle(cfg) -> dict[str, np.ndarray]:
  """Rock–paper–scissors, uniform μ (so π*_τ is uniform for every τ): KL(uniform‖π_t) and π_t(rock)
  for self-play MWU (τ = 0) and for Nash-MD with τ = cfg.tau at the same η."""
  log_pis = _rps_log_pis(jnp.array([0.0, cfg.tau]), cfg.mwu_eta, cfg.mwu_T)
  kl = np.asarray(pg.kl(jnp.full(3, -jnp.log(3.0)), log_pis))
  p0 = np.asarray(jnp.exp(log_pis[..., 0]))
  return {"mwu_kl": kl[0], "nash_md_kl": kl[1], "mwu_p0": p0[0], "nash_md_p0": p0[1]}


def run(cfg) -> dict[str, Any]:
  """All curves as numpy arrays; the axes and settings ride along for the table and the plot."""
  key = jax.random.PRNGKey(cfg.seed)
  k_games, k_sizes, k_approx = jax.random.split(key, 3)
  tau = float(cfg.tau)
  P, log_mu = make_games(k_games, cfg.seeds, cfg.n_actions)
  sol = oracle(P, log_mu, tau)
  res: dict[str, Any] = {"oracle_residual": np.asarray(sol.residual), "oracle_exploit": np.asarray(sol.exploitability)}

  # R1 and R2 in one scan: a row of step sizes per setting (η_t = 0 past a horizon).
  T, E = cfg.md_T, len(cfg.md_etas)
  hs = np.asarray(cfg.horizons)
  if hs.max() > T:
    raise ValueError(f"`horizons` must not exceed md_T={T}, got {tuple(hs)}.")
  t = jnp.arange(T)
  rows = jnp.concatenate([
      jnp.asarray(cfg.md_etas)[:, None] * jnp.ones(T),
      nash.anytime_schedule(T, tau)[None],
      jnp.stack([jnp.where(t < h, nash.horizon_step(float(h), tau), 0.0) for h in hs]),
  ])
  curves = np.asarray(md_curves(rows, P, log_mu, sol.log_pi, tau))  # [E + 1 + H, S, T+1]
  res["md_const_kl"], res["md_anytime_kl"] = curves[:E], curves[E]
  res["horizon_final_kl"] = curves[E + 1 + np.arange(len(hs)), :, hs].T  # [S, H]
  res["kl0"] = np.asarray(pg.kl(sol.log_pi, log_mu))
  res.update(mwu_cycle(cfg))

  # R3–R5: Nash-MP for each β.
  for name in ("kl_to_star", "exploit", "span"):
    res[f"mp_{name}"] = []
  for beta in cfg.betas:
    sol_b = oracle(P, log_mu, beta)
    m = mp_metrics(P, log_mu, sol_b.log_pi, beta, cfg.mp_eta, cfg.mp_T)
    for name in ("kl_to_star", "exploit", "span"):
      res[f"mp_{name}"].append(np.asarray(m[name]))
  for name in ("kl_to_star", "exploit", "span"):
    res[f"mp_{name}"] = np.stack(res[f"mp_{name}"])  # [B, S, T+1]
  res["mp_tau_kl"] = np.asarray(mp_metrics(P, log_mu, sol.log_pi, tau, cfg.mp_eta, cfg.mp_T)["kl_to_star"])

  # R6: the same β = τ on games with K actions.
  res["size_kl"] = []
  for K in cfg.mp_sizes:
    Pk, lmk = make_games(jax.random.fold_in(k_sizes, K), cfg.seeds, K)
    sk = oracle(Pk, lmk, tau)
    res["size_kl"].append(np.asarray(mp_metrics(Pk, lmk, sk.log_pi, tau, cfg.mp_eta, cfg.mp_T)["kl_to_star"]))
  res["size_kl"] = np.stack(res["size_kl"])

  # R7: approximate prox steps.
  keys = jax.random.split(k_approx, cfg.seeds)
  res["approx_kl"] = np.stack([
      np.asarray(approx_kl(keys, P, log_mu, sol.log_pi, tau, float(cfg.mp_eta), cfg.approx_T, m, cfg.n_samples))
      for m in cfg.inner_steps
  ])
  res.update({k: tuple(cfg[k]) for k in ("md_etas", "horizons", "betas", "mp_sizes", "inner_steps")})
  res.update(tau=tau, mp_eta=float(cfg.mp_eta), n_samples=cfg.n_samples)
  return res


def per_query_slope(kl_seeds: np.ndarray, queries_per_iter: int = 2) -> float:
  """Slope of log(median KL) against the number of queries N, over iterations where KL > TINY."""
  med = np.median(kl_seeds, axis=0)
  n = queries_per_iter * np.arange(med.size)
  keep = (med > TINY) & (n > 0)
  if keep.sum() < 3:
    keep = np.zeros_like(keep)
    keep[1:4] = True
  return float(np.polyfit(n[keep], np.log(med[keep]), 1)[0])


def floors(res) -> dict[str, np.ndarray]:
  """Per-seed error floors: final constant-η Nash-MD KL [E, S] and the R7 mean tail KL [M, S]."""
  tail = res["approx_kl"].shape[-1] // FLOOR_FRACTION
  return {"md": res["md_const_kl"][..., -1], "approx": res["approx_kl"][..., -tail:].mean(-1)}


def trend_rows(res) -> list[dict[str, Any]]:
  """One row per target: what is predicted and what is measured (median over games)."""
  tau, fl = res["tau"], floors(res)
  rows = []
  etas = np.asarray(res["md_etas"])
  fit = fit_slope(etas, fl["md"].T, last_decades=None)
  rows.append({"target": "R1 Nash-MD floor vs η (log-log slope)", "predicted": "2 [D]; bound 2η/τ → 1",
               "measured": f"{fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}]",
               "value": fit.slope})
  early = [per_query_slope(c[:, : int(3 / (e * tau))], 1) for e, c in zip(etas, res["md_const_kl"])]
  rows.append({"target": "R1 early decay per step, η=" + "/".join(f"{e:g}" for e in etas),
               "predicted": "≤ log(1−ητ) = " + "/".join(f"{np.log(1 - e * tau):.3f}" for e in etas),
               "measured": "/".join(f"{s:.3f}" for s in early), "value": max(s - np.log(1 - e * tau) for s, e in zip(early, etas))})
  t = np.arange(res["md_anytime_kl"].shape[-1])
  fit = fit_slope(t[1:], res["md_anytime_kl"][:, 1:])
  below = np.all(res["md_anytime_kl"][:, 1:] <= 8 / (tau**2 * (t[1:] + 1)))
  rows.append({"target": "R2 anytime η_t=2/(τ(t+2)): slope of KL vs t", "predicted": "≤ −1, below 8/(τ²(t+1))",
               "measured": f"{fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}], below bound: {bool(below)}",
               "value": fit.slope})
  hs = np.asarray(res["horizons"])
  fit = fit_slope(hs, res["horizon_final_kl"], last_decades=None)
  rows.append({"target": "R2 horizon η=log T/(τT): slope of final KL vs T", "predicted": "−1",
               "measured": f"{fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}]", "value": fit.slope})
  kl = res["mwu_kl"]
  rows.append({"target": "R2 self-play MWU on RPS: KL(u‖π_T)/KL(u‖π_0)", "predicted": "≥ 1 (cycles)",
               "measured": f"{kl[-1] / kl[0]:.2f} (Nash-MD τ={tau:g}: {res['nash_md_kl'][-1] / kl[0]:.1e})",
               "value": kl[-1] / kl[0]})
  for b, beta in enumerate(res["betas"]):
    pred = -0.5 * np.log(1 + 2 * beta)
    ms = [per_query_slope(res[f"mp_{m}"][b]) for m in ("kl_to_star", "exploit", "span")]
    rows.append({"target": f"R3–R5 Nash-MP β={beta:g}: slope per query of log KL/exploit/span",
                 "predicted": f"≤ {pred:.4f}", "measured": "/".join(f"{s:.4f}" for s in ms), "value": max(ms) - pred})
  sl = [per_query_slope(c) for c in res["size_kl"]]
  rows.append({"target": f"R6 Nash-MP slope per query, K={'/'.join(map(str, res['mp_sizes']))}",
               "predicted": f"equal, ≤ {-0.5 * np.log(1 + 2 * tau):.4f}", "measured": "/".join(f"{s:.4f}" for s in sl),
               "value": max(sl) / min(sl)})
  ms = np.asarray(res["inner_steps"])
  fit = fit_slope(ms, fl["approx"].T, last_decades=None)
  rows.append({"target": f"R7 approx. Nash-MP floor vs inner steps M (n={res['n_samples']})", "predicted": "−1 [D]",
               "measured": f"{fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}]", "value": fit.slope})
  n_q = min(res["md_const_kl"].shape[-1] - 1, 2 * (res["mp_tau_kl"].shape[-1] - 1))
  md_best = res["md_const_kl"][:, :, n_q].min(0)
  mp = res["mp_tau_kl"][:, n_q // 2]
  rows.append({"target": f"Nash-MP vs best constant-η Nash-MD at N={n_q} queries (median KL)",
               "predicted": "MP < MD", "measured": f"{np.median(mp):.1e} vs {np.median(md_best):.1e}, "
               f"MP ≤ MD on {np.mean(mp <= md_best):.0%} of games", "value": float(np.mean(mp <= md_best))})
  return rows


def format_table(rows) -> str:
  head = "| target | predicted | measured (median over games) |\n|---|---|---|"
  return "\n".join([head, *(f"| {r['target']} | {r['predicted']} | {r['measured']} |" for r in rows)])


def _band(ax, x, y_seeds, label, **kw):
  med = np.median(y_seeds, 0)
  (line,) = ax.plot(x, med, label=label, **kw)
  ax.fill_between(x, *np.quantile(y_seeds, [0.25, 0.75], 0), color=line.get_color(), alpha=0.15)


def plot(res, path: str | None = None):
  """2×3 panels: R1, R2, MWU cycling, R3–R5, R6, R7 (median over games, IQR shaded)."""
  plt = cli.pyplot(path)

  tau = res["tau"]
  fig, ax = plt.subplots(2, 3, figsize=(16, 9.5))
  a = ax[0, 0]
  t = np.arange(res["md_const_kl"].shape[-1])
  for e, c in zip(res["md_etas"], res["md_const_kl"]):
    _band(a, t, c, f"Nash-MD η={e:g}")
  n = 2 * np.arange(res["mp_tau_kl"].shape[-1])
  _band(a, n, res["mp_tau_kl"], f"Nash-MP η={res['mp_eta']:g} (x = queries)", color="k")
  a.set(yscale="log", xlabel="preference queries (Nash-MD: steps)", ylabel="KL(π*_τ‖π_t)", ylim=(1e-14, None),
        title=f"R1: constant-η floors, τ={tau:g}")
  a.legend(fontsize=7)
  a = ax[0, 1]
  _band(a, t[1:], res["md_anytime_kl"][:, 1:], "η_t = 2/(τ(t+2))")
  a.plot(t[1:], 8 / (tau**2 * (t[1:] + 1)), "k--", lw=1, label="8/(τ²(t+1))")
  hs = np.asarray(res["horizons"])
  a.plot(hs, np.median(res["horizon_final_kl"], 0), "o-", label="η = log T/(τT), final KL")
  a.plot(hs, (np.median(res["kl0"]) + 2 * np.log(hs) / tau**2) / hs, "k:", lw=1, label="(KL₀ + 2 log T/τ²)/T")
  a.set(xscale="log", yscale="log", xlabel="t or horizon T", title="R2: decreasing step sizes")
  a.legend(fontsize=7)
  a = ax[0, 2]
  a.plot(res["mwu_p0"], label="MWU (τ=0): π_t(rock)")
  a.plot(res["nash_md_p0"], label=f"Nash-MD (τ={tau:g}): π_t(rock)")
  a.axhline(1 / 3, color="k", lw=0.8)
  a.set(xlabel="t", title="rock–paper–scissors: MWU cycles, Nash-MD converges")
  a.legend(fontsize=7)
  a = ax[1, 0]
  n = 2 * np.arange(res["mp_kl_to_star"].shape[-1])
  for b, beta in enumerate(res["betas"]):
    for m, ls in (("kl_to_star", "-"), ("exploit", "--"), ("span", ":")):
      _band(a, n, res[f"mp_{m}"][b], f"β={beta:g} {m}", ls=ls, color=f"C{b}")
    a.plot(n, np.median(res["mp_kl_to_star"][b][:, 0]) * (1 + 2 * beta) ** (-n / 2), color=f"C{b}", lw=0.6, alpha=0.6)
  a.set(yscale="log", ylim=(1e-14, 1e2), xlabel="preference queries N", title="R3–R5: Nash-MP (thin: (1+2β)^{-N/2})")
  a.legend(fontsize=6, ncol=2)
  a = ax[1, 1]
  n = 2 * np.arange(res["size_kl"].shape[-1])
  for K, c in zip(res["mp_sizes"], res["size_kl"]):
    _band(a, n, c, f"K={K}")
  a.set(yscale="log", ylim=(1e-14, None), xlabel="preference queries N", title=f"R6: Nash-MP, β={tau:g}, several K")
  a.legend(fontsize=7)
  a = ax[1, 2]
  it = np.arange(res["approx_kl"].shape[-1])
  for M, c in zip(res["inner_steps"], res["approx_kl"]):
    _band(a, it, c, f"M={M} inner PG steps")
  a.set(yscale="log", xlabel="outer iteration", title=f"R7: approximate Nash-MP, n={res['n_samples']} labels")
  a.legend(fontsize=7)
  for a in ax.flat:
    a.grid(True, which="both", alpha=0.3)
  fig.suptitle("Nash-MD / Nash-MP on random intransitive games: median over games, IQR shaded")
  fig.tight_layout()
  return cli.finish_figure(fig, path)


def main(cfg) -> None:
  cli.prepare(cfg)
  res = run(cfg)
  print(f"oracle: max residual {res['oracle_residual'].max():.1e}, max exploitability {res['oracle_exploit'].max():.1e}")
  table = format_table(trend_rows(res))
  cli.report(cfg.out_dir, table, table_file="nash_rates.md", figure_file="nash_rates.png",
             plot_fn=lambda path: plot(res, path))


if __name__ == "__main__":
  cli.launch(main, "nash_rates.py", "cpu (default), full or smoke")
