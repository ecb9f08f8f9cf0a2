"""A stationary curriculum toy: K arms whose prompts have fixed success probabilities, no learning.

Each step the curriculum draws the arms of `prompts` prompts; prompt i of arm c gets G Bernoulli(p_c) rewards,
GRPO advantages (`rljax.losses.grpo_advantages`, Bessel std, ε = `adv_eps`), and the curriculum is updated from
them. Nothing changes the p_c, so a curriculum that scores arms by the learning signal they yield should settle
on the arm whose groups give the largest E|A|: the one closest to p = 1/2 (E|A| ∝ E sqrt(p̂(1 − p̂)); the SEC
and DUMP "picks the arm with the largest learning gain" checks of the curricula spec, §1.3 and §2.3).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import curricula
from rljax.losses import grpo_advantages


def make_run(curriculum: curricula.Curriculum, success_probs, *, steps: int, prompts: int, group_size: int,
             adv_eps: float = 1e-6):
  """`run(key) -> probs f32[steps + 1, K]`: the curriculum's distribution before each step and after the last
  (jittable; vmap it over keys for seeds)."""
  p = jnp.asarray(success_probs, jnp.float32)
  if p.shape != (curriculum.num_arms,) or bool(jnp.any((p < 0) | (p > 1))):
    raise ValueError(f"`success_probs` must be K = {curriculum.num_arms} probabilities, got {success_probs}.")
  for name, v in (("steps", steps), ("prompts", prompts), ("group_size", group_size)):
    if int(v) < (2 if name == "group_size" else 1):
      raise ValueError(f"`{name}` must be >= {2 if name == 'group_size' else 1}, got {v}.")
  B, G = int(prompts), int(group_size)

  def step(state, key):
    k_arm, k_r = jax.random.split(key)
    arms = curriculum.sample(state, k_arm, B)
    rewards = jax.random.bernoulli(k_r, p[arms][:, None], (B, G)).astype(jnp.float32)
    adv = grpo_advantages(rewards.reshape(-1), group_size=G, eps=adv_eps).reshape(B, G)
    probs = curriculum.probs(state)
    return curriculum.update(state, curricula.Feedback.of(arms, rewards, adv)), probs

  def run(key):
    state, probs = jax.lax.scan(step, curriculum.init(), jax.random.split(key, int(steps)))
    return jnp.concatenate([probs, curriculum.probs(state)[None]], axis=0)

  return run


def pick_rate(curriculum: curricula.Curriculum, success_probs, *, seeds: int, steps: int, prompts: int,
              group_size: int, target: int | None = None) -> float:
  """Fraction of `seeds` runs (vmapped; seed s uses PRNGKey(s)) whose final distribution has its largest mass on
  arm `target` (default: the arm with p closest to 1/2)."""
  p = jnp.asarray(success_probs, jnp.float32)
  target = int(jnp.argmin(jnp.abs(p - 0.5))) if target is None else int(target)
  run = make_run(curriculum, p, steps=steps, prompts=prompts, group_size=group_size)
  keys = jnp.stack([jax.random.PRNGKey(s) for s in range(int(seeds))])
  final = jax.jit(jax.vmap(run))(keys)[:, -1]
  return float(jnp.mean(jnp.argmax(final, axis=-1) == target))
