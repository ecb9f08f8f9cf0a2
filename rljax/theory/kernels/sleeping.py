"""Sleeping experts: Hedge with awake masks (Blum–Lykouris style) and AdaNormalHedge.

On each round only the awake experts (a boolean mask over the last axis) predict; the learner mixes
them and every awake expert is charged its *instantaneous regret* r_g = ℓ_t − ℓ_{t,g} against the
learner, while asleep experts are left untouched. This gives regret on the subsequence of rounds where
each expert is awake, the reduction behind groupwise regret (Acharya, Arunachaleswaran, Kannan, Roth,
Ziani, "Oracle Efficient Algorithms for Groupwise Regret", 2023). AdaNormalHedge is Luo & Schapire's
parameter-free variant (COLT 2015). All functions broadcast over leading axes and run under jit.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


def _mask(awake, shape) -> jax.Array:
  awake = jnp.asarray(awake, bool)
  if awake.shape != shape:
    raise ValueError(f"`awake` must have shape {shape}, got {awake.shape}.")
  return awake


def hedge_probs(log_w: jax.Array, awake: jax.Array) -> jax.Array:
  """Weights renormalised over the awake experts: p_g = 1[g awake] w_g / Σ_{h awake} w_h."""
  awake = _mask(awake, log_w.shape)
  return jax.nn.softmax(jnp.where(awake, log_w, -jnp.inf), -1)


def hedge_update(log_w: jax.Array, expert_losses: jax.Array, learner_loss, awake: jax.Array, eta) -> jax.Array:
  """Sleeping Hedge step in log space: for awake g, log w_g += η (ℓ_t − ℓ_{t,g}); asleep g unchanged.

  With every expert awake, p ∝ w is exactly Hedge's softmax(−η Σ_s ℓ_{s,g}) (the η ℓ_t term is common to
  all experts). η = √(8 log m / T) for losses in [0, 1] gives O(√(T log m)) regret on every expert's
  awake subsequence; ℓ_t may be the loss of the mixed prediction (≤ Σ_g p_g ℓ_{t,g} for convex losses).
  """
  if isinstance(eta, (int, float)) and not eta > 0:
    raise ValueError(f"`eta` must be positive, got {eta}.")
  awake = _mask(awake, log_w.shape)
  r = jnp.asarray(learner_loss)[..., None] - expert_losses
  return jnp.where(awake, log_w + eta * r, log_w)


class ANHState(NamedTuple):
  """AdaNormalHedge statistics per expert: R = Σ r (cumulative instantaneous regret), C = Σ |r|."""

  r: jax.Array
  c: jax.Array


def anh_init(m: int, dtype=None) -> ANHState:
  if m <= 0:
    raise ValueError(f"`m` must be positive, got {m}.")
  dtype = dtype or jnp.result_type(float)
  return ANHState(jnp.zeros((m,), dtype), jnp.zeros((m,), dtype))


def _log_phi(r, c):
  """log Φ(R, C) = [R]₊² / (3C)."""
  return jnp.maximum(r, 0.0) ** 2 / (3.0 * c)


def anh_probs(state: ANHState, awake: jax.Array) -> jax.Array:
  """AdaNormalHedge (uniform prior): p_g ∝ 1[g awake] w(R_g, C_g) with

      w(R, C) = ½ [Φ(R + 1, C + 1) − Φ(R − 1, C + 1)],   Φ(R, C) = exp([R]₊² / (3C)),

  computed in log space (w is 0 when R ≤ −1); uniform over the awake set when every awake w is 0.
  """
  awake = _mask(awake, state.r.shape)
  a = _log_phi(state.r + 1.0, state.c + 1.0)
  b = _log_phi(state.r - 1.0, state.c + 1.0)
  positive = a > b
  log_w = jnp.where(positive, a + jnp.log(0.5) + jnp.log1p(-jnp.exp(jnp.where(positive, b - a, -1.0))), -jnp.inf)
  any_w = jnp.any(awake & positive, -1, keepdims=True)
  return jax.nn.softmax(jnp.where(awake, jnp.where(any_w, log_w, 0.0), -jnp.inf), -1)


def anh_update(state: ANHState, expert_losses: jax.Array, learner_loss, awake: jax.Array) -> ANHState:
  """R_g += r_g, C_g += |r_g| with r_g = ℓ_t − ℓ_{t,g} for awake g (losses in [0, 1]); asleep g unchanged."""
  awake = _mask(awake, state.r.shape)
  r = jnp.where(awake, jnp.asarray(learner_loss)[..., None] - expert_losses, 0.0)
  return ANHState(state.r + r, state.c + jnp.abs(r))
