"""Regret of adversarial linear-Q policy optimisation (Dai, Luo, Wei, Zimmert, ICML 2023).

Testbed: a random tabular MDP seen through one-hot features (d = S·A), H = 3, an oblivious adversary
switching between two loss tables over doubling phases (plus U[0, 0.1] noise), exact simulator
covariances from occupancy measures. Predicted: pseudo-regret vs K has log-log slope 0.5 for
Algorithm 1 (log-barrier FTRL) and Algorithm 2 (exponential weights, magnitude-reduced estimator),
≈ 2/3 for the explore-mix baseline; at fixed K Algorithm 1 grows like √A. Regret is read at
K = 2^j, the ends of the adversary's phases. One compiled run (vmapped over algorithms, A and seeds).

    python -m rljax.run --config configs/adv_linear_q.py:full --workdir results/adv_linear_q
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.envs import linear_mdp as env
from experiments.slopes import fit_slope
from rljax.theory.linear_mdp import adv_linear_q as alq
from experiments import cli

PREDICTED_K = {"logbarrier": 0.5, "magred": 0.5, "explore_mix": 2.0 / 3.0}
FLOOR = 1e-3  # seeds with non-positive regret are floored before the log-log fit


def _one(key, algo, eta, n_actions, cfg, checkpoints):
  k_env, k_run = jax.random.split(key)
  params = env.tabular_as_linear(k_env, cfg.n_states, max(cfg.actions), cfg.horizon, noise=cfg.noise)
  params = env.with_actions(params, n_actions)
  return alq.run(k_run, alq.AdvLinQCfg(algo=algo, eta=eta, gamma=cfg.gamma), params, int(checkpoints[-1]),
                 checkpoints)


def run(cfg) -> dict[str, Any]:
  """Regret `[algo, A, seed, K]` at K = 2^j for every algorithm and number of actions."""
  if len(cfg.etas) != len(alq.ALGOS):
    raise ValueError(f"`etas` needs one scale per algorithm {alq.ALGOS}, got {cfg.etas}.")
  if cfg.k_sweep_actions not in cfg.actions:
    raise ValueError(f"`k_sweep_actions`={cfg.k_sweep_actions} must be one of `actions`={cfg.actions}.")
  ks = 2 ** np.arange(cfg.log2_k_min, cfg.log2_k_max + 1)
  f = lambda key, algo, eta, a: _one(key, algo, eta, a, cfg, ks)
  f = jax.vmap(f, (0, None, None, None))
  f = jax.vmap(f, (None, None, None, 0))
  f = jax.vmap(f, (None, 0, 0, None))
  out = jax.jit(f)(jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds), jnp.arange(len(alq.ALGOS)),
                   jnp.asarray(cfg.etas, float), jnp.asarray(cfg.actions))
  out = jax.device_get(out)
  return {"K": ks, "actions": np.asarray(cfg.actions), "algos": alq.ALGOS, "k_sweep_actions": cfg.k_sweep_actions,
          "k_actions": 2**cfg.log2_k_actions, **{k: np.asarray(v) for k, v in out.items()}}


def trend_rows(res) -> list[dict[str, Any]]:
  """Per algorithm: slope of regret vs K (A = k_sweep_actions, last 1.5 decades, 95% seed-bootstrap CI)
  and slope of regret vs A at K = k_actions (all A)."""
  a_idx = list(res["actions"]).index(res["k_sweep_actions"])
  k_idx = list(res["K"]).index(res["k_actions"])
  rows = []
  for i, name in enumerate(res["algos"]):
    reg_k = np.maximum(res["regret"][i, a_idx], FLOOR)  # [S, K]
    reg_a = np.maximum(res["regret"][i, :, :, k_idx].T, FLOOR)  # [S, A]
    fk = fit_slope(res["K"], reg_k)
    fa = fit_slope(res["actions"], reg_a, last_decades=None)
    rows.append({"algo": name, "predicted_k": PREDICTED_K[name], "k_slope": fk.slope, "k_lo": fk.ci_low,
                 "k_hi": fk.ci_high, "a_slope": fa.slope, "a_lo": fa.ci_low, "a_hi": fa.ci_high,
                 "regret_kmax": float(np.median(res["regret"][i, a_idx, :, -1])),
                 "realised_kmax": float(np.median(res["realised_regret"][i, a_idx, :, -1]))})
  return rows


def tables(res) -> list[cli.Table]:
  return [cli.Table(trend_rows(res), {
      "algorithm": "{algo}", "slope vs K [95% CI]": "{k_slope:.3f} [{k_lo:.3f}, {k_hi:.3f}]",
      "predicted": "{predicted_k:.2f}", "slope vs A [95% CI]": "{a_slope:.3f} [{a_lo:.3f}, {a_hi:.3f}]",
      "median regret at K_max": "{regret_kmax:.1f}", "realised": "{realised_kmax:.1f}"})]


def headline(res) -> dict[str, float]:
  """The slope of regret vs K for each algorithm, and Algorithm 1's regret at K_max ÷ the explore-mix one's."""
  rows = {r["algo"]: r for r in trend_rows(res)}
  return {
      "explore_mix_k_slope": rows["explore_mix"]["k_slope"],
      "logbarrier_k_slope": rows["logbarrier"]["k_slope"],
      "magred_k_slope": rows["magred"]["k_slope"],
      "logbarrier_vs_explore_mix": rows["logbarrier"]["regret_kmax"] / rows["explore_mix"]["regret_kmax"],
  }


def plot(res, path: str | None = None):
  """Left: median regret vs K (IQR shaded) with K^{1/2} and K^{2/3} guides; right: regret at K_A vs A."""
  plt = cli.pyplot(path)

  fig, (ax_k, ax_a) = plt.subplots(1, 2, figsize=(11, 4.2))
  a_idx = list(res["actions"]).index(res["k_sweep_actions"])
  k_idx = list(res["K"]).index(res["k_actions"])
  K = res["K"]
  for i, name in enumerate(res["algos"]):
    cli.median_band(ax_k, K, res["regret"][i, a_idx], label=name, ls="o-")
    ax_a.plot(res["actions"], np.median(res["regret"][i, :, :, k_idx], -1), "o-", ms=4, label=name)
  anchor = np.median(res["regret"][0, a_idx, :, -1])
  cli.power_guide(ax_k, K, anchor, 0.5, label="∝ K^1/2", style="k--")
  cli.power_guide(ax_k, K, anchor, 2 / 3, label="∝ K^2/3")
  cli.loglog(ax_k, "episodes K", f"pseudo-regret (A = {res['k_sweep_actions']})")
  cli.loglog(ax_a, f"actions A (K = {res['k_actions']})", "pseudo-regret")
  for ax in (ax_k, ax_a):
    ax.set_xscale("log", base=2)
  return cli.finish_figure(fig, path, title="Adversarial linear-Q MDP (one-hot features): median over seeds")
