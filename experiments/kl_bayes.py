"""Pure RL collapses; KL-regularised RL and DPG converge to the Bayesian posterior π* (Korbak et al. 2022).

Korbak, Perez & Buckley, "RL with KL penalties is better viewed as Bayesian inference", Findings of
EMNLP 2022 (arXiv 2205.11275). A random first-order Markov prior π_0 over V^L enumerable sequences and
the reward r(y) = #{t: y_t = "a"}. Three trainers through `rljax.losses` (REINFORCE on r, REINFORCE on
r − β·log(π/π_0), DPG toward π* = π_0·exp(r/β)/Z), each with exact expected gradients and with
sampled rollouts, vmapped over seeds (each seed its own π_0 and samples).

Predicted: pure RL's entropy → 0 with E[r] → max r; KL-RL's KL(π‖π*) → 0 and DPG's KL(π*‖π) → 0, both
at entropy H(π*) > 0.

    python -m rljax.run --config configs/kl_bayes.py:full --workdir results/kl_bayes
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.preference import kl_bayes as kb
from experiments import cli

METRICS = ("entropy", "reward", "objective", "kl_reverse", "kl_forward")


def run(cfg) -> dict[str, Any]:
  """Traces `[M, G, S, R]` (method, gradient mode, seed, record) plus per-seed references `[S]`."""
  w = jnp.asarray(cfg.token_reward, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
  if w.shape != (cfg.vocab,):
    raise ValueError(f"`token_reward` needs {cfg.vocab} entries, got {w.shape[0]}.")
  k_prior, k_train = jax.random.split(jax.random.PRNGKey(cfg.seed))
  priors = jax.vmap(lambda k: kb.make_markov_lm(k, cfg.vocab, cfg.length, scale=cfg.prior_scale))(
      jax.random.split(k_prior, cfg.seeds))
  keys = jax.random.split(k_train, cfg.seeds)
  for method in cfg.methods:
    if method not in kb.METHODS:
      raise ValueError(f"unknown method {method!r}; choose from {kb.METHODS}")
  out = {m: np.zeros((len(cfg.methods), len(cfg.batches), cfg.seeds, cfg.steps // cfg.record_every + 1))
         for m in METRICS}
  for j, batch in enumerate(cfg.batches):
    train = kb.make_train(cfg.vocab, cfg.length, methods=tuple(cfg.methods), beta=cfg.beta, lr=cfg.lr,
                          steps=cfg.steps, record_every=cfg.record_every, batch=batch)
    _, trace = jax.device_get(jax.jit(jax.vmap(train, in_axes=(0, 0, None)))(keys, priors, w))  # [S, M, R]
    for m in METRICS:
      out[m][:, j] = np.moveaxis(np.asarray(getattr(trace, m)), 0, 1)
    out["step"] = np.asarray(trace.step[0, 0])
  seqs = kb.enumerate_sequences(cfg.vocab, cfg.length)
  rewards = kb.sequence_rewards(w, seqs)

  def reference(prior):
    log_star = kb.kl_optimal_policy(kb.sequence_logps(prior, seqs), rewards, cfg.beta)
    return -jnp.sum(jnp.exp(log_star) * log_star), jnp.sum(jnp.exp(log_star) * rewards)

  out["entropy_star"], out["reward_star"] = (np.asarray(a) for a in jax.vmap(reference)(priors))
  out["reward_max"] = float(jnp.max(rewards))
  return {**out, "methods": tuple(cfg.methods), "batches": tuple(cfg.batches)}


def trend_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per (method, gradient mode): medians over seeds at the start and the end of training."""
  rows = []
  for i, method in enumerate(results["methods"]):
    for j, batch in enumerate(results["batches"]):
      end = {m: float(np.median(results[m][i, j, :, -1])) for m in METRICS}
      rows.append({
          "method": method, "batch": batch,
          "entropy_start": float(np.median(results["entropy"][i, j, :, 0])),
          "entropy_star": float(np.median(results["entropy_star"])),
          "reward_max": results["reward_max"], "reward_star": float(np.median(results["reward_star"])),
          **{f"{m}_end": v for m, v in end.items()},
      })
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  return [cli.Table(trend_rows(results), {
      "method": "{method}", "gradients": lambda r: "exact" if r["batch"] == 0 else f"B={r['batch']}",
      "H start": "{entropy_start:.3f}", "H end": "{entropy_end:.3f}", "H(π*)": "{entropy_star:.3f}",
      "E r end": "{reward_end:.3f}", "E_π* r": "{reward_star:.3f}", "max r": "{reward_max:.0f}",
      "KL(π‖π*) end": "{kl_reverse_end:.2e}", "KL(π*‖π) end": "{kl_forward_end:.2e}"})]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """Pure RL's entropy collapse and reward (the weaker gradient mode); with exact gradients, the larger
  of KL-RL's KL(π‖π*) and DPG's KL(π*‖π); KL-RL's and DPG's largest relative entropy gap to H(π*)."""
  rows = {(r["method"], r["batch"]): r for r in trend_rows(results)}
  batches = results["batches"]
  rl = [rows[("rl", b)] for b in batches]
  return {
      "rl_entropy_ratio": max(r["entropy_end"] / r["entropy_start"] for r in rl),
      "rl_reward_ratio": min(r["reward_end"] / r["reward_max"] for r in rl),
      "posterior_kl_exact": max(rows[("kl_rl", 0)]["kl_reverse_end"], rows[("dpg", 0)]["kl_forward_end"]),
      "posterior_entropy_gap": max(abs(rows[(m, b)]["entropy_end"] / rows[(m, b)]["entropy_star"] - 1)
                                   for m in ("kl_rl", "dpg") for b in batches),
  }


def plot(results: dict[str, Any], path: str | None = None):
  """4 × G grid (entropy, E r, KL(π‖π*), KL(π*‖π) vs steps), a column per gradient mode, a colour per method."""
  plt = cli.pyplot(path)

  steps, methods, batches = results["step"], results["methods"], results["batches"]
  panels = [("entropy", "H(π_θ) (nats)"), ("reward", "E_π r"), ("kl_reverse", "KL(π_θ‖π*)"),
            ("kl_forward", "KL(π*‖π_θ)")]
  colors = {"rl": "tab:red", "kl_rl": "tab:blue", "dpg": "tab:green"}
  fig, axes = plt.subplots(len(panels), len(batches), figsize=(5 * len(batches), 12), squeeze=False, sharex=True)
  for r, (metric, label) in enumerate(panels):
    for c, batch in enumerate(batches):
      ax = axes[r, c]
      for i, method in enumerate(methods):
        cli.median_band(ax, steps, results[metric][i, c], label=method, color=colors.get(method))
      if metric == "entropy":
        ax.axhline(np.median(results["entropy_star"]), color="k", ls="--", lw=1, label="H(π*)")
      if metric == "reward":
        ax.axhline(np.median(results["reward_star"]), color="k", ls="--", lw=1, label="E_π* r")
        ax.axhline(results["reward_max"], color="k", ls=":", lw=1, label="max r")
      if metric.startswith("kl"):
        ax.set_yscale("log")
      ax.grid(alpha=0.3)
      if r == 0:
        ax.set_title("exact expected gradients" if batch == 0 else f"{batch} rollouts per step")
      if r == len(panels) - 1:
        ax.set_xlabel("Adam steps")
      if c == 0:
        ax.set_ylabel(label)
  axes[0, 0].legend(fontsize=8)
  axes[1, 0].legend(fontsize=8)
  return cli.finish_figure(fig, path, title="Enumerable Markov LM: median over seeds, IQR shaded")
