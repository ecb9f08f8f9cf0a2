"""Prompt streams for the online loop: `online_step` turns an `OnlineRL` and a prompt source into the
`step_fn(state, batch)` of `rljax.training.train(..., data_from_state=True)`, with or without a curriculum.

Without a curriculum the source is `prompt_fn(pos) -> (prompts, prompt_mask, rows, demos)`, position `pos`
of a fixed stream (e.g. `rljax.text.PromptDataset.batch`). With one (`algo.curriculum`), the source is
`prompt_fn(pos, arm_ids, omega=0.0)`: the problems of position `pos` for the arms `arm_ids` (`i32[G]`) the
curriculum drew, with a solution prefix of ratio `omega` for GHPO's hint stages (every `omega` giving
prompts of one width). The arms of position pos + j are `curriculum.sample(state, fold_in(key_c, pos + j),
G)` with the curriculum's state in the train state, so a resumed run draws the same arms and prompts.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from rljax import curricula
from rljax.training.step import TrainState

_CURRICULUM_STREAM = 0x43555252  # folds the seed's key into the stream of arm draws (no rollout key uses it)


def curriculum_feedback(batch: dict, n: int) -> curricula.Feedback:
  """The `Feedback` of a rollout batch of G prompts × n responses (rows grouped contiguously): its
  `arm_ids`, verifier rewards, each response's token-masked mean advantage, response lengths, and which
  groups count (`keep`, when a filter dropped some)."""
  m = batch["mask"]
  adv = batch["advantages"]
  lengths = jnp.sum(m, -1).astype(jnp.float32)
  seq = adv if adv.ndim == 1 else jnp.sum(jnp.where(m, adv, 0.0), -1) / jnp.maximum(lengths, 1.0)
  valid = batch["keep"].reshape(-1, n).any(axis=1) if "keep" in batch else jnp.ones(batch["arm_ids"].shape, bool)
  return curricula.Feedback(batch["arm_ids"], batch["rewards"].reshape(-1, n), seq.reshape(-1, n),
                            lengths.reshape(-1, n), valid)


def online_step(algo, update_fn: Callable, prompt_fn: Callable[..., tuple], *, seed: int = 0,
                num_prompts: int | None = None):
  """A `step_fn(state, batch)` for `rljax.training.train(..., data_from_state=True)`: one `rl_iteration`.

  Without a curriculum, `batch` is `prompt_fn(state.data_pos)` from the loop, refills read `prompt_fn(pos + j)`,
  and `state.data_pos` advances by the batches drawn, so a resumed run reads the same prompts. The rollout key
  is `fold_in(PRNGKey(seed), step)`. With an overlapped `algo`, the next iteration's rollout (`prompt_fn` at the
  advanced position, its key) is sampled during this one's updates (after the last iteration, for nothing).

  With `algo.curriculum`, the loop's `batch` is ignored: `num_prompts` arms are drawn from the curriculum state
  in `state.extra["curriculum"]` and `prompt_fn(pos, arms[, omega])` makes the prompts (module docstring).
  """
  base = jax.random.PRNGKey(seed)
  curriculum = getattr(algo, "curriculum", None)
  if curriculum is not None and (isinstance(num_prompts, bool) or not isinstance(num_prompts, int)
                                 or num_prompts < 1):
    raise ValueError(f"`num_prompts` must be a positive int with a curriculum, got {num_prompts!r}.")
  arm_key = jax.random.fold_in(base, _CURRICULUM_STREAM)
  sample = jax.jit(curriculum.sample, static_argnums=2) if curriculum is not None else None

  def step_fn(state: TrainState, batch):
    pos, step = int(state.data_pos), int(state.step)
    key = jax.random.fold_in(base, step)
    if curriculum is None:
      prompts, prompt_mask, rows, demos = batch

      def upcoming(draws):
        next_prompts, next_mask, next_rows, _ = prompt_fn(pos + draws)
        return next_prompts, next_mask, jax.random.fold_in(base, step + algo.updates_per_iteration), next_rows

      state, metrics = algo.rl_iteration(state, update_fn, prompts, prompt_mask, key, rows=rows, demos=demos,
                                         refill=lambda j: prompt_fn(pos + j), upcoming=upcoming)
    else:
      cstate = state.extra["curriculum"]

      def draw(j):
        arms = sample(cstate, jax.random.fold_in(arm_key, pos + j), num_prompts)
        return (*prompt_fn(pos + j, arms), arms)

      prompts, prompt_mask, rows, demos, arms = draw(0)
      hint_fn = (lambda omega: prompt_fn(pos, arms, omega)) if curriculum.hints else None
      state, metrics = algo.rl_iteration(state, update_fn, prompts, prompt_mask, key, rows=rows, demos=demos,
                                         refill=draw, arms=arms, hint_fn=hint_fn)
    # `full_like` keeps the counter's placement (global under jax.distributed: the update does not recompile).
    return state._replace(data_pos=jnp.full_like(state.data_pos, pos + int(metrics["gen_batches"]))), metrics

  return step_fn


__all__ = ["curriculum_feedback", "online_step"]
