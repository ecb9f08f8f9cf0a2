"""Pairwise preference losses on sequence log-probabilities (DPO family).

Every function takes `f[B]` sequence log-probabilities (masked sums over response tokens, see
`rljax.ops.reductions.sequence_logps`) and returns `(loss, metrics)`. All of them are one kernel,
`pairwise_loss`, applied to a margin

    h = (log π_θ(y_w|x) − log π_ref(y_w|x)) − (log π_θ(y_l|x) − log π_ref(y_l|x))

through a per-example link ℓ(h); write ℓ_σ(u) = −log σ(u) = softplus(−u). Gradients flow into the
policy log-probabilities only through h; reference inputs are constants of the objective.

Metrics (all stop-gradient batch means): `margin_mean` (mean h), `reward_acc` (fraction with h > 0),
`chosen_reward` and `rejected_reward` (the implicit rewards β·log π_θ/π_ref), and `grad_weight_mean`,
the mean of −∂ℓ/∂h — how hard the loss pushes the margin up.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.losses.registry import register

Metrics = dict[str, jax.Array]

# The batch fields of a DPO-family loss: policy and reference sequence log-probs of both responses.
PAIR_READS = ("chosen_logps", "rejected_logps", "ref_chosen_logps", "ref_rejected_logps")


def pairwise_loss(
    link: Callable[[jax.Array], jax.Array],
    margin: jax.Array,
    chosen_reward: jax.Array,
    rejected_reward: jax.Array,
    reduction: str,
) -> tuple[jax.Array, Metrics]:
  """Applies an elementwise `link` to `margin: f[B]`, reduces, and collects the shared metrics."""
  per_example = link(margin)
  # The link is elementwise, so a JVP with a ones tangent is the per-example derivative dℓ/dh.
  _, dlink = jax.jvp(link, (margin,), (jnp.ones_like(margin),))
  metrics = {
      "margin_mean": jnp.mean(margin),
      "reward_acc": jnp.mean((margin > 0).astype(margin.dtype)),
      "chosen_reward": jnp.mean(chosen_reward),
      "rejected_reward": jnp.mean(rejected_reward),
      "grad_weight_mean": jnp.mean(-dlink),
  }
  return checks.reduce_examples(per_example, reduction), checks.stop_metrics(metrics)


def _log_ratio_inputs(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps):
  checks.check_same_shape(
      1,
      policy_chosen_logps=policy_chosen_logps,
      policy_rejected_logps=policy_rejected_logps,
      ref_chosen_logps=ref_chosen_logps,
      ref_rejected_logps=ref_rejected_logps,
  )
  pc, pr, rc, rr = checks.as_compute(
      policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
  )
  return pc - rc, pr - rr


def _smoothed_sigmoid_link(beta, eps, debias: bool) -> Callable[[jax.Array], jax.Array]:
  """(1−ε)ℓ_σ(βh) ± ε·ℓ_σ(−βh); the '−' sign with 1/(1−2ε) is the unbiased rDPO estimator."""

  def link(h):
    u = beta * h
    if debias:
      return ((1 - eps) * jax.nn.softplus(-u) - eps * jax.nn.softplus(u)) / (1 - 2 * eps)
    return (1 - eps) * jax.nn.softplus(-u) + eps * jax.nn.softplus(u)

  return link


@register("dpo", kind="pairwise", reads=PAIR_READS)
def dpo_loss(
    policy_chosen_logps: jax.Array,
    policy_rejected_logps: jax.Array,
    ref_chosen_logps: jax.Array,
    ref_rejected_logps: jax.Array,
    *,
    beta: float,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> tuple[jax.Array, Metrics]:
  """Sigmoid DPO (Rafailov et al. 2023), with optional conservative label smoothing.

      L = (1 − ε)·ℓ_σ(βh) + ε·ℓ_σ(−βh),   ε = label_smoothing ∈ [0, 1/2)

  ε = 0 is DPO; ε > 0 is cDPO, the expected loss under labels flipped with rate ε. OpenRLHF and
  TRL ≤ 0.28 apply the same smoothing; TRL 1.x ignores `label_smoothing` for `sigmoid`.

  Args:
    policy_chosen_logps, policy_rejected_logps: `f[B]` log π_θ(y|x) (summed over tokens).
    ref_chosen_logps, ref_rejected_logps: `f[B]` log π_ref(y|x).
    beta: KL strength β > 0.
    label_smoothing: assumed flip rate ε ∈ [0, 1/2).
    reduction: "mean" (default), "sum" or "none" (per-example `f[B]`).
  """
  checks.check_positive("beta", beta)
  checks.check_flip_rate("label_smoothing", label_smoothing)
  chosen, rejected = _log_ratio_inputs(
      policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
  )
  link = _smoothed_sigmoid_link(beta, label_smoothing, debias=False)
  return pairwise_loss(link, chosen - rejected, beta * chosen, beta * rejected, reduction)


@register("cdpo", kind="pairwise", reads=PAIR_READS)
def cdpo_loss(
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, *,
    beta: float, epsilon: float, reduction: str = "mean",
) -> tuple[jax.Array, Metrics]:
  """Conservative DPO: `dpo_loss` with `label_smoothing = epsilon`.

      L = (1 − ε)·ℓ_σ(βh) + ε·ℓ_σ(−βh)

  Its gradient vanishes at βh = log((1−ε)/ε): the loss saturates instead of fitting the clean model,
  which biases the estimate under label noise (Chowdhury et al., ICML 2024, §1 baseline).
  """
  checks.check_flip_rate("epsilon", epsilon)
  return dpo_loss(
      policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
      beta=beta, label_smoothing=epsilon, reduction=reduction,
  )


@register("rdpo", kind="pairwise", reads=PAIR_READS)
def rdpo_loss(
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, *,
    beta: float, epsilon: float, reduction: str = "mean",
) -> tuple[jax.Array, Metrics]:
  """Provably robust DPO (Chowdhury, Kini & Natarajan, "Provably Robust DPO", ICML 2024).

      L_ε(h) = [(1 − ε)·ℓ_σ(βh) − ε·ℓ_σ(−βh)] / (1 − 2ε),   ε ∈ [0, 1/2)

  For labels flipped independently with known rate ε it is unbiased for the clean DPO loss:
  (1 − ε)·L_ε(h) + ε·L_ε(−h) = ℓ_σ(βh). Its gradient weight
  −∂L/∂h = β[(1−ε)σ(−βh) + εσ(βh)]/(1−2ε) is always positive. A per-example value can be negative
  (slope −εβ/(1−2ε) as h → ∞); the loss is still convex in h (second derivative β²σ'(βh)).
  Matches TRL's `loss_type="robust"` with `label_smoothing = ε`.
  """
  checks.check_positive("beta", beta)
  checks.check_flip_rate("epsilon", epsilon)
  chosen, rejected = _log_ratio_inputs(
      policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
  )
  link = _smoothed_sigmoid_link(beta, epsilon, debias=True)
  return pairwise_loss(link, chosen - rejected, beta * chosen, beta * rejected, reduction)


@register("ipo", kind="pairwise", reads=PAIR_READS)
def ipo_loss(
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, *,
    beta: float, reduction: str = "mean",
) -> tuple[jax.Array, Metrics]:
  """IPO (Azar et al., "A General Theoretical Paradigm to Understand Learning from Human
  Preferences", AISTATS 2024):  L = (h − 1/(2β))².

  Applied to the log-probabilities as given: pass length-averaged log-probs to reproduce TRL's DPO
  `ipo` (which normalises by length), summed ones to match OpenRLHF and TRL online-DPO.
  """
  checks.check_positive("beta", beta)
  chosen, rejected = _log_ratio_inputs(
      policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
  )
  target = 1.0 / (2.0 * beta)
  return pairwise_loss(lambda h: (h - target) ** 2, chosen - rejected, beta * chosen, beta * rejected, reduction)


@register("hinge", kind="pairwise", reads=PAIR_READS)
def hinge_loss(
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, *,
    beta: float, reduction: str = "mean",
) -> tuple[jax.Array, Metrics]:
  """SLiC hinge (Zhao et al., "SLiC-HF", 2023) on the DPO margin:  L = max(0, 1 − βh)."""
  checks.check_positive("beta", beta)
  chosen, rejected = _log_ratio_inputs(
      policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
  )
  return pairwise_loss(
      lambda h: jax.nn.relu(1.0 - beta * h), chosen - rejected, beta * chosen, beta * rejected, reduction
  )


@register("simpo", kind="pairwise", reads=("chosen_mean_logps", "rejected_mean_logps"))
def simpo_loss(
    policy_chosen_logps: jax.Array,
    policy_rejected_logps: jax.Array,
    *,
    beta: float,
    gamma: float = 0.5,
    reduction: str = "mean",
) -> tuple[jax.Array, Metrics]:
  """SimPO (Meng, Xia & Chen, "SimPO: Simple Preference Optimization with a Reference-Free
  Reward", NeurIPS 2024):  L = ℓ_σ(β(p̄_w − p̄_l) − γ).

  Reference-free: the inputs are **length-averaged** log-probabilities p̄ = (1/|y|)Σ_t log π_θ(y_t)
  (`sequence_logps(..., average=True)`), and γ ≥ 0 is the target reward margin. Same value as TRL's
  CPO `loss_type="simpo"` with `simpo_gamma = γ` and `cpo_alpha = 0`. The margin metric is
  h = p̄_w − p̄_l; the rewards are β·p̄.
  """
  checks.check_positive("beta", beta)
  checks.check_nonnegative("gamma", gamma)
  checks.check_same_shape(1, policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps)
  pc, pr = checks.as_compute(policy_chosen_logps, policy_rejected_logps)
  return pairwise_loss(lambda h: jax.nn.softplus(gamma - beta * h), pc - pr, beta * pc, beta * pr, reduction)


@register("inpo", kind="pairwise", reads=("chosen_logps", "rejected_logps", "ref_chosen_logps", "ref_rejected_logps", "prev_chosen_logps", "prev_rejected_logps"))
def inpo_loss(
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
    prev_chosen_logps: jax.Array, prev_rejected_logps: jax.Array, *,
    eta: float, tau: float, reduction: str = "mean",
) -> tuple[jax.Array, Metrics]:
  """INPO (Zhang et al., "Iterative Nash Policy Optimization", 2024), one online-mirror-descent step.

      h_t = log π(y_w)/π(y_l) − ητ·log π_ref(y_w)/π_ref(y_l) − (1 − ητ)·log π_t(y_w)/π_t(y_l)
      L_t = (h_t − η/2)²

  with pairs drawn from the previous iterate π_t (`prev_*_logps`) and ordered by the preference
  oracle. Over all policies the minimiser of E[L_t] is the OMD step
  π_{t+1} ∝ π_t^{1−ητ}·π_ref^{ητ}·exp(η·P(y ≻ π_t)), because E[1{y ≻ y'}] = P(y ≻ π_t) for y' ~ π_t.
  ητ = 1 is `ipo_loss` with β = 1/η. Requires η > 0, τ ≥ 0 and ητ ≤ 1. The margin metric is h_t;
  the rewards are log π_θ/π_ref.
  """
  checks.check_positive("eta", eta)
  checks.check_nonnegative("tau", tau)
  checks.check_in_range("eta * tau", eta * tau, 0.0, 1.0)
  checks.check_same_shape(
      1,
      policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps,
      ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps,
      prev_chosen_logps=prev_chosen_logps, prev_rejected_logps=prev_rejected_logps,
  )
  pc, pr, rc, rr, qc, qr = checks.as_compute(
      policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
      prev_chosen_logps, prev_rejected_logps,
  )
  mix = eta * tau
  h_t = (pc - pr) - mix * (rc - rr) - (1 - mix) * (qc - qr)
  return pairwise_loss(lambda h: (h - eta / 2) ** 2, h_t, pc - rc, pr - rr, reduction)
