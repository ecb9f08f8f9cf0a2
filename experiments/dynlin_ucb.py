"""DynLin-UCB vs myopic LinUCB on a dynamical linear bandit (Mussi, Metelli & Restelli, ICML 2023).

Predicted: on the paper's synthetic system (A = diag(0.2, 0, 0.1), ..., arms = permutations of
(1, 0.5, 0)) the steady-state gain is h = (0.5625, 0.5, 0.1111) with u* = (1, 0.5, 0), value 0.8125,
while the immediate gain 1ᵀD = (0, 0.5, 0.1) prefers another arm. DynLin-UCB, which regresses only
block-end rewards, has sublinear regret (log–log slope ≈ 0.5, Õ(√T)); LinUCB on immediate rewards is
biased and its regret is linear (slope ≈ 1). Extra: the regret at T grows with the spectral radius ρ,
at most like (1 − ρ)^{-3/2}. All runs (learners × systems × seeds) share one compile.

    python -m rljax.run --config configs/dynlin_ucb.py:full --workdir results/dynlin_ucb [--config.seeds=16]
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.bandits import dynlin_ucb as dl
from rljax.theory.envs import dyn_linear_bandit as env
from experiments.slopes import fit_slope
from experiments import cli

LEARNERS = ("dynlin_ucb", "linucb_myopic")
RHO0 = 0.2  # spectral radius of the paper's A


def checkpoints(cfg) -> np.ndarray:
  """t log-spaced in [10, 10^log10_horizon] (integers, deduplicated)."""
  return np.unique(np.round(np.logspace(1.0, cfg.log10_horizon, cfg.n_checkpoints)).astype(int))


def _stack(trees):
  return jax.tree.map(lambda *leaves: jnp.stack([jnp.asarray(x) for x in leaves]), *trees)


def run(cfg) -> dict[str, Any]:
  """Regret curves of both learners on the paper's system `[L, S, len(t)]` and DynLin-UCB's regret at T
  for each ρ in cfg.rhos `[R, S]`, plus the share of the last 10% of steps spent on u* `[L, S]`. All
  (learner, system) pairs are stacked and vmapped with the seeds through a single compile."""
  ts = checkpoints(cfg)
  horizon = int(ts[-1])
  systems = [env.paper_params(cfg.sigma)] * len(LEARNERS) + [
      env.paper_params(cfg.sigma, a_scale=rho / RHO0) for rho in cfg.rhos]
  agents = [dl.make_config(sys, horizon, lam=cfg.lam, beta_scale=cfg.beta_scale, myopic=name != "dynlin_ucb")
            for sys, name in zip(systems, LEARNERS + ("dynlin_ucb",) * len(cfg.rhos))]

  def one(key, agent, params):
    trace = dl.run(key, agent, params, horizon)
    best = jnp.argmax(params.actions @ env.markov_gain(params))
    return trace.regret[ts - 1], jnp.mean(trace.arms[-(horizon // 10):] == best)

  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)
  per_seed = jax.vmap(one, in_axes=(0, None, None))
  regret, on_best = jax.jit(jax.vmap(per_seed, in_axes=(None, 0, 0)))(keys, _stack(agents), _stack(systems))
  regret, on_best = np.asarray(regret), np.asarray(on_best)
  n = len(LEARNERS)
  h, u_star, value = env.oracle(systems[0])
  return {
      "t": ts, "learners": LEARNERS, "regret": regret[:n], "on_best": on_best[:n],
      "rhos": np.asarray(cfg.rhos), "regret_rho": regret[n:, :, -1],
      "h": np.asarray(h), "u_star": np.asarray(u_star), "value": float(value),
  }


def slope_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per learner: log–log slope of the median regret over the last 1.5 decades of t (bootstrap 95% CI),
  the median regret at T and the share of the last 10% of steps spent on u*."""
  rows = []
  for i, name in enumerate(results["learners"]):
    fit = fit_slope(results["t"], np.maximum(results["regret"][i], 1e-12))
    rows.append({"learner": name, "slope": fit.slope, "lo": fit.ci_low, "hi": fit.ci_high,
                 "predicted": 0.5 if name == "dynlin_ucb" else 1.0,
                 "regret_T": float(np.median(results["regret"][i, :, -1])),
                 "on_best": float(np.mean(results["on_best"][i]))})
  return rows


def trend_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """DynLin-UCB's median regret at T per ρ, next to the (1 − ρ)^{-3/2} growth of the bound (relative to
  the first ρ)."""
  rhos, reg = results["rhos"], np.median(results["regret_rho"], axis=1)
  return [{"rho": float(r), "regret_T": float(g), "ratio": float(g / reg[0]),
           "bound_ratio": float(((1 - r) / (1 - rhos[0])) ** -1.5)} for r, g in zip(rhos, reg)]


def tables(results: dict[str, Any]) -> list[cli.Table]:
  horizon = int(results["t"][-1])
  return [
      cli.Table(slope_rows(results), {
          "learner": "{learner}", "slope of regret vs t [95% CI]": "{slope:+.3f} [{lo:+.3f}, {hi:+.3f}]",
          "predicted": "{predicted:.1f}", f"median regret at T={horizon}": "{regret_T:.1f}",
          "share on u* (last 10%)": "{on_best:.2f}"},
          title=f"h = {np.round(results['h'], 4)}, u* = {results['u_star']}, value = {results['value']:.4f}",
          name="slopes"),
      cli.Table(trend_rows(results), {
          "ρ": "{rho:.1f}", "DynLin-UCB regret at T": "{regret_T:.1f}", "ratio to first ρ": "{ratio:.2f}",
          "(1−ρ)^{-3/2} ratio": "{bound_ratio:.2f}"}, name="rho"),
  ]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """The oracle's value h·u*, and the log–log regret slopes of DynLin-UCB and of myopic LinUCB."""
  rows = {r["learner"]: r for r in slope_rows(results)}
  return {"oracle_value": results["value"], "dynlin_slope": rows["dynlin_ucb"]["slope"],
          "myopic_slope": rows["linucb_myopic"]["slope"]}


def plot(results: dict[str, Any], path: str | None = None):
  """Regret vs t on linear and log–log axes (median, IQR shaded), and regret at T vs ρ."""
  plt = cli.pyplot(path)

  t = results["t"]
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
  for i, name in enumerate(results["learners"]):
    for ax in axes[:2]:
      cli.median_band(ax, t, results["regret"][i], label=name, ls="o-")
  anchor = np.median(results["regret"][0, :, -1])
  cli.power_guide(axes[1], t, anchor, 0.5, label="∝ √t", style="k--")
  cli.power_guide(axes[1], t, anchor, 1.0, label="∝ t")
  cli.loglog(axes[1], "t", "Σ (h·u* − h·u_t)", title="log–log")
  axes[0].set(xlabel="t", ylabel="Σ (h·u* − h·u_t)", title="cumulative regret (linear axes)")
  axes[0].grid(True, alpha=0.3)
  axes[0].legend(fontsize=8)
  rhos, reg = results["rhos"], results["regret_rho"]
  axes[2].errorbar(rhos, np.median(reg, 1), yerr=np.abs(np.quantile(reg, [0.25, 0.75], 1) - np.median(reg, 1)),
                   fmt="o-", label="DynLin-UCB")
  axes[2].plot(rhos, np.median(reg[0]) * ((1 - rhos) / (1 - rhos[0])) ** -1.5, "k--", lw=1, label="∝ (1−ρ)^{-3/2}")
  axes[2].set_xlabel("spectral radius ρ")
  axes[2].set_ylabel(f"regret at T={t[-1]}")
  axes[2].grid(True, alpha=0.3)
  axes[2].legend(fontsize=8)
  return cli.finish_figure(fig, path, title="Dynamical linear bandit: DynLin-UCB vs myopic LinUCB (median over seeds, "
                           "IQR shaded)")
