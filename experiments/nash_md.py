"""Tabular rates of Nash-MD (Munos et al., ICML 2024, arXiv 2312.00886) against an independent oracle for
the regularised equilibrium π*_τ, on random intransitive preference games.

Reproduction targets (theory spec §22):
  R1  constant-η Nash-MD decays at rate ≈ 1 − ητ to a floor; the floor grows like η² in KL
      (the recursion KL' ≤ (1 − ητ)KL + 2η² only bounds it by 2η/τ);
  R2  the anytime schedule η_t = 2/(τ(t+2)) stays below 8/(τ²(t+1)) (slope ≤ −1), and the horizon-tuned
      constant η = log T/(τT) gives a final KL ∝ 1/T; self-play MWU (τ = 0) cycles instead.
Every curve is vmapped over random games (seeds). The games, the oracle and the constant-η curves are
shared with Nash-MP's experiment (`experiments.nash_mp`).

    python -m rljax.run --config configs/nash_md.py:full --workdir results/nash_md
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.preference import nash_md
from rljax.theory.kernels import preference_games as pg
from experiments.slopes import fit_slope
from experiments import cli

TINY = 1e-12  # below this the KL is round-off and is left out of the linear-rate fits


@functools.partial(jax.jit, static_argnums=(1, 2))
def make_games(key, seeds: int, n_actions: int):
  """[S] random intransitive games: P, log μ with μ ~ Dirichlet(1)."""
  k_p, k_mu = jax.random.split(key)
  P = jax.vmap(lambda k: pg.random_preference_matrix(k, n_actions))(jax.random.split(k_p, seeds))
  e = jax.random.exponential(k_mu, (seeds, n_actions))  # normalised Exp(1) draws are Dirichlet(1)
  return P, jnp.log(e / jnp.sum(e, -1, keepdims=True))


def game_keys(seed: int):
  """(games, sizes, approx) keys of one run: Nash-MD and Nash-MP draw the same games from a seed."""
  return jax.random.split(jax.random.PRNGKey(seed), 3)


@jax.jit
def oracle(P, log_mu, tau):
  """The regularised equilibrium π*_τ of every game (independent Newton oracle)."""
  return jax.vmap(lambda p, lm: pg.regularized_nash_equilibrium(p, jnp.exp(lm), tau))(P, log_mu)


def _md_kl(etas, P, log_mu, log_star, tau):
  return nash_md.nash_md(P, log_mu, log_mu, eta=etas, tau=tau, T=etas.shape[0], log_pi_star=log_star)[1]["kl_to_star"]


@functools.partial(jax.jit, static_argnames=("tau",))
def md_curves(etas, P, log_mu, log_star, tau):
  """KL(π*‖π_t) of Nash-MD for step-size rows `etas: [E, T]` on every game: [E, S, T+1]."""
  per_game = jax.vmap(_md_kl, in_axes=(None, 0, 0, 0, None))
  return jax.vmap(per_game, in_axes=(0, None, None, None, None))(etas, P, log_mu, log_star, tau)


def constant_md_curves(md_etas, T: int, P, log_mu, log_star, tau) -> np.ndarray:
  """KL(π*‖π_t) of constant-η Nash-MD for each η of `md_etas`: [E, S, T+1]."""
  return np.asarray(md_curves(jnp.asarray(md_etas)[:, None] * jnp.ones(T), P, log_mu, log_star, tau))


@functools.partial(jax.jit, static_argnames="T")
def _rps_log_pis(taus, eta, T):
  P = pg.cyclic_matrix(3)
  log_u = jnp.full(3, -jnp.log(3.0))
  log_pi0 = jax.nn.log_softmax(jnp.array([0.6, 0.0, -0.6]))
  return jax.vmap(lambda tau: nash_md.nash_md(P, log_u, log_pi0, eta=eta, tau=tau, T=T)[0])(taus)


def mwu_cycle(cfg) -> dict[str, np.ndarray]:
  """Rock–paper–scissors, uniform μ (so π*_τ is uniform for every τ): KL(uniform‖π_t) and π_t(rock)
  for self-play MWU (τ = 0) and for Nash-MD with τ = cfg.tau at the same η."""
  log_pis = _rps_log_pis(jnp.array([0.0, cfg.tau]), cfg.mwu_eta, cfg.mwu_T)
  kl = np.asarray(pg.kl(jnp.full(3, -jnp.log(3.0)), log_pis))
  p0 = np.asarray(jnp.exp(log_pis[..., 0]))
  return {"mwu_kl": kl[0], "nash_md_kl": kl[1], "mwu_p0": p0[0], "nash_md_p0": p0[1]}


def run(cfg) -> dict[str, Any]:
  """All curves as numpy arrays; the axes and settings ride along for the table and the plot."""
  k_games, _, _ = game_keys(cfg.seed)
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
      nash_md.anytime_schedule(T, tau)[None],
      jnp.stack([jnp.where(t < h, nash_md.horizon_step(float(h), tau), 0.0) for h in hs]),
  ])
  curves = np.asarray(md_curves(rows, P, log_mu, sol.log_pi, tau))  # [E + 1 + H, S, T+1]
  res["md_const_kl"], res["md_anytime_kl"] = curves[:E], curves[E]
  res["horizon_final_kl"] = curves[E + 1 + np.arange(len(hs)), :, hs].T  # [S, H]
  res["kl0"] = np.asarray(pg.kl(sol.log_pi, log_mu))
  res.update(mwu_cycle(cfg))
  res.update({k: tuple(cfg[k]) for k in ("md_etas", "horizons")})
  res["tau"] = tau
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


def floor_fit(res):
  """Log–log fit of the final constant-η Nash-MD KL (per game) against η (R1)."""
  return fit_slope(np.asarray(res["md_etas"]), res["md_const_kl"][..., -1].T, last_decades=None)


def anytime_bound_ratio(res) -> float:
  """max over games and t ≥ 1 of KL(π*‖π_t) ÷ 8/(τ²(t+1)) under the anytime schedule (R2: ≤ 1)."""
  t = np.arange(res["md_anytime_kl"].shape[-1])[1:]
  return float(np.max(res["md_anytime_kl"][:, 1:] / (8 / (res["tau"] ** 2 * (t + 1)))))


def horizon_bound_ratio(res) -> float:
  """max over games and horizons T of the final KL under η = log T/(τT) ÷ the paper's bound
  (KL(π*‖π_0) + 2 log T/τ²)/T (R2: ≤ 1)."""
  hs = np.asarray(res["horizons"], np.float64)
  bound = (res["kl0"][:, None] + 2 * np.log(hs) / res["tau"] ** 2) / hs
  return float(np.max(res["horizon_final_kl"] / bound))


def trend_rows(res) -> list[dict[str, Any]]:
  """One row per target: what is predicted and what is measured (median over games)."""
  tau = res["tau"]
  rows = [{"target": "oracle: max residual / max exploitability", "predicted": "0",
           "measured": f"{res['oracle_residual'].max():.1e} / {res['oracle_exploit'].max():.1e}",
           "value": float(res["oracle_residual"].max())}]
  etas = np.asarray(res["md_etas"])
  fit = floor_fit(res)
  rows.append({"target": "R1 Nash-MD floor vs η (log-log slope)", "predicted": "2 [D]; bound 2η/τ → 1",
               "measured": f"{fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}]", "value": fit.slope})
  early = [per_query_slope(c[:, : int(3 / (e * tau))], 1) for e, c in zip(etas, res["md_const_kl"])]
  rows.append({"target": "R1 early decay per step, η=" + "/".join(f"{e:g}" for e in etas),
               "predicted": "≤ log(1−ητ) = " + "/".join(f"{np.log(1 - e * tau):.3f}" for e in etas),
               "measured": "/".join(f"{s:.3f}" for s in early),
               "value": max(s - np.log(1 - e * tau) for s, e in zip(early, etas))})
  t = np.arange(res["md_anytime_kl"].shape[-1])
  fit = fit_slope(t[1:], res["md_anytime_kl"][:, 1:])
  ratio = anytime_bound_ratio(res)
  rows.append({"target": "R2 anytime η_t=2/(τ(t+2)): slope of KL vs t", "predicted": "≤ −1, below 8/(τ²(t+1))",
               "measured": f"{fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}], max KL/bound {ratio:.1e}",
               "value": fit.slope})
  fit = fit_slope(np.asarray(res["horizons"]), res["horizon_final_kl"], last_decades=None)
  rows.append({"target": "R2 horizon η=log T/(τT): slope of final KL vs T", "predicted": "−1, below (KL₀ + 2 log T/τ²)/T",
               "measured": f"{fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}], max KL/bound {horizon_bound_ratio(res):.1e}",
               "value": fit.slope})
  kl = res["mwu_kl"]
  rows.append({"target": "R2 self-play MWU on RPS: KL(u‖π_T)/KL(u‖π_0)", "predicted": "≥ 1 (cycles)",
               "measured": f"{kl[-1] / kl[0]:.2f} (Nash-MD τ={tau:g}: {res['nash_md_kl'][-1] / kl[0]:.1e})",
               "value": kl[-1] / kl[0]})
  return rows


TREND_COLUMNS = {"target": "{target}", "predicted": "{predicted}", "measured (median over games)": "{measured}"}


def tables(res) -> list[cli.Table]:
  return [cli.Table(trend_rows(res), TREND_COLUMNS)]


def headline(res) -> dict[str, float]:
  """The R1 floor's log–log slope in η, and the worst KL ÷ bound of the anytime and horizon-tuned schedules."""
  return {"floor_slope": floor_fit(res).slope, "anytime_over_bound": anytime_bound_ratio(res),
          "horizon_over_bound": horizon_bound_ratio(res)}


def plot(res, path: str | None = None):
  """1×3 panels: R1 constant-η floors, R2 decreasing step sizes, MWU cycling (median over games, IQR shaded)."""
  plt = cli.pyplot(path)

  tau = res["tau"]
  fig, ax = plt.subplots(1, 3, figsize=(16, 4.8))
  a = ax[0]
  t = np.arange(res["md_const_kl"].shape[-1])
  for e, c in zip(res["md_etas"], res["md_const_kl"]):
    cli.median_band(a, t, c, label=f"η={e:g}")
  a.set(yscale="log", xlabel="Nash-MD step t", ylabel="KL(π*_τ‖π_t)", ylim=(1e-14, None),
        title=f"R1: constant-η floors, τ={tau:g}")
  a.legend(fontsize=7)
  a = ax[1]
  cli.median_band(a, t[1:], res["md_anytime_kl"][:, 1:], label="η_t = 2/(τ(t+2))")
  a.plot(t[1:], 8 / (tau**2 * (t[1:] + 1)), "k--", lw=1, label="8/(τ²(t+1))")
  hs = np.asarray(res["horizons"])
  a.plot(hs, np.median(res["horizon_final_kl"], 0), "o-", label="η = log T/(τT), final KL")
  a.plot(hs, (np.median(res["kl0"]) + 2 * np.log(hs) / tau**2) / hs, "k:", lw=1, label="(KL₀ + 2 log T/τ²)/T")
  cli.loglog(a, "t or horizon T", "KL(π*_τ‖π)", title="R2: decreasing step sizes")
  a = ax[2]
  a.plot(res["mwu_p0"], label="MWU (τ=0): π_t(rock)")
  a.plot(res["nash_md_p0"], label=f"Nash-MD (τ={tau:g}): π_t(rock)")
  a.axhline(1 / 3, color="k", lw=0.8)
  a.set(xlabel="t", title="rock–paper–scissors: MWU cycles, Nash-MD converges")
  a.legend(fontsize=7)
  for a in ax.flat:
    a.grid(True, which="both", alpha=0.3)
  return cli.finish_figure(fig, path, title="Nash-MD on random intransitive games: median over games, IQR shaded")
