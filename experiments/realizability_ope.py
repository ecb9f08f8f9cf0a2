"""LSTD under realizability without completeness (Zanette, ICML 2023).

Predicted: the LSTD error falls like n^{-1/2} at every misalignment α (realizability suffices for
consistency), and its constant √n·‖θ̂ − θ*‖ scales with ‖A_μ^{-1}‖ (log–log slope 1); the exact
asymptotic constant is the sandwich (tr A_μ^{-1}ΣA_μ^{-T})^{1/2}. FQE reaches the same point when its
spectral radius is below 1.

    python -m rljax.run --config configs/realizability_ope.py:full --workdir results/realizability_ope
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.slopes import fit_slope
from rljax.theory.tabular import realizability_ope as ro
from experiments import cli


def _instance(cfg, key, alpha):
  return ro.make_family(key, alpha, n_states=cfg.n_states, n_actions=cfg.n_actions, dim=cfg.dim,
                        gamma=cfg.gamma, mu_concentration=cfg.mu_concentration)


def instance_stats(inst):
  """(alignment stats, sandwich constant (tr A_μ⁻¹ΣA_μ⁻ᵀ)^½, ‖Σ‖₂) of one instance."""
  d = inst.phi.shape[-1]
  st = ro.alignment_stats(ro.next_pair_operator(inst.P, inst.pi), inst.phi.reshape(-1, d), inst.mu.ravel(), inst.gamma)
  phi = inst.phi.reshape(-1, d)
  a_mat = phi.T @ (inst.mu.ravel()[:, None] * (phi - inst.gamma * ro.next_pair_operator(inst.P, inst.pi) @ phi))
  a_inv = jnp.linalg.inv(a_mat)
  sandwich = jnp.sqrt(jnp.trace(a_inv @ ro.td_noise_covariance(inst) @ a_inv.T))
  return st, sandwich, jnp.linalg.norm(ro.td_noise_covariance(inst), 2)


def _errors(key, inst, ns, n_max, cfg):
  """LSTD error on prefixes of one stream of n_max samples, and FQE's final error on all of it."""
  data = ro.sample_data(key, inst, n_max, cfg.reward_noise)
  idx = jnp.arange(n_max)
  lstd_at = lambda n: ro.lstd(data, inst.phi, inst.pi, inst.gamma, weights=(idx < n).astype(inst.phi.dtype))
  err = jax.vmap(lambda n: jnp.linalg.norm(lstd_at(n) - inst.theta_star))(ns)
  path = ro.fqe(data, inst.phi, inst.pi, inst.gamma, cfg.fqe_iters)
  return err, jnp.linalg.norm(path[-1] - inst.theta_star), jnp.linalg.norm(path[-1] - lstd_at(n_max))


def run(cfg) -> dict[str, Any]:
  ns = np.unique(np.round(10 ** np.arange(cfg.log10_n_min, cfg.log10_n_max + 1e-9, 1 / cfg.n_per_decade)).astype(int))
  key_inst, key_data = jax.random.split(jax.random.PRNGKey(cfg.seed))
  seeds = jax.random.split(key_data, cfg.seeds)
  out: dict[str, Any] = {"n": ns, "alphas": tuple(cfg.alphas)}
  per_seed = jax.jit(jax.vmap(functools.partial(_errors, cfg=cfg), in_axes=(0, None, None, None)), static_argnums=3)
  lstd_err, fqe_err, fqe_gap, radius = [], [], [], []
  for a in cfg.alphas:
    inst = _instance(cfg, key_inst, a)
    e, f, g = jax.device_get(per_seed(seeds, inst, jnp.asarray(ns), int(ns[-1])))
    lstd_err.append(e)
    fqe_err.append(f)
    fqe_gap.append(g)
    radius.append(float(instance_stats(inst)[0].fqe_radius))
  out["lstd_error"] = np.stack(lstd_err)  # [α, S, N]
  out["fqe_error"], out["fqe_lstd_gap"], out["fqe_radius"] = np.stack(fqe_err), np.stack(fqe_gap), np.array(radius)
  # Plot 2: each point is a fresh instance with its own α, so ‖A_μ^{-1}‖ spans the range set by μ's coverage.
  point_alphas = np.linspace(0.0, 1.0, cfg.n_points)
  keys = jax.random.split(jax.random.fold_in(key_inst, 1), cfg.n_points)
  scaled, a_inv, e_norm, sandwich, noise_norm = [], [], [], [], []
  nf = jnp.asarray([cfg.n_fixed])
  for k, a in zip(keys, point_alphas):
    inst = _instance(cfg, k, float(a))
    e, _, _ = jax.device_get(per_seed(seeds, inst, nf, cfg.n_fixed))
    st, sw, nn = instance_stats(inst)
    noise_norm.append(float(nn))
    scaled.append(np.sqrt(cfg.n_fixed) * e[:, 0])
    a_inv.append(float(st.a_inv_norm))
    e_norm.append(float(st.e_norm))
    sandwich.append(float(sw))
  out.update(point_alphas=point_alphas, scaled_error=np.stack(scaled, 1), a_inv_norm=np.array(a_inv),
             e_norm=np.array(e_norm), sandwich=np.array(sandwich),
             noise_norm=np.array(noise_norm))
  return out


def slope_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """The LSTD error slope in n per α, and the slope of √n·error against ‖A_μ^{-1}‖ and the sandwich."""
  rows = []
  for i, a in enumerate(results["alphas"]):
    fit = fit_slope(results["n"], results["lstd_error"][i])
    rows.append({"target": f"LSTD error vs n, α={a}", "predicted": -0.5, "slope": fit.slope, "lo": fit.ci_low,
                 "hi": fit.ci_high, "fqe_radius": float(results["fqe_radius"][i]),
                 "fqe_gap": float(np.median(results["fqe_lstd_gap"][i]))})
  for name, key in (("‖A_μ^{-1}‖", "a_inv_norm"), ("sandwich (tr A⁻¹ΣA⁻ᵀ)^½", "sandwich")):
    x = results[key]
    fit = fit_slope(x, results["scaled_error"], last_decades=None)
    rows.append({"target": f"√n·error vs {name}", "x": key, "predicted": 1.0, "slope": fit.slope, "lo": fit.ci_low,
                 "hi": fit.ci_high, "x_min": float(x.min()), "x_max": float(x.max())})
  return rows


def _note(row: dict[str, Any]) -> str:
  if "fqe_radius" in row:
    return f"FQE radius {row['fqe_radius']:.3f}, FQE−LSTD gap {row['fqe_gap']:.1e}"
  return f"x spans {row['x_min']:.3g}..{row['x_max']:.3g}"


def tables(results: dict[str, Any]) -> list[cli.Table]:
  return [cli.Table(slope_rows(results), {
      "target": "{target}", "predicted": "{predicted:+.2f}", "measured [95% CI]": "{slope:+.3f} [{lo:+.3f}, {hi:+.3f}]",
      "note": _note}, name="slopes")]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """The steepest and the flattest LSTD error slope in n over α, and the slope of √n·error against ‖A_μ^{-1}‖."""
  rows = slope_rows(results)
  lstd = [r["slope"] for r in rows if "x" not in r]
  return {"lstd_slope_steepest": min(lstd), "lstd_slope_flattest": max(lstd),
          "constant_vs_a_inv_slope": next(r["slope"] for r in rows if r.get("x") == "a_inv_norm")}


def plot(results: dict[str, Any], path: str | None = None):
  """Left: LSTD error vs n per α (log–log). Right: √n·error vs ‖A_μ^{-1}‖ across instances."""
  plt = cli.pyplot(path)

  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
  n = results["n"]
  for i, a in enumerate(results["alphas"]):
    cli.median_band(ax1, n, results["lstd_error"][i], label=f"α={a}", ls="o-")
  cli.power_guide(ax1, n, np.median(results["lstd_error"][0], 0)[-1], -0.5, label="∝ n^-1/2", style="k--")
  cli.loglog(ax1, "n (off-policy transitions)", "‖θ̂_LSTD − θ*‖ (median, IQR)")
  x, y = results["a_inv_norm"], np.median(results["scaled_error"], 0)
  sc = ax2.scatter(x, y, c=results["point_alphas"], cmap="viridis")
  ax2.scatter(x, results["sandwich"], marker="x", color="k", label="sandwich (asymptotic)")
  fig.colorbar(sc, ax=ax2, label="α")
  grid = np.geomspace(x.min(), x.max(), 10)
  cli.power_guide(ax2, grid, np.median(y / x) * grid[-1], 1.0, label="∝ ‖A_μ^{-1}‖", style="k--")
  cli.loglog(ax2, "‖A_μ^{-1}‖", "√n · error (median over seeds)")
  return cli.finish_figure(fig, path, title="Realizable but incomplete features: LSTD stays √n-consistent")
