"""Synthetic payment-routing contextual bandit after the Adyen study ("Contextual Bandits in Payment
Processing: Non-uniform Exploration and Supervised Learning at Adyen", 2024).

A transaction has features x ~ N(0, I_d); each of |A| routes is available independently with
probability `p_avail` (dynamic action sets; at least one route is always open), and route a succeeds
with probability

    μ_a(x) = σ(w_aᵀx + b_a + κ x₁x₂ 1[a = 0]).

The κ interaction makes any model linear in x misspecified for route 0 (κ = 0 is realizable). Pure
`reset`/`step` functions; `success_probs` and `oracle` give the exact expected rewards.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class PaymentParams(NamedTuple):
  w: jax.Array  # [A, d]
  b: jax.Array  # [A]
  kappa: jax.Array  # scalar interaction strength for route 0
  p_avail: jax.Array  # probability that a route is open


class Context(NamedTuple):
  x: jax.Array  # [d]
  avail: jax.Array  # bool[A]


def make_params(key: jax.Array, *, dim: int = 8, n_actions: int = 5, kappa=0.0, p_avail=0.8,
                w_scale=0.5, b_scale=0.5, route0_w_scale=None, route0_bias=None) -> PaymentParams:
  """Random routes: w_a ~ N(0, (w_scale²/d) I), so that w_aᵀx has variance ≈ w_scale², and b_a ~ N(0, b_scale²).

  `route0_w_scale` / `route0_bias` override route 0's linear part (e.g. 0 and 0.5: a route whose
  quality is all in the κ x₁x₂ interaction).
  """
  if dim < 2 or n_actions < 2:
    raise ValueError(f"need `dim` >= 2 and `n_actions` >= 2, got {dim} and {n_actions}.")
  if not 0.0 < p_avail <= 1.0:
    raise ValueError(f"`p_avail` must lie in (0, 1], got {p_avail}.")
  k1, k2 = jax.random.split(key)
  dtype = jnp.result_type(float)
  w = w_scale * jax.random.normal(k1, (n_actions, dim), dtype) / jnp.sqrt(dim)
  b = b_scale * jax.random.normal(k2, (n_actions,), dtype)
  if route0_w_scale is not None:
    w = w.at[0].multiply(route0_w_scale / w_scale)
  if route0_bias is not None:
    b = b.at[0].set(route0_bias)
  return PaymentParams(w, b, jnp.asarray(kappa, dtype), jnp.asarray(p_avail, dtype))


def success_probs(params: PaymentParams, x: jax.Array) -> jax.Array:
  """μ_a(x) for every route, batched over the leading axes of x: shape [..., A]."""
  logits = x @ params.w.T + params.b
  route0 = params.kappa * x[..., 0] * x[..., 1]
  return jax.nn.sigmoid(logits.at[..., 0].add(route0))


def sample_context(key: jax.Array, params: PaymentParams) -> Context:
  kx, ka, kf = jax.random.split(key, 3)
  n_actions, dim = params.w.shape
  x = jax.random.normal(kx, (dim,), params.w.dtype)
  avail = jax.random.bernoulli(ka, params.p_avail, (n_actions,))
  fallback = jax.nn.one_hot(jax.random.randint(kf, (), 0, n_actions), n_actions, dtype=bool)
  return Context(x, jnp.where(jnp.any(avail), avail, fallback))


def reset(key: jax.Array, params: PaymentParams) -> tuple[Context, Context]:
  ctx = sample_context(key, params)
  return ctx, ctx


def step(key: jax.Array, params: PaymentParams, state: Context, action):
  """Routes the current transaction; reward ~ Bernoulli(μ_action(x)) (0 if the route is closed)."""
  k_r, k_next = jax.random.split(key)
  mu = success_probs(params, state.x)[action]
  reward = jnp.where(state.avail[action], jax.random.bernoulli(k_r, mu).astype(mu.dtype), 0.0)
  nxt = sample_context(k_next, params)
  return nxt, nxt, reward, jnp.asarray(False), {"mean_reward": jnp.where(state.avail[action], mu, 0.0)}


def oracle(params: PaymentParams, ctx: Context) -> tuple[jax.Array, jax.Array]:
  """Best available route and its success probability max_{a∈A_x} μ_a(x) (batched over ctx)."""
  mu = jnp.where(ctx.avail, success_probs(params, ctx.x), -jnp.inf)
  return jnp.argmax(mu, -1), jnp.max(mu, -1)
