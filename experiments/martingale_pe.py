"""Martingale-based policy evaluation vs the mean-square TD error as the mesh Δt → 0 (Jia & Zhou, JMLR 2022).

OU process dX = −κX dt + σdW, r = x², h = 0, realisable linear family J^θ = θ·(a(t)x², b(t)/σ²), θ* = (1, σ²).
All meshes discretise the same Brownian paths (increments drawn on the finest mesh and summed). Predicted:
ML, LSTD-TD(0), LSTD-TD(λ) and GTD converge to their continuous-time limit with slope ≥ 0.5 in Δt (≈ 1 for
this smooth problem) and to θ* down to the Monte-Carlo floor, with error ∝ paths^{-1/2}; MSTDE keeps a bias
that does not vanish as Δt → 0 (it grows towards its continuous-time limit).

    python -m rljax.run --config configs/martingale_pe.py:full --workdir results/martingale_pe
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.ct import martingale_pe as mp
from rljax.theory.envs import ou_process as ou
from rljax.theory.kernels import sde
from experiments.slopes import fit_slope
from experiments import cli

METHODS = ("ml", "lstd_td0", "lstd_td_lambda", "gtd", "mstde")


def _estimates(key, n_paths, *, params, log2_dt, log2_ref, lam, gtd_iters):
  """θ̂ per method on each mesh in `log2_dt` and on the reference mesh: {method: [M+1, d]}."""
  k0, kw = jax.random.split(key)
  x0 = params.x0_std * jax.random.normal(k0, (n_paths,))
  dw = sde.brownian_increments(kw, n_paths, 2**log2_ref, 2.0**-log2_ref)
  out = {m: [] for m in METHODS}
  for k in (*log2_dt, log2_ref):
    dt = 2.0**-k
    xs = mp.simulate_paths(x0, sde.coarsen(dw, 2 ** (log2_ref - k)), dt, ou.drift(params), ou.diffusion(params))
    data = mp.path_data(xs, dt, functools.partial(ou.features, params), ou.reward, jnp.zeros_like)
    out["ml"].append(mp.ml_fit(data))
    out["lstd_td0"].append(mp.moc_lstd(data, dt))
    out["lstd_td_lambda"].append(mp.moc_lstd(data, dt, lam))
    out["gtd"].append(mp.gtd(data, dt, iters=gtd_iters))
    out["mstde"].append(mp.mstde_fit(data))
  return {m: jnp.stack(v) for m, v in out.items()}


def run(cfg) -> dict[str, Any]:
  """err_true[method]: ‖θ̂(Δt) − θ*‖, err_limit[method]: ‖θ̂(Δt) − θ̂(Δt_ref)‖ (same paths), both [S, M];
  paths_err[method]: ‖θ̂ − θ*‖ at the finest Δt for the path counts in log2_paths (may be empty), [S, len]."""
  params = ou.OUParams(cfg.kappa, cfg.sigma, cfg.horizon, cfg.x0_std)
  ou.check_params(params)
  if max(cfg.log2_dt) > cfg.log2_dt_ref:
    raise ValueError(f"`log2_dt_ref` must be >= every log2_dt, got {cfg.log2_dt_ref}.")
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)
  theta_star = np.asarray(ou.theta_star(params))
  est = functools.partial(_estimates, params=params, log2_ref=cfg.log2_dt_ref, lam=cfg.lam, gtd_iters=cfg.gtd_iters)
  fits = jax.device_get(jax.jit(jax.vmap(functools.partial(est, log2_dt=tuple(cfg.log2_dt)), in_axes=(0, None)),
                                static_argnums=1)(keys, cfg.n_paths))
  out = {"dt": 2.0 ** -np.asarray(cfg.log2_dt), "paths": 2 ** np.asarray(cfg.log2_paths), "theta_star": theta_star,
         "theta": fits, "err_true": {}, "err_limit": {}, "paths_err": {m: [] for m in METHODS}}
  for m in METHODS:
    th = np.asarray(fits[m])  # [S, M+1, d]
    out["err_true"][m] = np.linalg.norm(th[:, :-1] - theta_star, axis=-1)
    out["err_limit"][m] = np.linalg.norm(th[:, :-1] - th[:, -1:], axis=-1)
  finest = (max(cfg.log2_dt),)
  sweep = jax.jit(jax.vmap(functools.partial(est, log2_dt=finest), in_axes=(0, None)), static_argnums=1)
  for p in out["paths"]:
    res = jax.device_get(sweep(keys, int(p)))
    for m in METHODS:
      out["paths_err"][m].append(np.linalg.norm(np.asarray(res[m])[:, 0] - theta_star, axis=-1))
  out["paths_err"] = {m: np.stack(v, axis=1) if v else np.zeros((cfg.seeds, 0)) for m, v in out["paths_err"].items()}
  return out


def slope_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per method: slopes of err_limit and err_true vs Δt, of err_true vs paths, and the errors at the finest Δt."""
  rows = []
  for m in METHODS:
    lim = fit_slope(results["dt"], results["err_limit"][m])
    true = fit_slope(results["dt"], results["err_true"][m])
    sweep = results["paths"].size >= 2  # the path-count sweep is optional (off in the smoke preset)
    paths = fit_slope(results["paths"], results["paths_err"][m]).slope if sweep else float("nan")
    rows.append({
        "method": m, "slope_limit": lim.slope, "limit_lo": lim.ci_low, "limit_hi": lim.ci_high,
        "slope_true": true.slope, "slope_paths": paths,
        "err_true_coarse": float(np.median(results["err_true"][m][:, 0])),
        "err_true_fine": float(np.median(results["err_true"][m][:, -1])),
    })
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  dt = results["dt"]
  return [cli.Table(slope_rows(results), {
      "method": "{method}", "slope of ‖θ̂(Δt) − θ̂(Δt_ref)‖ vs Δt [95% CI]": "{slope_limit:+.2f} [{limit_lo:+.2f}, {limit_hi:+.2f}]",
      "slope of ‖θ̂ − θ*‖ vs Δt": "{slope_true:+.2f}", f"‖θ̂ − θ*‖ at Δt={dt[0]:g}": "{err_true_coarse:.4f}",
      f"at Δt={dt[-1]:g}": "{err_true_fine:.4f}", "slope of ‖θ̂ − θ*‖ vs paths": "{slope_paths:+.2f}"})]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """The smallest slope, over ML, LSTD-TD(0), LSTD-TD(λ) and GTD, of the distance to the continuous-time
  limit vs Δt; ML's error to θ* at the finest Δt ÷ MSTDE's; MSTDE's error at the finest Δt ÷ at the coarsest."""
  rows = {r["method"]: r for r in slope_rows(results)}
  return {
      "limit_slope_min": min(rows[m]["slope_limit"] for m in METHODS if m != "mstde"),
      "ml_vs_mstde_error": rows["ml"]["err_true_fine"] / rows["mstde"]["err_true_fine"],
      "mstde_error_fine_vs_coarse": rows["mstde"]["err_true_fine"] / rows["mstde"]["err_true_coarse"],
  }


def plot(results: dict[str, Any], path: str | None = None):
  """Left: ‖θ̂ − θ*‖ vs Δt; middle: distance to the same-path continuous-time proxy; right: error vs paths."""
  plt = cli.pyplot(path)

  fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
  panels = [("dt", "err_true", "Δt", "‖θ̂ − θ*‖"), ("dt", "err_limit", "Δt", "‖θ̂(Δt) − θ̂(Δt_ref)‖"),
            ("paths", "paths_err", "paths (finest Δt)", "‖θ̂ − θ*‖")]
  for ax, (xk, yk, xl, yl) in zip(axes, panels):
    x = results[xk]
    if x.size == 0:
      ax.set_axis_off()
      continue
    for m in METHODS:
      ax.plot(x, np.median(results[yk][m], 0), "o-", ms=3, label=m)
    ref = np.median(results[yk]["ml"], 0)[0]
    if xk == "dt":
      cli.power_guide(ax, x, ref * x[-1] / x[0], 1.0, label="∝ Δt")
    else:
      cli.power_guide(ax, x, ref * np.sqrt(x[0] / x[-1]), -0.5, label="∝ paths^-1/2")
    cli.loglog(ax, xl, yl, legend=ax is axes[0])
    ax.set_xscale("log", base=2)
  return cli.finish_figure(fig, path, title="OU policy evaluation: martingale loss / orthogonality vs mean-square TD "
                           "error (median over seeds)")
