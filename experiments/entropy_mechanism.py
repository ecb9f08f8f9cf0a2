"""Entropy collapse under GRPO and the Clip-Cov / KL-Cov interventions (Cui et al. 2025).

On a softmax answer bandit with shared linear features (`rljax.theory.bandit_pg`), trained through
the same policy-loss kernels as an LLM: the policy entropy H falls as the reward R rises, the pairs
(H, R) follow R ≈ −a·e^H + b, and Clip-Cov / KL-Cov keep the entropy higher than plain GRPO.
Every arm is vmapped over seeds; one compile per arm.

    python -m experiments.entropy_mechanism [--config=configs/entropy_mechanism.py:smoke]
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rljax import losses
from rljax.theory import bandit_pg as bp
from experiments import cli


def run(cfg) -> dict[str, Any]:
  """Traces `[seeds, steps]` per arm: entropy, reward, covariance, entropy change."""
  arms = {name: dict(cfg.arms[name]) for name in cfg.arm_names}
  for arm in arms.values():
    losses.get(arm["loss"])  # fail before compute on a bad name
  k_env, k_train = jax.random.split(jax.random.PRNGKey(cfg.seed))
  env = bp.make_answer_bandit(k_env, n_prompts=cfg.n_prompts, n_answers=cfg.n_answers, dim=cfg.dim)
  advantage_fn = functools.partial(losses.grpo_advantages, group_size=cfg.group_size)
  theta0 = jnp.zeros(env.features.shape[-1])
  keys = jax.random.split(k_train, cfg.seeds)  # the same seeds for every arm
  out = {}
  for name, arm in arms.items():
    loss_fn = functools.partial(losses.get(arm.pop("loss")), **arm)
    train = bp.make_train(
        env, steps=cfg.steps, group_size=cfg.group_size, optimizer=optax.adam(cfg.lr),
        advantage_fn=advantage_fn, loss_fn=loss_fn, updates_per_batch=cfg.updates_per_batch,
    )
    _, trace = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, theta0)
    out[name] = {k: np.asarray(v) for k, v in trace._asdict().items()}
  return out


def law_fit(trace: dict[str, np.ndarray], fit_fraction: float) -> dict[str, float]:
  """Fit R = −a·e^H + b on the seed-mean curve: on all steps, and on the first `fit_fraction`
  to predict the final reward (the paper's extrapolation)."""
  h, r = trace["entropy"].mean(0), trace["reward"].mean(0)
  full = losses.entropy_performance_fit(jnp.asarray(h), jnp.asarray(r))
  cut = max(3, int(len(h) * fit_fraction))
  early = losses.entropy_performance_fit(jnp.asarray(h[:cut]), jnp.asarray(r[:cut]))
  predicted = float(-early["a"] * np.exp(h[-1]) + early["b"])
  return {"a": float(full["a"]), "b": float(full["b"]), "r2": float(full["r2"]),
          "ceiling": float(full["ceiling"]), "predicted_final": predicted, "final": float(r[-1])}


def summary_rows(results: dict[str, Any], fit_fraction: float) -> list[dict[str, Any]]:
  rows = []
  for name, tr in results.items():
    h, r = tr["entropy"].mean(0), tr["reward"].mean(0)
    rows.append({"arm": name, "H_start": float(h[0]), "H_quarter": float(h[len(h) // 4]),
                 "H_mid": float(h[len(h) // 2]), "H_end": float(h[-1]), "R_end": float(r[-1]),
                 "cov_mean": float(tr["covariance"][:, 1:].mean()), **law_fit(tr, fit_fraction)})
  return rows


def format_table(rows: list[dict[str, Any]]) -> str:
  head = ("| arm | H start | H at 1/4 | H at 1/2 | H end | R end | R = −a·e^H + b: a, b, R² "
          "| R end predicted from first third | mean Cov(log π, A) |\n|---|---|---|---|---|---|---|---|---|")
  body = [
      f"| {r['arm']} | {r['H_start']:.3f} | {r['H_quarter']:.3f} | {r['H_mid']:.3f} | {r['H_end']:.3f} "
      f"| {r['R_end']:.4f} | {r['a']:.4f}, {r['b']:.4f}, {r['r2']:.3f} | {r['predicted_final']:.4f} "
      f"| {r['cov_mean']:+.4f} |"
      for r in rows
  ]
  return "\n".join([head, *body])


def plot(results: dict[str, Any], path: str | None = None):
  plt = cli.pyplot(path)

  fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
  for name, tr in results.items():
    steps = np.arange(tr["entropy"].shape[1])
    h, r = tr["entropy"].mean(0), tr["reward"].mean(0)
    axes[0].plot(steps, h, label=name)
    axes[1].plot(steps, r, label=name)
    axes[2].plot(h, r, ".", ms=2, label=name)
  grpo = results.get("grpo", next(iter(results.values())))
  fit = losses.entropy_performance_fit(jnp.asarray(grpo["entropy"].mean(0)), jnp.asarray(grpo["reward"].mean(0)))
  hs = np.linspace(0, grpo["entropy"].max(), 100)
  axes[2].plot(hs, -fit["a"] * np.exp(hs) + fit["b"], "k--", lw=1, label=f"GRPO fit, R²={float(fit['r2']):.3f}")
  axes[0].set(xlabel="step", ylabel="policy entropy H", title="entropy")
  axes[1].set(xlabel="step", ylabel="expected reward R", title="reward")
  axes[2].set(xlabel="H", ylabel="R", title="R = −a·e^H + b")
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  return cli.finish_figure(fig, path)


def main(cfg) -> None:
  cli.prepare(cfg)
  print(f"entropy mechanism: P={cfg.n_prompts} K={cfg.n_answers} d={cfg.dim} n={cfg.group_size} "
        f"steps={cfg.steps} seeds={cfg.seeds} arms={list(cfg.arm_names)}")
  results = run(cfg)
  table = format_table(summary_rows(results, cfg.fit_fraction))
  cli.report(cfg.out_dir, table, table_file="summary.md", figure_file="entropy_mechanism.png",
             plot_fn=lambda path: plot(results, path))


if __name__ == "__main__":
  cli.launch(main, "entropy_mechanism.py", "cpu (default) or smoke")
