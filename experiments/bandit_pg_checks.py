"""Exact checks of the RLVR kernels on the softmax answer bandit, at full size (float64).

(a) Group estimators against the analytic policy gradient: the Monte-Carlo mean of each kernel's
    gradient estimate, projected on ∇J, gives its scale c (1 = unbiased) with a 95% interval.
(b) The entropy mechanism: one natural-PG (Δz = ηA) or vanilla-PG (Δz = η·π⊙A) step changes the
    entropy by −η·Cov_π(log π, Δz/η) + O(η²); the error's log–log slope in η is 2.
(d) NFT's on-policy gradient against GRPO's (population std, ε = 0) over random policies.
(e) KDRL with KL coefficient 0 against GRPO: the largest parameter gap along a training run.

    python -m rljax.run --config configs/bandit_pg_checks.py --workdir results/bandit_pg_checks
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rljax import losses
from rljax.theory.pg import answer_bandit as bp
from experiments import cli
from experiments.slopes import loglog_slope

DIRECTIONS = ("natural PG", "vanilla PG")  # the step directions of (b): Δz = ηA and Δz = η·π⊙A


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
  for name, direction in zip(DIRECTIONS, (adv, pi * adv)):
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


def run(cfg) -> dict:
  """(a) estimator scales, (b) entropy-step errors, (d) the NFT–GRPO gradient gap and (e) the KDRL–GRPO
  parameter gap (with ‖θ_GRPO‖), on one float64 answer bandit."""
  env = bp.make_answer_bandit(jax.random.PRNGKey(cfg.seed), n_prompts=cfg.n_prompts, n_answers=cfg.n_answers,
                              dim=cfg.dim, logit_mean=0.0)
  env = jax.tree.map(lambda a: a.astype(jnp.float64), env)
  theta = 0.5 * jax.random.normal(jax.random.PRNGKey(cfg.seed + 7), (cfg.dim,), jnp.float64)
  out = {"estimators": estimator_scales(cfg, env, theta), "entropy": entropy_step_errors(cfg),
         "nft_gap": nft_grpo_gap(cfg, env)}
  out["kdrl_gap"], out["theta_norm"] = kdrl_grpo_gap(cfg, env)
  return {**out,
          "sizes": {k: cfg[k] for k in ("n_batches", "n_prompts", "group_size", "n_policies", "steps")}}


def entropy_rows(results: dict) -> list[dict]:
  """(b) per direction: the error at each η and its log–log slope in η."""
  errs = results["entropy"]
  return [{"method": name, "errors": [float(e) for e in errs[name]], "slope": loglog_slope(errs["eta"], errs[name])[0]}
          for name in DIRECTIONS]


def tables(results: dict) -> list[cli.Table]:
  sz = results["sizes"]
  estimators = cli.Table(results["estimators"], {
      "estimator": "{estimator}", "c [95% CI]": "{scale:.4f} ± {ci:.4f}",
      "predicted": lambda r: "—" if r["predicted"] is None else f"{r['predicted']:.4f}",
      "max off-direction residual (s.e.)": "{max_resid_se:.2f}",
  }, title=f"(a) gradient estimates over {sz['n_batches']} batches of {sz['n_prompts']}×{sz['group_size']}: "
           "scale c of E[estimate] = c·∇J", name="estimators")
  etas = results["entropy"]["eta"]
  entropy = cli.Table(entropy_rows(results), {
      "η": "{method}", **{f"{e:g}": f"{{errors[{i}]:.2e}}" for i, e in enumerate(etas)},
      "log–log slope": "{slope:.3f}",
  }, title="(b) max |ΔH − (−Cov)| after one step of size η", name="entropy_step")
  equivalences = cli.Table([
      {"check": f"(d) NFT vs GRPO on-policy gradient, {sz['n_policies']} random policies",
       "quantity": "max relative gap", "value": results["nft_gap"]},
      {"check": f"(e) KDRL(β=0) vs GRPO over {sz['steps']} Adam steps", "quantity": "largest parameter gap",
       "value": results["kdrl_gap"]},
      {"check": f"(e) KDRL(β=0) vs GRPO over {sz['steps']} Adam steps", "quantity": "‖θ‖ at the end",
       "value": results["theta_norm"]},
  ], {"check": "{check}", "quantity": "{quantity}", "value": "{value:.2e}"}, name="equivalences")
  return [estimators, entropy, equivalences]


def plot(results: dict, path: str | None = None):
  """(a) each estimator's scale c with its 95% interval against its prediction; (b) the entropy-step
  error against η, log–log, with an η² guide."""
  plt = cli.pyplot(path)

  fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(11, 4.2))
  rows = results["estimators"]
  y = np.arange(len(rows))
  ax_a.errorbar([r["scale"] for r in rows], y, xerr=[r["ci"] for r in rows], fmt="o", label="measured c (95% CI)")
  pred = [(r["predicted"], i) for i, r in enumerate(rows) if r["predicted"] is not None]
  ax_a.plot(*zip(*pred), "kx", ms=8, label="predicted")
  ax_a.set(yticks=y, yticklabels=[r["estimator"] for r in rows], xlabel="c in E[estimate] = c·∇J",
           title="(a) group estimators")
  ax_a.grid(alpha=0.3)
  ax_a.legend(fontsize=8)
  errs = results["entropy"]
  for name in DIRECTIONS:
    ax_b.plot(errs["eta"], errs[name], "o-", label=name)
  cli.power_guide(ax_b, errs["eta"], 3 * float(np.max([errs[n][-1] for n in DIRECTIONS])), 2.0,
                  label="∝ η²")  # through the last η, above both curves
  cli.loglog(ax_b, "η", "max |ΔH − (−η·Cov)|", title="(b) entropy change of one step")
  return cli.finish_figure(fig, path, title="Exact checks of the RLVR kernels on the softmax answer bandit")
