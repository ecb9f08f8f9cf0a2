"""Vanilla PG vs N-PG-IGT vs HARPG vs N-HARPG on the discounted scalar LQR (Fatkhullin, Barakat, Kireeva &
He, "Stochastic Policy Gradient Methods: Improved Sample Complexity for Fisher-non-degenerate Policies",
ICML 2023).

Predicted (worst-case sample complexities under weak gradient domination): J* − J(θ_T) falls with the
number of trajectories n like n^{-1/3} (vanilla PG, Õ(ε^{-3})), n^{-0.4} (N-PG-IGT, Õ(ε^{-2.5})) and
n^{-1/2} ((N)-HARPG, Õ(ε^{-2})). The gap is exact: J_H(θ) in closed form for the truncated horizon H_tr
the GPOMDP estimators are unbiased for. Every run is vmapped over seeds; one compile per method.

    python -m experiments.npg_harpg [--config=configs/npg_harpg.py:full] [--config.seeds=32]
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.envs import lqr_scalar
from rljax.theory.kernels.slopes import fit_slope
from rljax.theory.pg import estimators as est
from rljax.theory.pg import harpg, npg_igt
from experiments import cli

PREDICTED = {"pg": -1 / 3, "npg_igt": -0.4, "harpg": -0.5, "nharpg": -0.5}
LABELS = {"pg": "vanilla PG", "npg_igt": "N-PG-IGT", "harpg": "HARPG", "nharpg": "N-HARPG"}
THETA_BOUNDS = (-3.5, 0.0)  # closed loop |a + bθ| < 1 on this box for the default LQR


def lqr_params(cfg) -> lqr_scalar.LQRParams:
  return lqr_scalar.LQRParams(cfg.a, cfg.b, cfg.noise_std, cfg.s0_std, cfg.q, cfg.r, cfg.gamma, cfg.policy_std,
                              cfg.horizon)


def method(name: str, cfg):
  """(module, algorithm config) of a method name; ValueError on an unknown one."""
  if name not in PREDICTED:
    raise ValueError(f"unknown method {name!r}; choose from {tuple(PREDICTED)}")
  gamma0, step_power, eta_power, normalized = cfg.schedules[name]
  if name in ("pg", "npg_igt"):
    return npg_igt, npg_igt.IGTConfig(gamma0, step_power, eta_power, bool(normalized), THETA_BOUNDS)
  return harpg, harpg.HARPGConfig(gamma0, step_power, eta_power, bool(normalized), THETA_BOUNDS)


def trajectory_grid(cfg) -> np.ndarray:
  """Log-spaced trajectory counts 10..max_trajectories at which the iterates are scored."""
  return np.unique(np.geomspace(10, cfg.max_trajectories, cfg.n_points).astype(int))


def run(cfg) -> dict[str, Any]:
  """Runs every method on every seed; returns `gap`, `grad_norm` `[M, S, P]` and the axes.

  After init (one trajectory) and i iterations a method with k trajectories per iteration has used
  1 + k·i trajectories; the iterate scored at budget n is the one after i = ⌊(n − 1)/k⌋ iterations.
  """
  mods = {name: method(name, cfg) for name in cfg.methods}  # fail before any compute
  params = lqr_params(cfg)
  problem = est.lqr_problem(params)
  theta_star, j_star = lqr_scalar.oracle(params, horizon=params.horizon)
  j_fn = lambda th: lqr_scalar.value(th, params, params.horizon)
  score = jax.jit(jax.vmap(jax.vmap(lambda th: (j_star - j_fn(th), jnp.abs(jax.grad(j_fn)(th)[0])))))
  n = trajectory_grid(cfg)
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)
  theta0 = jnp.full((1,), cfg.theta0)
  runners = {}  # the algorithm config is a traced argument: one compile per module, not per method
  gap, grad = [], []
  for name in cfg.methods:
    mod, alg = mods[name]
    k = mod.TRAJECTORIES_PER_STEP
    if mod not in runners:
      n_iters = (cfg.max_trajectories - 1) // k
      run_one = lambda key, alg, mod=mod, n_iters=n_iters: mod.run(key, alg, problem, theta0, n_iters)
      runners[mod] = jax.jit(jax.vmap(run_one, in_axes=(0, None)))
    thetas = runners[mod](keys, alg)[:, (n - 1) // k]  # [S, P, 1]
    g, gn = score(thetas)
    gap.append(np.asarray(g))
    grad.append(np.asarray(gn))
  return {"trajectories": n, "methods": tuple(cfg.methods), "gap": np.stack(gap), "grad_norm": np.stack(grad),
          "theta_star": float(theta_star[0]), "j_star": float(j_star)}


def slope_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per method: slopes of the median gap and gradient norm over the last 1.5 decades, final values."""
  rows = []
  n = results["trajectories"]
  for i, name in enumerate(results["methods"]):
    fit = fit_slope(n, results["gap"][i])
    gfit = fit_slope(n, results["grad_norm"][i])
    rows.append({
        "method": name, "predicted": PREDICTED[name],
        "slope": fit.slope, "slope_lo": fit.ci_low, "slope_hi": fit.ci_high,
        "grad_slope": gfit.slope,
        "gap_final": float(np.median(results["gap"][i][:, -1])),
    })
  return rows


def format_table(rows: list[dict[str, Any]], n: np.ndarray) -> str:
  head = (f"| method | predicted slope | slope of J*−J, last 1.5 decades of n ≤ {n[-1]} [95% CI] "
          f"| slope of ‖∇J‖ | median J*−J at n={n[-1]} |\n|---|---|---|---|---|")
  body = [f"| {LABELS[r['method']]} | {r['predicted']:+.3f} | {r['slope']:+.3f} [{r['slope_lo']:+.3f}, "
          f"{r['slope_hi']:+.3f}] | {r['grad_slope']:+.3f} | {r['gap_final']:.2e} |" for r in rows]
  return "\n".join([head, *body])


def plot(results: dict[str, Any], path: str | None = None):
  """J* − J(θ) and ‖∇J(θ)‖ vs trajectories (log-log), median over seeds with the IQR shaded."""
  plt = cli.pyplot(path)

  n = results["trajectories"]
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  for ax, key, label in ((axes[0], "gap", "J* − J(θ)"), (axes[1], "grad_norm", "|∇J(θ)|")):
    for i, name in enumerate(results["methods"]):
      y = results[key][i]
      med = np.median(y, axis=0)
      lo, hi = np.quantile(y, [0.25, 0.75], axis=0)
      (line,) = ax.plot(n, med, "o-", ms=2.5, label=LABELS[name])
      ax.fill_between(n, lo, hi, color=line.get_color(), alpha=0.15)
      if key == "gap":
        ax.plot(n, med[-1] * (n / n[-1]) ** PREDICTED[name], ":", color=line.get_color(), lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("trajectories")
    ax.set_ylabel(label)
    ax.grid(True, which="both", alpha=0.3)
  axes[0].legend(fontsize=8, title="dotted: predicted slope", title_fontsize=7)
  fig.suptitle("Scalar LQR: median over seeds, IQR shaded")
  fig.tight_layout()
  return cli.finish_figure(fig, path)


def main(cfg) -> None:
  jax.config.update("jax_enable_x64", True)
  cli.prepare(cfg)
  print(f"PG methods on scalar LQR: seeds={cfg.seeds} trajectories<= {cfg.max_trajectories} H={cfg.horizon}")
  results = run(cfg)
  table = format_table(slope_rows(results), results["trajectories"])
  print(f"θ* = {results['theta_star']:.5f}, J* = {results['j_star']:.5f}")
  cli.report(cfg.out_dir, table, table_file="slopes.md", figure_file="npg_harpg.png",
             plot_fn=lambda path: plot(results, path))


if __name__ == "__main__":
  cli.launch(main, "npg_harpg.py", "cpu (default), full or smoke")
