"""Shared pieces of the bandit curricula (SEC, DUMP): Boltzmann probabilities, arm sampling, per-arm batch
statistics without Python loops, and the mean absolute advantage of a group."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def boltzmann_probs(values: jax.Array, temperature: float) -> jax.Array:
  """π(c) = exp(v_c/τ) / Σ_c' exp(v_c'/τ), computed as softmax (shift-invariant, no overflow)."""
  if not temperature > 0:
    raise ValueError(f"`temperature` must be > 0, got {temperature!r}.")
  return jax.nn.softmax(jnp.asarray(values, jnp.float32) / temperature)


def sample_arms(key: jax.Array, probs: jax.Array, n: int) -> jax.Array:
  """`i32[n]` i.i.d. draws from `probs` (`f[K]`); arms of probability 0 are never drawn."""
  if isinstance(n, bool) or not isinstance(n, int) or n < 1:
    raise ValueError(f"`n` must be a positive int, got {n!r}.")
  logits = jnp.where(probs > 0, jnp.log(jnp.maximum(probs, 1e-38)), -jnp.inf)
  return jax.random.categorical(key, logits, shape=(n,)).astype(jnp.int32)


def scatter_mean(values: jax.Array, arm_ids: jax.Array, num_arms: int,
                 weights: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """Per-arm means of `values` (`f[n]`) grouped by `arm_ids` (`i32[n]`): `(mean f32[K], count f32[K])`, with
  mean 0 where the arm has no (positively weighted) entry. `weights` (`f[n]`, e.g. a validity mask) weight
  the mean and the count."""
  w = jnp.ones(jnp.shape(values), jnp.float32) if weights is None else jnp.asarray(weights, jnp.float32)
  total = jax.ops.segment_sum(w * values, arm_ids, num_arms)
  count = jax.ops.segment_sum(w, arm_ids, num_arms)
  return jnp.where(count > 0, total / jnp.maximum(count, 1e-30), 0.0), count


def mean_abs_advantage(advantages: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """`f32[B]`: (1/|valid_g|) Σ_j |A_{b,j}| over each group's valid responses (0 for a group with none).

  For binary rewards with k of G correct, p̂ = k/G, and GRPO's Bessel-corrected std (ε = 0) this is
  2·sqrt((G−1)/G)·sqrt(p̂(1−p̂)) for 0 < k < G and 0 otherwise: largest at p̂ = 1/2."""
  a = jnp.abs(jnp.asarray(advantages, jnp.float32))
  m = jnp.ones(a.shape, jnp.float32) if mask is None else jnp.asarray(mask, jnp.float32)
  return jnp.sum(a * m, axis=-1) / jnp.maximum(jnp.sum(m, axis=-1), 1.0)
