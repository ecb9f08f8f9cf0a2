"""Linear-bandit environments: finite and sphere action sets, a misspecification injector, and the
multitask shared-representation generator.

Shared environment of the linear-bandit theory papers; first used by GFUCB (Lu, Zhao, Du, Huang,
"Provable General Function Class Representation Learning in Multitask Bandits and MDPs", NeurIPS
2022) and FTPedel (Wagenmaker & Pacchiano, "Leveraging Offline Data in Online Reinforcement
Learning", ICML 2023).

Two pure environments, each a `reset / step / oracle` triple (pseudo-regret uses the oracle's
expected rewards):

* finite linear bandit: arms x_1..x_K ∈ R^d, mean reward μ_a = θ*ᵀx_a + b_a with a misspecification
  b ∈ R^K, ‖b‖_∞ ≤ ε (zero unless `misspecify` injects it), Gaussian noise σ. `sphere_arms` draws
  the arms uniformly on the unit sphere (a finite net of the sphere action set, whose exact optimum
  θ*/‖θ*‖ with value ‖θ*‖ is `sphere_oracle`).
* multitask contextual bandit with a shared representation: M tasks see fresh contexts
  x_{t,i,a} ~ N(0, I_n/n) every round, φ*(x) = tanh(W*ᵀx) ∈ R^k and y_{t,i} = θ_iᵀφ*(x_{t,i,a_{t,i}}) + η,
  with ‖θ_i‖ = 1. `representation_class` builds a finite class Φ that contains φ*.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class LinearBanditParams(NamedTuple):
  arms: jax.Array  # [K, d]
  theta: jax.Array  # [d]
  bias: jax.Array  # [K], misspecification b_a
  noise_std: jax.Array  # scalar σ


class Oracle(NamedTuple):
  means: jax.Array  # [..., K] expected rewards
  best_arm: jax.Array  # [...]
  best_value: jax.Array  # [...]
  gaps: jax.Array  # [..., K] best_value − means


def _oracle(means: jax.Array) -> Oracle:
  best = jnp.max(means, axis=-1)
  return Oracle(means, jnp.argmax(means, axis=-1), best, best[..., None] - means)


def _unit(x: jax.Array) -> jax.Array:
  return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def finite_bandit(arms, theta, noise_std=1.0) -> LinearBanditParams:
  """Well-specified finite linear bandit μ_a = θ*ᵀx_a (b = 0)."""
  arms, theta = jnp.asarray(arms), jnp.asarray(theta)
  if arms.ndim != 2 or theta.shape != arms.shape[1:]:
    raise ValueError(f"`arms` must be [K, d] and `theta` [d], got {arms.shape} and {theta.shape}.")
  if isinstance(noise_std, (int, float)) and noise_std < 0:
    raise ValueError(f"`noise_std` must be non-negative, got {noise_std}.")
  return LinearBanditParams(arms, theta, jnp.zeros(arms.shape[:1], arms.dtype), jnp.asarray(noise_std, arms.dtype))


def sphere_arms(key: jax.Array, n_arms: int, dim: int) -> jax.Array:
  """K arms drawn uniformly on the unit sphere S^{d−1} (normalised standard Gaussians)."""
  if n_arms < 1 or dim < 1:
    raise ValueError(f"`n_arms` and `dim` must be positive, got {n_arms} and {dim}.")
  return _unit(jax.random.normal(key, (n_arms, dim)))


def sphere_oracle(theta: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Optimum over the whole sphere action set: argmax_{‖x‖=1} θᵀx = θ/‖θ‖ with value ‖θ‖."""
  return _unit(theta), jnp.linalg.norm(theta)


def misspecify(key: jax.Array, params: LinearBanditParams, budget, *, adversarial: bool = False) -> LinearBanditParams:
  """Adds a misspecification b with sup-norm budget ε: ‖b‖_∞ ≤ ε.

  Random: b_a ~ U[−ε, ε]. Adversarial: the best linear arm loses ε and every other arm gains ε, the
  perturbation that most shrinks the gaps (by 2ε) seen by a learner that trusts the linear model.
  """
  if isinstance(budget, (int, float)) and budget < 0:
    raise ValueError(f"`budget` must be non-negative, got {budget}.")
  k = params.arms.shape[0]
  if adversarial:
    best = jnp.argmax(params.arms @ params.theta)
    bias = jnp.where(jnp.arange(k) == best, -budget, budget)
  else:
    bias = jax.random.uniform(key, (k,), params.arms.dtype, -budget, budget)
  return params._replace(bias=jnp.asarray(bias, params.arms.dtype))


def oracle(params: LinearBanditParams) -> Oracle:
  """Expected rewards μ_a = θ*ᵀx_a + b_a, the best arm and the gaps Δ_a = max μ − μ_a."""
  return _oracle(params.arms @ params.theta + params.bias)


def reset(key: jax.Array, params: LinearBanditParams) -> tuple[jax.Array, jax.Array]:
  """State = round counter; observation = the (fixed) arm features."""
  del key
  return jnp.zeros((), jnp.int32), params.arms


def step(key: jax.Array, params: LinearBanditParams, state: jax.Array, action: jax.Array):
  """Pulls arm `action`: reward μ_a + σ·N(0,1); info holds the expected reward and pseudo-regret."""
  o = oracle(params)
  mean = o.means[action]
  reward = mean + params.noise_std * jax.random.normal(key, mean.shape, mean.dtype)
  return state + 1, params.arms, reward, jnp.asarray(False), {"mean": mean, "regret": o.best_value - mean}


class MultitaskParams(NamedTuple):
  w_star: jax.Array  # [n, k], φ*(x) = tanh(W*ᵀx)
  thetas: jax.Array  # [M, k], unit norm
  noise_std: jax.Array  # scalar σ
  n_arms: int  # A arms per task per round (static)


def representation(w: jax.Array, x: jax.Array) -> jax.Array:
  """φ_W(x) = tanh(Wᵀx) for `x: [..., n]`, `w: [n, k]` → `[..., k]`."""
  return jnp.tanh(x @ w)


def multitask_bandit(key: jax.Array, *, n: int, k: int, n_tasks: int, n_arms: int, noise_std=0.1) -> MultitaskParams:
  """W* with N(0, 1) entries (so Wᵀx ~ N(0, 1) per unit for x ~ N(0, I/n)); θ_i uniform on S^{k−1}."""
  if min(n, k, n_tasks, n_arms) < 1:
    raise ValueError(f"n, k, n_tasks, n_arms must be positive, got {(n, k, n_tasks, n_arms)}.")
  kw, kt = jax.random.split(key)
  return MultitaskParams(jax.random.normal(kw, (n, k)), _unit(jax.random.normal(kt, (n_tasks, k))),
                         jnp.asarray(noise_std, jnp.result_type(float)), n_arms)


def representation_class(key: jax.Array, params: MultitaskParams, size: int, *, scales=(0.1, 1.0),
                         true_index: int = 0) -> jax.Array:
  """Finite class Φ = {W_j}: W_{true_index} = W*, the others W* + s_j G_j with G_j ~ N(0, I) and
  s_j log-spaced in `scales` (s → ∞ gives independent random nets; small s gives near-misses that
  only many samples separate from φ*). Returns `[size, n, k]`."""
  if size < 1 or not 0 <= true_index < size:
    raise ValueError(f"need size >= 1 and 0 <= true_index < size, got {size} and {true_index}.")
  lo, hi = scales
  if not 0 < lo <= hi:
    raise ValueError(f"`scales` must satisfy 0 < lo <= hi, got {scales}.")
  s = jnp.geomspace(lo, hi, max(size - 1, 1))[: size - 1]
  others = params.w_star + s[:, None, None] * jax.random.normal(key, (size - 1, *params.w_star.shape))
  return jnp.insert(others, true_index, params.w_star, axis=0)


def _contexts(key: jax.Array, params: MultitaskParams) -> jax.Array:
  m, n = params.thetas.shape[0], params.w_star.shape[0]
  return jax.random.normal(key, (m, params.n_arms, n)) / jnp.sqrt(n)


def multitask_oracle(params: MultitaskParams, contexts: jax.Array) -> Oracle:
  """Expected rewards μ_{i,a} = θ_iᵀφ*(x_{i,a}) for `contexts: [M, A, n]`, best arm per task and gaps."""
  return _oracle(jnp.einsum("mak,mk->ma", representation(params.w_star, contexts), params.thetas))


def multitask_reset(key: jax.Array, params: MultitaskParams) -> tuple[jax.Array, jax.Array]:
  """State = the current contexts `[M, A, n]`; observation = the same contexts."""
  x = _contexts(key, params)
  return x, x


def multitask_step(key: jax.Array, params: MultitaskParams, state: jax.Array, action: jax.Array):
  """Every task i plays `action[i]`; rewards y_i = μ_{i,a_i} + σ η_i; fresh contexts follow.
  info: expected rewards and per-task pseudo-regret of this round."""
  if action.shape != params.thetas.shape[:1]:
    raise ValueError(f"`action` must have shape ({params.thetas.shape[0]},), got {action.shape}.")
  k_noise, k_next = jax.random.split(key)
  o = multitask_oracle(params, state)
  mean = jnp.take_along_axis(o.means, action[:, None], axis=1)[:, 0]
  reward = mean + params.noise_std * jax.random.normal(k_noise, mean.shape, mean.dtype)
  nxt = _contexts(k_next, params)
  return nxt, nxt, reward, jnp.asarray(False), {"mean": mean, "regret": o.best_value - mean}
