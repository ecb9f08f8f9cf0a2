"""Finite-horizon tabular dynamic programming: value iteration, KL-regularised (soft) value iteration
and policy evaluation, each one backward `lax.scan` over the H layers.

Shared kernel for the tabular theory papers; first used by Tiapkin et al., "Demonstration-Regularized
RL", ICLR 2024 (arXiv 2310.17303), whose learner is optimistic KL-regularised value iteration
towards a behaviour-cloned policy.

Conventions: `P: f[S,A,S]` (stationary) or `f[H,S,A,S]`, `r: f[S,A]` or `f[H,S,A]`, layers h = 0..H−1
and V_H ≡ 0. Policies are `f[H,S,A]` tables; `log_pi` is the primary representation. Every function
is pure and vmaps over a batch of MDPs.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax import checks


class HardVI(NamedTuple):
  q: jax.Array  # f[H,S,A]
  v: jax.Array  # f[H+1,S]
  policy: jax.Array  # i[H,S], greedy action


class SoftVI(NamedTuple):
  log_pi: jax.Array  # f[H,S,A]
  v: jax.Array  # f[H+1,S]
  q: jax.Array  # f[H,S,A]


def _np_logsumexp(x: np.ndarray) -> np.ndarray:
  m = np.max(x, -1, keepdims=True)
  return (m + np.log(np.sum(np.exp(x - m), -1, keepdims=True)))[..., 0]


def check_model(P, r, horizon: int | None = None) -> tuple[jax.Array, jax.Array]:
  """Validates and broadcasts a model to `P: f[H,S,A,S]`, `r: f[H,S,A]`; returns (P, r).

  Raises ValueError on inconsistent shapes or (for concrete arrays) transition rows that are not
  probability vectors.
  """
  P, r = jnp.asarray(P), jnp.asarray(r)
  if P.ndim not in (3, 4) or P.shape[-1] != P.shape[-3]:
    raise ValueError(f"`P` must be [S,A,S] or [H,S,A,S], got {P.shape}.")
  if r.ndim not in (2, 3) or r.shape[-2:] != P.shape[-3:-1]:
    raise ValueError(f"`r` must be [S,A] or [H,S,A] with (S,A) = {P.shape[-3:-1]}, got {r.shape}.")
  layers = {x.shape[0] for x, nd in ((P, 4), (r, 3)) if x.ndim == nd}
  if horizon is not None:
    layers.add(int(horizon))
  if len(layers) != 1:
    raise ValueError(f"horizon is ambiguous or inconsistent: {sorted(layers)} (give `horizon` or an [H,...] array).")
  (H,) = layers
  if H < 1:
    raise ValueError(f"`horizon` must be >= 1, got {H}.")
  if checks.is_concrete(P) and (np.any(np.asarray(P) < 0) or not np.allclose(np.asarray(P).sum(-1), 1.0, atol=1e-6)):
    raise ValueError("`P` rows must be probability vectors (non-negative, summing to 1).")
  dtype = jnp.result_type(P.dtype, r.dtype, jnp.float32)
  P = jnp.broadcast_to(P, (H, *P.shape[-3:])).astype(dtype)
  r = jnp.broadcast_to(r, (H, *r.shape[-2:])).astype(dtype)
  return P, r


def _per_layer(x, H: int, S: int, A: int, name: str, dtype) -> jax.Array:
  """Broadcasts an optional [S,A]/[H,S,A] (bonus) or scalar/[H] (cap) array to [H,S,A]."""
  x = jnp.asarray(x, dtype)
  if x.ndim == 1:
    if x.shape[0] != H:
      raise ValueError(f"`{name}` as a vector must have length H={H}, got {x.shape}.")
    x = x[:, None, None]
  try:
    return jnp.broadcast_to(x, (H, S, A))
  except ValueError:
    raise ValueError(f"`{name}` must broadcast to [H,S,A] = {(H, S, A)}, got {x.shape}.") from None


def backward_induction(P, r, head: Callable, *, horizon: int | None = None, bonus=None, q_max=None):
  """The one Bellman kernel: for h = H−1..0,

      Q_h(s,a) = min(r_h(s,a) + b_h(s,a) + Σ_s' P_h(s'|s,a) V_{h+1}(s'), q_max_h),
      (V_h, aux_h) = head(h, Q_h),   V_H ≡ 0,

  where `head` is max (VI), a KL-regularised log-sum-exp (soft VI) or an expectation under a policy
  (evaluation). `bonus` (optimism) and `q_max` (the cap that keeps optimistic values bounded) are
  optional. Returns (Q f[H,S,A], V f[H+1,S], stacked aux).
  """
  P, r = check_model(P, r, horizon)
  H, S, A = r.shape
  b = jnp.zeros_like(r) if bonus is None else _per_layer(bonus, H, S, A, "bonus", r.dtype)
  cap = jnp.full_like(r, jnp.inf) if q_max is None else _per_layer(q_max, H, S, A, "q_max", r.dtype)

  def backup(v_next, xs):
    h, p_h, r_h, b_h, c_h = xs
    q = jnp.minimum(r_h + b_h + p_h @ v_next, c_h)
    v, aux = head(h, q)
    return v, (q, v, aux)

  v_end = jnp.zeros(S, r.dtype)
  _, (q, v, aux) = jax.lax.scan(backup, v_end, (jnp.arange(H), P, r, b, cap), reverse=True)
  return q, jnp.concatenate([v, v_end[None]]), aux


def value_iteration(P, r, *, horizon: int | None = None, bonus=None, q_max=None) -> HardVI:
  """Optimal finite-horizon values: V_h(s) = max_a Q_h(s,a) with Q from `backward_induction`;
  the greedy policy is π_h(s) = argmax_a Q_h(s,a). Returns HardVI(q, v, policy i[H,S])."""
  q, v, pol = backward_induction(P, r, lambda h, q: (q.max(-1), q.argmax(-1)), horizon=horizon, bonus=bonus,
                                 q_max=q_max)
  return HardVI(q, v, pol)


def check_log_policy(log_pi, H: int, S: int, A: int, name: str) -> jax.Array:
  log_pi = jnp.asarray(log_pi)
  if log_pi.ndim == 2:
    log_pi = jnp.broadcast_to(log_pi, (H, S, A))
  if log_pi.shape != (H, S, A):
    raise ValueError(f"`{name}` must be [S,A] or [H,S,A] = {(H, S, A)}, got {log_pi.shape}.")
  if checks.is_concrete(log_pi) and not np.allclose(np.exp(_np_logsumexp(np.asarray(log_pi))), 1.0, atol=1e-6):
    raise ValueError(f"`{name}` rows must be log-probabilities (exp sums to 1 over actions).")
  return log_pi


def soft_value_iteration(P, r, log_prior, lam, *, horizon: int | None = None, bonus=None, q_max=None) -> SoftVI:
  """KL-regularised value iteration towards a reference policy π_ref (λ > 0):

      V_h(s) = max_π Σ_a π(a)Q_h(s,a) − λ KL(π ‖ π_ref,h(·|s)) = λ log Σ_a π_ref,h(a|s) exp(Q_h(s,a)/λ),
      π_h(a|s) = π_ref,h(a|s) exp(Q_h(s,a)/λ) / Z_h(s)   (log_softmax, stable for small λ).

  `log_prior: f[S,A]` or `f[H,S,A]`; `lam` may be traced (vmap over λ). Returns SoftVI(log_pi, v, q).
  """
  P, r = check_model(P, r, horizon)
  H, S, A = r.shape
  log_prior = check_log_policy(log_prior, H, S, A, "log_prior")
  if checks.is_concrete(lam) and np.any(np.asarray(lam) <= 0):
    raise ValueError(f"`lam` must be positive (use value_iteration for λ = 0), got {lam}.")

  def head(h, q):
    logits = log_prior[h] + q / lam
    return lam * jax.nn.logsumexp(logits, -1), jax.nn.log_softmax(logits, -1)

  q, v, log_pi = backward_induction(P, r, head, bonus=bonus, q_max=q_max)
  return SoftVI(log_pi, v, q)


def policy_evaluation(P, r, log_pi, *, horizon: int | None = None, log_prior=None, lam=0.0):
  """Values of a stochastic policy, optionally KL-regularised towards π_ref:

      V^π_h(s) = Σ_a π_h(a|s) Q^π_h(s,a) − λ KL(π_h(·|s) ‖ π_ref,h(·|s)),
      Q^π_h(s,a) = r_h(s,a) + Σ_s' P_h(s'|s,a) V^π_{h+1}(s').

  With λ = 0 (default) this is the plain return. Zero-probability actions contribute 0 to the KL
  (0·log 0 = 0). Returns (Q f[H,S,A], V f[H+1,S]).
  """
  P, r = check_model(P, r, horizon)
  H, S, A = r.shape
  log_pi = check_log_policy(log_pi, H, S, A, "log_pi")
  log_prior = jnp.zeros_like(log_pi) if log_prior is None else check_log_policy(log_prior, H, S, A, "log_prior")

  def head(h, q):
    pi = jnp.exp(log_pi[h])
    kl = jnp.sum(jnp.where(pi > 0, pi * (log_pi[h] - log_prior[h]), 0.0), -1)
    return jnp.sum(pi * q, -1) - lam * kl, None

  q, v, _ = backward_induction(P, r, head)
  return q, v


def deterministic_log_policy(policy, n_actions: int) -> jax.Array:
  """log of the one-hot table of a deterministic policy `i[H,S]` (−inf off the chosen action)."""
  return jnp.log(jax.nn.one_hot(policy, n_actions, dtype=jnp.result_type(float)))
