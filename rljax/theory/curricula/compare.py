"""Several curricula on the skill chain under one compile: a curriculum picked by a traced index.

`chain_rl.run_seeds` compiles one program per curriculum, and compiling dominates a small run (seconds per
program against a fraction of a second to run 400 steps × 32 seeds on CPU). `run_curricula` instead traces
`chain_rl.make_train` once with `switched(curricula, which)`, whose state is the tuple of every curriculum's state
and whose `probs` is `lax.switch(which, ...)`, and vmaps it over `which` and the seeds. Every member's state sees
the same feedback (the one the chosen member's arms produced); only the chosen member's `probs` draws arms, so
each run is exactly the run of that member alone (same keys, same records).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rljax import curricula
from rljax.theory.curricula import chain_rl


def switched(members: Sequence[curricula.Curriculum], which: jax.Array) -> curricula.Curriculum:
  """The curriculum `members[which]` (`which` may be traced). Members must share `num_arms` and have no `keep`
  filter or `hints` (those change the rollout's shapes, which cannot depend on a traced index)."""
  members = tuple(members)
  if not members:
    raise ValueError("`members` must not be empty.")
  if len({c.num_arms for c in members}) != 1:
    raise ValueError(f"members must share num_arms, got {[c.num_arms for c in members]}.")
  bad = [c.name for c in members if c.keep is not None or c.hints]
  if bad:
    raise ValueError(f"curricula with a `keep` filter or `hints` cannot be switched by a traced index: {bad}.")

  def init():
    return {"step": jnp.zeros((), jnp.int32), "members": tuple(c.init() for c in members)}

  def probs(state):
    return jax.lax.switch(which, [lambda s, c=c, i=i: c.probs(s[i]) for i, c in enumerate(members)],
                          state["members"])

  def update(state, fb):
    return {"step": state["step"] + 1, "members": tuple(c.update(s, fb) for c, s in zip(members, state["members"]))}

  return curricula.Curriculum("switched", members[0].num_arms, {"members": tuple(c.name for c in members)},
                              init, probs, update)


def run_curricula(cfg, members: Mapping[str, curricula.Curriculum], seeds: int | Sequence[int]) -> dict[str, dict]:
  """`{name: {"theta": [n, S], "state": the member's final state, "records": {key: [n, T, ...]}}}` for every
  curriculum of `members` and every seed (seed s uses PRNGKey(s), the same keys for every curriculum), as NumPy
  arrays, from one jit(vmap(vmap(train)))."""
  names, cs = tuple(members), tuple(members.values())
  ids = range(seeds) if isinstance(seeds, int) else seeds
  keys = jnp.stack([jax.random.PRNGKey(int(s)) for s in ids])
  one = lambda which, key: chain_rl.make_train(cfg, switched(cs, which))(key)
  theta, state, records = jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))(jnp.arange(len(cs)), keys)
  theta, state, records = jax.tree.map(np.asarray, (theta, state, records))
  return {name: {"theta": theta[i], "state": jax.tree.map(lambda x, i=i: x[i], state["members"][i]),
                 "records": jax.tree.map(lambda x, i=i: x[i], records)} for i, name in enumerate(names)}
