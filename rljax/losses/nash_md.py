"""Nash-MD-PG: the deep policy-gradient form of Nash mirror descent.

Munos, Valko, Calandriello, Gheshlaghi Azar, Rowland, Guo, Tang, Geist, Mesnard, Michi, Selvi,
Girgin, Momchev, Bachem, Mankowitz, Precup & Piot, "Nash Learning from Human Feedback", ICML 2024.

The policy π_θ plays against an opponent sampled from the token-wise geometric mixture of itself and
the reference μ,

    log π_mix(·|x, y_<t) = log_softmax((1 − β)·log π_θ(·|x, y_<t) + β·log μ(·|x, y_<t)),

and follows g = ∇log π_θ(y|x)·(P(y ≻ y′|x) − ½) − τ·∇KL(π_θ‖μ) for y ~ π_θ, y′ ~ π_mix. With per-token
log-probs ℓ_{i,t} = log π_θ(y_t|x, y_<t), m_{i,t} = log μ(y_t|·) and r_{i,t} = ℓ_{i,t} − m_{i,t} on the
response mask, the surrogate is

    L_{i,t} = τ·sg(c_{i,t})·ℓ_{i,t} − (P_i − ½)·ℓ_{i,t},   summed over t, averaged over responses i,

with the KL coefficient c chosen by `kl_estimator`:

* `"token"`: c_{i,t} = r_{i,t}, TRL's per-token surrogate. Verified against huggingface/trl
  `trl/trainer/nash_md_trainer.py` and `trl/experimental/nash_md/nash_md_trainer.py`,
  `NashMDTrainer._compute_losses` (identical in both):
      score = (probability − 0.5) * logp.sum(1)
      log_ratio = (logp − ref_logp) under no_grad;  kl_div_log = log_ratio.sum(1)
      kl_div_loss = (log_ratio * logp).sum(1);      loss = (beta * kl_div_loss − score).mean()
  i.e. the sign (+τ·KL term, −score), the ½ control variate, the sum over tokens and the mean over
  the batch are TRL's. Padding is zeroed in TRL by `masked_fill(padding_mask, 0.0)` on both log-prob
  tensors in `_compute_logprobs`; here by `where(mask, ·, 0)`. TRL's `beta` is τ and its
  `probability` is σ(r(y) − r(y′)) from a reward model or a judge's probability (`training_step`).
* `"sequence"`: c_{i,t} = R_i := Σ_s r_{i,s}, the sequence log-ratio broadcast to every token, i.e.
  L_i = τ·sg(R_i)·Σ_t ℓ_{i,t} − (P_i − ½)·Σ_t ℓ_{i,t}: the plain score-function (REINFORCE)
  estimator of ∇KL(π_θ‖μ) over whole sequences (spec §2, [D]).

Gradients: ∂L/∂ℓ_{i,t} = [τ·c_{i,t} − (P_i − ½)]/S (S = non-empty responses); with P ≡ ½ only the KL
term remains. The two modes differ by τ·Σ_{s≠t} r_{i,s}·∇ℓ_{i,t}, so they coincide exactly when τ = 0
or every response has one token (the tabular/bandit case of `rljax.theory.kernels.preference_games`).
In expectation over y ~ π_θ the cross terms s < t vanish (E[∇ℓ_t | y_<t] = 0), so the two agree on the
parameters of the last token's distribution; the "sequence" mode's expectation is τ·∇KL(π_θ‖μ) exactly,
while "token" drops the future terms s > t, E[∇ℓ_t·Σ_{s>t} r_s] (it differentiates each step's KL
with the prefix distribution held fixed). Tests pin both facts by exact enumeration.

Batch mean: TRL's `loss.mean()` divides by B; the default `agg="seq-mean-token-sum"` divides by the
number S of non-empty responses, so the two agree whenever no response is empty.

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
KL_ESTIMATORS = ("token", "sequence")


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
    logp: jax.Array,
    ref_logp: jax.Array,
    pref_prob: jax.Array,
    mask: jax.Array,
    *,
    tau: float = 0.1,
    kl_estimator: str = "token",
    agg: str = "seq-mean-token-sum",
) -> tuple[jax.Array, Metrics]:
  """Nash-MD-PG surrogate loss (formula and TRL provenance in the module docstring).

  The defaults `kl_estimator="token"` and `agg="seq-mean-token-sum"` (sum over tokens, mean over
  responses) are TRL's `_compute_losses`.

  Args:
    logp: `f[B, T]` per-token log π_θ(y_t|x, y_<t) of y ~ π_θ; the only input receiving gradients.
    ref_logp: `f[B, T]` per-token log μ(y_t|·); constant.
    pref_prob: `f[B]` P(y ≻ y′|x) ∈ [0, 1] from the preference model, y′ ~ π_mix; constant.
    mask: `bool[B, T]` response-token mask.
    tau: KL regularisation τ ≥ 0 (TRL's `beta`).
    kl_estimator: "token" (TRL's per-token surrogate, c_t = r_t) or "sequence" (sequence log-ratio
      R = Σ_t r_t on every token: the score-function estimator of ∇KL of whole sequences).
    agg: aggregation mode of `rljax.losses.aggregation`.

  Metrics (stop-gradient): `score` (mean (P − ½)·Σ_t log π_θ(y_t), TRL's `loss/score`), `kl` (mean
  sequence log-ratio, TRL's `loss/kl`), `pref_prob` (mean P), `loss_numerator`, `loss_denominator`.
  """
  checks.check_choice("kl_estimator", kl_estimator, KL_ESTIMATORS)
  checks.check_choice("agg", agg, MODES)
  checks.check_nonnegative("tau", tau)
  batch, _ = checks.check_same_shape(2, logp=logp, ref_logp=ref_logp, mask=mask)
  if jnp.shape(pref_prob) != (batch,):
    raise ValueError(f"`pref_prob` has shape {jnp.shape(pref_prob)}, expected ({batch},) (one per response).")
  logp, ref, pref = checks.as_compute(logp, ref_logp, pref_prob)
  mask = jnp.asarray(mask, bool)
  ref, pref = jax.lax.stop_gradient(ref), jax.lax.stop_gradient(pref)
  # where(): padding may hold -inf log-probs, which must not reach sums or their gradients.
  logp = jnp.where(mask, logp, 0)
  log_ratio = jnp.where(mask, jax.lax.stop_gradient(logp) - ref, 0)
  seq_log_ratio = jnp.sum(log_ratio, axis=-1)
  if kl_estimator == "token":
    coef = log_ratio
  else:
    coef = jnp.broadcast_to(seq_log_ratio[:, None], log_ratio.shape)
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
