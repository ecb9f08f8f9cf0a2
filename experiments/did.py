"""DPO recovers π* iff the data encode the DID; power-law optimum otherwise; chosen-logp vs DID entropy.

Won, Lee, Hwang & Seo, "Differential Information: An Information-Theoretic Perspective on Preference
Optimization" (arXiv 2505.23761). A random π_ref on |Y| responses, a target π* ∝ π_ref·q with a
low- (T = 0.2) or high-entropy (T = 5) DID q = softmax(z/T), and n sampled pairs under three designs
(`configs/did.py`). Tabular DPO (β = 1, Adam) on the empirical pair loss, vmapped over designs and seeds.

Predicted: KL(π*‖π_θ) → sampling-noise floor for the encoding designs, and a plateau at
KL(π*‖π_ref·(π_w/π_l)) (the power-law optimum) for uniform rejections; the mean chosen
log-likelihood moves by `chosen_logp_shift` of the population optimum (sign set by the design and
the learned DID, see rljax.theory.preference.did).

    python -m rljax.run --config configs/did.py:full --workdir results/did
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.preference import did
from rljax.theory.kernels.divergences import categorical_kl
from experiments import cli


def make_problem(key, temperature, cfg):
  """(log π_ref, log π*, log π_w [D, K], log π_l [D, K]) for one seed."""
  k = cfg.n_responses
  k_ref, k_z = jax.random.split(key)
  log_ref = jax.nn.log_softmax(jax.random.normal(k_ref, (k,)))
  log_star = jax.nn.log_softmax(log_ref + jax.nn.log_softmax(jax.random.normal(k_z, (k,)) / temperature))
  uniform = jnp.full((k,), -jnp.log(k))
  pairs = {
      "encode": (log_star, log_ref),
      "uniform": (log_star, uniform),
      "paper": (log_ref, did.optimal_rejected_distribution(log_ref, log_ref, log_star, cfg.beta)),
  }
  log_pw, log_pl = (jnp.stack([pairs[d][i] for d in cfg.designs]) for i in (0, 1))
  return log_ref, log_star, log_pw, log_pl


def _one_seed(key, temperature, cfg):
  k_problem, k_data = jax.random.split(key)
  log_ref, log_star, log_pw, log_pl = make_problem(k_problem, temperature, cfg)

  def one_design(k, pw, pl):
    weights = did.sample_pair_weights(k, pw, pl, cfg.n_pairs)
    _, trace = did.train_dpo(weights, log_ref, log_star, beta=cfg.beta, lr=cfg.lr, steps=cfg.steps,
                             record_every=cfg.record_every)
    opt = did.dpo_population_optimum(log_ref, pw, pl, cfg.beta)
    return {
        "kl": trace.kl_target, "chosen_shift": trace.chosen_logp - trace.chosen_logp[0],
        "did_entropy": trace.did_entropy, "step": trace.step,
        "kl_pred": categorical_kl(log_star, opt), "shift_pred": did.chosen_logp_shift(opt, log_ref, pw),
        "did_entropy_pred": did.did_entropy(opt, log_ref),
    }

  keys = jax.random.split(k_data, len(cfg.designs))
  return jax.vmap(one_design)(keys, log_pw, log_pl)


def run(cfg) -> dict[str, Any]:
  """Arrays `[T, D, S, R]` (traces) and `[T, D, S]` (predictions) over temperatures, designs, seeds."""
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)
  batched = jax.jit(jax.vmap(lambda k, t: _one_seed(k, t, cfg), in_axes=(0, None)))
  per_t = [jax.device_get(batched(keys, jnp.asarray(t))) for t in cfg.temperatures]
  out = {m: np.stack([np.moveaxis(np.asarray(r[m]), 0, 1) for r in per_t]) for m in per_t[0]}
  out["step"] = out["step"][0, 0, 0]
  return {**out, "temperatures": tuple(cfg.temperatures), "designs": tuple(cfg.designs)}


def trend_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per (T, design): medians over seeds of the start/end KL, its prediction, chosen shift and DID entropy."""
  rows = []
  med = lambda a: float(np.median(a))
  for i, t in enumerate(results["temperatures"]):
    for j, d in enumerate(results["designs"]):
      r = {m: results[m][i, j] for m in ("kl", "chosen_shift", "did_entropy", "kl_pred", "shift_pred",
                                         "did_entropy_pred")}
      rows.append({
          "temperature": t, "design": d,
          "kl_start": med(r["kl"][:, 0]), "kl_end": med(r["kl"][:, -1]), "kl_pred": med(r["kl_pred"]),
          "shift_end": med(r["chosen_shift"][:, -1]), "shift_pred": med(r["shift_pred"]),
          "did_entropy_end": med(r["did_entropy"][:, -1]), "did_entropy_pred": med(r["did_entropy_pred"]),
      })
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  return [cli.Table(trend_rows(results), {
      "T": "{temperature:g}", "design": "{design}", "KL(π*‖π_θ) start": "{kl_start:.4f}", "KL end": "{kl_end:.4f}",
      "KL of population optimum": "{kl_pred:.4f}", "chosen-logp shift end": "{shift_end:+.3f}",
      "predicted shift": "{shift_pred:+.3f}", "H(DID) end": "{did_entropy_end:.3f}",
      "H(DID) of optimum": "{did_entropy_pred:.3f}"})]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """Over the two temperatures: the encoding design's final KL relative to the uniform design's plateau
  (the worse one), the paper's design's final KL relative to its start (the worse one), and the uniform
  plateau relative to the power-law optimum's KL (both ratios, smaller and larger)."""
  rows = {(r["temperature"], r["design"]): r for r in trend_rows(results)}
  temps = results["temperatures"]
  return {
      "encode_vs_plateau": max(rows[(t, "encode")]["kl_end"] / rows[(t, "uniform")]["kl_end"] for t in temps),
      "paper_design_progress": max(rows[(t, "paper")]["kl_end"] / rows[(t, "paper")]["kl_start"] for t in temps),
      "plateau_vs_optimum_low": min(rows[(t, "uniform")]["kl_end"] / rows[(t, "uniform")]["kl_pred"] for t in temps),
      "plateau_vs_optimum_high": max(rows[(t, "uniform")]["kl_end"] / rows[(t, "uniform")]["kl_pred"] for t in temps),
  }


def plot(results: dict[str, Any], path: str | None = None):
  """3 × D grid: KL(π*‖π_θ), chosen log-likelihood shift and H(DID(π_θ/π_ref)) vs steps; a column per design."""
  plt = cli.pyplot(path)

  steps, designs, temps = results["step"], results["designs"], results["temperatures"]
  panels = [("kl", "kl_pred", "KL(π*‖π_θ)"), ("chosen_shift", "shift_pred", "Δ mean log π_θ(y_w)"),
            ("did_entropy", "did_entropy_pred", "H(DID(π_θ/π_ref))")]
  fig, axes = plt.subplots(len(panels), len(designs), figsize=(4.3 * len(designs), 10), squeeze=False)
  colors = ("tab:blue", "tab:red", "tab:green", "tab:purple")
  for r, (metric, pred, label) in enumerate(panels):
    for c, design in enumerate(designs):
      ax = axes[r, c]
      for i, (t, col) in enumerate(zip(temps, colors)):
        cli.median_band(ax, steps, results[metric][i, c], label=f"T={t:g} measured", color=col)
        level = np.median(results[pred][i, c])
        if metric != "kl" or level > 1e-12:  # an encoding design's optimum is π* itself: KL 0, off a log axis
          ax.axhline(level, color=col, ls="--", lw=1, label=f"T={t:g} population optimum")
      if metric == "kl":
        ax.set_yscale("log")
      ax.grid(alpha=0.3)
      if r == 0:
        ax.set_title(design)
      if r == len(panels) - 1:
        ax.set_xlabel("Adam steps")
      if c == 0:
        ax.set_ylabel(label)
  axes[0, -1].legend(fontsize=7)
  return cli.finish_figure(fig, path, title="Tabular DPO (β=1): median over seeds, IQR shaded; dashed = closed-form "
                           "population optimum")
