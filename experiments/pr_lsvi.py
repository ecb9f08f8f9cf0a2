"""PR-LSVI regret and the query/regret trade-off (Wu & Sun, ICLR 2024, arXiv 2310.14554).

Predicted: cumulative regret is sublinear (worst case ~√T, log–log slope ≤ 0.5 on a fixed instance);
raising the query threshold ε makes queries grow much more slowly than t (at most ~d/ε² of them) at
the cost of more regret, so final regret rises and total queries fall monotonically in ε. The greedy
MLE (no randomisation) has no exploration and gets stuck on some seeds. Problems: (a) H = 1 linear
dueling bandit, (b) a tabular MDP with one-hot features. Seeds and ε are vmapped; one compile per
(problem, method).

    python -m experiments.pr_lsvi [--config=configs/pr_lsvi.py:full] [--config.seeds=4]
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory import linear_pref as lp
from rljax.theory.kernels.slopes import fit_slope
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


def format_table(rows: list[dict[str, Any]]) -> str:
  head = ("| problem | method | regret slope [95% CI] | regret at T | queries at T | queries / T "
          "| seeds with linear tail |\n|---|---|---|---|---|---|---|")
  body = [f"| {r['problem']} | {r['method']} | {r['slope']:.3f} [{r['slope_lo']:.3f}, {r['slope_hi']:.3f}] "
          f"| {r['regret_T']:.1f} | {r['queries_T']:.0f} | {r['query_frac']:.3f} | {r['stuck_frac']:.2f} |"
          for r in rows]
  return "\n".join([head, *body])


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
        pos = lambda a: np.where(a > 0, a, np.nan)  # greedy may never query: nothing to draw on log axes
        ax.plot(t, pos(np.median(y, 0)), "-", color=col, label=m)
        ax.fill_between(t, *pos(np.quantile(y, [0.25, 0.75], 0)), color=col, alpha=0.15)
    med0 = np.median(res["cum_regret"][0], 0)
    axes[r, 0].plot(t, med0[-1] * np.sqrt(t / t[-1]), "k--", lw=1, label="∝ √t")
    axes[r, 1].plot(t, t, "k:", lw=1, label="every round")
    pr = [i for i, m in enumerate(methods) if m != "greedy"]
    q = [np.median(res["cum_queries"][i][:, -1]) for i in pr]
    g = [np.median(res["cum_regret"][i][:, -1]) for i in pr]
    axes[r, 2].plot(q, g, "o-")
    for i, qq, gg in zip(pr, q, g):
      axes[r, 2].annotate(methods[i], (qq, gg), fontsize=8)
    for c, (xl, yl) in enumerate((("t", "cumulative regret"), ("t", "cumulative queries"),
                                  ("total queries", f"regret at T={t[-1]}"))):
      ax = axes[r, c]
      ax.set_xscale("log")
      ax.set_yscale("log")
      ax.set_xlabel(xl)
      ax.set_ylabel(yl)
      ax.grid(True, which="both", alpha=0.3)
      ax.set_title(f"{name}: {yl}")
    axes[r, 0].legend(fontsize=8)
  fig.suptitle("PR-LSVI: median over seeds, IQR shaded")
  fig.tight_layout()
  return cli.finish_figure(fig, path)


def main(cfg) -> None:
  cli.prepare(cfg)
  print(f"PR-LSVI: seeds={cfg.seeds} eps={tuple(cfg.epsilons)} baseline={cfg.baseline} "
        f"T=({cfg.bandit.rounds}, {cfg.mdp.rounds}) on {jax.devices()[0].platform}")
  results = run(cfg)
  table = format_table(slope_rows(results))
  cli.report(cfg.out_dir, table, table_file="pr_lsvi.md", figure_file="pr_lsvi.png",
             plot_fn=lambda path: plot(results, path))


if __name__ == "__main__":
  cli.launch(main, "pr_lsvi.py", "cpu (default), full or smoke")
