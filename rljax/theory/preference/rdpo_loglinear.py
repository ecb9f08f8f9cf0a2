"""Log-linear contextual-bandit preference model with noisy labels (the setting of rDPO's theory).

Chowdhury, Kini & Natarajan, "Provably Robust DPO: Aligning Language Models with Noisy Feedback",
ICML 2024. Prompts x carry K candidate responses with features φ(x, y) ∈ R^d, and policies are
log-linear,

    π_θ(y|x) = exp(θᵀφ(x,y)) / Σ_y' exp(θᵀφ(x,y')),      π_ref = π_0 (uniform).

Pairs (y, y') are drawn from π_ref, the clean label follows Bradley–Terry with reward r* = θ*ᵀφ,
P(y ≻ y') = σ(r*(y) − r*(y')), and each label is flipped independently with probability ε < 1/2.
With a uniform reference the DPO implicit reward is β·θᵀφ, so βθ̂ estimates θ*; the paper bounds the
rDPO error by O(√(d/n)/(1−2ε)).

`fit` minimises the mean of any pairwise loss from `rljax.losses` over θ by full-batch L-BFGS, with the
policy log-probabilities computed from θ exactly as a language model would supply them: the theory
check and the LM trainer run the same kernel.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.theory.kernels.lbfgs import lbfgs_minimize


class LogLinearBandit(NamedTuple):
  features: jax.Array  # f[X, K, d]: φ(x, y) for the prompts pairs are drawn from.
  theta_star: jax.Array  # f[d]: true reward parameter, r*(x, y) = θ*ᵀφ(x, y).


class Preferences(NamedTuple):
  """n observed comparisons; `chosen` is the response *labelled* preferred (after flips)."""

  prompt: jax.Array  # i[n]
  chosen: jax.Array  # i[n]
  rejected: jax.Array  # i[n]
  flipped: jax.Array  # bool[n]: whether the observed label disagrees with the clean draw.


def sample_features(key: jax.Array, n_prompts: int, n_actions: int, dim: int) -> jax.Array:
  """φ ~ N(0, I/d), shape `f[n_prompts, n_actions, dim]`."""
  return jax.random.normal(key, (n_prompts, n_actions, dim)) / jnp.sqrt(dim)


def make_loglinear_bandit(
    key: jax.Array, *, n_prompts: int, n_actions: int, dim: int, theta_norm: float
) -> LogLinearBandit:
  """Random features and a θ* drawn uniformly on the sphere of radius `theta_norm`."""
  if n_actions < 2:
    raise ValueError(f"`n_actions` must be >= 2 to form pairs, got {n_actions}.")
  checks.check_positive("theta_norm", theta_norm)
  k_phi, k_theta = jax.random.split(key)
  direction = jax.random.normal(k_theta, (dim,))
  theta_star = theta_norm * direction / jnp.linalg.norm(direction)
  return LogLinearBandit(sample_features(k_phi, n_prompts, n_actions, dim), theta_star)


def log_policy(theta: jax.Array, features: jax.Array) -> jax.Array:
  """log π_θ(y|x) for every prompt and response, `f[X, K]`."""
  return jax.nn.log_softmax(features @ theta, axis=-1)


def sample_preferences(key: jax.Array, env: LogLinearBandit, n: int, epsilon: jax.Array | float) -> Preferences:
  """n Bradley–Terry comparisons of two distinct uniform responses, labels flipped with rate ε.

  `epsilon` may be traced (vmapped over a sweep); with a fixed key the clean draws and the uniforms
  deciding flips are shared across ε, so curves for different ε differ only by the noise level.
  """
  n_prompts, n_actions, _ = env.features.shape
  k_x, k_a, k_b, k_label, k_flip = jax.random.split(key, 5)
  prompt = jax.random.randint(k_x, (n,), 0, n_prompts)
  a = jax.random.randint(k_a, (n,), 0, n_actions)
  # A second response uniform over the other K−1 actions.
  b = (a + jax.random.randint(k_b, (n,), 1, n_actions)) % n_actions
  reward = env.features @ env.theta_star
  r_a, r_b = reward[prompt, a], reward[prompt, b]
  a_wins = jax.random.uniform(k_label, (n,)) < jax.nn.sigmoid(r_a - r_b)
  flipped = jax.random.uniform(k_flip, (n,)) < epsilon
  a_labelled = a_wins != flipped
  return Preferences(prompt, jnp.where(a_labelled, a, b), jnp.where(a_labelled, b, a), flipped)


def pair_logps(theta: jax.Array, features: jax.Array, data: Preferences) -> tuple[jax.Array, jax.Array]:
  """Sequence log-probabilities (log π_θ(y_w|x), log π_θ(y_l|x)), each `f[n]`."""
  logp = log_policy(theta, features)
  return logp[data.prompt, data.chosen], logp[data.prompt, data.rejected]


def preference_objective(
    theta: jax.Array,
    features: jax.Array,
    data: Preferences,
    loss_fn: Callable[..., tuple[jax.Array, dict]],
    *,
    weights: jax.Array | None = None,
    l2: float | jax.Array = 0.0,
) -> jax.Array:
  """Σ_i w_i·ℓ_i / Σ_i w_i + (l2/2)‖θ‖², ℓ_i the loss of pair i with π_ref uniform (θ_ref = 0).

  `loss_fn(policy_chosen, policy_rejected, ref_chosen, ref_rejected, reduction=...)` is a
  `rljax.losses` kernel with its hyperparameters bound (e.g.
  `functools.partial(rdpo_loss, beta=1.0, epsilon=0.2)`). `weights: f[n]` (default all ones) lets a
  fixed-size buffer hold a smaller sample: zero weights mark unused slots, so one compiled program
  serves every sample size.
  """
  chosen, rejected = pair_logps(theta, features, data)
  ref = jnp.full_like(chosen, -jnp.log(features.shape[1]))
  per_pair, _ = loss_fn(chosen, rejected, ref, ref, reduction="none")
  if weights is None:
    weights = jnp.ones_like(per_pair)
  return jnp.sum(weights * per_pair) / jnp.sum(weights) + 0.5 * l2 * jnp.sum(theta**2)


class FitResult(NamedTuple):
  theta: jax.Array
  objective: jax.Array
  grad_norm: jax.Array
  iterations: jax.Array


def fit(
    features: jax.Array,
    data: Preferences,
    loss_fn: Callable[..., tuple[jax.Array, dict]],
    *,
    weights: jax.Array | None = None,
    l2: float | jax.Array = 0.0,
    max_iters: int = 100,
    tol: float = 1e-9,
) -> FitResult:
  """Full-batch L-BFGS (`optax.lbfgs` with zoom line search) on `preference_objective` from θ = 0.

  Stops when ‖∇‖ ≤ tol or after `max_iters`; a `lax.while_loop`, so it jits and vmaps over seeds.
  The DPO-family objectives are convex in θ (each link has non-negative curvature in h, and h is
  linear in θ), so L-BFGS reaches the global minimiser.
  """
  objective = lambda theta: preference_objective(theta, features, data, loss_fn, weights=weights, l2=l2)
  theta0 = jnp.zeros(features.shape[-1], features.dtype)
  return FitResult(*lbfgs_minimize(objective, theta0, max_iters=max_iters, tol=tol))


def estimation_error(theta_hat: jax.Array, theta_star: jax.Array, beta: float) -> jax.Array:
  """‖βθ̂ − θ*‖₂: the implicit reward βθ̂ᵀφ against the true reward θ*ᵀφ."""
  return jnp.linalg.norm(beta * theta_hat - theta_star)


def greedy_suboptimality(theta_hat: jax.Array, theta_star: jax.Array, features: jax.Array) -> jax.Array:
  """E_x[max_y r*(x,y) − r*(x, argmax_y θ̂ᵀφ(x,y))], exact over the prompts in `features`."""
  reward = features @ theta_star
  pick = jnp.argmax(features @ theta_hat, axis=-1)
  return jnp.mean(jnp.max(reward, -1) - jnp.take_along_axis(reward, pick[:, None], -1)[:, 0])


def regularized_gap(theta_hat: jax.Array, theta_star: jax.Array, features: jax.Array, beta: float) -> jax.Array:
  """J(π*) − J(π_θ̂) = β·E_x KL(π_θ̂ ‖ π*) for J(π) = E_π[r*] − β·KL(π ‖ π_ref), exact over `features`.

  The identity holds because π* ∝ π_ref·exp(r*/β) maximises J (Korbak et al. 2022). Unlike the
  greedy gap it sees the scale of θ̂, so it penalises a shrunken (over-regularised) estimate.
  """
  log_hat = log_policy(theta_hat, features)
  log_star = optimal_log_policy(theta_star, features, beta)
  return beta * jnp.mean(jnp.sum(jnp.exp(log_hat) * (log_hat - log_star), axis=-1))


def optimal_log_policy(theta_star: jax.Array, features: jax.Array, beta: float) -> jax.Array:
  """log π*(y|x) ∝ log π_ref + r*/β: the KL-regularised optimum, which DPO's minimiser represents."""
  return log_policy(theta_star / beta, features)
