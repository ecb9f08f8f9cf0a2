"""Preference games over a finite response set: random preference matrices and the KL-regularised game.

The setting of Munos et al., "Nash Learning from Human Feedback", ICML 2024 (arXiv 2312.00886) and
Tiapkin et al., "Accelerating Nash Learning from Human Feedback via Mirror Prox", 2025
(arXiv 2505.19731). A preference matrix P has P[i, j] = P(y_i ≻ y_j), P + Pᵀ = 1 and diag P = ½;
P(π ≻ π′) = πᵀPπ′ and P(y ≻ π) = (Pπ)_y. The τ-regularised game is

    P_τ(π ≻ π′) = P(π ≻ π′) − τ·KL(π‖μ) + τ·KL(π′‖μ),

antisymmetric around ½, with a unique symmetric Nash equilibrium π*_τ ∝ μ·exp(P(· ≻ π*_τ)/τ).
Policies are passed as log-probabilities (the primary representation) over the last axis.

Also the independent oracle for π*_τ (`regularized_nash_equilibrium`, damped Newton with a
certificate), per-iterate metrics of a trajectory, and the natural policy-gradient step on the
`rljax.losses.nash_md_pg_loss` surrogate, exact over the K responses, that Nash-MD and Nash-MP share.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax import checks
from rljax.losses import nash_md_pg_loss
from rljax.theory.kernels import divergences

KINDS = ("bradley_terry", "intransitive")


def _check_square(P) -> jax.Array:
  P = jnp.asarray(P)
  if P.ndim != 2 or P.shape[0] != P.shape[1]:
    raise ValueError(f"`P` must be a square [K, K] matrix, got shape {P.shape}.")
  return P


def check_preference_matrix(P, *, atol: float = 1e-9) -> jax.Array:
  """Returns P after checking P + Pᵀ = 1 and 0 ≤ P ≤ 1 (on concrete values); raises ValueError."""
  P = _check_square(P)
  if not isinstance(P, jax.core.Tracer):
    if not bool(jnp.all(jnp.abs(P + P.T - 1.0) <= atol)):
      raise ValueError("`P` must satisfy P + Pᵀ = 1 (and so diag P = 1/2).")
    if not bool(jnp.all((P >= 0) & (P <= 1))):
      raise ValueError("`P` entries must lie in [0, 1].")
  return P


def bradley_terry_matrix(rewards: jax.Array) -> jax.Array:
  """Bradley–Terry preferences P[i, j] = σ(r_i − r_j) of a reward vector `r: f[K]` (transitive)."""
  r = jnp.asarray(rewards)
  if r.ndim != 1:
    raise ValueError(f"`rewards` must be 1-D, got shape {r.shape}.")
  return jax.nn.sigmoid(r[:, None] - r[None, :])


def cyclic_matrix(n_actions: int, strength: float = 1.0) -> jax.Array:
  """Rock–paper–scissors-like P[i, j] = ½ + (s/2)·sin(2π(j − i)/K): action i beats the next ⌊K/2⌋.

  Every row of P − ½ sums to zero, so the uniform policy is the Nash equilibrium of the unregularised
  game and, with a uniform μ, of the τ-regularised game for every τ. K = 3 is rock–paper–scissors.
  """
  if n_actions < 3:
    raise ValueError(f"`n_actions` must be >= 3 for a cyclic game, got {n_actions}.")
  if not 0.0 < strength <= 1.0:
    raise ValueError(f"`strength` must lie in (0, 1], got {strength}.")
  idx = jnp.arange(n_actions)
  return 0.5 + 0.5 * strength * jnp.sin(2 * jnp.pi * (idx[None, :] - idx[:, None]) / n_actions)


def random_preference_matrix(key: jax.Array, n_actions: int, *, kind: str = "intransitive",
                             scale: float = 1.0) -> jax.Array:
  """A random K×K preference matrix.

  - "bradley_terry": P[i, j] = σ(r_i − r_j), r ~ N(0, scale²);
  - "intransitive": P = ½ + ½·tanh(A), A antisymmetric with N(0, scale²) entries above the diagonal.
  """
  if kind not in KINDS:
    raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}.")
  if n_actions < 2:
    raise ValueError(f"`n_actions` must be >= 2, got {n_actions}.")
  if kind == "bradley_terry":
    return bradley_terry_matrix(scale * jax.random.normal(key, (n_actions,)))
  g = jnp.triu(scale * jax.random.normal(key, (n_actions, n_actions)), 1)
  return 0.5 + 0.5 * jnp.tanh(g - g.T)


kl = divergences.categorical_kl  # KL(p‖q) over the last axis, from (broadcastable) log-probabilities


def win_rate(P: jax.Array, log_pi: jax.Array) -> jax.Array:
  """P(y ≻ π) = (Pπ)_y for every response y."""
  return P @ jnp.exp(log_pi)


def regularized_objective(log_pi, log_pi_prime, P, log_mu, tau) -> jax.Array:
  """P_τ(π ≻ π′) = πᵀPπ′ − τ·KL(π‖μ) + τ·KL(π′‖μ)."""
  pi = jnp.exp(log_pi)
  return pi @ win_rate(P, log_pi_prime) - tau * kl(log_pi, log_mu) + tau * kl(log_pi_prime, log_mu)


def best_response_value(log_pi, P, log_mu, tau) -> jax.Array:
  """max_π′ P(π′ ≻ π) − τ·KL(π′‖μ) = τ·log Σ_y μ(y)·exp(P(y ≻ π)/τ) (Gibbs variational formula)."""
  return tau * jax.nn.logsumexp(log_mu + win_rate(P, log_pi) / tau, -1)


def regularized_exploitability(log_pi, P, log_mu, tau) -> jax.Array:
  """exploit(π) = max_π′ P_τ(π′ ≻ π) − ½ = τ·log Σ μ·exp(P(·≻π)/τ) − [P(π≻π) − τ·KL(π‖μ)] ≥ 0,

  with P(π ≻ π) = ½; zero exactly at π = π*_τ.
  """
  return best_response_value(log_pi, P, log_mu, tau) - (0.5 - tau * kl(log_pi, log_mu))


def logprob_span(log_pi, log_pi_star) -> jax.Array:
  """Span semi-norm sp(log π − log π*) = max_y(·) − min_y(·)."""
  d = log_pi - log_pi_star
  return jnp.max(d, -1) - jnp.min(d, -1)


# ------------------------------------------------------------------------------- the equilibrium oracle


class NashSolution(NamedTuple):
  pi: jax.Array  # f[K] π*_τ
  log_pi: jax.Array  # f[K]
  residual: jax.Array  # ‖π − softmax(log μ + Pπ/τ)‖₁
  exploitability: jax.Array  # regularised exploitability of π (≥ 0, 0 at π*_τ)
  n_iter: jax.Array


def check_tau(name, tau, *, positive: bool):
  """A regularisation strength (or step size) that is > 0 (`positive`) or >= 0, on concrete values."""
  v = checks.concrete_array(tau)
  if v is not None and not (np.all(v > 0) if positive else np.all(v >= 0)):
    raise ValueError(f"`{name}` must be {'> 0' if positive else '>= 0'}, got {tau}.")


def check_distribution(name, p):
  """A probability vector over the last axis, on concrete values."""
  v = checks.concrete_array(p)
  if v is not None and (np.any(v < 0) or not np.allclose(np.sum(v, -1), 1.0, atol=1e-6)):
    raise ValueError(f"`{name}` must be a probability vector (non-negative, summing to 1).")


def _fixed_point_map(z, P, log_mu, tau):
  """F(z) = log μ + P·softmax(z)/τ; π*_τ = softmax(z*) at its fixed point z* = F(z*)."""
  return log_mu + P @ jax.nn.softmax(z) / tau


def regularized_nash_equilibrium(P, mu, tau, *, tol: float = 1e-12, max_iter: int = 100) -> NashSolution:
  """ORACLE for π*_τ ∝ μ·exp(P(· ≻ π*_τ)/τ), independent of the learning dynamics.

  Damped Newton on G(z) = z − log μ − P·softmax(z)/τ. Its Jacobian I − (P − ½)S/τ, with
  S = diag π − ππᵀ ⪰ 0 and P − ½ antisymmetric, has eigenvalues 1 + i·ℝ, so it is always invertible
  and the Newton direction descends ‖G‖²; the step is the best of 2^0..2^-29 on ‖G‖². Iterates until
  the certificate ‖π − softmax(log μ + Pπ/τ)‖₁ ≤ tol, no step improves ‖G‖², or `max_iter`.
  """
  P = check_preference_matrix(P)
  check_distribution("mu", mu)
  check_tau("tau", tau, positive=True)
  log_mu = jnp.log(jnp.asarray(mu, P.dtype))
  if log_mu.shape != P.shape[:1]:
    raise ValueError(f"`mu` has shape {log_mu.shape}, expected ({P.shape[0]},).")
  steps = 2.0 ** -jnp.arange(30, dtype=P.dtype)
  eye = jnp.eye(P.shape[0], dtype=P.dtype)

  def merit(z):
    g = z - _fixed_point_map(z, P, log_mu, tau)
    return g @ g

  def residual(z):
    return jnp.sum(jnp.abs(jax.nn.softmax(z) - jax.nn.softmax(_fixed_point_map(z, P, log_mu, tau))))

  def body(carry):
    z, _, i, _ = carry
    pi = jax.nn.softmax(z)
    jac = eye - P @ (jnp.diag(pi) - jnp.outer(pi, pi)) / tau
    d = -jnp.linalg.solve(jac, z - _fixed_point_map(z, P, log_mu, tau))
    cands = z[None] + steps[:, None] * d[None]
    m = jax.vmap(merit)(cands)
    best = jnp.argmin(m)
    improved = m[best] < merit(z)
    z_new = jnp.where(improved, cands[best], z)
    return z_new, residual(z_new), i + 1, improved

  def cond(carry):
    _, res, i, improved = carry
    return (res > tol) & (i < max_iter) & improved

  z0 = _fixed_point_map(log_mu, P, log_mu, tau)
  z, res, n, _ = jax.lax.while_loop(cond, body, (z0, residual(z0), jnp.asarray(0), jnp.asarray(True)))
  log_pi = jax.nn.log_softmax(z)
  return NashSolution(jnp.exp(log_pi), log_pi, res, regularized_exploitability(log_pi, P, log_mu, tau), n)


def trajectory_metrics(log_pis, P, log_mu, tau, log_pi_star=None) -> dict[str, jax.Array]:
  """Per-iterate metrics of `log_pis: f[T, K]`: `exploit` (regularised; for τ = 0 the plain
  max_y P(y ≻ π) − ½), and with `log_pi_star`: `kl_to_star` = KL(π*‖π_t) and `span` =
  sp(log π_t − log π*)."""
  if isinstance(tau, (int, float)) and tau == 0:
    exploit = jnp.max(jax.vmap(win_rate, in_axes=(None, 0))(P, log_pis), -1) - 0.5
  else:
    exploit = jax.vmap(regularized_exploitability, in_axes=(0, None, None, None))(log_pis, P, log_mu, tau)
  out = {"exploit": exploit}
  if log_pi_star is not None:
    out["kl_to_star"] = kl(log_pi_star, log_pis)
    out["span"] = logprob_span(log_pis, log_pi_star)
  return out


# ------------------------------------------------------ natural PG on the Nash-MD-PG loss kernel


def nash_pg_objective(logits, log_ref, pref, tau):
  """E_{y~π}[ℓ(y)] of the `nash_md_pg_loss` surrogate, exact over the K responses (each response a
  one-token sequence; the π(y) weights are constants, as for sampled y)."""
  log_pi = jax.nn.log_softmax(logits)
  mask = jnp.ones((1, 1), bool)
  per_y = jax.vmap(lambda lp, lr, p: nash_md_pg_loss(lp[None, None], lr[None, None], p[None], mask, tau=tau)[0])
  return jnp.sum(jax.lax.stop_gradient(jnp.exp(log_pi)) * per_y(log_pi, log_ref, pref))


def nash_pg_step(log_pi, log_ref, pref, *, lr, tau):
  """Natural policy-gradient step on the Nash-MD-PG surrogate, exact over the K responses:
  ∇_z = π ⊙ (w − ⟨π, w⟩) with w = τ·log(π/μ) − (pref − ½), and the softmax Fisher preconditioner
  divides by π:  log π' = log_softmax(log π − lr·∇_z/π)."""
  grad = jax.grad(nash_pg_objective)(log_pi, log_ref, pref, tau)
  return jax.nn.log_softmax(log_pi - lr * grad / jnp.exp(log_pi))
