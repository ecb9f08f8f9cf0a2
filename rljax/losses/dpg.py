"""Distributional policy gradient (DPG): fit π_θ to a target distribution by forward KL.

Khalifa, Elsahar & Dymetman, "A Distributional Approach to Controlled Text Generation" (GDC),
ICLR 2021; discussed by Korbak, Perez & Buckley, "RL with KL penalties is better viewed as Bayesian
inference", Findings of EMNLP 2022. The target is an energy-based model P(y) = P̃(y)/Z, e.g. the
KL-RL posterior P̃(y) = π_0(y)·exp(r(y)/β). DPG minimises the forward (mass-covering) KL

    KL(P‖π_θ) = E_P[log P − log π_θ],   ∇_θ KL = −E_{y~q}[(P(y)/q(y))·∇_θ log π_θ(y)]

by importance sampling from a proposal q: on-policy DPG uses q = π_θ (pass the stop-gradient
`seq_logps` as `proposal_logps`), GDC's off-policy variant a slowly updated copy of it. Unlike
KL-regularised RL (reverse KL to the same P) this is not an expected-reward objective.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.losses.registry import register

Metrics = dict[str, jax.Array]


@register("dpg", kind="sequence", reads=("seq_logps", "target_logps", "proposal_logps"))
def dpg_loss(
    seq_logps: jax.Array,
    target_unnorm_logps: jax.Array,
    proposal_logps: jax.Array,
    *,
    self_normalize: bool = True,
    reduction: str = "mean",
) -> tuple[jax.Array, Metrics]:
  """Importance-weighted DPG surrogate, per example  ℓ_i = −w_i · log π_θ(y_i),  y_i ~ q.

  The weights are stop-gradient, so under `reduction="mean"` the gradient is
  −(1/B)·Σ_i w_i·∇log π_θ(y_i), an estimate of ∇_θ KL(P‖π_θ):
  * `self_normalize=True` (default): w_i = B·softmax_i(log P̃(y_i) − log q(y_i)), i.e. the
    self-normalised importance weights scaled to mean 1. Z cancels, so `target_unnorm_logps` may be
    any unnormalised log P̃; the estimate is consistent (biased for finite B). The loss value is then
    the estimated cross-entropy E_P[−log π_θ] = KL(P‖π_θ) + H(P).
  * `self_normalize=False`: w_i = exp(log P̃(y_i) − log q(y_i)), unbiased only if the target is
    **normalised** (Z = 1); an unnormalised target scales the gradient by Z.

  `reduction="none"` returns the per-example surrogate ℓ_i (its gradient, not its value, is the
  meaningful quantity); "sum" is B times "mean".

  Args:
    seq_logps: `f[B]` log π_θ(y_i|x) (summed over tokens); the only input receiving gradients.
    target_unnorm_logps: `f[B]` log P̃(y_i); stop-gradient.
    proposal_logps: `f[B]` log q(y_i) of the sampling distribution; stop-gradient.
    self_normalize: normalise the weights over the batch (static Python bool).
    reduction: "mean" (default), "sum" or "none".

  Metrics (stop-gradient): `ess_frac`, the effective sample size (Σw)²/Σw² divided by B, in (0, 1];
  `mean_weight`, mean w_i (1 when self-normalised; estimates Z otherwise); `log_z`,
  log mean_i P̃(y_i)/q(y_i), the importance estimate of log Z; `kl_forward`, the importance estimate
  of KL(P‖π_θ) with P normalised by exp(`log_z`) when self-normalised, and by Z = 1 otherwise.
  """
  checks.check_same_shape(
      1, seq_logps=seq_logps, target_unnorm_logps=target_unnorm_logps, proposal_logps=proposal_logps
  )
  if not isinstance(self_normalize, bool):
    raise ValueError(f"`self_normalize` must be a Python bool, got {self_normalize!r}.")
  logp, target, proposal = checks.as_compute(seq_logps, target_unnorm_logps, proposal_logps)
  batch = logp.shape[0]
  if batch == 0:
    raise ValueError("`seq_logps` must hold at least one example: the weights are normalised over the batch.")
  log_w = jax.lax.stop_gradient(target - proposal)
  # softmax and logsumexp subtract the max, so large log-weights do not overflow.
  snw = jax.nn.softmax(log_w)
  log_z = jax.nn.logsumexp(log_w) - jnp.log(batch)
  if self_normalize:
    w = batch * snw
    kl_forward = jnp.sum(snw * (target - log_z - logp))
  else:
    w = jnp.exp(log_w)
    kl_forward = jnp.mean(w * (target - logp))
  per_example = -w * logp
  metrics = {
      "ess_frac": 1.0 / (batch * jnp.sum(snw**2)),
      "mean_weight": jnp.mean(w),
      "log_z": log_z,
      "kl_forward": kl_forward,
  }
  return checks.reduce_examples(per_example, reduction), checks.stop_metrics(metrics)
