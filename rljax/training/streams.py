"""Prompt streams for the online loop: `online_step` turns an `OnlineRL` and a prompt source into the
`step_fn(state, batch)` of `rljax.training.train(..., data_from_state=True)`, with or without a curriculum.

Without a curriculum the source is `prompt_fn(pos) -> (prompts, prompt_mask, rows, demos)`, position `pos`
of a fixed stream (e.g. `rljax.text.PromptDataset.batch`). With one (`algo.curriculum`), the source is
`prompt_fn(pos, arm_ids, omega=0.0)`: the problems of position `pos` for the arms `arm_ids` (`i32[G]`) the
curriculum drew, with a solution prefix of ratio `omega` for GHPO's hint stages (every `omega` giving
prompts of one width). The arms of position pos + j are `curriculum.sample(state, fold_in(key_c, pos + j),
G)` with the curriculum's state in the train state, so a resumed run draws the same arms and prompts.

What `rljax.training.online.make_online_rl(..., curriculum=c)` does with it: the state is updated after every
iteration with the trained batch's `Feedback` (`curriculum_feedback`) and its probabilities are logged as
`curriculum/p<arm>`. `c.keep(rewards [G, n]) -> bool[G]` (on the verifier rewards) masks the dropped groups out of
the loss and refills the batch like dynamic sampling (up to `c.config["max_draws"]` batches, 4 by default);
`c.hints` (GHPO) resample the groups whose rollouts all fail from `prompt_fn(pos, arms, ω)`, stage by stage
(`hint_stages`; metrics `ghpo/stage<k>`); `c.shape_rewards(state, rewards, lengths, None)` replaces the rewards
before the advantages (the length budget).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rljax import curricula
from rljax.curricula.ghpo import first_success_stage
from rljax.training import distributed
from rljax.training.step import TrainState

_CURRICULUM_STREAM = 0x43555252  # folds the seed's key into the stream of arm draws (no rollout key uses it)


def curriculum_plan(curriculum, overlap: bool, max_draws: int) -> tuple[bool, bool, tuple, int]:
  """`(filters, shapes rewards, hint ratios, max prompt batches per iteration)` of an online loop's curriculum
  (None: none), after checking it combines with the loop's options."""
  if curriculum is None:
    return False, False, (), max_draws
  if not isinstance(curriculum, curricula.Curriculum):
    raise ValueError(f"`curriculum` must be a rljax.curricula.Curriculum, got {curriculum!r}.")
  if overlap:
    raise ValueError("`curriculum`: the next prompts depend on this iteration's feedback; run it without overlap.")
  keep, hints = curriculum.keep is not None, tuple(curriculum.hints)
  if keep and hints:
    raise ValueError(f"curriculum {curriculum.name!r}: a filter with refills and hint stages do not combine.")
  if keep:
    max_draws = max(max_draws, int(curriculum.config.get("max_draws", 4)))
  return keep, curriculum.shape_rewards is not None, hints, max_draws


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


def gather_groups(batches: list[dict], picks: list[tuple[int, int]], n: int, group_keys=()) -> dict:
  """The batch made of group `g` of batch `i` for each (i, g) in `picks`, in that order: `n` rows per group, one
  row for the per-prompt entries in `group_keys`; scalars are taken from the first batch."""
  out = {}
  for k in batches[0]:
    if jnp.ndim(batches[0][k]) == 0:
      out[k] = batches[0][k]
      continue
    per = 1 if k in group_keys else n
    out[k] = jnp.concatenate([batches[i][k][g * per:(g + 1) * per] for i, g in picks], axis=0)
  return out


def hint_stages(batch: dict, collect: Callable, hint_fn: Callable, omegas, n: int, group_keys=()):
  """GHPO's stages: for ω_k in `omegas`, while some group of `batch` has no success, `collect(*hint_fn(ω_k), k)`
  rolls out the same problems with a solution prefix; each group keeps its first stage with a success
  (`first_success_stage`; the last stage run otherwise). Returns `(merged batch, fraction of groups per stage)`."""
  batches = [batch]
  success = [distributed.host_all(batch["rewards"]).reshape(-1, n).max(axis=1) > 0]
  shape = (batch["mask"].shape[0] // n, batch["tokens"].shape[1] - batch["mask"].shape[1])
  for k, omega in enumerate(omegas, 1):
    if np.any(success, axis=0).all():
      break
    p, pm, rows, demos = hint_fn(omega)
    if jnp.shape(p) != shape:  # the merged batch stacks their rows
      raise ValueError(f"`hint_fn({omega})` must return prompts of the batch's shape {shape}, got {jnp.shape(p)}.")
    batches.append(collect(p, pm, rows, demos, k))
    success.append(distributed.host_all(batches[-1]["rewards"]).reshape(-1, n).max(axis=1) > 0)
  stage = np.asarray(first_success_stage(np.stack(success)))
  frac = np.bincount(stage, minlength=len(omegas) + 1) / len(stage)
  if len(batches) == 1:
    return batch, frac
  return gather_groups(batches, [(int(s), g) for g, s in enumerate(stage)], n, group_keys), frac


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


__all__ = ["curriculum_feedback", "curriculum_plan", "gather_groups", "hint_stages", "online_step"]
