"""Nash-MD-PG: the deep policy-gradient form of Nash mirror descent.

Munos, Valko, Calandriello, Gheshlaghi Azar, Rowland, Guo, Tang, Geist, Mesnard, Michi, Selvi,
Girgin, Momchev, Bachem, Mankowitz, Precup & Piot, "Nash Learning from Human Feedback", ICML 2024.

The policy π_θ plays against an opponent sampled from the token-wise geometric mixture of itself and
the reference μ,

    log π_mix(·|x, y_<t) = log_softmax((1 − β)·log π_θ(·|x, y_<t) + β·log μ(·|x, y_<t)),

and follows g = ∇log π_θ(y|x)·(P(y ≻ y′|x) − ½) − τ·∇KL(π_θ‖μ) for y ~ π_θ, y′ ~ π_mix. The KL
gradient is itself a REINFORCE estimate, giving TRL's surrogate (`NashMDTrainer._compute_losses`)

    ℓ_{i,t} = τ·sg(c_{i,t})·log π_θ(y_t) − (P_i − ½)·log π_θ(y_t),   summed over t, averaged over i,

with c_{i,t} = log π_θ(y_t) − log μ(y_t) per token (TRL, `kl_grad="token"`) or the sequence log-ratio
Σ_s (log π_θ(y_s) − log μ(y_s)) broadcast to every token (`kl_grad="sequence"`, the plain
score-function estimator of ∇KL of whole sequences). Its gradient is
Σ_t [τ·c_{i,t} − (P_i − ½)]·∇log π_θ(y_t): with P ≡ ½ only the KL term remains.

TRL defaults: β (its `mixture_coef`) = 0.5, τ (its `beta`) = 0.1; the paper's best run used β = 0.125
([M]).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.losses.aggregation import MODES, aggregate_parts
from rljax.losses.registry import register

Metrics = dict[str, jax.Array]
KL_GRADS = ("token", "sequence")


def geometric_mixture_logits(logits: jax.Array, ref_logits: jax.Array, *, beta: float) -> jax.Array:
  """Normalised log-probabilities `f[..., V]` of π_mix ∝ π_θ^{1−β}·μ^β, token by token.

  β = 0 gives log_softmax(logits) (the policy), β = 1 gives log_softmax(ref_logits) (the reference);
  both endpoints are exact even where a distribution has −inf entries. The mixture only samples the
  opponent y′, so no gradient flows through it.
  """
  checks.check_same_shape(logits=logits, ref_logits=ref_logits)
  checks.check_in_range("beta", beta, 0.0, 1.0)
  lp, lr = checks.as_compute(logits, ref_logits)
  lp = jax.nn.log_softmax(jax.lax.stop_gradient(lp), axis=-1)
  lr = jax.nn.log_softmax(jax.lax.stop_gradient(lr), axis=-1)
  # The endpoints are selected rather than computed: 0·(−inf) would give NaN.
  mixed = jnp.where(beta == 0, lp, jnp.where(beta == 1, lr, (1 - beta) * lp + beta * lr))
  return jax.nn.log_softmax(mixed, axis=-1)


@register("nash_md_pg", kind="policy", reads=("logp", "ref_logp", "pref_prob", "mask"))
def nash_md_pg_loss(
    policy_logps: jax.Array,
    ref_logps: jax.Array,
    pref_prob: jax.Array,
    mask: jax.Array,
    *,
    tau: float = 0.1,
    kl_grad: str = "token",
    agg: str = "seq-mean-token-sum",
) -> tuple[jax.Array, Metrics]:
  """Nash-MD-PG surrogate loss (formula in the module docstring).

  The default `agg="seq-mean-token-sum"` (sum over tokens, mean over responses) is TRL's value.

  Args:
    policy_logps: `f[B, T]` log π_θ(y_t|x, y_<t) of y ~ π_θ; the only input receiving gradients.
    ref_logps: `f[B, T]` log μ(y_t|·); constant.
    pref_prob: `f[B]` P(y ≻ y′|x) ∈ [0, 1] from the preference model, y′ ~ π_mix; constant.
    mask: `bool[B, T]` response-token mask.
    tau: KL regularisation τ ≥ 0.
    kl_grad: "token" (TRL) or "sequence" (see module docstring).
    agg: aggregation mode of `rljax.losses.aggregation`.

  Metrics (stop-gradient): `score` (mean (P − ½)·log π_θ(y)), `kl` (mean sequence log-ratio),
  `pref_prob` (mean P), `loss_numerator`, `loss_denominator`.
  """
  checks.check_choice("kl_grad", kl_grad, KL_GRADS)
  checks.check_choice("agg", agg, MODES)
  checks.check_nonnegative("tau", tau)
  batch, _ = checks.check_same_shape(2, policy_logps=policy_logps, ref_logps=ref_logps, mask=mask)
  if jnp.shape(pref_prob) != (batch,):
    raise ValueError(f"`pref_prob` has shape {jnp.shape(pref_prob)}, expected ({batch},) (one per response).")
  logp, ref, pref = checks.as_compute(policy_logps, ref_logps, pref_prob)
  mask = jnp.asarray(mask, bool)
  ref, pref = jax.lax.stop_gradient(ref), jax.lax.stop_gradient(pref)
  # where(): padding may hold -inf log-probs, which must not reach sums or their gradients.
  logp = jnp.where(mask, logp, 0)
  log_ratio = jnp.where(mask, jax.lax.stop_gradient(logp) - ref, 0)
  seq_log_ratio = jnp.sum(log_ratio, axis=-1)
  coef = log_ratio if kl_grad == "token" else jnp.broadcast_to(seq_log_ratio[:, None], log_ratio.shape)
  advantage = (pref - 0.5)[:, None]
  loss_mat = (tau * coef - advantage) * logp
  num, den = aggregate_parts(loss_mat, mask, agg)
  metrics = {
      "score": jnp.mean((pref - 0.5) * jnp.sum(logp, axis=-1)),
      "kl": jnp.mean(seq_log_ratio),
      "pref_prob": jnp.mean(pref),
      "loss_numerator": num,
      "loss_denominator": den,
  }
  return num / jnp.where(den > 0, den, 1), checks.stop_metrics(metrics)
