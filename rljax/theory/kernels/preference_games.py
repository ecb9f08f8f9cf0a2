"""Preference games over a finite response set: random preference matrices and the KL-regularised game.

The setting of Munos et al., "Nash Learning from Human Feedback", ICML 2024 (arXiv 2312.00886) and
Tiapkin et al., "Accelerating Nash Learning from Human Feedback via Mirror Prox", 2025
(arXiv 2505.19731). A preference matrix P has P[i, j] = P(y_i ≻ y_j), P + Pᵀ = 1 and diag P = ½;
P(π ≻ π′) = πᵀPπ′ and P(y ≻ π) = (Pπ)_y. The τ-regularised game is

    P_τ(π ≻ π′) = P(π ≻ π′) − τ·KL(π‖μ) + τ·KL(π′‖μ),

antisymmetric around ½, with a unique symmetric Nash equilibrium π*_τ ∝ μ·exp(P(· ≻ π*_τ)/τ).
Policies are passed as log-probabilities (the primary representation) over the last axis.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

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
