"""Does sparsity help in misspecified linear bandits? (Dong & Yang, ICML 2023).

Predicted, on the adversarial least-squares trap of `envs.sparse_misspecified` (s = 2, ε = 0.05):
(1) suboptimality/ε of sparse enumeration stays O(1) in d (flat), while least squares on a G-optimal
design loses ≈ ε√d (slope 0.5 in d); (2) enumeration uses |Θ_c|·r_rep ∝ d^s queries (slope 2 for s = 2).
Seeds are vmapped; one compile per d.

    python -m rljax.run --config configs/sparse_misspec.py:full --workdir results/sparse_misspec
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from rljax.theory.bandits import sparse_misspec as sm
from rljax.theory.envs import sparse_misspecified as env
from experiments.slopes import fit_slope
from experiments import cli


def run(cfg) -> dict[str, Any]:
  """Per d: `sparse, ls: [S, len(ds)]` suboptimality/ε and the query counts `[len(ds)]`."""
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)
  sparse, ls, q_sparse, q_ls = [], [], [], []
  for d in cfg.ds:
    theta_c = sm.candidates(d, cfg.s, cfg.eps_net)

    def one(key, d=d, theta_c=theta_c):
      k_env, k_sp, k_ls = jax.random.split(key, 3)
      params = env.make_instance(k_env, d, cfg.s, cfg.eps, kappa=cfg.kappa, noise_std=cfg.noise_std)
      return sm.run(k_sp, params, theta_c, cfg.r_rep), sm.design_ls(k_ls, params, cfg.n_ls)

    a, b = jax.jit(jax.vmap(one))(keys)
    sparse.append(np.asarray(a.subopt) / cfg.eps), ls.append(np.asarray(b.subopt) / cfg.eps)
    q_sparse.append(int(a.queries[0])), q_ls.append(int(b.queries[0]))
  return {"ds": np.asarray(cfg.ds), "sparse": np.stack(sparse, 1), "ls": np.stack(ls, 1),
          "queries_sparse": np.asarray(q_sparse), "queries_ls": np.asarray(q_ls)}


def trend_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Log–log slopes over all d: LS subopt/ε (median over seeds) and enumeration queries; the sparse
  subopt/ε is reported by its mean and max (it is often exactly 0, where a log slope is undefined)."""
  ds = results["ds"]
  ls = fit_slope(ds, results["ls"], last_decades=None)
  q = fit_slope(ds, results["queries_sparse"].astype(float), last_decades=None, n_boot=0)
  sp = results["sparse"]
  return [
      {"target": "LS design: subopt/ε vs d", "slope": ls.slope, "lo": ls.ci_low, "hi": ls.ci_high,
       "predicted": "+0.5", "values": np.median(results["ls"], 0).tolist()},
      {"target": "sparse: queries vs d", "slope": q.slope, "lo": q.slope, "hi": q.slope, "predicted": "+2 (= s)",
       "values": results["queries_sparse"].tolist()},
      {"target": "sparse: mean subopt/ε vs d (max over seeds " + f"{sp.max():.2f})", "slope": np.nan,
       "lo": np.nan, "hi": np.nan, "predicted": "flat, O(1)", "values": sp.mean(0).tolist()},
  ]


def tables(results: dict[str, Any]) -> list[cli.Table]:
  return [cli.Table(trend_rows(results), {
      "target": "{target}", "slope [95% CI]": "{slope:+.3f} [{lo:+.3f}, {hi:+.3f}]", "predicted": "{predicted}",
      "values": lambda r: ", ".join(f"{v:.3g}" for v in r["values"])})]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """The log–log slopes of least squares' subopt/ε and of the enumeration's queries in d, and the
  largest subopt/ε of the sparse enumeration over every d and seed."""
  rows = trend_rows(results)
  return {"ls_slope": rows[0]["slope"], "query_slope": rows[1]["slope"],
          "sparse_subopt_max": float(np.max(results["sparse"]))}


def plot(results: dict[str, Any], path: str | None = None):
  """(1) subopt/ε vs d for both methods with a √d guide; (2) queries vs d with a d^2 guide."""
  plt = cli.pyplot(path)

  ds = results["ds"]
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  for name, label in (("ls", "G-optimal design + LS"), ("sparse", "sparse enumeration")):
    y = results[name]
    axes[0].errorbar(ds, y.mean(0), yerr=y.std(0), fmt="o-", capsize=3, label=label)
  cli.power_guide(axes[0], ds, np.median(results["ls"], 0)[-1], 0.5, label="∝ √d", style="k--")
  axes[0].set_xscale("log")
  axes[0].set_yscale("symlog", linthresh=0.1)
  axes[0].set_ylim(bottom=0)
  axes[0].set(xlabel="d", ylabel="suboptimality / ε")
  axes[0].grid(True, which="both", alpha=0.3)
  axes[0].legend(fontsize=8)
  q = results["queries_sparse"]
  axes[1].plot(ds, q, "o-", label="sparse enumeration |Θ_c|·r_rep")
  axes[1].plot(ds, results["queries_ls"], "s-", label="LS design (n fixed)")
  cli.power_guide(axes[1], ds, q[-1], 2.0, label="∝ d²", style="k--")
  cli.loglog(axes[1], "d", "queries")
  return cli.finish_figure(fig, path, title="Misspecified linear bandits: sparse enumeration vs least squares (s = 2)")
