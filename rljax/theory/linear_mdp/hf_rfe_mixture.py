"""Horizon-free reward-free exploration in linear mixture MDPs by uncertainty-weighted VTR.

Zhang, Zhang & Gu, "Optimal Horizon-Free Reward-Free Exploration for Linear Mixture MDPs", ICML 2023
(HF-UCRL-RFE++): after K = Õ(d²ε⁻²) reward-free episodes the learner outputs, for *every* reward with
Σ_h r_h ≤ 1, an ε-optimal policy; only polylog(H), with a matching Ω(d²ε⁻²) lower bound.

The model is P(s'|s,a) = ⟨φ(s'|s,a), θ*⟩, learned by value-targeted regression (VTR): for a value
function V, E[V(s')|s,a] = ⟨φ_V(s,a), θ*⟩ with φ_V = Σ_s' φ(s'|s,a)V(s') (`vtr_feature`). Per moment
level m = 0..M−1 (M = ⌈log₂H⌉ + 1) the learner keeps weighted ridge statistics

    Σ_m = λI + Σ_j σ̄_{j,m}⁻² φ_{j,m}φ_{j,m}ᵀ,   b_m = Σ_j σ̄_{j,m}⁻² φ_{j,m} V_j(s'_j)^{2^m},   θ̂_m = Σ_m⁻¹b_m,

with φ_{j,m} = φ_{V^{2^m}}(s_j,a_j) and the high-order-moment variance weights

    σ̄²_{j,m} = max{ V̄_{j,m} + E_{j,m}, α², γ²‖φ_{j,m}‖_{Σ_m⁻¹} },
    V̄_{j,m} = [⟨φ_{j,m+1}, θ̂_{m+1}⟩]_{[0,1]} − [⟨φ_{j,m}, θ̂_m⟩]²_{[0,1]}   (V̄ = 1 at the top level),
    E_{j,m} = min{1, β‖φ_{j,m+1}‖_{Σ_{m+1}⁻¹}} + min{1, 2β‖φ_{j,m}‖_{Σ_m⁻¹}}   (E = 0 at the top level),

so near-deterministic transitions get large weights. Exploration plans optimistically on θ̂₀ with the
pseudo-reward r(s,a) = min{1, β max_{V∈[0,1]^S}‖φ_V(s,a)‖_{Σ₀⁻¹}}/H — the largest one-step model
uncertainty over every value function the planner may later face (a convex maximum, attained on a
vertex V ∈ {0,1}^S), divided by H so that it is itself a reward with Σ_h r_h ≤ 1; `plan` then runs
value iteration on θ̂₀ for any given reward. `weighted=False` is the unweighted-VTR ablation (σ̄ ≡ 1).

[rljax] choices where the algorithm sketch is not specific: (a) the weights of an episode's H samples
use the statistics from the start of the episode, and the M levels are updated once per episode;
(b) the exploration policy is recomputed on a seed-independent geometric schedule (every episode up
to 10, then whenever K has grown by `replan_growth`), the vmap-friendly counterpart of the usual
determinant-doubling rule; (c) VTR is linear in V, so each step regresses on V^k_{h+1}/max_s V^k_{h+1}(s): the exploration values
shrink with the uncertainty, and unnormalised they would push the weights onto the α² floor and
starve the regression (at H = 1000 the model error then stalls); (d) α = 1/√K, γ = d^{-1/4},
λ = 1/B² with B = 1, β = 0.15√(d log(1 + K/d)) (0.3× the usual 0.5√(d log(1 + K/d)), chosen from
the grid {0.1, 0.3, 1}× on d = 8, H = 20).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.envs import linear_mixture_mdp as lmm
from rljax.theory.kernels import ridge


@dataclasses.dataclass(frozen=True)
class HfRfeConfig:
  dim: int
  horizon: int
  n_episodes: int  # K, sets the defaults of α and β
  n_levels: int | None = None  # M; None → ⌈log₂H⌉ + 1
  lam: float = 1.0
  alpha: float | None = None  # None → 1/√K
  gamma: float | None = None  # None → d^{-1/4}
  beta: float | None = None  # None → 0.15 √(d log(1 + K/d))
  weighted: bool = True  # False: unweighted VTR (σ̄ ≡ 1)
  plan_bonus: float = 0.0  # bonus multiplier (× β) in the planning phase; 0 is plain VI on θ̂₀
  replan_growth: float = 1.02  # exploration policy recomputed when K grows by this factor (1 → every episode)

  def __post_init__(self):
    if min(self.dim, self.horizon, self.n_episodes) < 1:
      raise ValueError(f"`dim`, `horizon` and `n_episodes` must be >= 1, got {self}.")
    defaults = {"n_levels": math.ceil(math.log2(self.horizon)) + 1, "alpha": 1.0 / math.sqrt(self.n_episodes),
                "gamma": self.dim ** -0.25, "beta": 0.15 * math.sqrt(self.dim * math.log1p(self.n_episodes / self.dim))}
    for name, value in defaults.items():
      if getattr(self, name) is None:
        object.__setattr__(self, name, value)
    if self.n_levels < 1:
      raise ValueError(f"`n_levels` must be >= 1, got {self.n_levels}.")
    if self.lam <= 0 or self.alpha <= 0 or self.gamma < 0 or self.beta < 0 or self.plan_bonus < 0:
      raise ValueError(f"need `lam`, `alpha` > 0 and `gamma`, `beta`, `plan_bonus` >= 0, got {self}.")
    if self.replan_growth < 1:
      raise ValueError(f"`replan_growth` must be >= 1, got {self.replan_growth}.")

  def replan_schedule(self) -> np.ndarray:
    """bool[K]: the episodes that start with a new exploration plan (seed-independent)."""
    k = np.arange(self.n_episodes)
    if self.replan_growth == 1:
      return np.ones(self.n_episodes, bool)
    grid = np.unique(np.ceil(self.replan_growth ** np.arange(int(np.log(self.n_episodes) / np.log(self.replan_growth)) + 2)))
    return (k < 10) | np.isin(k, grid)


class HfRfeState(NamedTuple):
  phi: jax.Array  # known features φ(s'|s,a) f[S,A,S,d]
  stats: ridge.RidgeState  # per moment level, leading axis M
  policy: jax.Array  # exploration policy i[H,S]
  values: jax.Array  # its optimistic values V^k f[H+1,S], the regression targets
  episodes: jax.Array
  plans: jax.Array


class Trajectory(NamedTuple):
  s: jax.Array  # i[H]
  a: jax.Array  # i[H]
  s_next: jax.Array  # i[H]


class Trace(NamedTuple):
  subopt: jax.Array  # V*_r − V^{π̂_r}_r per checkpoint and test reward f[C,R]
  theta_error: jax.Array  # ‖θ̂₀ − θ*‖₂ per checkpoint f[C]
  v_star: jax.Array  # f[R]
  episodes: jax.Array  # the checkpoints i[C]
  plans: jax.Array  # exploration plans made


def vtr_feature(phi, v) -> jax.Array:
  """φ_V(s,a) = Σ_s' φ(s'|s,a) V(s') for `phi: f[S,A,S,d]` and `v: f[...,S]`; returns `f[...,S,A,d]`."""
  phi, v = jnp.asarray(phi), jnp.asarray(v)
  if phi.ndim != 4 or v.shape[-1:] != phi.shape[2:3]:
    raise ValueError(f"need `phi` [S,A,S,d] and `v` [...,S] with S = {phi.shape[2:3]}, got {phi.shape} and {v.shape}.")
  return jnp.einsum("sand,...n->...sad", phi, v)


def weighted_ridge_update(stats: ridge.RidgeState, x, y, w) -> ridge.RidgeState:
  """All M moment levels at once: Σ_m += Σ_j w_{j,m} x_{j,m}x_{j,m}ᵀ, b_m += Σ_j w_{j,m} y_{j,m} x_{j,m}
  for `x: f[M,n,d]`, `y, w: f[M,n]` (w = σ̄⁻²)."""
  return jax.vmap(ridge.ridge_update_batch)(stats, x, y, w)


def explore_init(key, cfg: HfRfeConfig, phi) -> HfRfeState:
  """Empty statistics Σ_m = λI at every level; the first episode plans (`key` is unused: the
  learner is deterministic given the data)."""
  del key
  phi = jnp.asarray(phi)
  if phi.ndim != 4 or phi.shape[-1] != cfg.dim:
    raise ValueError(f"`phi` must be [S,A,S,{cfg.dim}], got {phi.shape}.")
  if phi.shape[0] > 12:
    raise ValueError(f"{phi.shape[0]} states: the pseudo-reward enumerates 2^S value vertices; use S <= 12.")
  stats = jax.vmap(lambda _: ridge.ridge_init(cfg.dim, cfg.lam, phi.dtype))(jnp.arange(cfg.n_levels))
  S = phi.shape[0]
  return HfRfeState(phi, stats, jnp.zeros((cfg.horizon, S), jnp.int32), jnp.zeros((cfg.horizon + 1, S), phi.dtype),
                    jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def model_uncertainty(phi, sigma_inv) -> jax.Array:
  """u(s,a) = max_{V∈[0,1]^S} ‖φ_V(s,a)‖_{Σ⁻¹}, exact by enumerating the vertices V ∈ {0,1}^S `f[S,A]`."""
  S = phi.shape[0]
  vertices = ((np.arange(2**S)[:, None] >> np.arange(S)) & 1).astype(np.float64)
  return ridge.elliptical_bonus(vtr_feature(phi, jnp.asarray(vertices, phi.dtype)), sigma_inv).max(0)


def _optimistic_vi(phi, theta, sigma_inv, reward, bonus_scale):
  """Q_h = clip(r_h + ⟨φ_{V_{h+1}}, θ⟩ + c‖φ_{V_{h+1}}‖_{Σ⁻¹}, 0, 1), V_h = max_a Q_h, V_H = 0 (the
  [0,1] truncation is the horizon-free one: every reward here has total ≤ 1). Returns (policy, V)."""

  def backup(v_next, r_h):
    feat = vtr_feature(phi, v_next)
    q = jnp.clip(r_h + feat @ theta + bonus_scale * ridge.elliptical_bonus(feat, sigma_inv), 0.0, 1.0)
    return q.max(-1), (q.argmax(-1).astype(jnp.int32), q.max(-1))

  v_end = jnp.zeros(phi.shape[0], theta.dtype)
  _, (policy, v) = jax.lax.scan(backup, v_end, reward, reverse=True)
  return policy, jnp.concatenate([v, v_end[None]])


def _level0(state: HfRfeState):
  stats0 = jax.tree.map(lambda x: x[0], state.stats)
  return ridge.ridge_theta(stats0), stats0.v_inv


def explore_plan(state: HfRfeState, cfg: HfRfeConfig) -> HfRfeState:
  """Optimistic VI on θ̂₀ for the pseudo-reward min{1, β u(s,a)}/H with bonus β‖φ_V‖_{Σ₀⁻¹}."""
  theta, sigma_inv = _level0(state)
  r = jnp.minimum(1.0, cfg.beta * model_uncertainty(state.phi, sigma_inv)) / cfg.horizon
  policy, values = _optimistic_vi(state.phi, theta, sigma_inv, jnp.broadcast_to(r, (cfg.horizon, *r.shape)), cfg.beta)
  return state._replace(policy=policy, values=values, plans=state.plans + 1)


def plan(state: HfRfeState, reward, cfg: HfRfeConfig) -> jax.Array:
  """Planning phase: greedy policy `i[H,S]` of value iteration on θ̂₀ for `reward: f[H,S,A]`
  (Σ_h r_h ≤ 1), with bonus `cfg.plan_bonus`·β‖φ_V‖_{Σ₀⁻¹} (0 by default)."""
  reward = jnp.asarray(reward)
  if reward.shape != (cfg.horizon, *state.phi.shape[:2]):
    raise ValueError(f"`reward` must be [H,S,A] = {(cfg.horizon, *state.phi.shape[:2])}, got {reward.shape}.")
  theta, sigma_inv = _level0(state)
  return _optimistic_vi(state.phi, theta, sigma_inv, reward, cfg.plan_bonus * cfg.beta)[0]


def rollout(key, env_params: lmm.MixtureMDP, policy) -> Trajectory:
  """One episode of the deterministic policy `i[H,S]` in the true MDP."""
  k0, key = jax.random.split(key)
  s0, _ = lmm.reset(k0, env_params)

  def one(s, xs):
    k, pol_h = xs
    a = pol_h[s]
    s_next, *_ = lmm.step(k, env_params, s, a)
    return s_next, (s, a, s_next)

  _, (s, a, s_next) = jax.lax.scan(one, s0, (jax.random.split(key, policy.shape[0]), policy))
  return Trajectory(s, a, s_next)


def regression_data(state: HfRfeState, traj: Trajectory, cfg: HfRfeConfig):
  """Features x `f[M,H,d]`, targets y `f[M,H]` and weights σ̄⁻² `f[M,H]` of an episode, level m
  regressing V_{h+1}(s_{h+1})^{2^m} on φ_{V_{h+1}^{2^m}}(s_h, a_h), with V_{h+1} = V^k_{h+1}/max_s V^k_{h+1}(s)."""
  v = state.values[1:]
  top = v.max(-1, keepdims=True)
  v = jnp.where(top > 0, v / jnp.where(top > 0, top, 1.0), 0.0)
  v_pow = v[None] ** (2.0 ** jnp.arange(cfg.n_levels))[:, None, None]  # [M,H,S]
  x = jnp.einsum("hnd,mhn->mhd", state.phi[traj.s, traj.a], v_pow)
  y = jnp.take_along_axis(v_pow, jnp.broadcast_to(traj.s_next[None, :, None], v_pow.shape[:2] + (1,)), -1)[..., 0]
  if not cfg.weighted:
    return x, y, jnp.ones_like(y)
  theta = jax.vmap(ridge.ridge_theta)(state.stats)
  pred = jnp.clip(jnp.einsum("mhd,md->mh", x, theta), 0.0, 1.0)
  width = jax.vmap(ridge.elliptical_bonus)(x, state.stats.v_inv)
  one = jnp.ones_like(pred[:1])
  var = jnp.concatenate([pred[1:] - pred[:-1] ** 2, one])
  err = jnp.concatenate([jnp.minimum(1.0, cfg.beta * width[1:]) + jnp.minimum(1.0, 2 * cfg.beta * width[:-1]), 0 * one])
  sigma2 = jnp.maximum(jnp.maximum(var + err, cfg.alpha**2), cfg.gamma**2 * width)
  return x, y, 1.0 / sigma2


def explore_episode(state: HfRfeState, env_params: lmm.MixtureMDP, key, cfg: HfRfeConfig, replan=True) -> HfRfeState:
  """One exploration episode: (re)plan when `replan` (traceable), roll out, update every level."""
  state = jax.lax.cond(replan, lambda s: explore_plan(s, cfg), lambda s: s, state)
  x, y, w = regression_data(state, rollout(key, env_params, state.policy), cfg)
  return state._replace(stats=weighted_ridge_update(state.stats, x, y, w), episodes=state.episodes + 1)


def run(key, cfg: HfRfeConfig, env_params: lmm.MixtureMDP, rewards, checkpoints: tuple) -> Trace:
  """K exploration episodes (one `lax.scan`); after each checkpoint count of episodes, `plan` for
  every test reward `f[R,H,S,A]` and charge V*_r − V^{π̂_r}_r, both exact. vmap over `key` (and
  `env_params`) for seeds."""
  checkpoints = np.asarray(checkpoints, np.int64)
  if checkpoints.ndim != 1 or checkpoints.min() < 1 or checkpoints.max() > cfg.n_episodes or np.any(np.diff(checkpoints) <= 0):
    raise ValueError(f"`checkpoints` must increase within [1, {cfg.n_episodes}], got {checkpoints}.")
  rewards = jnp.asarray(rewards)
  v_star = jax.vmap(lambda r: env_params.rho @ lmm.oracle(env_params, r).v[0])(rewards)
  eval_at = np.full(cfg.n_episodes, -1, np.int32)
  eval_at[checkpoints - 1] = np.arange(checkpoints.size)

  def evaluate(state):
    values = jax.vmap(lambda r: lmm.policy_value(env_params, r, plan(state, r, cfg)))(rewards)
    theta, _ = _level0(state)
    return v_star - values, jnp.linalg.norm(theta - env_params.theta)

  def body(carry, xs):
    state, subopt, err = carry
    k, replan, c = xs
    state = explore_episode(state, env_params, k, cfg, replan)
    subopt, err = jax.lax.cond(
        c >= 0, lambda: tuple(a.at[c].set(b) for a, b in zip((subopt, err), evaluate(state))), lambda: (subopt, err))
    return (state, subopt, err), None

  state = explore_init(key, cfg, env_params.phi)
  init = (state, jnp.zeros((checkpoints.size, rewards.shape[0]), v_star.dtype), jnp.zeros(checkpoints.size, v_star.dtype))
  xs = (jax.random.split(key, cfg.n_episodes), jnp.asarray(cfg.replan_schedule()), jnp.asarray(eval_at))
  (state, subopt, err), _ = jax.lax.scan(body, init, xs)
  return Trace(subopt, err, v_star, jnp.asarray(checkpoints), state.plans)
