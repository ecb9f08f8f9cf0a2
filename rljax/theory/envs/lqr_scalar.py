"""Discounted scalar LQR with a Gaussian linear policy: the test bed of Fatkhullin, Barakat, Kireeva & He,
"Stochastic Policy Gradient Methods: Improved Sample Complexity for Fisher-non-degenerate Policies", ICML 2023.

Dynamics s_{t+1} = a s_t + b u_t + w_t, w_t ~ N(0, σ_w²), s_0 ~ N(0, σ_0²); reward −(q s_t² + r u_t²);
policy u = θ s + σ ξ, ξ ~ N(0, 1) with a fixed σ > 0 (so the Fisher information is ≥ E s²/σ² > 0:
the policy class is Fisher-non-degenerate). The module holds the pure `reset`/`step` pair, the policy
(`policy_sample`, `policy_logp`), the exact value J(θ) (infinite horizon or truncated at H) and the
optimum θ* (`oracle`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class LQRParams(NamedTuple):
  a: float = 0.9
  b: float = 0.5
  noise_std: float = 0.1  # σ_w
  s0_std: float = 1.0  # σ_0
  q: float = 1.0
  r: float = 0.1
  gamma: float = 0.9
  policy_std: float = 0.5  # σ of the Gaussian policy
  horizon: int = 50  # H_tr of the sampled trajectories


def check_params(params: LQRParams) -> None:
  """ValueError naming the first invalid field."""
  for name in ("noise_std", "s0_std", "policy_std"):
    if not getattr(params, name) > 0:
      raise ValueError(f"`params.{name}` must be > 0, got {getattr(params, name)}.")
  if params.q < 0 or params.r < 0:
    raise ValueError(f"`params.q` and `params.r` must be >= 0, got {params.q}, {params.r}.")
  if not 0 < params.gamma < 1:
    raise ValueError(f"`params.gamma` must be in (0, 1), got {params.gamma}.")
  if not params.horizon >= 1:
    raise ValueError(f"`params.horizon` must be >= 1, got {params.horizon}.")


def reset(key: jax.Array, params: LQRParams):
  """s_0 ~ N(0, σ_0²); the observation is the state."""
  s = params.s0_std * jax.random.normal(key, dtype=jnp.result_type(float))
  return s, s


def step(key: jax.Array, params: LQRParams, state, action):
  """s' = a s + b u + w, reward −(q s² + r u²); never terminates."""
  reward = -(params.q * state**2 + params.r * action**2)
  nxt = params.a * state + params.b * action + params.noise_std * jax.random.normal(key, dtype=jnp.result_type(state))
  return nxt, nxt, reward, jnp.zeros((), bool), {}


def policy_sample(key: jax.Array, theta, obs, params: LQRParams):
  """u = θ s + σ ξ (θ is a length-1 vector: the policy parameters as a flat array)."""
  return theta[0] * obs + params.policy_std * jax.random.normal(key, dtype=jnp.result_type(obs))


def policy_logp(theta, obs, action, params: LQRParams):
  """log π_θ(u|s) = −(u − θ s)²/(2σ²) − log(σ√(2π))."""
  sigma = params.policy_std
  return -0.5 * ((action - theta[0] * obs) / sigma) ** 2 - jnp.log(sigma * jnp.sqrt(2 * jnp.pi))


def value(theta, params: LQRParams, horizon: int | None = None) -> jax.Array:
  """Exact J(θ) = E Σ_{t<H} γ^t r_t for the policy u = θ s + σξ (H = ∞ when `horizon` is None).

  With ρ = (a + bθ)², c = b²σ² + σ_w², the second moment m_t = E s_t² obeys m_{t+1} = ρ m_t + c, and
  E r_t = −(q + rθ²) m_t − rσ². Infinite horizon (needs γρ < 1, else −inf):
      M(θ) = Σ_t γ^t m_t = (σ_0² + γc/(1−γ)) / (1 − γρ),  J(θ) = −(q + rθ²) M(θ) − rσ²/(1−γ).
  Finite H: the same with M = Σ_{t<H} γ^t m_t, m_t = ρ^t σ_0² + c Σ_{k<t} ρ^k (summed exactly).
  Differentiable in θ (any order), so jax.grad / jax.hessian give the exact ∇J, ∇²J.
  """
  theta = jnp.asarray(theta)
  th = theta[0] if theta.ndim else theta
  g, sig = params.gamma, params.policy_std
  rho = (params.a + params.b * th) ** 2
  c = params.b**2 * sig**2 + params.noise_std**2
  m0 = params.s0_std**2
  if horizon is None:
    big_m = (m0 + g * c / (1 - g)) / (1 - g * rho)
    j = -(params.q + params.r * th**2) * big_m - params.r * sig**2 / (1 - g)
    return jnp.where(g * rho < 1, j, -jnp.inf)
  t = jnp.arange(horizon, dtype=jnp.result_type(th, float))
  rho_t = rho**t
  geo = jnp.cumsum(rho_t) - rho_t  # Σ_{k<t} ρ^k
  m = rho_t * m0 + c * geo
  disc = g**t
  return -(params.q + params.r * th**2) * jnp.sum(disc * m) - params.r * sig**2 * jnp.sum(disc)


def oracle(params: LQRParams, horizon: int | None = None, grid: int = 4001, newton_steps: int = 20):
  """θ* = argmax_θ J(θ) and J* = J(θ*): a grid search over the stable range |a + bθ| < γ^{-1/2},
  then Newton steps on the exact J (scalar, so the Hessian is a number). Returns (θ*[1], J*)."""
  check_params(params)
  half = 1.0 / jnp.sqrt(params.gamma)
  lo, hi = sorted(((-half - params.a) / params.b, (half - params.a) / params.b))
  grid_th = jnp.linspace(lo, hi, grid + 2)[1:-1]
  vals = jax.vmap(lambda th: value(th[None], params, horizon))(grid_th)
  th0 = grid_th[jnp.argmax(vals)][None]
  j_fn = lambda th: value(th, params, horizon)

  def newton(_, th):
    return th - jax.grad(j_fn)(th) / jax.hessian(j_fn)(th)[0]

  th = jax.lax.fori_loop(0, newton_steps, newton, th0)
  return th, j_fn(th)
