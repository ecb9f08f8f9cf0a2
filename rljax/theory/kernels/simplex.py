"""Online learning on the probability simplex: FTRL/OMD steps, FTPL, KL-proximal and mirror-prox steps.

All functions act on the last axis and broadcast over leading ones (states, seeds), so a per-state
learner is the same call on a `[S, K]` array. They are the updates of Hedge/EXP3 (entropy), the
log-barrier and Tsallis-1/2 FTRL of adversarial bandits and MDPs, and the regularised game dynamics
of Nash-MD (a geometric-mixture step) and Nash-MP (mirror prox in KL geometry).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

REGULARIZERS = ("entropy", "log_barrier", "tsallis")


def _check_eta(eta):
  if isinstance(eta, (int, float)) and not eta > 0:
    raise ValueError(f"`eta` must be positive, got {eta}.")


def _bisect_normaliser(p_of, lo, hi, iters):
  """Finds λ in [lo, hi] with Σ p_of(λ) = 1, where Σ p_of is decreasing in λ (per leading index)."""

  def body(_, bounds):
    lo, hi = bounds
    mid = 0.5 * (lo + hi)
    too_big = jnp.sum(p_of(mid[..., None]), -1) > 1.0
    return jnp.where(too_big, mid, lo), jnp.where(too_big, hi, mid)

  lo, hi = jax.lax.fori_loop(0, iters, body, (lo, hi))
  p = p_of((0.5 * (lo + hi))[..., None])
  return p / jnp.sum(p, -1, keepdims=True)


def ftrl_probs(cum_losses: jax.Array, eta, *, regularizer: str = "entropy", log_prior: jax.Array | None = None,
               iters: int = 100) -> jax.Array:
  """FTRL on the simplex: p = argmin_p ⟨p, L⟩ + ψ(p)/η for cumulative losses L (last axis).

  - entropy, ψ(p) = Σ p_i log(p_i/prior_i): p ∝ prior·exp(−ηL) (Hedge / EXP3), closed form;
  - log_barrier, ψ(p) = −Σ log p_i: p_i = 1/(η(L_i + λ));
  - tsallis (α = 1/2), ψ(p) = −2 Σ √p_i: p_i = 1/(η(L_i + λ))².
  For the last two λ is the normaliser, found by bisection on [−min L + 1/η, −min L + K/η] (on that
  interval Σ p_i crosses 1: at the left end the leader alone has mass 1, at the right end every
  p_i ≤ 1/K). `log_prior` applies to the entropy regulariser only.
  """
  _check_eta(eta)
  if regularizer not in REGULARIZERS:
    raise ValueError(f"`regularizer` must be one of {REGULARIZERS}, got {regularizer!r}.")
  losses = jnp.asarray(cum_losses)
  if regularizer == "entropy":
    logits = -eta * losses if log_prior is None else log_prior - eta * losses
    return jax.nn.softmax(logits, -1)
  if log_prior is not None:
    raise ValueError("`log_prior` is only defined for the entropy regularizer.")
  power = 1.0 if regularizer == "log_barrier" else 2.0
  k = losses.shape[-1]
  shift = -jnp.min(losses, -1)
  lo = shift + 1.0 / eta
  hi = shift + (k if power == 1.0 else jnp.sqrt(k)) / eta
  p_of = lambda lam: (eta * (losses + lam)) ** (-power)
  return _bisect_normaliser(p_of, lo, hi, iters)


def ftpl_action(key: jax.Array, cum_losses: jax.Array, eta, *, noise: str = "gumbel") -> jax.Array:
  """Follow the perturbed leader: argmin_i L_i − z_i/η with i.i.d. noise z over the last axis.

  With Gumbel noise the action is distributed exactly as Hedge's softmax(−ηL); exponential noise is
  Kalai–Vempala's FTPL. Returns integer actions of the leading shape.
  """
  _check_eta(eta)
  losses = jnp.asarray(cum_losses)
  if noise == "gumbel":
    z = jax.random.gumbel(key, losses.shape, losses.dtype)
  elif noise == "exponential":
    z = jax.random.exponential(key, losses.shape, losses.dtype)
  else:
    raise ValueError(f"`noise` must be 'gumbel' or 'exponential', got {noise!r}.")
  return jnp.argmin(losses - z / eta, -1)


def geometric_mixture(log_p: jax.Array, log_q: jax.Array, alpha) -> jax.Array:
  """log of the normalised geometric mixture p^(1−α) q^α: log_softmax((1−α) log p + α log q)."""
  if isinstance(alpha, (int, float)) and not 0.0 <= alpha <= 1.0:
    raise ValueError(f"`alpha` must lie in [0, 1], got {alpha}.")
  return jax.nn.log_softmax((1.0 - alpha) * log_p + alpha * log_q, -1)


def kl_prox_step(log_p: jax.Array, gain: jax.Array, eta, *, log_anchor: jax.Array | None = None,
                 tau=0.0) -> jax.Array:
  """One KL-proximal ascent step with an optional KL pull towards an anchor μ:

      π' = argmax_π η⟨π, g⟩ − ητ·KL(π‖μ) − KL(π‖p)
      log π' = log_softmax((log p + ητ·log μ + η·g) / (1 + ητ)).

  τ = 0 is multiplicative weights / entropic OMD; with g = P(·, π) it is the Nash-MD step (the
  geometric mixture of p and μ with weight ητ/(1+ητ), then a gain step).
  """
  _check_eta(eta)
  if log_anchor is None:
    if isinstance(tau, (int, float)) and tau != 0.0:
      raise ValueError("`tau` > 0 needs `log_anchor`.")
    return jax.nn.log_softmax(log_p + eta * gain, -1)
  return jax.nn.log_softmax((log_p + eta * tau * log_anchor + eta * gain) / (1.0 + eta * tau), -1)


def mirror_prox_step(log_p: jax.Array, gain_fn, eta, *, log_anchor: jax.Array | None = None, tau=0.0) -> jax.Array:
  """Mirror prox (extragradient) in KL geometry: a look-ahead step, then a step from p with the
  look-ahead's gain:  π½ = prox_p(η g(p)),  π' = prox_p(η g(π½)).  `gain_fn` maps log-probs to gains."""
  half = kl_prox_step(log_p, gain_fn(log_p), eta, log_anchor=log_anchor, tau=tau)
  return kl_prox_step(log_p, gain_fn(half), eta, log_anchor=log_anchor, tau=tau)
