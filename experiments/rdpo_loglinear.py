"""rDPO vs DPO vs cDPO under label noise on a log-linear bandit (Chowdhury et al., ICML 2024).

Predicted: rDPO's error ‖βθ̂ − θ*‖ falls like n^{-1/2} at every flip rate ε, with a constant
∝ 1/(1−2ε) (so error·(1−2ε) collapses onto one curve), while DPO and cDPO converge to biased
parameters and plateau. Every fit is vmapped over seeds and flip rates; one compile per loss.

    python -m rljax.run --config configs/rdpo_loglinear.py:full --workdir results/rdpo_loglinear
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax import losses
from rljax.theory.preference import rdpo_loglinear as lb
from experiments.slopes import seed_slope
from experiments import cli

METRICS = ("error", "subopt", "kl_gap")


def _fit_one(env, test_features, data, epsilon, n, *, loss: str, cfg):
  """Fit on the first n of the n_max buffered pairs (n is traced: one compile serves every n)."""
  weights = (jnp.arange(data.prompt.shape[-1]) < n).astype(env.features.dtype)
  res = lb.fit(
      env.features, data, losses.registry.bind(loss, beta=cfg.beta, epsilon=epsilon),
      weights=weights, l2=cfg.ridge / n, max_iters=cfg.max_iters,
  )
  return {
      "error": lb.estimation_error(res.theta, env.theta_star, cfg.beta),
      "subopt": lb.greedy_suboptimality(res.theta, env.theta_star, test_features),
      "kl_gap": lb.regularized_gap(res.theta, env.theta_star, test_features, cfg.beta),
      "grad_norm": res.grad_norm,
  }


def make_problem(cfg) -> tuple[Any, jax.Array, lb.Preferences]:
  """Per-seed environments, test prompts and n_max comparisons per (seed, ε): leaves `[S, ...]`."""
  n_max = 2**cfg.log2_n_max
  k_env, k_test, k_data = jax.random.split(jax.random.PRNGKey(cfg.seed), 3)
  make_env = functools.partial(
      lb.make_loglinear_bandit, n_prompts=cfg.n_prompts, n_actions=cfg.n_actions, dim=cfg.dim,
      theta_norm=cfg.theta_norm,
  )
  envs = jax.vmap(make_env)(jax.random.split(k_env, cfg.seeds))
  test = jax.vmap(lambda k: lb.sample_features(k, cfg.n_test_prompts, cfg.n_actions, cfg.dim))(
      jax.random.split(k_test, cfg.seeds)
  )
  eps = jnp.asarray(cfg.epsilons, envs.features.dtype)
  sample = lambda k, env: jax.vmap(lambda e: lb.sample_preferences(k, env, n_max, e))(eps)
  data = jax.jit(jax.vmap(sample))(jax.random.split(k_data, cfg.seeds), envs)  # [S, E, n_max]
  return envs, test, data


def run(cfg, progress: bool = True) -> dict[str, Any]:
  """Fits every (loss, ε, n, seed); returns numpy arrays `[L, E, N, S]` per metric plus the axes."""
  for name in cfg.losses:
    losses.get(name)  # fail before any compute on a bad name
  ns = [2**k for k in range(cfg.log2_n_min, cfg.log2_n_max + 1)]
  envs, test, data = make_problem(cfg)
  eps = jnp.asarray(cfg.epsilons, envs.features.dtype)
  out = {m: np.zeros((len(cfg.losses), len(eps), len(ns), cfg.seeds)) for m in (*METRICS, "grad_norm")}
  jobs = [(i, name, j, n) for i, name in enumerate(cfg.losses) for j, n in enumerate(ns)]
  if progress:
    from tqdm import tqdm

    jobs = tqdm(jobs, desc="fits (loss, n)", unit="batch")
  batched = {}
  for name in cfg.losses:
    per_seed = jax.vmap(functools.partial(_fit_one, loss=name, cfg=cfg), in_axes=(None, None, 0, 0, None))
    batched[name] = jax.jit(jax.vmap(per_seed, in_axes=(0, 0, 0, None, None)))  # [S, E]
  for i, name, j, n in jobs:
    res = jax.device_get(batched[name](envs, test, data, eps, jnp.asarray(n, eps.dtype)))
    for m in out:
      out[m][i, :, j, :] = np.asarray(res[m]).T
  return {"n": np.asarray(ns), "losses": tuple(cfg.losses), "epsilons": tuple(cfg.epsilons), **out}


def slope_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """One row per (loss, ε): log–log slopes (median over seeds, bootstrap 95% CI) and end values."""
  rows = []
  n = results["n"]
  for i, name in enumerate(results["losses"]):
    for e, eps in enumerate(results["epsilons"]):
      err, sub, gap = (results[m][i, e].T for m in METRICS)  # [S, N]
      fit = seed_slope(n, err)
      tail = seed_slope(n[-4:], err[:, -4:])
      sub_med = np.median(sub, axis=0)
      sub_fit = seed_slope(n, sub) if np.all(sub_med > 0) else None
      rows.append({
          "loss": name, "epsilon": eps,
          "slope": fit.slope, "slope_lo": fit.ci_low, "slope_hi": fit.ci_high,
          "tail_slope": tail.slope,
          "error_nmax": float(np.median(err[:, -1])),
          "scaled_error_nmax": float(np.median(err[:, -1]) * (1 - 2 * eps)),
          "subopt_slope": sub_fit.slope if sub_fit else float("nan"),
          "subopt_nmax": float(sub_med[-1]),
          "kl_gap_slope": seed_slope(n, gap).slope,
          "kl_gap_nmax": float(np.median(gap[:, -1])),
      })
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  n = results["n"]
  slopes = cli.Table(slope_rows(results), {
      "loss": "{loss}", "ε": "{epsilon:.1f}",
      f"slope of error, n={n[0]}..{n[-1]} [95% CI]": "{slope:+.3f} [{slope_lo:+.3f}, {slope_hi:+.3f}]",
      "slope, last 4 n": "{tail_slope:+.3f}", f"error at n={n[-1]}": "{error_nmax:.4f}",
      "error·(1−2ε)": "{scaled_error_nmax:.4f}", "slope of greedy subopt": "{subopt_slope:+.3f}",
      f"greedy subopt at n={n[-1]}": "{subopt_nmax:.2e}", "slope of KL gap": "{kl_gap_slope:+.3f}",
      f"KL gap at n={n[-1]}": "{kl_gap_nmax:.2e}"}, name="slopes")
  converged = cli.Table([{"fits": int(results["grad_norm"].size), "max_grad_norm": float(results["grad_norm"].max())}],
                        {"fits": "{fits}", "max final gradient norm": "{max_grad_norm:.2e}"}, name="convergence")
  return [slopes, converged]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """rDPO's error slope over all n (the most and the least negative over ε); the spread of rDPO's
  error·(1−2ε) at the largest n (noisiest ε ÷ noiseless); DPO's and cDPO's most negative error slope at ε > 0."""
  rows = {(r["loss"], r["epsilon"]): r for r in slope_rows(results)}
  eps = results["epsilons"]
  rdpo = [rows[("rdpo", e)]["slope"] for e in eps]
  scaled = lambda e: rows[("rdpo", e)]["scaled_error_nmax"]
  return {
      "rdpo_slope_min": min(rdpo),
      "rdpo_slope_max": max(rdpo),
      "rdpo_scaled_error_ratio": scaled(max(eps)) / scaled(min(eps)),
      "biased_slope_min": min(rows[(name, e)]["slope"] for name in ("dpo", "cdpo") for e in eps if e > 0),
  }


def plot(results: dict[str, Any], path: str | None = None):
  """4×L grid: error, error·(1−2ε), greedy and KL-regularised suboptimality; a column per loss."""
  plt = cli.pyplot(path)

  n, names, eps = results["n"], results["losses"], results["epsilons"]
  rows = [
      ("error", lambda e: 1.0, "‖βθ̂ − θ*‖"),
      ("error", lambda e: 1 - 2 * e, "‖βθ̂ − θ*‖ · (1 − 2ε)"),
      ("subopt", lambda e: 1.0, "greedy suboptimality"),
      ("kl_gap", lambda e: 1.0, "J(π*) − J(π̂) = β·KL(π̂‖π*)"),
  ]
  fig, axes = plt.subplots(
      len(rows), len(names), figsize=(4.2 * len(names), 13), sharex=True, sharey="row", squeeze=False
  )
  colors = plt.cm.viridis(np.linspace(0, 0.9, len(eps)))
  for r, (metric, scale, label) in enumerate(rows):
    for c, name in enumerate(names):
      ax = axes[r, c]
      for e, (eps_e, col) in enumerate(zip(eps, colors)):
        y = results[metric][c, e] * scale(eps_e)  # [N, S]
        cli.median_band(ax, n, y.T, label=f"ε={eps_e:.1f}", color=col, ls="o-")
      if metric == "error":
        anchor = np.median(results["error"][c, 0], axis=1)[-1]
        cli.power_guide(ax, n, anchor, -0.5, label="∝ n^-1/2", style="k--")
      ax.set_xscale("log", base=2)
      ax.set_yscale("log")
      ax.grid(True, which="both", alpha=0.3)
      if r == 0:
        ax.set_title(name.upper())
      if r == len(rows) - 1:
        ax.set_xlabel("n (preference pairs)")
      if c == 0:
        ax.set_ylabel(label)
  axes[0, -1].legend(fontsize=8)
  return cli.finish_figure(fig, path, title="Log-linear bandit with flipped labels: median over seeds, IQR shaded")
