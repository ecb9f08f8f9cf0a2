"""DynLin-UCB for dynamical linear bandits (Mussi, Metelli & Restelli, "Dynamical Linear Bandits", ICML 2023).

The reward of an action spreads over future rounds through a hidden stable linear state (see
`rljax.theory.envs.dyn_linear_bandit`). DynLin-UCB plays each chosen arm for a block of growing length
L_m = 1 + ⌊log m / log(1/ρ)⌋, so that the transient of the previous arm has decayed (∝ ρ^{L_m} < 1/m),
and regresses only the *last* reward of each block on the action: its ridge estimate targets the
steady-state gain h = 1ᵀ(D + C(I − A)^{-1}B), not the immediate gain 1ᵀD. Regret Õ(d√T/(1 − ρ)^{3/2}).

The myopic baseline (LinUCB on immediate rewards) is the same code with block length 1 and no
dynamics terms in the radius (`make_config(..., myopic=True)`); it regresses every reward on the
current action, so it is biased towards 1ᵀD and suffers linear regret when the two gains disagree.

The confidence constants are computed once, in numpy, from the system matrices (`make_config`); the
`DynLinConfig` holding them is a pytree of scalars, so learners and systems can be stacked and vmapped
through one compile. Everything is jit/vmap-able; `run` scans over the horizon.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.envs import dyn_linear_bandit as env
from rljax.theory.kernels import ridge


class DynLinConfig(NamedTuple):
  """Confidence constants: horizon T, spectral-radius bound ρ (0 → block length 1), the radius
  constants c1, c2, σ̄ and U = max_u ‖u‖₂, the ridge λ and a multiplier on β_t (1 = the paper's
  radius). Plain scalars, so a stack of configs can be vmapped through one compile of `run`."""

  horizon: float
  rho: float
  c1: float
  c2: float
  sigma_bar: float
  u_max: float
  lam: float = 1.0
  beta_scale: float = 1.0


class AgentState(NamedTuple):
  stats: ridge.RidgeState  # V, V^{-1}, b over the block-end samples (u, y_end)
  arm: jax.Array  # arm held in the current block
  pos: jax.Array  # steps already played in the current block
  block: jax.Array  # m, 1-based index of the current block
  length: jax.Array  # L_m
  t: jax.Array  # steps played so far
  fresh: jax.Array  # True when the next `act` opens a new block


class Trace(NamedTuple):
  arms: jax.Array  # [T] arm played at each step
  regret: jax.Array  # [T] cumulative pseudo-regret Σ_{s≤t} (hᵀu* − hᵀu_s)


def spectral_bound(a, rho: float, k_max: int = 200) -> float:
  """Φ_A = max(1, max_{1≤k≤k_max} ‖A^k‖₂ / ρ^k): the constant of ‖A^k‖₂ ≤ Φ_A ρ^k (1 when ρ ≈ 0)."""
  a = np.asarray(a, np.float64)
  if rho < 1e-6:
    return 1.0
  phi, power = 1.0, np.eye(a.shape[0])
  for k in range(1, k_max + 1):
    power = power @ a
    phi = max(phi, np.linalg.norm(power, 2) / rho**k)
  return float(phi)


def make_config(params: env.DynLinParams, horizon: int, *, rho: float | None = None, lam: float = 1.0,
                beta_scale: float = 1.0, myopic: bool = False) -> DynLinConfig:
  """Confidence constants of DynLin-UCB from the system (reference-code form):

      Ω = ‖1ᵀC‖₂, Θ = ‖1ᵀD‖₂, U = max_u ‖u‖₂, c1 = Θ + Ω‖B‖₂Φ_A/(1 − ρ), X = U/(1 − ρ),
      c2 = U Ω Φ_A (U‖B‖₂/(1 − ρ) + X),   σ̄² = σ²(1 + Ω²Φ_A²/(1 − ρ²)).

  `rho` defaults to ρ(A). `myopic=True` gives LinUCB on immediate rewards as in the reference code:
  block length 1 (ρ = 0 in the schedule) and c2 = 0, with the same c1 and σ̄.
  """
  if horizon < 1:
    raise ValueError(f"`horizon` must be >= 1, got {horizon}.")
  if lam <= 0 or beta_scale < 0:
    raise ValueError(f"`lam` must be > 0 and `beta_scale` >= 0, got {lam} and {beta_scale}.")
  a, b, c, d, sigma, actions = (np.asarray(v, np.float64) for v in params)
  rho = env.spectral_radius(a) if rho is None else float(rho)
  if not 0 <= rho < 1:
    raise ValueError(f"`rho` must lie in [0, 1), got {rho}.")
  omega, theta = np.linalg.norm(c.sum(0)), np.linalg.norm(d.sum(0))
  u_max = float(np.max(np.linalg.norm(actions, axis=1)))
  phi = spectral_bound(a, rho)
  bn = np.linalg.norm(b, 2)
  c1 = theta + omega * bn * phi / (1 - rho)
  sigma_bar = sigma * np.sqrt(1 + omega**2 * phi**2 / (1 - rho**2))
  c2 = 0.0 if myopic else u_max * omega * phi * (u_max * bn / (1 - rho) + u_max / (1 - rho))
  return DynLinConfig(float(horizon), 0.0 if myopic else rho, float(c1), float(c2), float(sigma_bar), u_max,
                      float(lam), float(beta_scale))


def block_length(m, rho) -> jax.Array:
  """L_m = 1 + ⌊log m / log(1/ρ)⌋ for the 1-based block index m (L_m = 1 when ρ < 1e-6): the
  smallest length with ρ^{L_m} < 1/m, so the transient left from the previous arm is O(1/m)."""
  m = jnp.asarray(m, jnp.result_type(float))
  rho = jnp.asarray(rho, m.dtype)
  inv_log = jnp.where(rho < 1e-6, 0.0, 1.0 / jnp.log(1.0 / jnp.maximum(rho, 1e-6)))
  # The 1e-9 guards exact powers m = ρ^{-k} against round-off one below the integer.
  return 1 + jnp.floor(jnp.log(m) * inv_log + 1e-9).astype(jnp.int32)


def beta(cfg: DynLinConfig, t, dim: int) -> jax.Array:
  """β_t = c1√λ + (c2/√λ) log(e(t+1)) + σ̄ sqrt(2 log T + p log(1 + tU²/(pλ))), times `beta_scale`;
  the first and last terms are the OFUL radius with S = c1, L = U, δ = 1/T."""
  t = jnp.asarray(t, jnp.result_type(float))
  oful = ridge.oful_radius(t, delta=1.0 / jnp.maximum(cfg.horizon, 2.0), lam=cfg.lam, s_norm=cfg.c1,
                           l_norm=cfg.u_max, sigma=cfg.sigma_bar, dim=dim)
  drift = cfg.c2 / jnp.sqrt(cfg.lam) * (1.0 + jnp.log1p(t))
  return cfg.beta_scale * (oful + drift)


def init(key: jax.Array, cfg: DynLinConfig, params: env.DynLinParams) -> AgentState:
  """Empty ridge statistics; block 1 (length L_1 = 1) plays a uniformly random arm."""
  n_arms, dim = params.actions.shape
  return AgentState(
      stats=ridge.ridge_init(dim, cfg.lam, params.actions.dtype),
      arm=jax.random.randint(key, (), 0, n_arms),
      pos=jnp.zeros((), jnp.int32), block=jnp.ones((), jnp.int32), length=block_length(1, cfg.rho),
      t=jnp.zeros((), jnp.int32), fresh=jnp.asarray(False),
  )


def act(cfg: DynLinConfig, state: AgentState, actions: jax.Array) -> tuple[jax.Array, dict]:
  """At a block start: a = argmax_u ĥᵀu + β_t ‖u‖_{V^{-1}} with ĥ = V^{-1}b; inside a block: the held arm."""
  h_hat = ridge.ridge_theta(state.stats)
  b_t = beta(cfg, state.t, actions.shape[1])
  ucb = actions @ h_hat + ridge.elliptical_bonus(actions, state.stats.v_inv, b_t)
  return jnp.where(state.fresh, jnp.argmax(ucb), state.arm), {"ucb": ucb, "beta": b_t, "h_hat": h_hat}


def update(cfg: DynLinConfig, state: AgentState, arm, u: jax.Array, reward) -> AgentState:
  """Counts the step; at the block's last step adds (u, reward) to the ridge statistics and opens
  block m + 1 of length L_{m+1}. Earlier rewards of the block are discarded (they carry transient)."""
  end = state.pos + 1 >= state.length
  block = state.block + end.astype(jnp.int32)
  return AgentState(
      stats=ridge.ridge_update(state.stats, u, reward, valid=end),
      arm=jnp.asarray(arm, state.arm.dtype),
      pos=jnp.where(end, 0, state.pos + 1),
      block=block,
      length=jnp.where(end, block_length(block, cfg.rho), state.length),
      t=state.t + 1,
      fresh=end,
  )


def run(key: jax.Array, cfg: DynLinConfig, params: env.DynLinParams, horizon: int) -> Trace:
  """One run of `horizon` (static) steps by lax.scan; pseudo-regret against the oracle value hᵀu*."""
  h, _, value = env.oracle(params)
  k_init, k_env, k_steps = jax.random.split(key, 3)
  env_state, _ = env.reset(k_env, params)

  def body(carry, k):
    agent, env_state = carry
    arm, _ = act(cfg, agent, params.actions)
    env_state, _, reward, _, _ = env.step(k, params, env_state, arm)
    u = params.actions[arm]
    return (update(cfg, agent, arm, u, reward), env_state), (arm, value - h @ u)

  _, (arms, inst) = jax.lax.scan(body, (init(k_init, cfg, params), env_state),
                                 jax.random.split(k_steps, horizon))
  return Trace(arms, jnp.cumsum(inst))
