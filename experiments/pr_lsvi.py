"""PR-LSVI regret and the query/regret trade-off (Wu & Sun, ICLR 2024, arXiv 2310.14554).

Predicted: cumulative regret is sublinear (worst case ~√T, log–log slope ≤ 0.5 on a fixed instance);
raising the query threshold ε makes queries grow much more slowly than t (at most ~d/ε² of them) at
the cost of more regret, so final regret rises and total queries fall monotonically in ε. The greedy
MLE (no randomisation) has no exploration and gets stuck on some seeds. Problems: (a) H = 1 linear
dueling bandit, (b) a tabular MDP with one-hot features. Seeds and ε are vmapped; one compile per
(problem, method).

    python -m rljax.run --config configs/pr_lsvi.py:full --workdir results/pr_lsvi
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.linear_mdp import pr_lsvi as lp
from experiments.slopes import fit_slope
from experiments import cli

PROBLEMS = ("bandit", "mdp")


def _make_env(key, name: str, cfg):
  if name == "bandit":
    b = cfg.bandit
    return lp.make_dueling_bandit(key, b.n_arms, b.dim, b.theta_norm)
  m = cfg.mdp
  return lp.make_tabular_mdp(key, m.n_states, m.n_actions, m.horizon)


def _pr_config(name: str, cfg) -> lp.PRConfig:
  p = cfg[name]
  return lp.PRConfig(
      rounds=p.rounds, horizon=1 if name == "bandit" else p.horizon, lam=cfg.lam, sigma_r=cfg.sigma_r,
      sigma_p=cfg.sigma_p, baseline=cfg.baseline, newton_iters=cfg.newton_iters,
  )


def run_problem(name: str, cfg) -> dict[str, Any]:
  """All methods (ε values, then greedy) on one problem in one compile, vmapped over (method, seed):
  cumulative regret / queries `[M, S, G]` on a log grid of t, final ‖θ̂ − θ*‖ `[M, S]`."""
  grid = np.unique(np.geomspace(1, cfg[name].rounds, cfg.n_grid).astype(int))
  k_env, k_run = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(cfg.seed), PROBLEMS.index(name)))
  envs = jax.vmap(functools.partial(_make_env, name=name, cfg=cfg))(jax.random.split(k_env, cfg.seeds))
  methods = [f"ε={e:g}" for e in cfg.epsilons] + (["greedy"] if cfg.greedy else [])
  eps = jnp.asarray(list(cfg.epsilons) + ([0.0] if cfg.greedy else []), envs.features.dtype)
  scale = jnp.asarray([1.0] * len(cfg.epsilons) + ([0.0] if cfg.greedy else []), envs.features.dtype)
  pr_cfg = _pr_config(name, cfg)
  per_seed = jax.vmap(lambda k, env, e, s: lp.run_pr_lsvi(k, env, pr_cfg, e, s), in_axes=(0, 0, None, None))
  out = jax.device_get(jax.jit(jax.vmap(per_seed, in_axes=(None, None, 0, 0)))(
      jax.random.split(k_run, cfg.seeds), envs, eps, scale))  # leaves [M, S, ...]
  return {"t": grid, "methods": tuple(methods), "epsilons": tuple(float(e) for e in eps),
          "cum_regret": np.cumsum(out["regret"], -1)[..., grid - 1],
          "cum_queries": np.cumsum(out["queries"], -1)[..., grid - 1],
          "theta_error": np.asarray(out["theta_error"])}


def run(cfg) -> dict[str, dict[str, Any]]:
  """{problem: run_problem(problem)} for the dueling bandit and the linear MDP."""
  return {name: run_problem(name, cfg) for name in PROBLEMS}


def slope_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
  """Per (problem, method): regret slope on the last 1.5 decades of t (median over seeds, 95% CI),
  final regret and queries (medians), and the fraction of seeds whose last-decade slope is > 0.9."""
  rows = []
  for name, res in results.items():
    t = res["t"]
    for i, method in enumerate(res["methods"]):
      reg = np.maximum(res["cum_regret"][i], 1e-12)  # [S, G]; a seed may have zero regret
      fit = fit_slope(t, reg)
      tail = t >= t[-1] / 10
      per_seed = [np.polyfit(np.log(t[tail]), np.log(r[tail]), 1)[0] for r in reg]
      rows.append({
          "problem": name, "method": method, "epsilon": res["epsilons"][i],
          "slope": fit.slope, "slope_lo": fit.ci_low, "slope_hi": fit.ci_high,
          "regret_T": float(np.median(reg[:, -1])), "queries_T": float(np.median(res["cum_queries"][i][:, -1])),
          "query_frac": float(np.median(res["cum_queries"][i][:, -1]) / t[-1]),
          "stuck_frac": float(np.mean(np.asarray(per_seed) > 0.9)),
      })
  return rows


def tables(results: dict[str, dict[str, Any]]) -> list[cli.Table]:
  return [cli.Table(slope_rows(results), {
      "problem": "{problem}", "method": "{method}", "regret slope [95% CI]": "{slope:.3f} [{slope_lo:.3f}, {slope_hi:.3f}]",
      "regret at T": "{regret_T:.1f}", "queries at T": "{queries_T:.0f}", "queries / T": "{query_frac:.3f}",
      "seeds with linear tail": "{stuck_frac:.2f}"})]


def headline(results: dict[str, dict[str, Any]]) -> dict[str, float]:
  """PR-LSVI's regret slope at the smallest ε (0) on each problem; the larger over the two problems of
  the ratio of total queries at the largest ε to those at the smallest; and in the bandit, the ratio
  of final regret at the smallest ε to that at the largest (both below 1 when a larger ε asks less
  and pays more regret)."""
  rows = {(r["problem"], r["method"]): r for r in slope_rows(results)}
  pr = {p: [m for m in res["methods"] if m != "greedy"] for p, res in results.items()}  # ε ascending
  first = {p: rows[(p, pr[p][0])] for p in results}
  last = {p: rows[(p, pr[p][-1])] for p in results}
  return {
      "bandit_regret_slope": first["bandit"]["slope"],
      "mdp_regret_slope": first["mdp"]["slope"],
      "queries_largest_vs_zero_eps": max(last[p]["queries_T"] / first[p]["queries_T"] for p in results),
      "bandit_regret_zero_vs_largest_eps": first["bandit"]["regret_T"] / last["bandit"]["regret_T"],
  }


def plot(results: dict[str, dict[str, Any]], path: str | None = None):
  """Row per problem: cumulative regret vs t (log–log, with a √t guide), cumulative queries vs t,
  and the trade-off curve final regret vs total queries (one point per ε)."""
  plt = cli.pyplot(path)

  fig, axes = plt.subplots(len(results), 3, figsize=(14, 4.2 * len(results)), squeeze=False)
  for r, (name, res) in enumerate(results.items()):
    t, methods = res["t"], res["methods"]
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(methods)))
    for i, (m, col) in enumerate(zip(methods, colors)):
      col = "tab:red" if m == "greedy" else col
      for ax, y in ((axes[r, 0], res["cum_regret"][i]), (axes[r, 1], res["cum_queries"][i])):
        # greedy may never query, a seed may have no regret yet: nothing to draw there on log axes
        cli.median_band(ax, t, np.where(y > 0, y, np.nan), label=m, color=col)
    cli.power_guide(axes[r, 0], t, np.median(res["cum_regret"][0], 0)[-1], 0.5, label="∝ √t", style="k--")
    axes[r, 1].plot(t, t, "k:", lw=1, label="every round")
    pr = [i for i, m in enumerate(methods) if m != "greedy"]
    q = [np.median(res["cum_queries"][i][:, -1]) for i in pr]
    g = [np.median(res["cum_regret"][i][:, -1]) for i in pr]
    axes[r, 2].plot(q, g, "o-")
    for i, qq, gg in zip(pr, q, g):
      axes[r, 2].annotate(methods[i], (qq, gg), fontsize=8)
    for c, (xl, yl) in enumerate((("t", "cumulative regret"), ("t", "cumulative queries"),
                                  ("total queries", f"regret at T={t[-1]}"))):
      cli.loglog(axes[r, c], xl, yl, title=f"{name}: {yl}", legend=c == 0)
  return cli.finish_figure(fig, path, title="PR-LSVI: median over seeds, IQR shaded")
