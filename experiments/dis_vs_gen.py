"""Naive Bayes reaches its asymptotic error with O(log n) samples, logistic regression with O(n).

Zheng, Wu, Bao, Cao, Li, Zhu, "Revisiting Discriminative vs. Generative Classifiers", ICML 2023. On the
reference code's "easy" Gaussian data both learners approach the Bayes error; m* is the first training
size whose mean test error is within `tol` of it. Predicted: m*_LR ∝ n (log-log slope ≈ 1), m*_NB grows
like log n (slope ≈ 0). Fits are vmapped over seeds; a 0/1 weight mask selects the first m points of a
fixed buffer, so one compile serves every m; with `cfg.pad` every n is also zero-padded to the largest
(zero features change neither learner's predictions: NB's extra terms are class-independent, LR's
extra weights stay 0), so one compile per K serves every (n, m) (cheap only at small sizes).

    python -m rljax.run --config configs/dis_vs_gen.py:full --workdir results/dis_vs_gen
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.envs import gaussian_mixture_cls as gm
from experiments.slopes import fit_slope
from rljax.theory.stats import dis_vs_gen as dg
from experiments import cli

MODELS = ("nb", "lr")


def m_grid(num_classes: int, dim: int, cfg) -> np.ndarray:
  """Geometric grid from 2K to m_max_factor·n (rounded; repeats are allowed)."""
  hi = max(cfg.m_max_factor * dim, 4 * num_classes)
  return np.round(np.geomspace(2 * num_classes, hi, cfg.m_points)).astype(int)


def _errors(x, y, m, xt, yt, *, num_classes, cfg):
  w = (jnp.arange(x.shape[0]) < m).astype(x.dtype)
  nb = dg.gaussian_nb_fit(x, y, num_classes, weights=w)
  lr = dg.logreg_fit(x, y, num_classes, weights=w, c=cfg.c, max_iters=cfg.max_iters, tol=cfg.solver_tol)
  return (dg.error_rate(dg.gaussian_nb_scores(nb, xt), yt), dg.error_rate(dg.logreg_scores(lr, xt), yt),
          lr.grad_norm)


@functools.partial(jax.jit, static_argnames=("capacity", "n_test", "n_bayes", "seeds", "width"))
def _problem(key, params, *, capacity, n_test, n_bayes, seeds, width):
  """Bayes error, a test set and per-seed training buffers, features zero-padded to `width`."""
  k_bayes, k_test, k_train = jax.random.split(key, 3)
  pad = lambda x: jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, width - x.shape[-1])])
  xt, yt = gm.sample(k_test, params, n_test)
  x, y = jax.vmap(lambda k: gm.sample(k, params, capacity))(jax.random.split(k_train, seeds))
  return gm.bayes_error_mc(k_bayes, params, n_bayes), pad(x), y, pad(xt), yt


def run(cfg) -> dict[str, Any]:
  """errors[model]: [len(K), len(n), m_points, S] (NaN after both models reached the target, as in the
  reference code's early stop); bayes: [len(K), len(n)]; m: the grids."""
  shape = (len(cfg.num_classes), len(cfg.dims), cfg.m_points, cfg.seeds)
  out = {k: np.full(shape, np.nan) for k in (*MODELS, "grad_norm")}
  bayes = np.zeros(shape[:2])
  grids = np.zeros(shape[:3], int)
  key = jax.random.PRNGKey(cfg.seed)
  for a, num_classes in enumerate(cfg.num_classes):
    top = int(max(m_grid(num_classes, dim, cfg)[-1] for dim in cfg.dims))
    fit = jax.jit(jax.vmap(
        lambda x, y, m, xt, yt: _errors(x, y, m, xt, yt, num_classes=num_classes, cfg=cfg),
        in_axes=(0, 0, None, None, None)))
    for b, dim in enumerate(cfg.dims):
      grids[a, b] = grid = m_grid(num_classes, dim, cfg)
      bayes_err, x, y, xt, yt = _problem(
          jax.random.fold_in(key, 1000 * num_classes + dim), gm.make_params(num_classes, dim, cfg.mode),
          capacity=top if cfg.pad else int(grid[-1]), n_test=cfg.n_test, n_bayes=cfg.n_bayes, seeds=cfg.seeds,
          width=max(cfg.dims) if cfg.pad else dim)
      bayes[a, b] = float(bayes_err)
      for j, m in enumerate(grid):
        res = jax.device_get(fit(x, y, jnp.asarray(m), xt, yt))
        for name, val in zip((*MODELS, "grad_norm"), res):
          out[name][a, b, j] = np.asarray(val)
        if all(np.mean(res[i]) <= bayes[a, b] + cfg.tol for i in range(2)):
          break
  return {"K": np.asarray(cfg.num_classes), "n": np.asarray(cfg.dims), "m": grids, "bayes": bayes,
          "tol": cfg.tol, **out}


def seed_m_star(grid: np.ndarray, errors: np.ndarray, asymptote: float, tol: float) -> np.ndarray:
  """Per-seed m* ([S]) from errors [M, S]; the last grid point when a seed never got there (censored)."""
  return np.array([min(dg.m_star(grid, e, asymptote, tol), grid[-1]) for e in errors.T])


def trend_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """One row per (K, model): m* per n, the log-log slope of m* vs n and the linear slope of m* vs ln n."""
  rows = []
  n = results["n"]
  for a, num_classes in enumerate(results["K"]):
    for model in MODELS:
      per_seed = np.stack([
          seed_m_star(results["m"][a, b], results[model][a, b], results["bayes"][a, b], results["tol"])
          for b in range(len(n))], axis=1)  # [S, N]
      mean_star = [dg.m_star(results["m"][a, b], results[model][a, b].T, results["bayes"][a, b], results["tol"])
                   for b in range(len(n))]
      fit = fit_slope(n, per_seed, last_decades=None)
      rows.append({
          "K": int(num_classes), "model": model, "m_star": mean_star, "m_star_seeds": per_seed,
          "slope": fit.slope, "slope_lo": fit.ci_low, "slope_hi": fit.ci_high,
          "per_log_n": float(np.polyfit(np.log(n), np.median(per_seed, 0), 1)[0]),
      })
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  n = results["n"]
  rows = [{k: v for k, v in r.items() if k != "m_star_seeds"} for r in trend_rows(results)]
  return [cli.Table(rows, {
      "K": "{K}", "model": "{model}",
      f"m* at n = {', '.join(map(str, n))}": lambda r: ", ".join(f"{v:g}" for v in r["m_star"]),
      "log-log slope of m* vs n [95% CI]": "{slope:+.2f} [{slope_lo:+.2f}, {slope_hi:+.2f}]",
      "dm*/d ln n": "{per_log_n:.1f}"},
      title=f"Bayes errors: {np.round(results['bayes'], 5).tolist()}; max LR gradient norm: "
            f"{np.nanmax(results['grad_norm']):.1e}")]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """The log–log slopes of m* vs n for logistic regression and naive Bayes (the first K)."""
  rows = {r["model"]: r for r in trend_rows(results) if r["K"] == results["K"][0]}
  return {"lr_slope": rows["lr"]["slope"], "nb_slope": rows["nb"]["slope"]}


def plot(results: dict[str, Any], path: str | None = None):
  """Left: test error vs m at the largest n (both models, Bayes error dashed); right: m* vs n."""
  plt = cli.pyplot(path)

  fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2))
  n = results["n"]
  colors = {"nb": "tab:blue", "lr": "tab:red"}
  for a, num_classes in enumerate(results["K"]):
    b = len(n) - 1
    for model in MODELS:
      ran = ~np.isnan(results[model][a, b, :, 0])  # grid points after the early stop were not run
      ax0.plot(results["m"][a, b][ran], results[model][a, b][ran].mean(1), "o-", ms=3, color=colors[model],
               label=f"{model.upper()} K={num_classes}")
    ax0.axhline(results["bayes"][a, b] + results["tol"], color="k", ls="--", lw=1)
  ax0.set(xscale="log", xlabel="training size m", ylabel=f"test error (n={n[-1]}); dashed: Bayes + tol")
  ax0.grid(True, which="both", alpha=0.3)
  ax0.legend(fontsize=8)
  for r in trend_rows(results):
    ax1.plot(n, np.median(r["m_star_seeds"], 0), "o-", color=colors[r["model"]],
             label=f"{r['model'].upper()} K={r['K']}: slope {r['slope']:+.2f}")
  cli.power_guide(ax1, n, 2.0 * n[-1], 1.0, label="∝ n")
  cli.loglog(ax1, "feature dimension n", "m* (median over seeds)")
  return cli.finish_figure(fig, path, title="Gaussian NB vs logistic regression: samples to reach the Bayes error + tol")
