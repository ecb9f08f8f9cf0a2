"""The curriculum interface: a pure, checkpointable policy over task arms, and the registry of curricula by name.

A curriculum decides which arm (a task family × difficulty of `rljax.tasks.toy_suite`, a data source, a
depth of the skill chain) each prompt of the next batch comes from, and learns from what the batch gave:

    state = c.init()                          # a pytree of fixed-shape arrays (checkpointed with the train state)
    p     = c.probs(state)                    # f32[K], the sampling distribution over the K arms
    arms  = c.sample(state, key, n)           # i32[n], i.i.d. draws from p
    state = c.update(state, feedback)         # after the rollouts: rewards, advantages, lengths per arm

Everything is jittable and vmappable over seeds (no Python branching on data). Some curricula also act on
the rollout itself, through optional fields the online loop reads:

  * `keep(rewards f32[B, G]) -> bool[B]`: a filter on the groups of a rollout (balanced online difficulty
    filtering); the loop refills the batch with kept groups, as DAPO's dynamic sampling does.
  * `hints`: GHPO's staged hint ratios ω_1 < ω_2 < ...: a group whose rollouts all fail is resampled from
    its prompt followed by the first round(ω_k·|solution|) solution tokens, stage by stage.
  * `shape_rewards(state, rewards f32[B·G], lengths f32[B·G], answer_ok bool[B·G] | None) -> f32[B·G]`: a
    reward that depends on the curriculum's state (the length budget of Train Long, Think Short).

The registry maps a name to a factory `factory(num_arms, **options) -> Curriculum`; `make(config, num_arms)`
builds one from a config whose `name` field picks it (the other fields are the factory's options).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rljax.curricula import bandit


class Feedback(NamedTuple):
  """What one rollout batch of B prompts × G responses tells a curriculum.

  arm_ids: `i32[B]` the arm of each prompt.
  rewards: `f32[B, G]` verifier rewards.
  advantages: `f32[B, G]` each response's sequence advantage (its token-masked mean advantage).
  lengths: `f32[B, G]` response lengths in tokens.
  valid: `bool[B]` prompts that count (False: padding, or a group left out of the update).
  """

  arm_ids: jax.Array
  rewards: jax.Array
  advantages: jax.Array
  lengths: jax.Array
  valid: jax.Array

  @classmethod
  def of(cls, arm_ids, rewards, advantages=None, lengths=None, valid=None) -> "Feedback":
    """A Feedback with defaults: GRPO advantages of `rewards` are not computed here (zeros when absent),
    lengths zeros, every prompt valid."""
    rewards = jnp.asarray(rewards, jnp.float32)
    if rewards.ndim != 2:
      raise ValueError(f"`rewards` must be f[B, G], got shape {rewards.shape}.")
    arm_ids = jnp.asarray(arm_ids, jnp.int32)
    if arm_ids.shape != rewards.shape[:1]:
      raise ValueError(f"`arm_ids` must be i32[B] for B = {rewards.shape[0]}, got shape {arm_ids.shape}.")
    z = jnp.zeros_like(rewards)
    adv = z if advantages is None else jnp.asarray(advantages, jnp.float32)
    lens = z if lengths is None else jnp.asarray(lengths, jnp.float32)
    for name, x in (("advantages", adv), ("lengths", lens)):
      if x.shape != rewards.shape:
        raise ValueError(f"`{name}` must have the rewards' shape {rewards.shape}, got {x.shape}.")
    v = jnp.ones(rewards.shape[:1], bool) if valid is None else jnp.asarray(valid, bool)
    if v.shape != rewards.shape[:1]:
      raise ValueError(f"`valid` must be bool[B] for B = {rewards.shape[0]}, got shape {v.shape}.")
    return cls(arm_ids, rewards, adv, lens, v)


class Curriculum(NamedTuple):
  """A curriculum's pure functions (see the module docstring). `config` holds its options (static)."""

  name: str
  num_arms: int
  config: Mapping[str, Any]
  init: Callable[[], Any]
  probs: Callable[[Any], jax.Array]
  update: Callable[[Any, Feedback], Any]
  keep: Callable[[jax.Array], jax.Array] | None = None
  hints: tuple[float, ...] = ()
  shape_rewards: Callable[..., jax.Array] | None = None

  def sample(self, state, key: jax.Array, n: int) -> jax.Array:
    """`i32[n]` arm ids drawn i.i.d. from `probs(state)`."""
    return bandit.sample_arms(key, self.probs(state), n)


_REGISTRY: dict[str, Callable[..., Curriculum]] = {}


def register(name: str, factory: Callable[..., Curriculum]) -> None:
  """Adds `factory(num_arms, **options) -> Curriculum` under `name`."""
  if name in _REGISTRY:
    raise ValueError(f"curriculum {name!r} is already registered.")
  _REGISTRY[name] = factory


def names() -> tuple[str, ...]:
  return tuple(sorted(_REGISTRY))


def make(config: str | Mapping[str, Any], num_arms: int, **options) -> Curriculum:
  """The curriculum named by `config` (a name, or a mapping / ConfigDict whose `name` picks it and whose other
  fields are options) over `num_arms` arms; keyword `options` override the config's."""
  if isinstance(config, str):
    name, opts = config, {}
  else:
    opts = dict(config.to_dict() if hasattr(config, "to_dict") else config)
    if "name" not in opts:
      raise ValueError(f"a curriculum config needs a `name` field; got fields {sorted(opts)}.")
    name = opts.pop("name")
  if name not in _REGISTRY:
    raise ValueError(f"unknown curriculum {name!r}; known: {', '.join(names())}.")
  if isinstance(num_arms, bool) or not isinstance(num_arms, int) or num_arms < 1:
    raise ValueError(f"`num_arms` must be a positive int, got {num_arms!r}.")
  return _REGISTRY[name](num_arms, **{**opts, **options})


def step_state() -> dict[str, jax.Array]:
  """The state every curriculum carries: the number of updates so far."""
  return {"step": jnp.zeros((), jnp.int32)}


def next_step(state: dict) -> dict:
  return {**state, "step": state["step"] + 1}
