"""Sparse misspecified linear bandit: an s-sparse θ*, a sup-norm misspecification budget ε and an exact
oracle, for "Does Sparsity Help in Learning Misspecified Linear Bandits?" (Dong & Yang, ICML 2023).

Mean rewards f(x_a) = ⟨θ*, x_a⟩ + b_a with ‖b‖_∞ ≤ ε and ‖θ*‖_0 = s. The instance is a
`linear_bandit.LinearBanditParams`, so `reset`, `step` and `oracle` are the linear-bandit ones.

Adversarial instance [rljax] (the least-squares trap): the arms are ±e_1..±e_d, the sparse optimum
x* = θ*/‖θ*‖ and a dense "needle" w = sign pattern on the complement of the support S, ‖w‖ = 1, w ⟂ θ*.
The misspecification is b(±e_i) = ±ε·sign(w_i) off the support and 0 elsewhere, so least squares on the
uniform (G-optimal) design over ±e_i is biased by δ = ε·sign(w): it predicts ⟨δ, w⟩ = ε√(d−s) for the
needle, whose true reward is 0. With ‖θ*‖ = κ ε √(d−s) (κ < 1) the needle wins the least-squares argmax
and its suboptimality is κ ε √(d−s) ∝ ε√d, while every arm keeps |f − ⟨θ*, x⟩| ≤ ε.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax.theory.envs import linear_bandit as lb
from rljax.theory.envs.linear_bandit import LinearBanditParams, oracle, reset, step  # noqa: F401


def sparse_theta(key: jax.Array, d: int, s: int, norm=1.0) -> jax.Array:
  """θ* = norm · (Σ_{i∈S} ±e_i)/√s on a uniformly random support S, |S| = s (so ‖θ*‖_0 = s, ‖θ*‖ = norm)."""
  if not 1 <= s <= d:
    raise ValueError(f"need 1 <= s <= d, got s={s}, d={d}.")
  k_sup, k_sign = jax.random.split(key)
  support = jax.random.permutation(k_sup, d)[:s]
  signs = jnp.where(jax.random.bernoulli(k_sign, 0.5, (s,)), 1.0, -1.0)
  return jnp.zeros((d,)).at[support].set(signs * norm / jnp.sqrt(s))


def make_instance(key: jax.Array, d: int, s: int, eps, *, kappa: float = 0.5, noise_std=0.1,
                  adversarial: bool = True) -> LinearBanditParams:
  """The 2d + 2 arms [±e_1..±e_d, x*, w] with ‖θ*‖ = κ ε √(d − s) (module docstring).

  adversarial=True: b(±e_i) = ±ε sign(w_i) for i ∉ S, 0 on S, x* and w. adversarial=False: the random
  misspecification b_a ~ U[−ε, ε] of `linear_bandit.misspecify`.
  """
  if d <= s:
    raise ValueError(f"need d > s for a needle off the support, got d={d}, s={s}.")
  if not 0 < kappa < 1:
    raise ValueError(f"`kappa` must lie in (0, 1), got {kappa}.")
  if isinstance(eps, (int, float)) and eps < 0:
    raise ValueError(f"`eps` must be non-negative, got {eps}.")
  k_theta, k_w, k_b = jax.random.split(key, 3)
  theta = sparse_theta(k_theta, d, s, kappa * eps * jnp.sqrt(d - s))
  off = theta == 0
  sign_w = jnp.where(jax.random.bernoulli(k_w, 0.5, (d,)), 1.0, -1.0) * off
  needle = sign_w / jnp.sqrt(d - s)
  x_star = theta / jnp.linalg.norm(theta)
  eye = jnp.eye(d)
  arms = jnp.concatenate([eye, -eye, x_star[None], needle[None]])
  params = lb.finite_bandit(arms, theta, noise_std)
  if not adversarial:
    return lb.misspecify(k_b, params, eps)
  b = eps * sign_w
  return params._replace(bias=jnp.concatenate([b, -b, jnp.zeros((2,))]).astype(arms.dtype))


def misspecification(params: LinearBanditParams) -> jax.Array:
  """The realised deviation f(x_a) − ⟨θ*, x_a⟩ = b_a per arm (its sup-norm is the budget used)."""
  return oracle(params).means - params.arms @ params.theta
