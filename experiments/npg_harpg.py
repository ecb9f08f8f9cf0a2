"""Vanilla PG vs N-PG-IGT vs HARPG vs N-HARPG on the discounted scalar LQR (Fatkhullin, Barakat, Kireeva &
He, "Stochastic Policy Gradient Methods: Improved Sample Complexity for Fisher-non-degenerate Policies",
ICML 2023).

Predicted (worst-case sample complexities under weak gradient domination): J* − J(θ_T) falls with the
number of trajectories n like n^{-1/3} (vanilla PG, Õ(ε^{-3})), n^{-0.4} (N-PG-IGT, Õ(ε^{-2.5})) and
n^{-1/2} ((N)-HARPG, Õ(ε^{-2})). The proofs bound ‖∇J(θ_T)‖ at these rates and reach the gap through
J* − J ≤ C‖∇J‖; on this locally quadratic problem J* − J ∝ ‖∇J‖², so the exponents are read on ‖∇J‖
and the gap falls about twice as fast. The gap is exact: J_H(θ) in closed form for the truncated
horizon H_tr the GPOMDP estimators are unbiased for. Every run is vmapped over seeds; one compile per
algorithm.

    python -m rljax.run --config configs/npg_harpg.py:full --workdir results/npg_harpg
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.envs import lqr_scalar
from experiments.slopes import fit_slope
from rljax.theory.pg import estimators as est
from rljax.theory.pg import npg_harpg as nh
from experiments import cli

PREDICTED = {"pg": -1 / 3, "npg_igt": -0.4, "harpg": -0.5, "nharpg": -0.5}
LABELS = {"pg": "vanilla PG", "npg_igt": "N-PG-IGT", "harpg": "HARPG", "nharpg": "N-HARPG"}
THETA_BOUNDS = (-3.5, 0.0)  # closed loop |a + bθ| < 1 on this box for the default LQR


def lqr_params(cfg) -> lqr_scalar.LQRParams:
  return lqr_scalar.LQRParams(cfg.a, cfg.b, cfg.noise_std, cfg.s0_std, cfg.q, cfg.r, cfg.gamma, cfg.policy_std,
                              cfg.horizon)


def method(name: str, cfg):
  """The algorithm config of a method name; ValueError on an unknown one."""
  if name not in PREDICTED:
    raise ValueError(f"unknown method {name!r}; choose from {tuple(PREDICTED)}")
  gamma0, step_power, eta_power, normalized = cfg.schedules[name]
  config = nh.IGTConfig if name in ("pg", "npg_igt") else nh.HARPGConfig
  return config(gamma0, step_power, eta_power, bool(normalized), THETA_BOUNDS)


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
  runners = {}  # the algorithm config is a traced argument: one compile per algorithm, not per method
  gap, grad = [], []
  for name in cfg.methods:
    alg = mods[name]
    k = nh.trajectories_per_step(alg)
    if type(alg) not in runners:
      n_iters = (cfg.max_trajectories - 1) // k
      run_one = lambda key, alg, n_iters=n_iters: nh.run(key, alg, problem, theta0, n_iters)
      runners[type(alg)] = jax.jit(jax.vmap(run_one, in_axes=(0, None)))
    thetas = runners[type(alg)](keys, alg)[:, (n - 1) // k]  # [S, P, 1]
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


def tables(results: dict[str, Any]) -> list[cli.Table]:
  n = results["trajectories"]
  return [cli.Table(slope_rows(results), {
      "method": lambda r: LABELS[r["method"]], "predicted slope": "{predicted:+.3f}",
      f"slope of J*−J, last 1.5 decades of n ≤ {n[-1]} [95% CI]": "{slope:+.3f} [{slope_lo:+.3f}, {slope_hi:+.3f}]",
      "slope of ‖∇J‖": "{grad_slope:+.3f}", f"median J*−J at n={n[-1]}": "{gap_final:.2e}",
  }, title=f"θ* = {results['theta_star']:.5f}, J* = {results['j_star']:.5f}")]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """The slope of the median |∇J| against trajectories for vanilla PG, N-PG-IGT and N-HARPG (the paper's
  exponents bound ‖∇J‖), and the median over those three of the J*−J slope ÷ the |∇J| slope."""
  rows = {r["method"]: r for r in slope_rows(results)}
  claimed = ("pg", "npg_igt", "nharpg")
  return {
      **{f"{m}_grad_slope": rows[m]["grad_slope"] for m in claimed},
      "gap_vs_grad_slope": float(np.median([rows[m]["slope"] / rows[m]["grad_slope"] for m in claimed])),
  }


def plot(results: dict[str, Any], path: str | None = None):
  """J* − J(θ) and ‖∇J(θ)‖ vs trajectories (log-log), median over seeds with the IQR shaded; dotted on
  the right: the predicted exponent of each method."""
  plt = cli.pyplot(path)

  n = results["trajectories"]
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  for ax, key, label in ((axes[0], "gap", "J* − J(θ)"), (axes[1], "grad_norm", "|∇J(θ)|")):
    for i, name in enumerate(results["methods"]):
      color = f"C{i}"
      cli.median_band(ax, n, results[key][i], label=LABELS[name], color=color)
      if key == "grad_norm":
        cli.power_guide(ax, n, np.median(results[key][i][:, -1]), PREDICTED[name], style=":",
                        label=f"∝ n^{PREDICTED[name]:.2g}")
        ax.lines[-1].set_color(color)
    cli.loglog(ax, "trajectories", label)
  return cli.finish_figure(fig, path, title="Scalar LQR: median over seeds, IQR shaded")
