"""Pure RL collapses; KL-regularised RL and DPG converge to the Bayesian posterior π* (Korbak et al. 2022).

Korbak, Perez & Buckley, "RL with KL penalties is better viewed as Bayesian inference", Findings of
EMNLP 2022 (arXiv 2205.11275). A random first-order Markov prior π_0 over V^L enumerable sequences and
the reward r(y) = #{t: y_t = "a"}. Three trainers through `rljax.losses` (REINFORCE on r, REINFORCE on
r − β·log(π/π_0), DPG toward π* = π_0·exp(r/β)/Z), each with exact expected gradients and with
sampled rollouts, vmapped over seeds (each seed its own π_0 and samples).

Predicted: pure RL's entropy → 0 with E[r] → max r; KL-RL's KL(π‖π*) → 0 and DPG's KL(π*‖π) → 0, both
at entropy H(π*) > 0.

    python -m experiments.kl_bayes [--config=configs/kl_bayes.py:full]
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory import kl_bayes as kb
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


def format_table(rows: list[dict[str, Any]]) -> str:
  head = ("| method | gradients | H start | H end | H(π*) | E r end | E_π* r | max r | KL(π‖π*) end "
          "| KL(π*‖π) end |\n|---|---|---|---|---|---|---|---|---|---|")
  body = [
      f"| {r['method']} | {'exact' if r['batch'] == 0 else 'B=' + str(r['batch'])} "
      f"| {r['entropy_start']:.3f} | {r['entropy_end']:.3f} | {r['entropy_star']:.3f} | {r['reward_end']:.3f} "
      f"| {r['reward_star']:.3f} | {r['reward_max']:.0f} | {r['kl_reverse_end']:.2e} | {r['kl_forward_end']:.2e} |"
      for r in rows
  ]
  return "\n".join([head, *body])


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
        y = results[metric][i, c]
        ax.plot(steps, np.median(y, 0), color=colors.get(method), label=method)
        ax.fill_between(steps, *np.quantile(y, [0.25, 0.75], axis=0), color=colors.get(method), alpha=0.15)
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
  fig.suptitle("Enumerable Markov LM: median over seeds, IQR shaded")
  fig.tight_layout()
  return cli.finish_figure(fig, path)


def main(cfg) -> None:
  jax.config.update("jax_enable_x64", True)
  cli.prepare(cfg)
  print(f"KL-Bayes: V={cfg.vocab} L={cfg.length} β={cfg.beta} methods={tuple(cfg.methods)} "
        f"batches={tuple(cfg.batches)} seeds={cfg.seeds} steps={cfg.steps}")
  results = run(cfg)
  table = format_table(trend_rows(results))
  cli.report(cfg.out_dir, table, table_file="kl_bayes.md", figure_file="kl_bayes.png",
             plot_fn=lambda path: plot(results, path))


if __name__ == "__main__":
  cli.launch(main, "kl_bayes.py", "cpu (default), full or smoke")
