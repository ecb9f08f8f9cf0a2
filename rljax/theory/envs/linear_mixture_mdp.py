"""Time-homogeneous linear mixture MDPs on a finite state space, with an exact oracle.

A linear mixture MDP (Ayoub et al. 2020; Zhou, Gu & Szepesvári 2021) has known features
φ(s'|s,a) ∈ R^d and an unknown θ* ∈ R^d with

    P(s'|s,a) = ⟨φ(s'|s,a), θ*⟩,   so that   [PV](s,a) = ⟨φ_V(s,a), θ*⟩,   φ_V(s,a) = Σ_s' φ(s'|s,a) V(s').

Here the state space is small and explicit (`phi: f[S,A,S,d]`), so the oracle is exact value
iteration on P. Rewards are not part of the environment: in reward-free exploration they are revealed
only at planning time, as tables `f[H,S,A]` with Σ_h r_h ≤ 1 along every trajectory
(`random_rewards`). `hard_instance` is the two-state construction behind the Ω(d²ε⁻²) lower bounds
for linear mixture MDPs.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.kernels import vi


class MixtureMDP(NamedTuple):
  phi: jax.Array  # φ(s'|s,a) f[S,A,S,d]
  theta: jax.Array  # θ* f[d]
  rho: jax.Array  # initial-state distribution f[S]


def transition(phi, theta) -> jax.Array:
  """P(s'|s,a) = ⟨φ(s'|s,a), θ⟩: `f[S,A,S]` from `phi: f[S,A,S,d]` (or any `f[...,d]` slice of it). With
  an estimate θ̂ this is a model whose rows need not be probability vectors."""
  return jnp.asarray(phi) @ theta


def check_mixture(phi, theta, rho) -> MixtureMDP:
  """Validates shapes and, for concrete arrays, that P = φθ and ρ are probability vectors."""
  phi, theta, rho = jnp.asarray(phi), jnp.asarray(theta), jnp.asarray(rho)
  if phi.ndim != 4 or phi.shape[0] != phi.shape[2]:
    raise ValueError(f"`phi` must be [S,A,S,d], got {phi.shape}.")
  if theta.shape != phi.shape[-1:]:
    raise ValueError(f"`theta` must have shape ({phi.shape[-1]},), got {theta.shape}.")
  if rho.shape != phi.shape[:1]:
    raise ValueError(f"`rho` must have shape ({phi.shape[0]},), got {rho.shape}.")
  if not any(isinstance(x, jax.core.Tracer) for x in (phi, theta, rho)):
    P = np.einsum("sand,d->san", np.asarray(phi), np.asarray(theta))
    if np.any(P < -1e-9) or not np.allclose(P.sum(-1), 1.0, atol=1e-6):
      raise ValueError("⟨φ(·|s,a), θ⟩ must be a probability vector for every (s,a).")
    if np.any(np.asarray(rho) < 0) or not np.isclose(float(np.sum(rho)), 1.0, atol=1e-6):
      raise ValueError("`rho` must be a probability vector.")
  return MixtureMDP(phi, theta, rho)


def hard_instance(key, dim: int, horizon: int, *, gap: float = 0.9, spread: float = 100.0) -> MixtureMDP:
  """Two states x₀ (start) and x₁ (absorbing), actions a ∈ {−1,+1}^{d−1} (A = 2^{d−1}), θ* = (1, μ):

      P(x₁|x₀,a) = δ + ⟨μ,a⟩,   P(x₀|x₀,a) = 1 − δ − ⟨μ,a⟩,   P(x₁|x₁,a) = 1,   δ = 1/max(H, 2),

  via φ(x₁|x₀,a) = (δ, a), φ(x₀|x₀,a) = (1−δ, −a), φ(x₁|x₁,a) = e₀, φ(x₀|x₁,a) = 0. The coordinates
  of μ have random signs and magnitudes |μ_i| = gap·δ·m_i/(d−1) with log m_i stratified over
  [−log spread, 0] (one coordinate per stratum, uniform within it, in random order), so ‖μ‖₁ ≤ gap·δ and every instance mixes easy and hard coordinates: a learner with
  estimation error e misplays the coordinates with |μ_i| ≲ e, whose total cost scales like e (a
  single fixed μ would instead show an exponential tail once all signs are found). Scaling μ with δ
  keeps value gaps of order 1 at every H (time to leave x₀ ≈ H).
  """
  if dim < 2 or horizon < 1:
    raise ValueError(f"need `dim` >= 2 and `horizon` >= 1, got {dim} and {horizon}.")
  if dim > 12:
    raise ValueError(f"`dim` {dim} gives 2^{dim - 1} actions; use dim <= 12.")
  if not 0 < gap < 1 or spread < 1:
    raise ValueError(f"need 0 < `gap` < 1 and `spread` >= 1, got {gap} and {spread}.")
  dtype = jnp.result_type(float)
  delta = 1.0 / max(horizon, 2)
  acts = jnp.asarray(np.array(np.meshgrid(*[[-1.0, 1.0]] * (dim - 1), indexing="ij")).reshape(dim - 1, -1).T, dtype)
  n_act = acts.shape[0]
  phi = jnp.zeros((2, n_act, 2, dim), dtype)
  phi = phi.at[0, :, 1].set(jnp.concatenate([jnp.full((n_act, 1), delta, dtype), acts], 1))
  phi = phi.at[0, :, 0].set(jnp.concatenate([jnp.full((n_act, 1), 1.0 - delta, dtype), -acts], 1))
  phi = phi.at[1, :, 1, 0].set(1.0)
  k_sign, k_perm, k_mag = jax.random.split(key, 3)
  signs = jnp.where(jax.random.bernoulli(k_sign, 0.5, (dim - 1,)), 1.0, -1.0)
  strata = jax.random.permutation(k_perm, dim - 1) + jax.random.uniform(k_mag, (dim - 1,), dtype)
  mags = spread ** (-strata / (dim - 1))
  theta = jnp.concatenate([jnp.ones((1,), dtype), signs * mags * gap * delta / (dim - 1)])
  return MixtureMDP(phi, theta, jnp.asarray([1.0, 0.0], dtype))


def random_rewards(key, n_rewards: int, n_states: int, n_actions: int, horizon: int, *,
                   density: float = 0.3) -> jax.Array:
  """`f[n,H,S,A]` test rewards with Σ_h r_h(s_h,a_h) ≤ 1 on every trajectory: r_h(s,a) = u(s,a)/H.

  Reward 0 pays 1/H in the last state (for `hard_instance`: reach x₁ early); the others put
  u ~ U[0,1] on a random `density` fraction of the (s,a) pairs.
  """
  if n_rewards < 1 or not 0 < density <= 1:
    raise ValueError(f"need `n_rewards` >= 1 and 0 < `density` <= 1, got {n_rewards} and {density}.")
  k_on, k_u = jax.random.split(key)
  shape = (n_rewards, n_states, n_actions)
  u = jnp.where(jax.random.bernoulli(k_on, density, shape), jax.random.uniform(k_u, shape), 0.0)
  u = u.at[0].set(jnp.zeros((n_states, n_actions)).at[-1].set(1.0))
  return jnp.broadcast_to(u[:, None] / horizon, (n_rewards, horizon, n_states, n_actions)).astype(jnp.result_type(float))


def reset(key, params: MixtureMDP) -> tuple[jax.Array, jax.Array]:
  """s₀ ~ ρ; the environment state is the current state index (time is kept by the caller)."""
  s = jax.random.choice(key, params.rho.shape[0], p=params.rho)
  return s, s


def step(key, params: MixtureMDP, state, action):
  """s' ~ ⟨φ(·|s,a), θ*⟩. Reward-free: the exploration phase observes no reward (returned as 0)."""
  p = transition(params.phi[state, action], params.theta)
  s = jax.random.choice(key, p.shape[0], p=jnp.clip(p, 0.0, 1.0))
  return s, s, jnp.zeros((), p.dtype), jnp.asarray(False), {}


def oracle(params: MixtureMDP, reward) -> vi.HardVI:
  """Exact optimal Q/V/greedy policy for `reward: f[H,S,A]` by value iteration on the true P."""
  return vi.value_iteration(transition(params.phi, params.theta), reward)


def policy_value(params: MixtureMDP, reward, policy) -> jax.Array:
  """Exact return E_{s₀~ρ} V^π_0(s₀) of a deterministic policy `i[H,S]` for `reward: f[H,S,A]`."""
  log_pi = vi.deterministic_log_policy(policy, params.phi.shape[1])
  _, v = vi.policy_evaluation(transition(params.phi, params.theta), reward, log_pi)
  return params.rho @ v[0]
