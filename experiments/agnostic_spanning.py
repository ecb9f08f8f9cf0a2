"""Spanning capacity vs horizon, and generative-model samples vs spanning capacity (Jia et al., NeurIPS 2023).

Predicted: on the binary tree C(Π_all) = 2^H, C(Π_sing) = H + 1 (linear) and a random class of 16
policies saturates at ≤ 16; the trajectory-tree learner needs a number of trees set by log|Π|/ε² only,
each tree costs ≤ H·C(Π) generative queries, so samples to ε-accuracy grow ∝ C(Π) (log–log slope 1).

    python -m rljax.run --config configs/agnostic_spanning.py:full --workdir results/agnostic_spanning
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.slopes import fit_slope
from rljax.theory.tabular import agnostic_spanning as ag
from experiments import cli


def capacity_curves(cfg) -> dict[str, np.ndarray]:
  """Exact C(Π) for H = 1..max_horizon on the tree; the random class is nested (first H layers of one
  draw), so its curve is monotone and its saturation is visible."""
  A, Hm = cfg.n_actions, cfg.max_horizon
  S = A ** (Hm - 1)
  rand = ag.random_class(jax.random.PRNGKey(cfg.seed), cfg.random_size, Hm, S, A)
  out = {k: np.zeros(Hm, np.int64) for k in ("c_all", "c_sing", "c_rand", "size_sing")}
  out["seconds"] = np.zeros(Hm)
  for H in range(1, Hm + 1):
    w = ag.tree_widths(H, A)
    t0 = time.perf_counter()
    out["c_all"][H - 1] = ag.spanning_capacity(ag.all_policies(H, w[-1]), A, w)[0]
    sing = ag.singletons(w, w[-1])
    out["c_sing"][H - 1] = ag.spanning_capacity(sing, A, w)[0]
    out["c_rand"][H - 1] = ag.spanning_capacity(rand[:, :H, : w[-1]], A, w)[0]
    out["size_sing"][H - 1] = len(sing)
    out["seconds"][H - 1] = time.perf_counter() - t0
  out["horizons"] = np.arange(1, Hm + 1)
  return out


def learner_classes(cfg) -> tuple[list[str], list[np.ndarray], tuple[int, ...]]:
  """Π_sing (= 1-deviation), k-deviation classes and a random class, all of the cardinality |Π_sing|."""
  w = ag.tree_widths(cfg.horizon, cfg.n_actions, cfg.width)
  sing = ag.singletons(w, cfg.width)
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed + 1), len(cfg.deviations) + 1)
  names, classes = ["singletons"], [sing]
  for k, key in zip(cfg.deviations, keys):
    names.append(f"{k}-deviation")
    classes.append(ag.k_deviation(key, len(sing), w, cfg.width, k))
  names.append("random")
  classes.append(ag.random_class(keys[-1], len(sing), cfg.horizon, cfg.width, cfg.n_actions))
  return names, classes, w


def _per_seed(key, pi, cfg):
  km, kt = jax.random.split(key)
  mdp = ag.random_layered_mdp(km, cfg.horizon, cfg.width, cfg.n_actions, cfg.concentration)
  res = ag.trajectory_tree_learner(kt, mdp, pi, cfg.n_trees)
  v = ag.policy_values(mdp, pi)
  err = jnp.max(jnp.abs(res.running_values - v), axis=1)  # sup_π |V̂_n − V| after n trees
  exceed = err > cfg.epsilon
  last_bad = cfg.n_trees - 1 - jnp.argmax(jnp.flip(exceed))
  # Trees after which the estimate stays ε-accurate (censored at n_trees when it never settles).
  n_eps = jnp.where(jnp.any(exceed), jnp.minimum(last_bad + 2, cfg.n_trees), 1)
  return {
      "trees_to_eps": n_eps,
      "samples_to_eps": jnp.cumsum(res.samples)[n_eps - 1],
      "samples_per_tree": jnp.mean(res.samples),
      "final_subopt": jnp.max(v) - v[res.pi_hat],
      "reached_eps": err[-1] <= cfg.epsilon,
  }


def run(cfg) -> dict[str, Any]:
  """Plot-1 curves and, per class, trees/samples to sup-error ε over seeds: arrays `[S, K]`."""
  out = capacity_curves(cfg)
  names, classes, w = learner_classes(cfg)
  out["classes"] = tuple(names)
  out["capacity"] = np.array([ag.spanning_capacity(pi, cfg.n_actions, w)[0] for pi in classes])
  out["class_size"] = np.array([len(np.unique(pi, axis=0)) for pi in classes])
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed + 2), cfg.seeds)
  per_seed = jax.jit(jax.vmap(lambda k, p: _per_seed(k, p, cfg), in_axes=(0, None)))
  res = [jax.device_get(per_seed(keys, jnp.asarray(pi))) for pi in classes]
  for m in res[0]:
    out[m] = np.stack([np.asarray(r[m]) for r in res], axis=1)
  return out


def trend_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Plot 1: slope of C(Π_all) vs 2^H and of C(Π_sing) vs H+1 (both 1 if exact); saturation of the
  random class. Plot 2: log–log slope of samples-to-ε vs C(Π) (median over seeds, bootstrap CI)."""
  H = results["horizons"]
  rows = []
  for name, key, x in (("all policies", "c_all", 2.0**H), ("singletons", "c_sing", H + 1.0)):
    fit = fit_slope(x, results[key].astype(float), last_decades=None)
    rows.append({"target": f"C({name}) vs {'2^H' if key == 'c_all' else 'H+1'}", "predicted": 1.0,
                 "measured": fit.slope, "lo": fit.ci_low, "hi": fit.ci_high})
  c_rand = results["c_rand"]
  rows.append({"target": "C(random 16) last / previous H (saturation)", "predicted": 1.0,
               "measured": float(c_rand[-1] / c_rand[-2]), "lo": float(c_rand.min()), "hi": float(c_rand.max())})
  for m in ("samples_to_eps", "samples_per_tree", "trees_to_eps"):
    fit = fit_slope(results["capacity"].astype(float), results[m].astype(float), last_decades=None)
    rows.append({"target": f"{m} vs C(Π)", "predicted": 1.0 if m != "trees_to_eps" else 0.0,
                 "measured": fit.slope, "lo": fit.ci_low, "hi": fit.ci_high})
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  """The predicted trends; C(Π) per horizon; the trajectory-tree learner per class (medians over seeds)."""
  curves = [{"horizon": int(h), "c_all": int(a), "c_sing": int(s), "size_sing": int(n), "c_rand": int(r),
             "seconds": float(t)} for h, a, s, n, r, t in zip(
      results["horizons"], results["c_all"], results["c_sing"], results["size_sing"], results["c_rand"],
      results["seconds"])]
  med = lambda m, k: float(np.median(results[m][:, k]))
  classes = [{"class": n, "size": int(results["class_size"][k]), "capacity": int(results["capacity"][k]),
              "trees_to_eps": med("trees_to_eps", k), "samples_to_eps": med("samples_to_eps", k),
              "samples_per_tree": float(np.mean(results["samples_per_tree"][:, k])),
              "final_subopt": med("final_subopt", k), "reached_eps": float(np.mean(results["reached_eps"][:, k]))}
             for k, n in enumerate(results["classes"])]
  return [
      cli.Table(trend_rows(results), {"target": "{target}", "predicted": "{predicted:+.2f}",
                                      "measured [95% CI or range]": "{measured:+.3f} [{lo:.3f}, {hi:.3f}]"},
                name="trends"),
      cli.Table(curves, {"H": "{horizon}", "C(Π_all)": "{c_all}", "C(Π_sing) (|Π_sing|)": "{c_sing} ({size_sing})",
                         "C(random 16)": "{c_rand}", "search s": "{seconds:.2f}"}, name="capacity"),
      cli.Table(classes, {"class": "{class}", "|Π|": "{size}", "C(Π)": "{capacity}", "trees to ε": "{trees_to_eps:.0f}",
                          "samples to ε": "{samples_to_eps:.0f}", "samples/tree": "{samples_per_tree:.2f}",
                          "final subopt": "{final_subopt:.4f}", "reached ε": "{reached_eps:.2f}"}, name="learner"),
  ]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """The largest |C(Π) − closed form| over H for Π_all (2^H) and Π_sing (H + 1), and the log–log slope of
  the median generative queries to sup-error ε against C(Π) over classes of one cardinality."""
  H = results["horizons"]
  fit = fit_slope(results["capacity"].astype(float), results["samples_to_eps"].astype(float), last_decades=None)
  return {
      "c_all_minus_2_pow_h": float(np.max(np.abs(results["c_all"] - 2**H))),
      "c_sing_minus_h_plus_1": float(np.max(np.abs(results["c_sing"] - (H + 1)))),
      "queries_vs_capacity_slope": fit.slope,
  }


def plot(results: dict[str, Any], path: str | None = None):
  """Left: C(Π) vs H (semilog) for the three classes. Right: samples to ε vs C(Π) (log–log)."""
  plt = cli.pyplot(path)

  H = results["horizons"]
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
  ax1.plot(H, results["c_all"], "o-", label="Π_all")
  ax1.plot(H, 2.0**H, "k:", lw=1, label="2^H")
  ax1.plot(H, results["c_sing"], "s-", label="Π_sing")
  ax1.plot(H, H + 1, "k--", lw=1, label="H+1")
  ax1.plot(H, results["c_rand"], "^-", label="random, |Π| = 16")
  ax1.axhline(16, color="gray", lw=0.8)
  ax1.set_yscale("log", base=2)
  ax1.set_xlabel("horizon H")
  ax1.set_ylabel("spanning capacity C(Π)")
  ax1.legend(fontsize=8)
  c = results["capacity"].astype(float)
  y = results["samples_to_eps"].astype(float)
  med, lo, hi = np.median(y, 0), np.quantile(y, 0.25, 0), np.quantile(y, 0.75, 0)
  ax2.errorbar(c, med, yerr=[med - lo, hi - med], fmt="o", capsize=3)
  for k, n in enumerate(results["classes"]):
    ax2.annotate(n, (c[k], med[k]), fontsize=8, xytext=(4, 4), textcoords="offset points")
  order = np.argsort(c, kind="stable")
  cli.power_guide(ax2, c[order], med[order][-1], 1.0, label="∝ C(Π)", style="k--")
  cli.loglog(ax2, "C(Π)", "generative queries to sup-error ε (median, IQR)")
  return cli.finish_figure(fig, path, title="Agnostic RL: spanning capacity and trajectory-tree sample cost")
