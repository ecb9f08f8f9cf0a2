"""The skill chain: an analytic verifiable task with exact rollout log-probabilities (T.1 of the curricula spec).

A problem of depth d is solved when d sequential sub-steps all succeed; step s succeeds with probability
σ(θ_s), θ ∈ ℝ^S shared by every depth. A rollout runs the steps in order and stops at the first failure s*:

    P(solved | d) = Π_{s<d} σ(θ_s)                              (2^{−d} at θ = 0)
    log π(rollout) = Σ_{h ≤ s < min(s*, d)} log σ(θ_s) + 1[s* < d]·log(1 − σ(θ_{s*}))

A hint of h steps (GHPO's solution prefix) forces steps s < h to succeed: they leave the log-probability and
the success probability (Π_{h≤s<d} σ(θ_s)). `logp` is differentiable in θ with the sampled outcomes held fixed,
so −mean(A·logp) is the exact REINFORCE / GRPO surrogate without a network. `(depth, hint)` are the arms a
curriculum picks from; P(solved | d) is the learnability oracle (GRPO's mean |A| is largest at P = 1/2).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _steps(theta: jax.Array, depth: jax.Array, hint: jax.Array | None):
  theta = jnp.asarray(theta)
  if theta.ndim != 1:
    raise ValueError(f"`theta` must be f[S], got shape {theta.shape}.")
  depth = jnp.asarray(depth, jnp.int32)
  hint = jnp.zeros_like(depth) if hint is None else jnp.broadcast_to(jnp.asarray(hint, jnp.int32), depth.shape)
  s = jnp.arange(theta.shape[0])
  active = (s >= hint[..., None]) & (s < depth[..., None])  # steps the rollout must take itself
  return theta, active


def success_prob(theta: jax.Array, depth, hint=None) -> jax.Array:
  """P(solved | depth, hint) = Π_{hint ≤ s < depth} σ(θ_s), elementwise over `depth` (any shape)."""
  theta, active = _steps(theta, depth, hint)
  return jnp.exp(jnp.sum(jnp.where(active, jax.nn.log_sigmoid(theta), 0.0), axis=-1))


def sample_rollouts(key: jax.Array, theta: jax.Array, depth, group_size: int,
                    hint=None) -> tuple[jax.Array, jax.Array]:
  """`(reward f32[B, G], logp f32[B, G])`: G rollouts of each of the B problems of depth `depth` (`i32[B]`,
  with `hint` forced steps, `i32[B]` or None). `reward` is 1 when the problem is solved; `logp` the rollout's
  log-probability (module docstring), differentiable in `theta`."""
  if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
    raise ValueError(f"`group_size` must be a positive int, got {group_size!r}.")
  theta, active = _steps(theta, depth, hint)
  if active.ndim != 2:
    raise ValueError(f"`depth` must be i32[B], got shape {jnp.shape(depth)}.")
  b, s = active.shape
  u = jax.random.uniform(key, (b, group_size, s))
  ok = u < jax.nn.sigmoid(jax.lax.stop_gradient(theta))  # the outcome of every step, had it been reached
  act = active[:, None, :]
  # Reached: every earlier step the rollout took succeeded.
  fails = act & ~ok
  reached = act & (jnp.cumsum(fails, axis=-1) - fails == 0)
  step_logp = jnp.where(ok, jax.nn.log_sigmoid(theta), jax.nn.log_sigmoid(-theta))
  logp = jnp.sum(jnp.where(reached, step_logp, 0.0), axis=-1)
  reward = (~jnp.any(fails, axis=-1)).astype(jnp.float32)
  return reward, logp
