"""Per-token KL(π‖π_ref) estimators, KL-penalised token rewards and the adaptive KL controller.

Schulman's estimators ("Approximating KL divergence", 2020) of KL(π‖π_ref) from tokens y ~ π, with
d = log π(y) − log π_ref(y):

    k1 = d                     unbiased, high variance, can be negative
    k2 = ½·d²                  biased, low variance, >= 0
    k3 = exp(−d) − 1 + d       unbiased, low variance, >= 0   (verl "low_var_kl")
    abs = |d|

KL enters training in one of two places:

* In the reward (PPO-RLHF, REINFORCE++): r_t −= β·k_t with d from the behaviour policy, then the
  policy-gradient machinery treats it as reward (`kl_penalized_rewards`; no gradient through it).
* As a loss term (GRPO, KDRL): loss += β·aggregate(k(d), mask), differentiated through `logp`.

For the loss placement, the *expected gradient* matters, not the value. For a single token
(T = 1) with y ~ π_θ and the sampling distribution held fixed:

    E[∇k1] = E[∇log π] = 0                                  no KL gradient at all
    E[∇k2] = E[d·∇log π] = ∇KL(π_θ‖π_ref)                    the reverse KL gradient (unbiased)
    E[∇k3] = E_π[(1 − π_ref/π)·∇log π] = −E_{π_ref}[∇log π] = ∇KL(π_ref‖π_θ)   the *forward* KL

so k3 as a loss optimises the forward KL although its value estimates the reverse KL. For T > 1,
per-token k2 drops the cross terms through future tokens: it is the gradient of
Σ_t E KL(π_θ(·|y_<t)‖π_ref(·|y_<t)) with the prefix distribution held fixed; the unbiased
sequence-level gradient is REINFORCE with reward −Σ_t d_t.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from rljax import checks
from rljax.ops.masks import at_last_token

KINDS = ("k1", "k2", "k3", "abs")


def kl_penalty(
    logp: jax.Array,
    ref_logp: jax.Array,
    *,
    kind: Literal["k1", "k2", "k3", "abs"],
    clamp: float | None = None,
) -> jax.Array:
  """Per-token estimate of KL(π‖π_ref) from log-probabilities of tokens sampled from π.

  With d = logp − ref_logp: k1 = d, k2 = ½d², k3 = exp(−d) − 1 + d (computed as expm1(−d) + d,
  accurate for small d), abs = |d|. See the module doc for what each one's gradient estimates:
  E∇k1 = 0, E∇k2 = ∇KL(π‖π_ref), E∇k3 = ∇KL(π_ref‖π).

  Clamping (k3 only, where exp(−d) overflows for d ≲ −88 in float32):

  * `clamp=None` (default): none, as TRL (its GRPO KL term is unclamped k3).
  * `clamp=c`: d is clipped to [−c, c] and the k3 value to [−c/2, c/2] (no gradient where either
    clip is active). `clamp=20.0` is verl's `low_var_kl`/`k3` (d to ±20, value to ±10). verl clamps
    no other estimator, so for k1, k2 and abs `clamp` changes nothing and one `clamp=20.0` setting
    reproduces verl for every kind.
  * OpenRLHF (`compute_approx_kl`) clamps every estimator's value to ±10 and k3's d at −10 from one
    side; not reproduced here.

  Gradients flow into `logp` only; `ref_logp` is stop-gradiented (the reference is frozen).

  Args:
    logp: log π(y_t|…) of the sampled tokens, any shape (typically `f[B, T]`).
    ref_logp: log π_ref(y_t|…), same shape.
    kind: "k1", "k2", "k3" or "abs".
    clamp: optional c > 0 (see above).

  Returns:
    The per-token estimate, same shape, in the compute dtype. Padding is not masked here (aggregate
    with a mask); padding with ±inf log-probs gives non-finite entries there.
  """
  checks.check_choice("kind", kind, KINDS)
  checks.check_same_shape(logp=logp, ref_logp=ref_logp)
  if clamp is not None:
    checks.check_positive("clamp", clamp)
  logp, ref_logp = checks.as_compute(logp, ref_logp)
  d = logp - lax.stop_gradient(ref_logp)
  if kind == "k1":
    return d
  if kind == "k2":
    return 0.5 * jnp.square(d)
  if kind == "abs":
    return jnp.abs(d)
  if clamp is not None:
    d = jnp.clip(d, -clamp, clamp)
  k3 = jnp.expm1(-d) + d
  if clamp is not None:
    k3 = jnp.clip(k3, -0.5 * clamp, 0.5 * clamp)
  return k3


def kl_penalized_rewards(
    scores: jax.Array,
    logp: jax.Array,
    ref_logp: jax.Array,
    mask: jax.Array,
    *,
    kl_coef: float,
    kind: Literal["k1", "k2", "k3", "abs"] = "k1",
    clamp: float | None = None,
) -> jax.Array:
  """Token rewards with the KL penalty in the reward (Ziegler et al. 2019; Ouyang et al. 2022).

      r_t = −β·k_t + s·1[t = last valid token]       (valid t; 0 elsewhere)

  k_t = `kl_penalty(logp, ref_logp, kind=kind, clamp=clamp)`, with `logp` from the behaviour
  (rollout) policy. k1 is the default of verl (`kl_penalty="kl"`), OpenRLHF and TRL-PPO. The score
  sits at the last valid token of each row (an empty row gets no reward). Feed the result to `gae`.

  The result is a reward, a constant of the policy objective: it is stop-gradiented (no input
  receives gradients), so passing the current policy's log-probs cannot turn it into a KL loss.

  Args:
    scores: `f[B]` outcome scores.
    logp, ref_logp: `f[B, T]` log-probabilities of the sampled tokens.
    mask: `bool[B, T]` response mask.
    kl_coef: β >= 0 (a traced value, e.g. `KLControllerState.coef`, is fine).
    kind, clamp: see `kl_penalty`.

  Returns:
    `f[B, T]` token rewards.
  """
  batch, _ = checks.check_same_shape(2, logp=logp, ref_logp=ref_logp, mask=mask)
  if jnp.shape(scores) != (batch,):
    raise ValueError(f"`scores` has shape {jnp.shape(scores)}, expected ({batch},) (the B of `logp`).")
  checks.check_nonnegative("kl_coef", kl_coef)
  mask = jnp.asarray(mask, bool)
  kl = kl_penalty(logp, ref_logp, kind=kind, clamp=clamp)
  (scores,) = checks.as_compute(scores)
  rewards = jnp.where(mask, -kl_coef * kl, 0) + at_last_token(scores.astype(kl.dtype), mask)
  return lax.stop_gradient(rewards)


class KLControllerState(NamedTuple):
  """State of the adaptive KL controller: the current coefficient β."""

  coef: jax.Array


def adaptive_kl_update(
    state: KLControllerState,
    observed_kl: jax.Array,
    n_steps: jax.Array | int,
    *,
    target: float,
    horizon: float,
) -> KLControllerState:
  """One update of the adaptive KL coefficient (Ziegler et al. 2019, "Fine-Tuning LMs from Human Preferences").

      e = clip(KL / target − 1, −0.2, 0.2),     β ← β·(1 + e·n_steps / horizon)

  A proportional controller keeping the observed KL near `target`. Same as verl's and OpenRLHF's
  `AdaptiveKLController.update(current_kl, n_steps)`, which pass the number of samples of the batch as
  `n_steps` (TRL-PPO used the same rule). A fixed coefficient is the state left un-updated. Pure and
  jit-able: the state and `observed_kl` may be traced; no gradients flow through the update.

  Args:
    state: current `KLControllerState`.
    observed_kl: scalar KL measured on the last batch (e.g. the masked mean of k1).
    n_steps: scalar, samples (or steps) since the last update.
    target: target KL > 0 (verl's `target_kl`).
    horizon: horizon > 0 (verl's default 10000).

  Returns:
    The new state.
  """
  checks.check_positive("target", target)
  checks.check_positive("horizon", horizon)
  for name, value in (("observed_kl", observed_kl), ("n_steps", n_steps), ("state.coef", state.coef)):
    if jnp.ndim(value) != 0:
      raise ValueError(f"`{name}` must be a scalar, got shape {jnp.shape(value)}.")
  coef, observed_kl, n_steps = checks.as_compute(state.coef, observed_kl, n_steps)
  error = jnp.clip(observed_kl / target - 1, -0.2, 0.2)
  return KLControllerState(coef=lax.stop_gradient(coef * (1 + error * n_steps / horizon)))
