"""Regret of a Bayes mixture over a huge Bernoulli class vs the weight of the target ("The Universality
Lens: Why Even Highly Over-Parametrized Models Learn Well", 2025).

Class: w ∈ {−1, 0, 1}^m, p_w(X=1) = 0.5 + 0.45·mean(w), uniform prior over all 3^m vectors (collapsed
exactly onto s = Σw, 2m+1 points). Predicted: the regret against the "simple" target mean(w) = 0 stays
O(½ log n) and does not grow with m; against the "complex" target mean(w) = 0.5 it is ≈ m·I(0.5) + ½ log n
with I(0.5) = 0.1974 the trinomial large-deviation rate, i.e. linear in m with slope 0.197 (never the
parameter count m log 3); and the regret never exceeds the resolvability bound min_ε{−log W_ε + nε}.
Expected regrets are exact (binomial sums); Monte-Carlo sequences (vmapped over seeds) check them.

    python -m rljax.run --config configs/universality.py:full --workdir results/universality
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.experts import universality as un
from experiments import cli


def sample_sizes(cfg) -> np.ndarray:
  return np.unique(np.round(np.logspace(1.0, cfg.log10_n_max, cfg.n_points)).astype(int))


def padded_classes(ms) -> tuple[jax.Array, jax.Array]:
  """The classes of every m on one grid of 2·max(m)+1 points (padding: p = 0.5 with prior mass 0), so
  that a single compile serves all m: `probs, log_prior: [M, G]`."""
  g = 2 * max(ms) + 1
  classes = [un.overparam_class(m) for m in ms]
  pad = lambda x, value: jnp.pad(x, (0, g - x.size), constant_values=value)
  return (jnp.stack([pad(p, 0.5) for p, _ in classes]), jnp.stack([pad(w, -jnp.inf) for _, w in classes]))


def run(cfg) -> dict[str, Any]:
  """Exact expected regret, Monte-Carlo regret and the resolvability bound for every (m, target, n):
  `expected, bound: [M, 2, N]`, `mc: [M, 2, S, N]`; one compile for all of them."""
  if any(m % 2 for m in cfg.ms):
    raise ValueError(f"`ms` must be even (the complex target needs s = m/2), got {cfg.ms}.")
  ns = sample_sizes(cfg)
  half_width = int(np.ceil(10 * np.sqrt(ns[-1] / 4))) + 1  # 10 standard deviations of the count
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)
  targets = jnp.asarray([0.5 + 0.45 * t for t in cfg.targets])
  n_float = jnp.asarray(ns, targets.dtype)

  def per_class(args):
    probs, log_prior = args

    def one(p):
      exact = jax.lax.map(lambda n: un.expected_regret(p, probs, log_prior, n, half_width=half_width), n_float)
      # Batches of seeds bound the memory of the sampled sequences (n_max draws each).
      mc = jax.lax.map(lambda k: un.regret(k, p, probs, log_prior, ns), keys, batch_size=64)
      return exact, mc, un.resolvability_bound(p, n_float, probs, log_prior)

    return jax.lax.map(one, targets)

  expected, mc, bound = jax.jit(lambda c: jax.lax.map(per_class, c))(padded_classes(cfg.ms))
  return {"n": ns, "ms": np.asarray(cfg.ms), "targets": np.asarray(cfg.targets), "rate": float(un.trinomial_rate(0.5)),
          "expected": np.asarray(expected), "mc": np.asarray(mc), "bound": np.asarray(bound)}


def trend_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per target: the slope of R_{n_max} vs m (linear least squares), its prediction (0 for mean(w)=0,
  m·I(mean(w)) otherwise), the regret per m at n_max, the largest regret/bound ratio over all (m, n),
  and the largest Monte-Carlo deviation from the exact expectation in (floored) standard errors."""
  ms, rows = results["ms"], []
  for j, tgt in enumerate(results["targets"]):
    final = results["expected"][:, j, -1]
    mc = results["mc"][:, j]
    exact = results["expected"][:, j]
    # Once the posterior has concentrated the realised regret is nearly constant and its rare excursions
    # escape a finite sample, so the standard error gets a floor of 0.1% of the regret.
    se = mc.std(axis=1, ddof=1) / np.sqrt(mc.shape[1]) + 1e-3 * (1 + np.abs(exact))
    z = np.abs(mc.mean(axis=1) - exact) / se
    rows.append({
        "target": float(tgt), "slope_vs_m": float(np.polyfit(ms, final, 1)[0]),
        "predicted": float(un.trinomial_rate(tgt)), "final": final.tolist(),
        "max_ratio_to_bound": float(np.max(results["expected"][:, j] / results["bound"][:, j])),
        "mc_max_z": float(np.max(z)),
    })
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  ms, n_max = results["ms"], int(results["n"][-1])
  final = {f"R_n, m={m}": (lambda r, i=i: f"{r['final'][i]:.2f}") for i, m in enumerate(ms)}
  return [cli.Table(trend_rows(results), {
      "mean(w)": "{target:.1f}", f"slope of R_n vs m at n={n_max}": "{slope_vs_m:+.4f}",
      "predicted I(mean w)": "{predicted:.4f}", **final, "max R_n / bound": "{max_ratio_to_bound:.3f}",
      "max MC deviation (SE)": "{mc_max_z:.1f}"}),
      cli.Table([{"m": int(m), "log_size": float(m * np.log(3))} for m in ms],
                {"m": "{m}", "parameter count m·log 3": "{log_size:.0f}"}, name="parameter_count")]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """The slope of R_{n_max} vs m for the complex (largest mean(w), 0.5) and the simple (smallest, 0)
  target, and the largest ratio of the exact expected regret to the resolvability bound over every m,
  target and n."""
  rows = sorted(trend_rows(results), key=lambda r: r["target"])
  return {"complex_slope": rows[-1]["slope_vs_m"], "simple_slope": rows[0]["slope_vs_m"],
          "max_ratio_to_bound": max(r["max_ratio_to_bound"] for r in rows)}


def plot(results: dict[str, Any], path: str | None = None):
  """(1) expected regret vs n per m and target; (2) R_{n_max} vs m (linear axes) against m·I(0.5) and
  the parameter count m·log 3; (3) measured regret vs the resolvability bound."""
  plt = cli.pyplot(path)

  n, ms, tg = results["n"], results["ms"], results["targets"]
  fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
  colors = plt.cm.viridis(np.linspace(0, 0.85, len(ms)))
  styles = ["--", "-"]
  for i, (m, col) in enumerate(zip(ms, colors)):
    for j, t in enumerate(tg):
      mc = results["mc"][i, j]
      axes[0].plot(n, results["expected"][i, j], styles[j % 2], color=col, label=f"m={m}, mean(w)={t:.1f}")
      axes[0].fill_between(n, *np.quantile(mc, [0.25, 0.75], axis=0), color=col, alpha=0.12)
  axes[0].plot(n, 0.5 * np.log(n), "k:", lw=1, label="½ log n")
  axes[0].set_xscale("log")
  axes[0].set_yscale("symlog", linthresh=1.0)
  axes[0].set_xlabel("n")
  axes[0].set_ylabel("expected regret R_n (MC IQR shaded)")
  axes[0].legend(fontsize=6, ncol=2)
  for j, t in enumerate(tg):
    axes[1].plot(ms, results["expected"][:, j, -1], "o" + styles[j % 2], label=f"mean(w)={t:.1f}")
  final = results["expected"][:, -1, -1]
  axes[1].plot(ms, results["rate"] * ms + np.mean(final - results["rate"] * ms), "r:", label="slope I(0.5)=0.197")
  axes[1].plot(ms, ms * np.log(3), "k:", lw=1, label="m log 3 (log |Θ|)")
  axes[1].set_ylim(-0.05 * final.max(), 1.3 * final.max())
  axes[1].set_xlabel("m (parameters)")
  axes[1].set_ylabel(f"R_n at n={n[-1]}")
  axes[1].legend(fontsize=8)
  for j, t in enumerate(tg):
    axes[2].scatter(results["bound"][:, j].ravel(), results["expected"][:, j].ravel(), s=8, label=f"mean(w)={t:.1f}")
  lim = [1e-3, results["bound"].max() * 1.5]
  axes[2].plot(lim, lim, "k--", lw=1, label="R_n = bound")
  cli.loglog(axes[2], "min_ε {−log W_ε + nε}", "R_n")
  axes[2].set(xlim=lim, ylim=(1e-4, lim[1]))
  for ax in axes[:2]:
    ax.grid(True, which="both", alpha=0.3)
  return cli.finish_figure(fig, path, title="Bayes mixture over w ∈ {−1,0,1}^m: regret is set by the prior weight of "
                           "the target, not by m")
