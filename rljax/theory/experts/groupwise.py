"""Groupwise regret by sleeping experts over per-group online regressors (Acharya, Arunachaleswaran,
Kannan, Roth, Ziani, "Oracle Efficient Algorithms for Groupwise Regret", 2023).

One external-regret learner A_g per group (online ridge with the Vovk–Azoury–Warmuth forecast), updated
only on the rounds whose individual belongs to g; a sleeping-experts combiner (Hedge with awake masks,
or parameter-free AdaNormalHedge) mixes the awake learners' predictions. For every group,

    Regret_g(T) ≤ Regret_{A_g}(T_g) + O(√(T log m))      (fixed η),

against the best linear model fitted in hindsight on g's own subsequence. The group-blind baseline is
a single online ridge model on all rounds; `run` tracks both in one scan and returns per-group
cumulative losses and best-in-hindsight losses at equally spaced checkpoints.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax.theory.envs import groups_regression as env
from rljax.theory.kernels import ridge, sleeping
from rljax.theory.kernels.regression_oracles import vaw_predict

METAS = ("hedge", "anh")


class GroupwiseConfig(NamedTuple):
  n_groups: int = env.N_GROUPS  # m (the always-on group included)
  dim: int = 10
  lam: float = 1.0  # ridge λ of every base learner
  bound: float = 1.0  # |y| ≤ B; predictions are clipped to [−B, B] and losses scaled into [0, 1]
  meta: str = "hedge"
  horizon: int = 20_000  # T, sets the fixed Hedge step η = sqrt(8 log m / T)

  def validate(self) -> "GroupwiseConfig":
    if self.meta not in METAS:
      raise ValueError(f"`meta` must be one of {METAS}, got {self.meta!r}.")
    if self.n_groups < 1 or self.dim < 1 or self.horizon < 1:
      raise ValueError("`n_groups`, `dim` and `horizon` must be positive.")
    if self.lam <= 0 or self.bound <= 0:
      raise ValueError("`lam` and `bound` must be positive.")
    return self

  @property
  def eta(self) -> float:
    return (8.0 * max(math.log(self.n_groups), 1.0) / self.horizon) ** 0.5


class GroupwiseState(NamedTuple):
  learners: ridge.RidgeState  # batched over groups: leaves [m, ...]
  log_w: jax.Array  # sleeping-Hedge log weights [m]
  anh: sleeping.ANHState


def init(cfg: GroupwiseConfig) -> GroupwiseState:
  cfg.validate()
  learners = jax.vmap(lambda _: ridge.ridge_init(cfg.dim, cfg.lam))(jnp.arange(cfg.n_groups))
  return GroupwiseState(learners, jnp.zeros((cfg.n_groups,)), sleeping.anh_init(cfg.n_groups))


def scaled_loss(pred, y, bound) -> jax.Array:
  """(ŷ − y)² / (2B)², in [0, 1] when ŷ, y ∈ [−B, B]."""
  return (pred - y) ** 2 / (4.0 * bound**2)


def _check_groups(cfg: GroupwiseConfig, x, groups):
  groups = jnp.asarray(groups, bool)
  if groups.shape != (cfg.n_groups,):
    raise ValueError(f"`groups` must be a bool mask of shape ({cfg.n_groups},), got {groups.shape}.")
  if jnp.shape(x) != (cfg.dim,):
    raise ValueError(f"`x` must have shape ({cfg.dim},), got {jnp.shape(x)}.")
  return groups


def predict(state: GroupwiseState, x: jax.Array, groups: jax.Array, cfg: GroupwiseConfig):
  """Meta prediction ŷ = Σ_{g awake} p_g ŷ_g with ŷ_g = clip(VAW_g(x), −B, B) and p the sleeping-experts
  weights renormalised over the awake groups. Returns (ŷ, (ŷ_g [m], p [m]))."""
  groups = _check_groups(cfg, x, groups)
  preds = jnp.clip(jax.vmap(vaw_predict, in_axes=(0, None))(state.learners, x), -cfg.bound, cfg.bound)
  p = sleeping.hedge_probs(state.log_w, groups) if cfg.meta == "hedge" else sleeping.anh_probs(state.anh, groups)
  return p @ preds, (preds, p)


def update(state: GroupwiseState, x: jax.Array, y, groups: jax.Array, cfg: GroupwiseConfig) -> GroupwiseState:
  """After y is revealed: awake experts are charged r_g = ℓ(ŷ, y) − ℓ(ŷ_g, y) (Hedge: log w_g += η r_g;
  ANH: R_g += r_g, C_g += |r_g|) and the awake base learners add (x, y); asleep groups are untouched."""
  groups = _check_groups(cfg, x, groups)
  yhat, (preds, _) = predict(state, x, groups, cfg)
  expert_losses = scaled_loss(preds, y, cfg.bound)
  learner_loss = scaled_loss(yhat, y, cfg.bound)
  learners = jax.vmap(ridge.ridge_update, in_axes=(0, None, None, None, 0))(state.learners, x, y, 1.0, groups)
  log_w = sleeping.hedge_update(state.log_w, expert_losses, learner_loss, groups, cfg.eta)
  anh = sleeping.anh_update(state.anh, expert_losses, learner_loss, groups)
  return GroupwiseState(learners, log_w, anh)


class Trace(NamedTuple):
  """At each checkpoint, per group [C, m]: rounds T_g, cumulative scaled loss of the groupwise learner
  and of the group-blind baseline, and the best-in-hindsight linear model's scaled loss on g."""

  t: jax.Array
  count: jax.Array
  loss: jax.Array
  base_loss: jax.Array
  best_loss: jax.Array


def best_in_hindsight(gram: jax.Array, xy: jax.Array, yy: jax.Array, bound, jitter=1e-9) -> jax.Array:
  """min_β Σ_{s∈g} (y_s − βᵀx_s)² / (2B)² = (Σy² − bᵀG⁺b) / (2B)² from the group's sufficient statistics
  G = Σ x xᵀ, b = Σ y x (a tiny jitter keeps G invertible before d samples arrive)."""
  eye = jnp.eye(gram.shape[-1], dtype=gram.dtype)
  sol = jnp.linalg.solve(gram + jitter * eye, xy[..., None])[..., 0]
  return jnp.maximum(yy - jnp.sum(xy * sol, -1), 0.0) / (4.0 * bound**2)


def run(key: jax.Array, cfg: GroupwiseConfig, params: env.GroupsParams, n_checkpoints: int) -> Trace:
  """T = cfg.horizon rounds (nested lax.scan: n_checkpoints blocks of T/n_checkpoints rounds)."""
  cfg.validate()
  if cfg.horizon % n_checkpoints:
    raise ValueError(f"`n_checkpoints`={n_checkpoints} must divide the horizon {cfg.horizon}.")
  m, d = cfg.n_groups, cfg.dim
  dtype = params.beta.dtype
  zeros = jnp.zeros((m,), dtype)
  stats0 = (jnp.zeros((m, d, d), dtype), jnp.zeros((m, d), dtype), zeros, zeros, zeros, zeros)

  def round_(carry, k):
    state, base, (gram, xy, yy, cnt, loss, base_loss) = carry
    s = env.sample(k, params)
    yhat, _ = predict(state, s.x, s.groups, cfg)
    base_pred = jnp.clip(vaw_predict(base, s.x), -cfg.bound, cfg.bound)
    on = s.groups.astype(dtype)
    stats = (gram + on[:, None, None] * jnp.outer(s.x, s.x), xy + on[:, None] * s.y * s.x, yy + on * s.y**2,
             cnt + on, loss + on * scaled_loss(yhat, s.y, cfg.bound),
             base_loss + on * scaled_loss(base_pred, s.y, cfg.bound))
    return (update(state, s.x, s.y, s.groups, cfg), ridge.ridge_update(base, s.x, s.y), stats), None

  def block(carry, keys):
    carry, _ = jax.lax.scan(round_, carry, keys)
    gram, xy, yy, cnt, loss, base_loss = carry[2]
    return carry, (cnt, loss, base_loss, best_in_hindsight(gram, xy, yy, cfg.bound))

  keys = jax.random.split(key, cfg.horizon).reshape(n_checkpoints, cfg.horizon // n_checkpoints, -1)
  carry0 = (init(cfg), ridge.ridge_init(d, cfg.lam), stats0)
  _, (cnt, loss, base_loss, best) = jax.lax.scan(block, carry0, keys)
  t = (jnp.arange(n_checkpoints) + 1) * (cfg.horizon // n_checkpoints)
  return Trace(t, cnt, loss, base_loss, best)
