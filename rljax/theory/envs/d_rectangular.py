"""The simplex-feature d-rectangular linear MDP of Tang, Liu & Xu, "Robust Offline RL with Linearly Structured
f-Divergence Regularization" (R2PVI), ICML 2025, with its test-time perturbation q and exact oracles.

States x_1..x_5 (indices 0..4; x_4 is the absorbing fail state, x_5 the absorbing good state), horizon
H = 3, d = 4, actions a ∈ {−1, 1}^4 (16). With ξ = ξ_scale·1/d and δ:
    φ(x_j, a) = (1 − δ − ξᵀa) e_j + (δ + ξᵀa) e_4  (j = 1, 2, 3),   φ(x_4, ·) = e_3,   φ(x_5, ·) = e_4.
Nominal factors μ_i (one per feature, the same at every step): μ_1 = (1 − ε) x_2 + ε x_4,
μ_2 = (1 − ε) x_3 + ε x_4, μ_3 = x_4, μ_4 = x_5, so P(·|s, a) = Σ_i φ_i(s, a) μ_i; rewards
r_h = φᵀθ_h with θ_1 = 0, θ_2 = θ_3 = e_4. The test environment moves, at step h = 1 only, the mass of
the fourth factor to the fail state with probability q: μ_4 = q x_4 + (1 − q) x_5. Actions with a larger
exposure ξᵀa earn more nominally and lose more under the perturbation.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.kernels import vi

N_STATES, DIM, HORIZON = 5, 4, 3
ACTIONS = np.asarray(list(itertools.product((-1.0, 1.0), repeat=DIM)))  # [16, 4]


class DRectParams(NamedTuple):
  delta: float = 0.3
  xi_scale: float = 0.2  # ξ = xi_scale · 1/d, so ξᵀa ∈ [−xi_scale, xi_scale]
  fail_prob: float = 1e-3  # ε
  q: float = 0.0  # test-time perturbation at h = 1


def check_params(params: DRectParams) -> None:
  if not isinstance(params.q, jax.core.Tracer) and not 0 <= params.q <= 1:
    raise ValueError(f"`params.q` must be in [0, 1], got {params.q}.")
  if not 0 <= params.fail_prob <= 1:
    raise ValueError(f"`params.fail_prob` must be in [0, 1], got {params.fail_prob}.")
  if not (params.xi_scale >= 0 and params.delta - params.xi_scale >= 0 and params.delta + params.xi_scale <= 1):
    raise ValueError(f"`params.delta` ± `params.xi_scale` must lie in [0, 1], got {params.delta}, {params.xi_scale}.")


def features(params: DRectParams) -> jax.Array:
  """φ: f[S, A, d], rows on the simplex (δ and ξ are static; q may be traced)."""
  check_params(params)
  expo = params.delta + params.xi_scale / DIM * ACTIONS.sum(-1)  # δ + ξᵀa, [A]
  phi = np.zeros((N_STATES, len(ACTIONS), DIM))
  for j in range(3):
    phi[j, :, j] = 1 - expo
    phi[j, :, 3] = expo
  phi[3, :, 2] = 1.0
  phi[4, :, 3] = 1.0
  return jnp.asarray(phi)


def factors(params: DRectParams) -> jax.Array:
  """μ_{h,i}(s'): f[H, d, S]; the perturbation q acts on μ_{1,4} only."""
  eps = params.fail_prob
  mu = np.zeros((HORIZON, DIM, N_STATES))
  mu[:, 0, 1], mu[:, 0, 3] = 1 - eps, eps
  mu[:, 1, 2], mu[:, 1, 3] = 1 - eps, eps
  mu[:, 2, 3] = 1.0
  mu[:, 3, 4] = 1.0
  mu = jnp.asarray(mu)
  return mu.at[0, 3].set(jnp.zeros(N_STATES).at[3].set(params.q).at[4].set(1 - params.q))


def reward_params() -> jax.Array:
  """θ_h: f[H, d]."""
  return jnp.asarray([[0.0] * DIM, [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0]])


def model(params: DRectParams) -> tuple[jax.Array, jax.Array]:
  """Tabular form: P_h(s'|s,a) = Σ_i φ_i(s,a) μ_{h,i}(s') as f[H,S,A,S] and r_h(s,a) = φᵀθ_h as f[H,S,A]."""
  phi = features(params)
  return jnp.einsum("sai,hit->hsat", phi, factors(params)), jnp.einsum("sai,hi->hsa", phi, reward_params())


def reset(key, params: DRectParams):
  """Every episode starts at x_1, step 0; the state is (s, h) and the observation φ(s, ·)."""
  del key
  state = (jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
  return state, features(params)[0]


def step(key, params: DRectParams, state, action):
  """s' ~ P_h(·|s, a) (perturbed at h = 1), reward φ(s, a)ᵀθ_h; done after H steps."""
  s, h = state
  P, r = model(params)
  nxt = jax.random.choice(key, N_STATES, p=P[h, s, action]).astype(jnp.int32)
  return (nxt, h + 1), features(params)[nxt], r[h, s, action], h + 1 >= HORIZON, {}


def policy_return(policy, params: DRectParams) -> jax.Array:
  """Exact expected return V^π_1(x_1) of a deterministic policy `policy: i[H, S]` in the (perturbed) env."""
  P, r = model(params)
  _, v = vi.policy_evaluation(P, r, vi.deterministic_log_policy(policy, len(ACTIONS)))
  return v[0, 0]


def oracle(params: DRectParams) -> tuple[jax.Array, jax.Array]:
  """(optimal policy i[H,S], optimal return V*_1(x_1)) of the (perturbed) env by value iteration."""
  P, r = model(params)
  res = vi.value_iteration(P, r)
  return res.policy, res.v[0, 0]


def sample_dataset(key, params: DRectParams, n_episodes: int):
  """N episodes of the uniform behaviour policy in the *nominal* env (q = 0).

  Returns per-step arrays f[H, N]: states, actions, rewards, next states (ints / floats).
  """
  if n_episodes < 1:
    raise ValueError(f"`n_episodes` must be >= 1, got {n_episodes}.")
  P, r = model(params._replace(q=0.0))
  log_p = jnp.log(P)  # −inf on impossible next states

  def episode(k):
    def body(s, xs):
      h, kk = xs
      ka, ks = jax.random.split(kk)
      a = jax.random.randint(ka, (), 0, len(ACTIONS))
      nxt = jax.random.categorical(ks, log_p[h, s, a]).astype(jnp.int32)
      return nxt, (s, a, r[h, s, a], nxt)

    _, out = jax.lax.scan(body, jnp.zeros((), jnp.int32), (jnp.arange(HORIZON), jax.random.split(k, HORIZON)))
    return out

  s, a, rew, nxt = jax.vmap(episode)(jax.random.split(key, n_episodes))
  return s.T, a.T, rew.T, nxt.T
