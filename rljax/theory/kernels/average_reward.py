"""Average-reward (gain) dynamic programming for communicating tabular MDPs: relative value iteration,
UCRL2-style extended value iteration over L1 confidence balls, and the exact gain of a stationary
policy from its stationary distribution.

Shared kernel for the average-reward theory papers; first used by He, Zhong & Yang, "Sample-efficient
Learning of Infinite-horizon Average-reward MDPs with General Function Approximation" (LOOP / AGEC,
ICLR 2024), whose tabular model-based instance plans by extended value iteration (Jaksch, Ortner &
Auer, JMLR 2010).

Conventions: `P: f[S,A,S]`, `r: f[S,A]`, deterministic policies `i[S]`. Iterations run in one
`lax.while_loop` and vmap over a batch of models.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax import checks


class GainSolution(NamedTuple):
  gain: jax.Array  # J, scalar
  bias: jax.Array  # h f[S], normalised to min_s h(s) = 0
  policy: jax.Array  # i[S], greedy
  iters: jax.Array  # number of Bellman sweeps
  span_gap: jax.Array  # sp(v_{n+1} − v_n) at exit (≤ tol unless max_iters was hit)


def check_amdp(P, r) -> tuple[jax.Array, jax.Array]:
  """Validates `P: f[S,A,S]` (rows are probability vectors, checked on concrete input) and `r: f[S,A]`."""
  P, r = jnp.asarray(P), jnp.asarray(r)
  if P.ndim != 3 or P.shape[0] != P.shape[2]:
    raise ValueError(f"`P` must be [S,A,S], got {P.shape}.")
  if r.shape != P.shape[:2]:
    raise ValueError(f"`r` must be [S,A] = {P.shape[:2]}, got {r.shape}.")
  if checks.is_concrete(P) and (np.any(np.asarray(P) < 0) or not np.allclose(np.asarray(P).sum(-1), 1.0, atol=1e-6)):
    raise ValueError("`P` rows must be probability vectors (non-negative, summing to 1).")
  dtype = jnp.result_type(P.dtype, r.dtype, jnp.float32)
  return P.astype(dtype), r.astype(dtype)


def optimistic_expectation(p_hat, v, radius) -> jax.Array:
  """The inner maximum of extended value iteration,

      max { p·v : p ∈ Δ_S, ‖p − p̂‖_1 ≤ d },

  solved greedily (Jaksch et al. 2010, Fig. 2): move min(d/2, 1 − p̂(s⁺)) mass onto the best state
  s⁺ = argmax v and take it from the worst states first. `p_hat: f[..., S]` (any batch), `v: f[S]`,
  `radius: f[...]`. Returns the maximising distributions f[..., S].
  """
  order = jnp.argsort(-v)
  q = p_hat[..., order]
  excess = jnp.minimum(jnp.asarray(radius)[..., None] / 2, 1.0 - q[..., :1])
  mass_below = jnp.cumsum(q[..., ::-1], -1)[..., ::-1] - q  # Σ_{j>i} q_j in sorted order
  removed = jnp.clip(excess - mass_below, 0.0, q).at[..., 0].set(0.0)
  p_sorted = (q - removed).at[..., 0].add(excess[..., 0])
  return jnp.zeros_like(p_sorted).at[..., order].set(p_sorted)


def _iterate(bellman, S: int, dtype, *, tol, max_iters: int, aperiodic: float) -> GainSolution:
  """Undiscounted value iteration v_{n+1} = (1−α)v_n + α·T v_n with the stopping rule
  sp(v_{n+1} − v_n) < α·tol; the gain is the midpoint of the increments divided by α.

  The α-mixture (aperiodicity transform P_α = αP + (1−α)I, r_α = αr) has gain αJ and the same bias
  and greedy policies, and makes the increments converge even on periodic chains.
  """

  def sweep(v):
    tv, pol = bellman(v)
    return (1.0 - aperiodic) * v + aperiodic * tv, pol

  def cond(carry):
    _, _, gap, n, _, _ = carry
    return (gap >= aperiodic * tol) & (n < max_iters)

  def body(carry):
    v, _, _, n, _, _ = carry
    v_new, pol = sweep(v)
    diff = v_new - v
    gap = diff.max() - diff.min()
    return v_new - v_new.min(), pol, gap, n + 1, (diff.max() + diff.min()) / 2, v

  v0 = jnp.zeros(S, dtype)
  init = (v0, jnp.zeros(S, jnp.int32), jnp.asarray(jnp.inf, dtype), jnp.asarray(0), jnp.asarray(0.0, dtype), v0)
  v, pol, gap, n, mid, _ = jax.lax.while_loop(cond, body, init)
  return GainSolution(mid / aperiodic, v - v.min(), pol, n, gap / aperiodic)


def _check_iteration_args(tol, max_iters: int, aperiodic: float) -> None:
  if checks.is_concrete(tol) and not np.all(np.asarray(tol) > 0):
    raise ValueError(f"`tol` must be positive, got {tol}.")
  if max_iters < 1:
    raise ValueError(f"`max_iters` must be >= 1, got {max_iters}.")
  if not 0.0 < aperiodic <= 1.0:
    raise ValueError(f"`aperiodic` must lie in (0, 1], got {aperiodic}.")


def relative_value_iteration(P, r, *, tol=1e-10, max_iters: int = 100_000, aperiodic: float = 0.9) -> GainSolution:
  """Optimal gain and bias of a communicating MDP by relative value iteration on the average-reward
  Bellman equation

      J + h(s) = max_a [ r(s,a) + Σ_s' P(s'|s,a) h(s') ],

  stopped when sp(v_{n+1} − v_n) < tol, so |J_returned − J*| ≤ tol/2. Returns GainSolution.
  """
  P, r = check_amdp(P, r)
  _check_iteration_args(tol, max_iters, aperiodic)

  def bellman(v):
    q = r + P @ v
    return q.max(-1), q.argmax(-1).astype(jnp.int32)

  return _iterate(bellman, r.shape[0], r.dtype, tol=tol, max_iters=max_iters, aperiodic=aperiodic)


def extended_value_iteration(P_hat, r_hat, radii, r_radii=None, *, r_max=1.0, tol=1e-8, max_iters: int = 100_000,
                             aperiodic: float = 0.9) -> GainSolution:
  """UCRL2 extended value iteration: the optimal gain over the set of plausible MDPs

      M = { (P̃, r̃) : ‖P̃(·|s,a) − P̂(·|s,a)‖_1 ≤ d(s,a),  |r̃(s,a) − r̂(s,a)| ≤ d_r(s,a) },
      v_{n+1}(s) = max_a [ min(r̂ + d_r, r_max)(s,a) + max_{p ∈ B_1(P̂(·|s,a), d(s,a))} p·v_n ].

  Returns the optimistic gain J⁺ ≥ J*(M) for every model in M (up to tol), the bias h⁺ and the greedy
  policy of the optimistic model. Zero radii reduce it to `relative_value_iteration` on (P̂, r̂).
  """
  P_hat, r_hat = check_amdp(P_hat, r_hat)
  _check_iteration_args(tol, max_iters, aperiodic)
  radii = jnp.broadcast_to(jnp.asarray(radii, r_hat.dtype), r_hat.shape)
  r_radii = jnp.zeros_like(r_hat) if r_radii is None else jnp.broadcast_to(jnp.asarray(r_radii, r_hat.dtype), r_hat.shape)
  if checks.is_concrete(radii) and checks.is_concrete(r_radii) and (np.any(np.asarray(radii) < 0) or np.any(np.asarray(r_radii) < 0)):
    raise ValueError("`radii` and `r_radii` must be non-negative.")
  r_plus = jnp.minimum(r_hat + r_radii, r_max)

  def bellman(v):
    q = r_plus + optimistic_expectation(P_hat, v, radii) @ v
    return q.max(-1), q.argmax(-1).astype(jnp.int32)

  return _iterate(bellman, r_hat.shape[0], r_hat.dtype, tol=tol, max_iters=max_iters, aperiodic=aperiodic)


def stationary_distribution(P_pi) -> jax.Array:
  """The stationary distribution μ of a unichain transition matrix `P_pi: f[S,S]`: the solution of
  μᵀ(P_π − I) = 0, Σ_s μ(s) = 1 (least squares on the stacked system)."""
  P_pi = jnp.asarray(P_pi)
  S = P_pi.shape[0]
  if P_pi.shape != (S, S):
    raise ValueError(f"`P_pi` must be square [S,S], got {P_pi.shape}.")
  A = jnp.concatenate([P_pi.T - jnp.eye(S, dtype=P_pi.dtype), jnp.ones((1, S), P_pi.dtype)])
  b = jnp.zeros(S + 1, P_pi.dtype).at[-1].set(1.0)
  return jnp.linalg.lstsq(A, b)[0]


def policy_gain(P, r, policy) -> jax.Array:
  """Exact gain of a deterministic unichain policy: J^π = Σ_s μ_π(s) r(s, π(s)) with μ_π the
  stationary distribution of P_π(s, s') = P(s'|s, π(s))."""
  P, r = check_amdp(P, r)
  policy = jnp.asarray(policy)
  if policy.shape != r.shape[:1]:
    raise ValueError(f"`policy` must be [S] = {r.shape[:1]}, got {policy.shape}.")
  idx = jnp.arange(r.shape[0])
  mu = stationary_distribution(P[idx, policy])
  return mu @ r[idx, policy]
