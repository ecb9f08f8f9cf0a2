"""R2PVI (TV, KL, χ²) vs PEVI on the d-rectangular linear MDP under test-time perturbation (Tang, Liu & Xu,
"Robust Offline RL with Linearly Structured f-Divergence Regularization", ICML 2025).

Predicted: trained on N = 100 nominal episodes, the policies are scored (exactly) in environments whose
first transition sends the mass of the fourth factor to the fail state with probability q. PEVI prefers
the actions with the largest exposure ξᵀa and degrades fastest as q → 1; the R2PVI variants keep a
higher return at large q. The constrained distributionally robust baselines DRPVI (TV ball) and DRVI-L
(KL ball) run beside them; the wall-clock of one fit is compared across N (closed-form duals for R2PVI-TV
and -KL, an n_alpha-point search — one regression per point — for χ² and the constrained baselines).
Everything is vmapped over replications.

    python -m rljax.run --config configs/r2pvi.py:full --workdir results/r2pvi
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.envs import d_rectangular as drect
from rljax.theory.linear_mdp import r2pvi
from experiments import cli

LABELS = {"none": "PEVI", "tv": "R2PVI-TV", "kl": "R2PVI-KL", "chi2": "R2PVI-χ²", "drpvi": "DRPVI (TV ball)",
          "drvi_l": "DRVI-L (KL ball)"}


def env_params(cfg) -> drect.DRectParams:
  return drect.DRectParams(cfg.delta, cfg.xi_scale, cfg.fail_prob)


def make_data(key, params: drect.DRectParams, n_episodes: int) -> r2pvi.OfflineData:
  """Uniform-behaviour episodes of the nominal env as R2PVI inputs (features of every next action)."""
  phi = drect.features(params)
  s, a, r, nxt = drect.sample_dataset(key, params, n_episodes)
  return r2pvi.OfflineData(phi[s, a], r, phi[nxt])


def greedy_table(fitted: r2pvi.R2PVIParams, phi) -> jax.Array:
  """π_h(s) for every (h, s): i[H, S]."""
  h_all, s_all = jnp.arange(fitted.w.shape[0]), jnp.arange(phi.shape[0])
  return jax.vmap(lambda h: jax.vmap(lambda s: r2pvi.policy(fitted, phi[s], h)[0])(s_all))(h_all)


def alg_config(name: str, cfg) -> r2pvi.R2PVIConfig:
  alg = r2pvi.R2PVIConfig(name, cfg.lam_r, cfg.lam, cfg.beta, cfg.n_alpha, cfg.rho)
  r2pvi.check_config(alg)
  return alg


def run(cfg) -> dict[str, Any]:
  """Exact returns `[M, R, Q]` of each method's greedy policy under every perturbation q, the first-step
  exposure ξᵀa of that policy `[M, R]`, and the fit wall-clock `[M, len(time_ns)]` in seconds."""
  algs = {name: alg_config(name, cfg) for name in cfg.methods}  # fail before any compute
  params = env_params(cfg)
  phi = drect.features(params)
  qs = jnp.asarray(cfg.qs)
  exposure = jnp.asarray(cfg.xi_scale / drect.DIM * drect.ACTIONS.sum(-1))
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.replications)
  data = jax.jit(jax.vmap(lambda key: make_data(key, params, cfg.n_episodes)))(keys)  # shared by all methods
  returns, expo, fit_time = [], [], []
  for name in cfg.methods:
    alg = algs[name]

    def one(data, alg=alg):
      pol = greedy_table(r2pvi.fit(data, alg), phi)
      ret = jax.vmap(lambda q: drect.policy_return(pol, params._replace(q=q)))(qs)
      return ret, exposure[pol[0, 0]]

    ret, ex = jax.jit(jax.vmap(one))(data)
    returns.append(np.asarray(ret))
    expo.append(np.asarray(ex))
    fit_jit = jax.jit(lambda d, alg=alg: r2pvi.fit(d, alg).w)
    times = []
    for n in cfg.time_ns:
      timing_data = make_data(jax.random.PRNGKey(cfg.seed + 1), params, n)
      fit_jit(timing_data).block_until_ready()  # compile outside the clock
      laps = []
      for _ in range(cfg.time_repeats):  # the fastest lap: the least disturbed by other processes
        t0 = time.perf_counter()
        fit_jit(timing_data).block_until_ready()
        laps.append(time.perf_counter() - t0)
      times.append(min(laps))
    fit_time.append(times)
  return {"q": np.asarray(cfg.qs), "methods": tuple(cfg.methods), "returns": np.stack(returns),
          "exposure": np.stack(expo), "time_ns": np.asarray(cfg.time_ns, int), "fit_time": np.asarray(fit_time).reshape(len(cfg.methods), -1)}


def trend_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per method: mean return at q = min and q = max, their difference (degradation), OLS slope in q."""
  q = results["q"]
  rows = []
  for i, name in enumerate(results["methods"]):
    mean = results["returns"][i].mean(0)
    rows.append({"method": name, "return_q0": float(mean[0]), "return_q1": float(mean[-1]),
                 "degradation": float(mean[0] - mean[-1]), "slope_q": float(np.polyfit(q, mean, 1)[0]),
                 "exposure": float(results["exposure"][i].mean()),
                 "fit_ms": float(1e3 * results["fit_time"][i, -1]) if results["time_ns"].size else float("nan")})
  return rows


PAIRS = {"drpvi": "tv", "drvi_l": "kl"}  # constrained baseline → its regularised counterpart
ROBUST = ("tv", "kl", "chi2")


def timing_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per N: the fit wall-clock of each method in ms (fastest of the repeats) and each constrained
  baseline's ratio to the R2PVI variant with the same divergence, all measured in one run."""
  methods = list(results["methods"])
  t = 1e3 * results["fit_time"]
  rows = []
  for j, n in enumerate(results["time_ns"]):
    row = {"n": int(n), **{f"{m}_ms": float(t[i, j]) for i, m in enumerate(methods)}}
    row.update({f"{c}_over_{r}": float(t[methods.index(c), j] / t[methods.index(r), j])
                for c, r in PAIRS.items() if c in methods and r in methods})
    rows.append(row)
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  """The returns per method; the fit wall-clock per N when the config times the fits."""
  q, n = results["q"], (results["time_ns"][-1] if results["time_ns"].size else "—")
  out = [cli.Table(trend_rows(results), {
      "method": lambda r: LABELS[r["method"]], f"return at q={q[0]:.1f}": "{return_q0:.3f}",
      f"return at q={q[-1]:.1f}": "{return_q1:.3f}", "degradation": "{degradation:.3f}",
      "d return / d q": "{slope_q:+.3f}", "first-step exposure ξᵀa": "{exposure:+.3f}",
      f"fit time at N={n} (ms)": "{fit_ms:.2f}"}, name="returns")]
  if results["time_ns"].size:
    methods = list(results["methods"])
    columns = {"N": "{n}", **{f"{LABELS[m]} (ms)": f"{{{m}_ms:.2f}}" for m in methods}}
    columns.update({f"{LABELS[c]} ÷ {LABELS[r]}": f"{{{c}_over_{r}:.2f}}×"
                    for c, r in PAIRS.items() if c in methods and r in methods})
    out.append(cli.Table(timing_rows(results), columns, name="timing"))
  return out


def headline(results: dict[str, Any]) -> dict[str, float]:
  """The largest return drop (q = 0 → 1) of the R2PVI variants ÷ PEVI's, and PEVI's return at the
  largest q ÷ the smallest R2PVI return there."""
  rows = {r["method"]: r for r in trend_rows(results)}
  robust = [m for m in ROBUST if m in rows]
  return {
      "r2pvi_vs_pevi_degradation": max(rows[m]["degradation"] for m in robust) / rows["none"]["degradation"],
      "pevi_vs_r2pvi_return_at_q1": rows["none"]["return_q1"] / min(rows[m]["return_q1"] for m in robust),
  }


def plot(results: dict[str, Any], path: str | None = None):
  """Mean return (± 1 s.d. over replications) vs q, and fit wall-clock vs N."""
  plt = cli.pyplot(path)

  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  q = results["q"]
  for i, name in enumerate(results["methods"]):
    ret = results["returns"][i]
    mean, sd = ret.mean(0), ret.std(0)
    (line,) = axes[0].plot(q, mean, "o-", ms=3, label=LABELS[name])
    axes[0].fill_between(q, mean - sd, mean + sd, color=line.get_color(), alpha=0.12)
    if results["time_ns"].size:
      axes[1].plot(results["time_ns"], 1e3 * results["fit_time"][i], "o-", label=LABELS[name])
  axes[0].set(xlabel="perturbation q", ylabel="return in the perturbed env")
  axes[0].grid(True, alpha=0.3)
  axes[0].legend(fontsize=8)
  cli.loglog(axes[1], "offline episodes N", "fit wall-clock (ms)", legend=bool(results["time_ns"].size))
  return cli.finish_figure(fig, path, title="d-rectangular linear MDP: robust regularised (R2PVI) vs non-robust "
                           "(PEVI) and constrained (DRPVI, DRVI-L)")
