"""LSTD under realizability without completeness (Zanette, ICML 2023).

Predicted: the LSTD error falls like n^{-1/2} at every misalignment α (realizability suffices for
consistency), and its constant √n·‖θ̂ − θ*‖ scales with ‖A_μ^{-1}‖ (log–log slope 1); the exact
asymptotic constant is the sandwich (tr A_μ^{-1}ΣA_μ^{-T})^{1/2}. FQE reaches the same point when its
spectral radius is below 1.

    python -m experiments.realizability_ope [--config=configs/realizability_ope.py:full]
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.kernels.slopes import fit_slope
from rljax.theory.tabular import realizability_ope as ro
from experiments import cli


def _instance(cfg, key, alpha):
  return ro.make_family(key, alpha, n_states=cfg.n_states, n_actions=cfg.n_actions, dim=cfg.dim,
                        gamma=cfg.gamma, mu_concentration=cfg.mu_concentration)


def _stats(inst):
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
    radius.append(float(_stats(inst)[0].fqe_radius))
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
    st, sw, nn = _stats(inst)
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
  rows = []
  for i, a in enumerate(results["alphas"]):
    fit = fit_slope(results["n"], results["lstd_error"][i])
    rows.append({"target": f"LSTD error vs n, α={a}", "predicted": -0.5, "fit": fit,
                 "extra": f"FQE radius {results['fqe_radius'][i]:.3f}, FQE−LSTD gap "
                          f"{np.median(results['fqe_lstd_gap'][i]):.1e}"})
  for name, x in (("‖A_μ^{-1}‖", results["a_inv_norm"]), ("sandwich (tr A⁻¹ΣA⁻ᵀ)^½", results["sandwich"])):
    fit = fit_slope(x, results["scaled_error"], last_decades=None)
    rows.append({"target": f"√n·error vs {name}", "predicted": 1.0, "fit": fit,
                 "extra": f"x spans {x.min():.3g}..{x.max():.3g}"})
  return rows


def format_table(rows: list[dict[str, Any]]) -> str:
  head = "| target | predicted | measured [95% CI] | note |\n|---|---|---|---|"
  body = [f"| {r['target']} | {r['predicted']:+.2f} | {r['fit'].slope:+.3f} [{r['fit'].ci_low:+.3f}, "
          f"{r['fit'].ci_high:+.3f}] | {r['extra']} |" for r in rows]
  return "\n".join([head, *body])


def plot(results: dict[str, Any], path: str | None = None):
  """Left: LSTD error vs n per α (log–log). Right: √n·error vs ‖A_μ^{-1}‖ across instances."""
  plt = cli.pyplot(path)

  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
  n = results["n"]
  for i, a in enumerate(results["alphas"]):
    med = np.median(results["lstd_error"][i], 0)
    lo, hi = np.quantile(results["lstd_error"][i], [0.25, 0.75], 0)
    ax1.plot(n, med, "o-", ms=3, label=f"α={a}")
    ax1.fill_between(n, lo, hi, alpha=0.15)
  anchor = np.median(results["lstd_error"][0], 0)[-1]
  ax1.plot(n, anchor * np.sqrt(n[-1] / n), "k--", lw=1, label="∝ n^-1/2")
  ax1.set_xscale("log")
  ax1.set_yscale("log")
  ax1.set_xlabel("n (off-policy transitions)")
  ax1.set_ylabel("‖θ̂_LSTD − θ*‖ (median, IQR)")
  ax1.legend(fontsize=8)
  x, y = results["a_inv_norm"], np.median(results["scaled_error"], 0)
  sc = ax2.scatter(x, y, c=results["point_alphas"], cmap="viridis")
  ax2.scatter(x, results["sandwich"], marker="x", color="k", label="sandwich (asymptotic)")
  fig.colorbar(sc, ax=ax2, label="α")
  grid = np.geomspace(x.min(), x.max(), 10)
  ax2.plot(grid, np.median(y / x) * grid, "k--", lw=1, label="∝ ‖A_μ^{-1}‖")
  ax2.set_xscale("log")
  ax2.set_yscale("log")
  ax2.set_xlabel("‖A_μ^{-1}‖")
  ax2.set_ylabel("√n · error (median over seeds)")
  ax2.legend(fontsize=8)
  fig.suptitle("Realizable but incomplete features: LSTD stays √n-consistent")
  fig.tight_layout()
  return cli.finish_figure(fig, path)


def main(cfg) -> None:
  cli.prepare(cfg)
  results = run(cfg)
  table = format_table(slope_rows(results))
  cli.report(cfg.out_dir, table, table_file="realizability_ope.md", figure_file="realizability_ope.png",
             plot_fn=lambda path: plot(results, path))


if __name__ == "__main__":
  cli.launch(main, "realizability_ope.py", "cpu (default), full or smoke")
