"""Entropy collapse under GRPO and the Clip-Cov / KL-Cov interventions (Cui et al. 2025).

Cui et al., "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models"
(arXiv 2505.22617). On a softmax answer bandit with shared linear features
(`rljax.theory.pg.answer_bandit`), trained through the same policy-loss kernels as an LLM: the
policy entropy H falls as the reward R rises, the pairs (H, R) follow R ≈ −a·e^H + b, and
Clip-Cov / KL-Cov keep the entropy higher than plain GRPO (the paper: and end with a higher
reward). Every arm is vmapped over seeds; one compile per arm.

    python -m rljax.run --config configs/entropy_mechanism.py:full --workdir results/entropy_mechanism
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rljax import losses
from rljax.theory.pg import answer_bandit as bp
from experiments import cli

INTERVENTIONS = ("clip_cov", "kl_cov")


def run(cfg) -> dict[str, Any]:
  """`arms`: traces `[seeds, steps]` per arm (entropy, reward, covariance, entropy change), and the
  fraction of the run on which the R = −a·e^H + b extrapolation is fitted."""
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
  return {"arms": out, "fit_fraction": float(cfg.fit_fraction)}


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


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per arm, on the seed-mean curves: entropy at the start, 1/4, 1/2 and end of the run, the final
  reward, the mean batch Cov(log π, A), and the R = −a·e^H + b fit (`law_fit`)."""
  rows = []
  for name, tr in results["arms"].items():
    h, r = tr["entropy"].mean(0), tr["reward"].mean(0)
    rows.append({"arm": name, "H_start": float(h[0]), "H_quarter": float(h[len(h) // 4]),
                 "H_mid": float(h[len(h) // 2]), "H_end": float(h[-1]), "R_start": float(r[0]),
                 "R_end": float(r[-1]), "cov_mean": float(tr["covariance"][:, 1:].mean()),
                 **law_fit(tr, results["fit_fraction"])})
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  return [cli.Table(summary_rows(results), {
      "arm": "{arm}", "H start": "{H_start:.3f}", "H at 1/4": "{H_quarter:.3f}", "H at 1/2": "{H_mid:.3f}",
      "H end": "{H_end:.3f}", "R end": "{R_end:.4f}", "R = −a·e^H + b: a, b, R²": "{a:.4f}, {b:.4f}, {r2:.3f}",
      "R end predicted from first third": "{predicted_final:.4f}", "mean Cov(log π, A)": "{cov_mean:+.4f}"})]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """GRPO's final ÷ initial entropy; the smaller of Clip-Cov's and KL-Cov's final entropy ÷ GRPO's;
  the smaller of their final rewards minus GRPO's; the R² of R = −a·e^H + b on GRPO's run."""
  rows = {r["arm"]: r for r in summary_rows(results)}
  grpo = rows["grpo"]
  return {
      "grpo_entropy_collapse": grpo["H_end"] / grpo["H_start"],
      "intervention_entropy_ratio": min(rows[a]["H_end"] / grpo["H_end"] for a in INTERVENTIONS),
      "intervention_reward_gain": min(rows[a]["R_end"] - grpo["R_end"] for a in INTERVENTIONS),
      "grpo_law_r2": grpo["r2"],
  }


def plot(results: dict[str, Any], path: str | None = None):
  """Entropy and reward against steps (seed means) for every arm, and R against H with GRPO's fit."""
  plt = cli.pyplot(path)

  arms = results["arms"]
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
  for name, tr in arms.items():
    steps = np.arange(tr["entropy"].shape[1])
    h, r = tr["entropy"].mean(0), tr["reward"].mean(0)
    axes[0].plot(steps, h, label=name)
    axes[1].plot(steps, r, label=name)
    axes[2].plot(h, r, ".", ms=2, label=name)
  grpo = arms.get("grpo", next(iter(arms.values())))
  fit = losses.entropy_performance_fit(jnp.asarray(grpo["entropy"].mean(0)), jnp.asarray(grpo["reward"].mean(0)))
  hs = np.linspace(0, grpo["entropy"].max(), 100)
  axes[2].plot(hs, -fit["a"] * np.exp(hs) + fit["b"], "k--", lw=1, label=f"GRPO fit, R²={float(fit['r2']):.3f}")
  axes[0].set(xlabel="step", ylabel="policy entropy H", title="entropy")
  axes[1].set(xlabel="step", ylabel="expected reward R", title="reward")
  axes[2].set(xlabel="H", ylabel="R", title="R = −a·e^H + b")
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  return cli.finish_figure(fig, path, title="Softmax answer bandit: GRPO, clip-higher, Clip-Cov, KL-Cov (mean over seeds)")
