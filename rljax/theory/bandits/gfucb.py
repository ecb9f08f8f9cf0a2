"""GFUCB: optimism over a shared representation from a finite class Φ in multitask linear bandits.

Lu, Zhao, Du, Huang, "Provable General Function Class Representation Learning in Multitask Bandits
and MDPs", NeurIPS 2022. M tasks are played simultaneously; task i's reward is θ_iᵀφ*(x) + η with
one representation φ* ∈ Φ shared by all tasks. The confidence set over (φ, Θ) is a sublevel set of
the pooled least-squares loss, so the log|Φ| price of learning φ is paid once for all M tasks
instead of once per task.

Tractable instantiation (Φ finite, e.g. tanh nets φ_W(x) = tanh(Wᵀx) ∈ R^k): for every φ ∈ Φ and
task i keep the ridge statistics V_i(φ) = λI + Σ_s φφᵀ, b_i(φ) = Σ_s y φ (Sherman–Morrison, O(k²) per
sample), so that

    L_t(φ) = Σ_i min_θ [Σ_s (y_{s,i} − θᵀφ(x_{s,i}))² + λ‖θ‖²] = Σ_i (Σ_s y_{s,i}² − b_iᵀV_i^{-1}b_i),
    C_t = {φ : L_t(φ) ≤ min_φ' L_t(φ') + β_t},
    β_t = c_β σ² (M k log(1 + t L²/(kλ)) + 2 log(|Φ|/δ)),   L² = k (tanh features),

and act with the joint optimistic choice (φ shared by the tasks, θ_i in its OFUL ellipsoid):

    U_i(φ, a) = θ̂_i(φ)ᵀφ(x_{t,i,a}) + c_r √γ_t ‖φ(x_{t,i,a})‖_{V_i(φ)^{-1}},
    φ_t = argmax_{φ∈C_t} Σ_i max_a U_i(φ, a),   a_{t,i} = argmax_a U_i(φ_t, a),

with √γ_t the OFUL radius in k dimensions (`kernels.ridge.oful_radius`). With |Φ| = 1 this is M
independent OFUL learners. The M k log t term of β_t pays for the union over the M heads Θ; since
the uncertainty in Θ is already carried by the per-task ellipsoids, `heads_term=False` keeps only the
2σ² log(|Φ|/δ) representation term (the profile-likelihood width; without it the M k log t term
grows as fast as the pooled evidence against a wrong φ and hides the amortisation of log|Φ|).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax.theory.envs import linear_bandit as lbenv
from rljax.theory.kernels.ridge import elliptical_bonus, oful_radius, sherman_morrison


class Config(NamedTuple):
  lam: float = 1.0  # ridge λ
  sigma: float = 0.1  # noise sub-Gaussian scale σ
  delta: float = 0.05
  theta_bound: float = 1.0  # B ≥ ‖θ_i‖
  beta_scale: float = 1.0  # c_β in the confidence-set width β_t (inf keeps all of Φ, 0 only the LS φ)
  radius_scale: float = 1.0  # c_r on the per-task OFUL radius
  heads_term: bool = True  # include M k log(1 + t/λ) in β_t


class State(NamedTuple):
  phis: jax.Array  # [N, n, k] representation class
  v_inv: jax.Array  # [N, M, k, k]
  b: jax.Array  # [N, M, k]
  yy: jax.Array  # [M] Σ_s y²
  t: jax.Array  # rounds played
  active: jax.Array  # bool[M]: inactive tasks are inert (zero features, no data), so one compile serves every M


class Trace(NamedTuple):
  regret: jax.Array  # [T, M] per-round pseudo-regret
  phi_index: jax.Array  # [T] representation chosen by joint optimism
  set_size: jax.Array  # [T] |C_t|


def _check_cfg(cfg: Config) -> None:
  if cfg.lam <= 0:
    raise ValueError(f"`lam` must be positive, got {cfg.lam}.")
  if cfg.sigma < 0 or cfg.beta_scale < 0 or cfg.radius_scale < 0:
    raise ValueError(f"`sigma`, `beta_scale`, `radius_scale` must be non-negative, got {cfg}.")
  if not 0 < cfg.delta < 1:
    raise ValueError(f"`delta` must be in (0, 1), got {cfg.delta}.")


def init(key: jax.Array, cfg: Config, phis: jax.Array, n_tasks: int, active=None) -> State:
  """Empty statistics for every (φ, task): V^{-1} = I/λ, b = 0. `phis: [N, n, k]` are the W of Φ;
  `active: bool[n_tasks]` (default all) marks the tasks that are played."""
  del key
  _check_cfg(cfg)
  phis = jnp.asarray(phis)
  if phis.ndim != 3:
    raise ValueError(f"`phis` must be [N, n, k], got {phis.shape}.")
  if n_tasks < 1:
    raise ValueError(f"`n_tasks` must be positive, got {n_tasks}.")
  n_phi, _, k = phis.shape
  active = jnp.ones((n_tasks,), bool) if active is None else jnp.asarray(active, bool)
  if active.shape != (n_tasks,):
    raise ValueError(f"`active` must have shape ({n_tasks},), got {active.shape}.")
  eye = jnp.eye(k, dtype=phis.dtype) / cfg.lam
  return State(phis, jnp.broadcast_to(eye, (n_phi, n_tasks, k, k)), jnp.zeros((n_phi, n_tasks, k), phis.dtype),
               jnp.zeros((n_tasks,), phis.dtype), jnp.zeros((), jnp.int32), active)


def losses(state: State) -> jax.Array:
  """Pooled penalised least-squares loss L_t(φ) = Σ_i (Σ y² − b_iᵀV_i^{-1}b_i) for every φ: `[N]`."""
  fit = jnp.einsum("nmi,nmij,nmj->nm", state.b, state.v_inv, state.b)
  return jnp.sum(state.yy[None] - fit, axis=1)


def set_width(cfg: Config, state: State) -> jax.Array:
  """β_t = c_β σ² (M k log(1 + t/λ) + 2 log(|Φ|/δ)): the M-task width with ‖φ‖² ≤ L² = k (tanh features)."""
  n_phi, _, k = state.b.shape
  m = jnp.sum(state.active)
  t = state.t.astype(state.b.dtype)
  heads = m * k * jnp.log1p(t / cfg.lam) if cfg.heads_term else 0.0
  width = cfg.sigma**2 * (heads + 2.0 * math.log(n_phi / cfg.delta))
  return cfg.beta_scale * width


def confidence_set(cfg: Config, state: State) -> jax.Array:
  """Mask of C_t = {φ : L_t(φ) ≤ min L_t + β_t} over Φ: `bool[N]` (the LS minimiser is always in)."""
  loss = losses(state)
  return loss <= jnp.min(loss) + set_width(cfg, state)


def indices(cfg: Config, state: State, contexts: jax.Array) -> jax.Array:
  """Optimistic indices U_i(φ, a) = θ̂_i(φ)ᵀφ(x) + c_r √γ_t ‖φ(x)‖_{V_i(φ)^{-1}}: `[N, M, A]`."""
  k = state.b.shape[-1]
  contexts = jnp.where(state.active[:, None, None], contexts, 0.0)  # φ(0) = 0: inactive tasks score 0
  feats = jax.vmap(lbenv.representation, in_axes=(0, None))(state.phis, contexts)  # [N, M, A, k]
  theta = jnp.einsum("nmij,nmj->nmi", state.v_inv, state.b)
  radius = oful_radius(state.t, delta=cfg.delta, lam=cfg.lam, s_norm=cfg.theta_bound, l_norm=math.sqrt(k),
                       sigma=cfg.sigma, dim=k)
  bonus = jax.vmap(jax.vmap(elliptical_bonus))(feats, state.v_inv)  # [N, M, A]
  return jnp.einsum("nmak,nmk->nma", feats, theta) + cfg.radius_scale * radius * bonus


def act(cfg: Config, state: State, contexts: jax.Array) -> tuple[jax.Array, dict]:
  """Joint optimism: φ_t = argmax_{φ∈C_t} Σ_i max_a U_i(φ, a), then a_i = argmax_a U_i(φ_t, a).

  `contexts: [M, A, n]` → actions `[M]`; aux has the chosen φ index and |C_t|."""
  m = state.yy.shape[0]
  if contexts.ndim != 3 or contexts.shape[0] != m or contexts.shape[2] != state.phis.shape[1]:
    raise ValueError(f"`contexts` must be [M={m}, A, n={state.phis.shape[1]}], got {contexts.shape}.")
  u = indices(cfg, state, contexts)
  in_set = confidence_set(cfg, state)
  score = jnp.where(in_set, jnp.sum(jnp.max(u, axis=-1), axis=-1), -jnp.inf)
  j = jnp.argmax(score)
  return jnp.argmax(u[j], axis=-1), {"phi_index": j, "set_size": jnp.sum(in_set)}


def update(state: State, x_sel: jax.Array, y: jax.Array) -> State:
  """Adds (x_{t,i,a_{t,i}}, y_{t,i}) for every task to the statistics of every φ ∈ Φ:
  V_i(φ) += φφᵀ (Sherman–Morrison on V^{-1}), b_i(φ) += yφ, Σy² += y²."""
  m = state.yy.shape[0]
  if x_sel.shape != (m, state.phis.shape[1]) or y.shape != (m,):
    raise ValueError(f"`x_sel` must be [{m}, {state.phis.shape[1]}] and `y` [{m}], got {x_sel.shape}, {y.shape}.")
  x_sel, y = jnp.where(state.active[:, None], x_sel, 0.0), jnp.where(state.active, y, 0.0)
  feats = jax.vmap(lbenv.representation, in_axes=(0, None))(state.phis, x_sel)  # [N, M, k]
  v_inv = jax.vmap(jax.vmap(sherman_morrison))(state.v_inv, feats)
  return state._replace(v_inv=v_inv, b=state.b + y[None, :, None] * feats, yy=state.yy + y**2, t=state.t + 1)


def run(key: jax.Array, cfg: Config, env: lbenv.MultitaskParams, phis: jax.Array, horizon: int,
        active=None) -> Trace:
  """T rounds of GFUCB on the multitask environment (one `lax.scan`); vmap over `key` for seeds.
  Only `active` tasks are played (traced mask: the regret of inactive tasks is reported as 0)."""
  k_reset, k_scan = jax.random.split(key)
  env_state, obs = lbenv.multitask_reset(k_reset, env)
  state = init(key, cfg, phis, env.thetas.shape[0], active)

  def body(carry, k):
    st, es, x = carry
    a, aux = act(cfg, st, x)
    es2, x2, y, _, info = lbenv.multitask_step(k, env, es, a)
    x_sel = jnp.take_along_axis(x, a[:, None, None], axis=1)[:, 0]
    regret = jnp.where(st.active, info["regret"], 0.0)
    return (update(st, x_sel, y), es2, x2), Trace(regret, aux["phi_index"], aux["set_size"])

  _, trace = jax.lax.scan(body, (state, env_state, obs), jax.random.split(k_scan, horizon))
  return trace


def run_independent(key: jax.Array, cfg: Config, env: lbenv.MultitaskParams, phis: jax.Array, horizon: int) -> Trace:
  """Baseline: one single-task GFUCB per task (each pays log|Φ| alone); regret `[T, M]`."""
  keys = jax.random.split(key, env.thetas.shape[0])
  single = lambda k, th: run(k, cfg, env._replace(thetas=th[None]), phis, horizon)
  tr = jax.vmap(single)(keys, env.thetas)
  return Trace(tr.regret[..., 0].T, tr.phi_index.T, tr.set_size.T)
