"""Occupancy measures of finite-horizon tabular MDPs and the exact quantities built on them: the
expected return and per-layer feature covariances Σ^π_h = Σ_{s,a} q^π_h(s,a) φφᵀ.

Shared kernel for the tabular theory papers; first used by Tiapkin et al., "Demonstration-Regularized
RL", ICLR 2024 (arXiv 2310.17303). Model conventions as in `rljax.theory.kernels.vi`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rljax import checks
from rljax.theory.kernels.vi import check_log_policy, check_model


def occupancy(P, log_pi, s0, *, horizon: int | None = None) -> jax.Array:
  """State–action occupancy q^π_h(s,a) = Pr_π(s_h = s, a_h = a), one forward `lax.scan`:

      d_0 = s0,   q_h(s,a) = d_h(s) π_h(a|s),   d_{h+1}(s') = Σ_{s,a} q_h(s,a) P_h(s'|s,a).

  Each layer sums to 1. `log_pi: f[S,A]` or `f[H,S,A]`; `s0: f[S]` the initial distribution; `P` may
  be any [S,A,S]/[H,S,A,S] model (the reward only fixes H, so a zero reward is used). Returns f[H,S,A].
  """
  P = jnp.asarray(P)
  s0 = jnp.asarray(s0)
  S, A = P.shape[-3:-1]
  if horizon is None and P.ndim == 3 and jnp.ndim(log_pi) == 3:
    horizon = jnp.shape(log_pi)[0]
  P, _ = check_model(P, jnp.zeros((S, A), P.dtype), horizon)
  H = P.shape[0]
  log_pi = check_log_policy(log_pi, H, S, A, "log_pi")
  if s0.shape != (S,):
    raise ValueError(f"`s0` must be [S] = [{S}], got {s0.shape}.")
  if checks.is_concrete(s0) and (np.any(np.asarray(s0) < 0) or not np.allclose(np.asarray(s0).sum(), 1.0, atol=1e-6)):
    raise ValueError("`s0` must be a probability vector.")

  def forward(d, xs):
    p_h, log_pi_h = xs
    q = d[:, None] * jnp.exp(log_pi_h)
    return jnp.einsum("sa,sat->t", q, p_h), q

  _, q = jax.lax.scan(forward, s0.astype(P.dtype), (P, log_pi.astype(P.dtype)))
  return q


def expected_return(q, r) -> jax.Array:
  """J(π) = Σ_h Σ_{s,a} q^π_h(s,a) r_h(s,a) (equals s0 · V^π_0 from policy evaluation).
  `q: f[H,S,A]`, `r: f[S,A]` or `f[H,S,A]`."""
  q, r = jnp.asarray(q), jnp.asarray(r)
  if q.ndim != 3 or r.shape[-2:] != q.shape[-2:] or r.ndim not in (2, 3) or (r.ndim == 3 and r.shape != q.shape):
    raise ValueError(f"`q` must be [H,S,A] and `r` [S,A] or the same shape; got {q.shape} and {r.shape}.")
  return jnp.sum(q * r)


def feature_covariance(q, phi) -> jax.Array:
  """Exact per-layer second moments Σ^π_h = Σ_{s,a} q^π_h(s,a) φ_h(s,a)φ_h(s,a)ᵀ.
  `q: f[H,S,A]`, `phi: f[S,A,d]` or `f[H,S,A,d]`. Returns f[H,d,d]."""
  q, phi = jnp.asarray(q), jnp.asarray(phi)
  if (q.ndim != 3 or phi.ndim not in (3, 4) or phi.shape[-3:-1] != q.shape[1:]
      or (phi.ndim == 4 and phi.shape[0] != q.shape[0])):
    raise ValueError(f"`phi` must be [S,A,d] or [H,S,A,d] matching `q` {q.shape}, got {phi.shape}.")
  phi = jnp.broadcast_to(phi, (q.shape[0], *phi.shape[-3:]))
  return jnp.einsum("hsa,hsai,hsaj->hij", q, phi, phi)


def mean_features(q, phi) -> jax.Array:
  """Expected per-layer feature φ^π_h = Σ_{s,a} q^π_h(s,a) φ_h(s,a); returns f[H,d]."""
  q, phi = jnp.asarray(q), jnp.asarray(phi)
  if q.ndim != 3 or phi.ndim not in (3, 4) or phi.shape[-3:-1] != q.shape[1:]:
    raise ValueError(f"`phi` must be [S,A,d] or [H,S,A,d] matching `q` {q.shape}, got {phi.shape}.")
  return jnp.einsum("hsa,sai->hi", q, phi) if phi.ndim == 3 else jnp.einsum("hsa,hsai->hi", q, phi)
