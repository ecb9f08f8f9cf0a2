"""Exact checks of the RLVR kernels on the softmax answer bandit, at full size (float64).

(a) Group estimators against the analytic policy gradient: the Monte-Carlo mean of each kernel's
    gradient estimate, projected on ∇J, gives its scale c (1 = unbiased) with a 95% interval.
(b) The entropy mechanism: one natural-PG (Δz = ηA) or vanilla-PG (Δz = η·π⊙A) step changes the
    entropy by −η·Cov_π(log π, Δz/η) + O(η²); the error's log–log slope in η is 2.
(d) NFT's on-policy gradient against GRPO's (population std, ε = 0) over random policies.
(e) KDRL with KL coefficient 0 against GRPO: the largest parameter gap along a training run.

    python -m experiments.bandit_pg_checks [--config=configs/bandit_pg_checks.py:smoke]
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rljax import losses
from rljax.theory import bandit_pg as bp
from rljax.theory.kernels.slopes import loglog_slope


def estimator_scales(cfg, env, theta) -> list[dict]:
  """(a): c = ⟨mean, ∇J⟩/‖∇J‖² and the residual off the ∇J direction, in standard errors."""
  n = cfg.group_size
  estimators = {
      "rloo": functools.partial(losses.rloo_advantages, group_size=n),
      "grpo, scale=none (Dr.GRPO)": functools.partial(losses.grpo_advantages, group_size=n, scale="none"),
      "grpo, scale=group": functools.partial(losses.grpo_advantages, group_size=n),
      "grpo, scale=batch (Lite PPO)": functools.partial(losses.grpo_advantages, group_size=n, scale="batch"),
  }
  g = bp.analytic_gradient(theta, env)
  rows = []
  for i, (name, adv_fn) in enumerate(estimators.items()):
    moments = functools.partial(bp.gradient_estimate_moments, group_size=n, n_batches=cfg.n_batches,
                                advantage_fn=adv_fn, loss_fn=losses.ppo_clip_loss)
    mean, se = jax.jit(moments)(jax.random.PRNGKey(cfg.seed + i), theta, env)
    scale = float(mean @ g / (g @ g))
    scale_se = float(jnp.sqrt(jnp.sum((se * g) ** 2)) / (g @ g))
    resid = mean - scale * g
    rows.append({"estimator": name, "scale": scale, "ci": 1.96 * scale_se,
                 "predicted": {"rloo": 1.0, "grpo, scale=none (Dr.GRPO)": (n - 1) / n}.get(name),
                 "max_resid_se": float(jnp.max(jnp.abs(resid) / se))})
  return rows


def entropy_step_errors(cfg) -> dict:
  """(b): max |ΔH − predicted| over prompts for each η, for natural and vanilla PG directions."""
  env = bp.make_answer_bandit(jax.random.PRNGKey(cfg.seed), n_prompts=cfg.n_prompts, n_answers=cfg.n_answers,
                              logit_mean=0.0)
  z = 1.5 * jax.random.normal(jax.random.PRNGKey(cfg.seed + 1), env.success.shape, jnp.float64)
  pi = jax.nn.softmax(z, -1)
  adv = env.success - jnp.sum(pi * env.success, -1, keepdims=True)
  entropy = lambda logits: -jnp.sum(jax.nn.softmax(logits, -1) * jax.nn.log_softmax(logits, -1), -1)
  etas = np.asarray(cfg.etas)
  out = {"eta": etas}
  for name, direction in (("natural PG", adv), ("vanilla PG", pi * adv)):
    errs = [float(jnp.max(jnp.abs(entropy(z + e * direction) - entropy(z)
                                  - losses.predicted_entropy_change(z, e * direction)))) for e in etas]
    out[name] = np.asarray(errs)
  return out


def nft_grpo_gap(cfg, env) -> float:
  """(d): max |∇NFT − ∇GRPO| / max |∇GRPO| over random policies and batches (informative groups)."""
  n = cfg.group_size

  def gap(key):
    k_theta, k_s = jax.random.split(key)
    theta = jax.random.normal(k_theta, env.features.shape[-1:], jnp.float64)
    groups = bp.sample_groups(k_s, theta, env, n)
    acc = jnp.repeat(groups.reward.reshape(-1, n).mean(1), n)
    mask = ((acc > 0) & (acc < 1))[:, None]
    old = bp.token_logps(theta, env, groups)
    adv = losses.grpo_advantages(groups.reward, group_size=n, std_ddof=0, eps=0.0)
    grpo = jax.grad(lambda t: losses.ppo_clip_loss(bp.token_logps(t, env, groups), old, adv[:, None], mask)[0])(theta)
    nft = jax.grad(lambda t: losses.nft_loss(bp.token_logps(t, env, groups), old, mask, groups.reward, acc,
                                             weighting="grpo", agg="token-mean")[0])(theta)
    return jnp.max(jnp.abs(nft - grpo)) / jnp.max(jnp.abs(grpo))

  return float(jnp.max(jax.jit(jax.vmap(gap))(jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.n_policies))))


def kdrl_grpo_gap(cfg, env) -> tuple[float, float]:
  """(e): max |θ_KDRL(β=0) − θ_GRPO| along `steps` of training, and ‖θ_GRPO‖ at the end."""
  n = cfg.group_size
  teacher = jnp.log(jnp.full((env.success.size // env.success.shape[1] * n, 1), 0.5, jnp.float64))
  kdrl = lambda logp, old, adv, mask: losses.kdrl_loss(logp, old, teacher, adv, mask, kl_coef=0.0)
  common = dict(steps=cfg.steps, group_size=n, optimizer=optax.adam(cfg.lr), updates_per_batch=2,
                advantage_fn=functools.partial(losses.grpo_advantages, group_size=n))
  theta0 = jnp.zeros(env.features.shape[-1], jnp.float64)
  key = jax.random.PRNGKey(cfg.seed)
  th_g, _ = jax.jit(bp.make_train(env, loss_fn=losses.ppo_clip_loss, **common))(key, theta0)
  th_k, _ = jax.jit(bp.make_train(env, loss_fn=kdrl, **common))(key, theta0)
  return float(jnp.max(jnp.abs(th_k - th_g))), float(jnp.linalg.norm(th_g))


def report(cfg) -> str:
  env = bp.make_answer_bandit(jax.random.PRNGKey(cfg.seed), n_prompts=cfg.n_prompts, n_answers=cfg.n_answers,
                              dim=cfg.dim, logit_mean=0.0)
  env = jax.tree.map(lambda a: a.astype(jnp.float64), env)
  theta = 0.5 * jax.random.normal(jax.random.PRNGKey(cfg.seed + 7), (cfg.dim,), jnp.float64)
  lines = [f"(a) gradient estimates over {cfg.n_batches} batches of {cfg.n_prompts}×{cfg.group_size}: "
           "scale c of E[estimate] = c·∇J",
           "| estimator | c [95% CI] | predicted | max off-direction residual (s.e.) |", "|---|---|---|---|"]
  for r in estimator_scales(cfg, env, theta):
    pred = "—" if r["predicted"] is None else f"{r['predicted']:.4f}"
    lines.append(f"| {r['estimator']} | {r['scale']:.4f} ± {r['ci']:.4f} | {pred} | {r['max_resid_se']:.2f} |")
  errs = entropy_step_errors(cfg)
  lines += ["", "(b) max |ΔH − (−Cov)| after one step of size η", "| η | " + " | ".join(f"{e:g}" for e in errs["eta"])
            + " | log–log slope |", "|---|" + "---|" * (len(errs["eta"]) + 1)]
  for name in ("natural PG", "vanilla PG"):
    slope, _ = loglog_slope(errs["eta"], errs[name])
    lines.append(f"| {name} | " + " | ".join(f"{e:.2e}" for e in errs[name]) + f" | {slope:.3f} |")
  gap = nft_grpo_gap(cfg, env)
  lines += ["", f"(d) NFT vs GRPO on-policy gradient, {cfg.n_policies} random policies: max relative gap {gap:.2e}"]
  kd_gap, norm = kdrl_grpo_gap(cfg, env)
  lines.append(f"(e) KDRL(β=0) vs GRPO over {cfg.steps} Adam steps: max |Δθ| = {kd_gap:.2e} (‖θ‖ = {norm:.2f})")
  return "\n".join(lines)


def main(cfg) -> None:
  jax.config.update("jax_enable_x64", True)
  os.makedirs(cfg.out_dir, exist_ok=True)
  text = report(cfg)
  print(text)
  with open(os.path.join(cfg.out_dir, "checks.md"), "w") as f:
    f.write(text + "\n")


if __name__ == "__main__":
  from experiments import cli

  cli.launch(main, "bandit_pg_checks.py", "cpu (default) or smoke")
