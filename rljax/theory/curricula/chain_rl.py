"""GRPO on the skill chain (`rljax.tasks.skill_chain`) with a curriculum choosing the depth of every prompt.

PureJaxRL-style: `make_train(cfg, curriculum)` returns `train(rng)`, one jittable `lax.scan` over optimiser
steps; vmap it over seeds (`run_seeds`). One step t:

  1. candidates: N arm ids from `curriculum.sample(state, key, N)`; arm c is a problem of depth
     `cfg.train_depths[c]`. N = B without a filter, `refill_factor`·B with one (a fixed-size pool from
     which the batch is refilled).
  2. rollouts: G per problem, exact log-probabilities (the chain's sampled outcomes are held fixed, so
     ∇θ logp is the score function). With `curriculum.hints` = (ω_1, ..., ω_S) (GHPO), every problem is
     also rolled out with ⌊ω_k·d⌋ forced steps for k = 1..S, and a group keeps the rollouts of its
     first stage with a success (`rljax.curricula.ghpo.first_success_stage`; the last stage if none):
     the same distribution as regenerating only the still all-wrong groups stage by stage.
  3. filter (`curriculum.keep`, e.g. balanced difficulty filtering): the batch is the first B kept
     candidates in draw order; a shortfall leaves groups out of the update (`valid` False). Rollouts
     generated are counted up to the B-th kept candidate (all N on a shortfall), hinted stages included.
  4. update: GRPO advantages A (`rljax.losses.grpo_advantages`, Bessel std, ε = `adv_eps`) of the
     batch's groups, loss −Σ_valid A·logp / (B·G), one Adam (or SGD, `optimizer`) step on θ.
  5. curriculum: `update(state, Feedback(arms, rewards, A, depths, valid))`.

Recorded per step (leading axis T): `probs` f[T, K] (before the update), `theta` f[T, S] (after it),
`success` f[T, E] = exact P(solved | d) for `cfg.eval_depths` after the update (no hint), `reward` (batch
mean), `zero_adv` (fraction of the batch's groups with all-equal rewards), `kept` (fraction of candidates the
filter keeps), `rollouts` (generated this step), `stage_frac` f[T, S + 1] (fraction of the batch's groups ending at each
hint stage; [1.] without hints), `depth` (mean depth of the batch); with `cfg.record_feedback` also the
Feedback the curriculum received: `arm_ids` i[T, B], `advantages` f[T, B, G], `valid` bool[T, B].
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from rljax import curricula
from rljax.curricula import ghpo
from rljax.losses import grpo_advantages
from rljax.tasks import skill_chain


def chain_config(**overrides) -> ml_collections.ConfigDict:
  """The skill-chain run's fields (spec T.1 / SEC §1.4 defaults), with `overrides`."""
  c = ml_collections.ConfigDict(dict(
      num_skills=12,                       # θ ∈ R^S
      theta0=0.0,                          # θ at init: P(solved | d) = σ(θ0)^d
      train_depths=tuple(range(1, 9)),     # the depth of each arm
      eval_depths=tuple(range(1, 13)),     # exact success recorded per step (9..12: harder than training)
      prompts=32, group_size=8, lr=0.05, steps=400,
      optimizer="adam",                    # or "sgd": Adam's per-coordinate scaling makes rare signals count
      refill_factor=4,                     # candidate pool = refill_factor · prompts, with a filter
      adv_eps=1e-6,
      record_feedback=False))              # also record each step's Feedback (arm_ids, advantages, valid)
  c.update(overrides)
  return c


_OPTIMIZERS = {"adam": optax.adam, "sgd": optax.sgd}


def _check(cfg, curriculum) -> None:
  if cfg.get("optimizer", "adam") not in _OPTIMIZERS:
    raise ValueError(f"`optimizer` must be one of {sorted(_OPTIMIZERS)}, got {cfg.optimizer!r}.")
  depths = tuple(cfg.train_depths)
  if curriculum.num_arms != len(depths):
    raise ValueError(f"the curriculum has {curriculum.num_arms} arms but `train_depths` gives {len(depths)}.")
  for name in ("train_depths", "eval_depths"):
    d = tuple(cfg[name])
    if not d or any(not 1 <= x <= cfg.num_skills for x in d):
      raise ValueError(f"`{name}` must be depths in [1, num_skills={cfg.num_skills}], got {d}.")
  for name in ("prompts", "group_size", "steps", "refill_factor"):
    if int(cfg[name]) < 1:
      raise ValueError(f"`{name}` must be >= 1, got {cfg[name]}.")
  if int(cfg.group_size) < 2:
    raise ValueError(f"`group_size` must be >= 2 for group advantages, got {cfg.group_size}.")


def make_train(cfg: ml_collections.ConfigDict, curriculum: curricula.Curriculum):
  """`train(rng) -> (theta, curriculum state, per-step records)` (see the module docstring)."""
  _check(cfg, curriculum)
  B, G, T = int(cfg.prompts), int(cfg.group_size), int(cfg.steps)
  N = B * (int(cfg.refill_factor) if curriculum.keep is not None else 1)
  arm_depth = jnp.asarray(cfg.train_depths, jnp.int32)
  eval_depth = jnp.asarray(cfg.eval_depths, jnp.int32)
  omegas = jnp.asarray((0.0,) + tuple(curriculum.hints), jnp.float32)  # stage 0: no hint
  opt = _OPTIMIZERS[cfg.get("optimizer", "adam")](float(cfg.lr))

  def rollouts(theta, keys, depth):
    """Per stage: `(reward [S+1, N, G], logp [S+1, N, G])`."""
    hint = jnp.floor(omegas[:, None] * depth[None, :]).astype(jnp.int32)
    return jax.vmap(lambda k, h: skill_chain.sample_rollouts(k, theta, depth, G, h))(keys, hint)

  def step(carry, _):
    theta, opt_state, cstate, key = carry
    key, k_arm, k_roll = jax.random.split(key, 3)
    probs = curriculum.probs(cstate)
    arms = curriculum.sample(cstate, k_arm, N)
    depth = arm_depth[arms]
    stage_keys = jax.random.split(k_roll, omegas.shape[0])
    reward_s, _ = rollouts(theta, stage_keys, depth)
    stage = ghpo.first_success_stage(jnp.any(reward_s > 0, axis=-1))           # [N]
    reward = jnp.take_along_axis(reward_s, stage[None, :, None], axis=0)[0]  # [N, G]
    if curriculum.keep is not None:
      keep = jnp.asarray(curriculum.keep(reward), bool)
      order = jnp.argsort(~keep, stable=True)  # kept candidates first, in draw order
      idx = order[:B]
      valid = keep[idx]
      n_kept = jnp.sum(keep)
      used = jnp.where(n_kept >= B, jnp.argmax(jnp.cumsum(keep) == B) + 1, N)  # candidates consumed
    else:
      keep = jnp.ones((N,), bool)
      idx, valid, used = jnp.arange(B), jnp.ones((B,), bool), N
    consumed = jnp.arange(N) < used
    rollouts_made = G * jnp.sum(jnp.where(consumed, stage + 1, 0))
    r_b = reward[idx]
    adv = grpo_advantages(r_b.reshape(-1), group_size=G, eps=float(cfg.adv_eps),
                          valid=jnp.repeat(valid, G)).reshape(B, G)

    def loss_fn(th):
      _, logp_s = rollouts(th, stage_keys, depth)
      logp = jnp.take_along_axis(logp_s, stage[None, :, None], axis=0)[0][idx]
      return -jnp.sum(jnp.where(valid[:, None], adv * logp, 0.0)) / (B * G)

    grads = jax.grad(loss_fn)(theta)
    updates, opt_state = opt.update(grads, opt_state, theta)
    theta = optax.apply_updates(theta, updates)
    fb = curricula.Feedback(arms[idx], r_b, adv, jnp.broadcast_to(depth[idx, None], (B, G)).astype(jnp.float32),
                            valid)
    cstate = curriculum.update(cstate, fb)
    n_valid = jnp.maximum(jnp.sum(valid), 1)
    const = jnp.all(r_b == r_b[:, :1], axis=1)
    rec = dict(probs=probs, theta=theta, success=skill_chain.success_prob(theta, eval_depth),
               reward=jnp.sum(jnp.where(valid[:, None], r_b, 0.0)) / (n_valid * G),
               zero_adv=jnp.sum(valid & const) / n_valid, kept=jnp.mean(keep),
               rollouts=rollouts_made.astype(jnp.float32),
               stage_frac=jnp.sum(jax.nn.one_hot(stage[idx], omegas.shape[0]) * valid[:, None], 0) / n_valid,
               depth=jnp.sum(jnp.where(valid, depth[idx], 0)) / n_valid)
    if cfg.get("record_feedback", False):  # to replay the curriculum's updates offline (reference ports)
      rec.update(arm_ids=fb.arm_ids, advantages=fb.advantages, valid=fb.valid)
    return (theta, opt_state, cstate, key), rec

  def train(rng: jax.Array):
    theta = jnp.full((int(cfg.num_skills),), float(cfg.theta0), jnp.float32)
    carry = (theta, opt.init(theta), curriculum.init(), rng)
    (theta, _, cstate, _), records = jax.lax.scan(step, carry, None, length=T)
    return theta, cstate, records

  return train


def run_seeds(cfg: ml_collections.ConfigDict, curriculum: curricula.Curriculum, seeds: int | Sequence[int]):
  """`train` of every seed under one jit(vmap): `(theta [n, S], curriculum states, records [n, T, ...])`
  as NumPy arrays (seed s uses PRNGKey(s))."""
  ids = range(seeds) if isinstance(seeds, int) else seeds
  keys = jnp.stack([jax.random.PRNGKey(int(s)) for s in ids])
  out = jax.jit(jax.vmap(make_train(cfg, curriculum)))(keys)
  return jax.tree.map(np.asarray, out)


__all__ = ["chain_config", "make_train", "run_seeds"]
