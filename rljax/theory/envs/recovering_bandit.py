"""Bandit with recovering rewards (Simchi-Levi, Zheng & Zhu, "Offline Planning and Online Learning under
Recovering Rewards"; ICML 2021 short version "Dynamic Planning and Learning under Recovering Rewards").

N arms, at most K pulls per period. Arm i pulled after an idle time d (periods since its last pull,
capped at d_max) pays R_i(d) + noise, with R_i nondecreasing; here R_i(d) = a_i(1 − e^{−d/τ_i}). The
state is the integer vector of idle times: a pull resets d_i to 1, every other arm's idle time grows by
one up to d_max. Arms start fully recovered (d_i = d_max). `step` takes a boolean pull mask.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class RecoveringParams(NamedTuple):
  """Mean-reward table `means: [N, d_max]` (column d−1 holds R_i(d)), budget K and noise scale σ."""

  means: jax.Array
  k: int
  sigma: float


class RecoveringState(NamedTuple):
  idle: jax.Array  # int [N], in 1..d_max


def exponential_recovery(a, tau, d_max: int) -> jax.Array:
  """R_i(d) = a_i (1 − exp(−d/τ_i)) for d = 1..d_max: `[N, d_max]`."""
  d = jnp.arange(1, d_max + 1, dtype=jnp.result_type(float))
  return a[:, None] * -jnp.expm1(-d[None] / tau[:, None])


def make_params(key: jax.Array, n_arms: int, k: int, *, d_max: int = 10, sigma: float = 0.1) -> RecoveringParams:
  """Random instance of the reproduction: a_i ~ U[0.5, 1], τ_i ~ U[1, 5]."""
  if n_arms < 1 or not 1 <= k <= n_arms:
    raise ValueError(f"need n_arms >= 1 and 1 <= k <= n_arms, got n_arms={n_arms}, k={k}.")
  if d_max < 1 or sigma < 0:
    raise ValueError(f"`d_max` must be >= 1 and `sigma` >= 0, got {d_max} and {sigma}.")
  k_a, k_t = jax.random.split(key)
  dtype = jnp.result_type(float)
  a = jax.random.uniform(k_a, (n_arms,), dtype, 0.5, 1.0)
  tau = jax.random.uniform(k_t, (n_arms,), dtype, 1.0, 5.0)
  return RecoveringParams(exponential_recovery(a, tau, d_max), k, sigma)


def reset(key: jax.Array, params: RecoveringParams) -> tuple[RecoveringState, jax.Array]:
  """All arms fully recovered; the observation is the idle-time vector."""
  del key
  n, d_max = params.means.shape
  idle = jnp.full((n,), d_max, jnp.int32)
  return RecoveringState(idle), idle


def advance(idle: jax.Array, pulled: jax.Array, d_max: int) -> jax.Array:
  """Idle-time bookkeeping: d_i ← 1 if pulled, else min(d_i + 1, d_max)."""
  return jnp.where(pulled, 1, jnp.minimum(idle + 1, d_max)).astype(idle.dtype)


def step(key: jax.Array, params: RecoveringParams, state: RecoveringState, action: jax.Array):
  """Pulls the arms in the boolean mask `action: [N]` (at most K of them; extra pulls are the caller's
  error and are not truncated here). reward = Σ_{pulled} R_i(d_i) + noise; `info["obs"]` holds the
  per-arm noisy rewards (0 for idle arms) and `info["expected"]` the expected total."""
  n, d_max = params.means.shape
  mean = jnp.take_along_axis(params.means, (state.idle - 1)[:, None], axis=1)[:, 0]
  obs = jnp.where(action, mean + params.sigma * jax.random.normal(key, (n,), params.means.dtype), 0.0)
  idle = advance(state.idle, action, d_max)
  info = {"obs": obs, "expected": jnp.sum(jnp.where(action, mean, 0.0)), "idle_pulled": state.idle}
  return RecoveringState(idle), idle, jnp.sum(obs), jnp.asarray(False), info
