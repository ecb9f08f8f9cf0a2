"""Curricula that do not learn: uniform over the arms, and the hand-designed easy→hard / hard→easy orders.

    uniform:       p_t(c) = 1/K
    easy_to_hard:  all mass on the arms of level ℓ(t) = min(L − 1, ⌊t·L / T⌋), uniform among them
    hard_to_easy:  the same with ℓ(t) replaced by L − 1 − ℓ(t)

t is the number of updates so far, T = `total_steps`, and `levels[c]` the difficulty level of arm c
(default: the arm index; for the toy suite's family × level arms, `arm % difficulties`), L levels in all.
These are the baselines of SEC (Chen et al. 2025, arXiv 2505.14970), whose reverse curriculum can stall
because early batches are all-fail groups with zero advantage.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp

from rljax.curricula import base


def uniform(num_arms: int, *, arms: Sequence[int] | None = None,
            weights: Sequence[float] | None = None) -> base.Curriculum:
  """Uniform over `arms` (default all K arms); with `weights` (`K` non-negative numbers, e.g. the arms' pool
  sizes) p(c) ∝ weights[c] over `arms`: uniform over a pool of prompts rather than over arms."""
  mask = _arm_mask(num_arms, arms)
  if weights is not None:
    w = [float(x) for x in weights]
    if len(w) != num_arms or min(w) < 0 or sum(m * x for m, x in zip(mask, w)) <= 0:
      raise ValueError(f"`weights` must give {num_arms} non-negative numbers with a positive sum over `arms`, "
                       f"got {weights}.")
    mask = mask * w
  p = jnp.asarray(mask / mask.sum(), jnp.float32)
  cfg = {"arms": None if arms is None else tuple(arms), "weights": None if weights is None else tuple(weights)}
  return base.Curriculum("uniform", num_arms, cfg, base.step_state, lambda state: p,
                         lambda state, fb: base.next_step(state))


def _arm_mask(num_arms, arms):
  import numpy as np

  mask = np.zeros(num_arms)
  ids = range(num_arms) if arms is None else list(arms)
  if not ids or any(not 0 <= int(a) < num_arms for a in ids):
    raise ValueError(f"`arms` must be non-empty arm ids in [0, {num_arms}), got {arms}.")
  mask[list(ids)] = 1.0
  return mask


def _ordered(name: str, reverse: bool):
  def factory(num_arms: int, *, total_steps: int, levels: Sequence[int] | None = None) -> base.Curriculum:
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
      raise ValueError(f"`total_steps` must be a positive int, got {total_steps!r}.")
    lv = list(range(num_arms)) if levels is None else [int(x) for x in levels]
    if len(lv) != num_arms or min(lv) < 0:
      raise ValueError(f"`levels` must give a non-negative level for each of the {num_arms} arms, got {levels}.")
    uniq = sorted(set(lv))
    rank = jnp.asarray([uniq.index(x) for x in lv], jnp.int32)  # levels may skip values
    n_levels = len(uniq)

    def probs(state):
      level = jnp.minimum(n_levels - 1, (state["step"] * n_levels) // total_steps)
      level = n_levels - 1 - level if reverse else level
      on = (rank == level).astype(jnp.float32)
      return on / on.sum()

    return base.Curriculum(name, num_arms, {"total_steps": total_steps, "levels": tuple(lv)}, base.step_state,
                           probs, lambda state, fb: base.next_step(state))

  return factory


easy_to_hard = _ordered("easy_to_hard", reverse=False)
hard_to_easy = _ordered("hard_to_easy", reverse=True)

base.register("uniform", uniform)
base.register("easy_to_hard", easy_to_hard)
base.register("hard_to_easy", hard_to_easy)
