"""Tabular two-player zero-sum extensive-form games as arrays, and CFR+ on them.

Used by LSPO (Xu et al., "Learning Strategic Language Agents in the Werewolf Game", ICML 2025) to
solve its abstracted game; CFR+ is Tammelin et al. 2015 ("Solving large imperfect information games
using CFR+"): regret matching+, alternating updates, linearly weighted strategy averaging.

A game is a tree of H nodes stored parents-before-children (breadth first). Node h has an owner
`player[h]` (0, 1, `CHANCE` or `TERMINAL`), children `children[h, a]` (−1 where absent), chance
probabilities, a player-0 payoff `utility[h]` at terminals and, for player nodes, an information
set. Every tree pass is `depth` rounds of one vectorised gather (a fixed point reached after depth
rounds), so all functions jit and vmap.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Hashable

import jax
import jax.numpy as jnp
import numpy as np

CHANCE = -1
TERMINAL = -2


@dataclasses.dataclass(frozen=True)
class TabularEFG:
  """Array form of a two-player zero-sum game tree (see the module docstring).

  Fields: `player i[H]`, `parent i[H]` (root: 0), `action_of i[H]` (the action leading from the
  parent; root: 0), `children i[H,A]`, `infoset i[H]` (−1 off player nodes), `chance_probs f[H,A]`,
  `utility f[H]` (player 0's payoff, 0 off terminals), `infoset_player i[I]`, `legal bool[I,A]`;
  static `depth` (longest root-to-leaf path).
  """

  player: Any
  parent: Any
  action_of: Any
  children: Any
  infoset: Any
  chance_probs: Any
  utility: Any
  infoset_player: Any
  legal: Any
  depth: int = dataclasses.field(metadata=dict(static=True))

  @property
  def num_infosets(self) -> int:
    return self.legal.shape[-2]

  def replace(self, **kw) -> "TabularEFG":
    return dataclasses.replace(self, **kw)


jax.tree_util.register_dataclass(TabularEFG)

Expansion = tuple  # ("terminal", u) | ("chance", [(p, child)...]) | ("player", i, key, [child...])


def build_efg(root: Hashable, expand: Callable[[Hashable], Expansion]) -> tuple[TabularEFG, dict]:
  """Builds a `TabularEFG` breadth first from `expand(history)`; returns it and `{infoset key: id}`.

  `expand` returns ("terminal", u0), ("chance", [(prob, child), ...]) or ("player", i, infoset_key,
  [child, ...]). Raises ValueError when chance probabilities do not sum to 1, when the nodes of one
  information set disagree on player/number of actions, or sit at different depths (the tree passes
  need equal depths inside an information set).
  """
  queue, nodes, depth_of = [(root, 0, 0, 0)], [], []
  keys: dict = {}
  head = 0
  while head < len(queue):
    hist, par, act, dep = queue[head]
    idx = head
    head += 1
    kind = expand(hist)
    nodes.append((kind, par, act))
    depth_of.append(dep)
    if kind[0] == "chance":
      probs = [p for p, _ in kind[1]]
      if abs(sum(probs) - 1.0) > 1e-9 or min(probs) < 0:
        raise ValueError(f"chance probabilities at {hist!r} must be >= 0 and sum to 1, got {probs}.")
      queue.extend((c, idx, a, dep + 1) for a, (_, c) in enumerate(kind[1]))
    elif kind[0] == "player":
      _, i, key, kids = kind
      if key in keys:
        ki, kn, kd = keys[key]
        if (ki, kn, kd) != (i, len(kids), dep):
          raise ValueError(f"information set {key!r} mixes players, action counts or depths.")
      else:
        keys[key] = (i, len(kids), dep)
      queue.extend((c, idx, a, dep + 1) for a, c in enumerate(kids))
    elif kind[0] != "terminal":
      raise ValueError(f"`expand` returned an unknown node kind {kind[0]!r}.")
  n, ids = len(nodes), {k: j for j, k in enumerate(keys)}
  n_act = max(len(k[1]) if k[0] == "chance" else len(k[3]) for k, _, _ in nodes if k[0] != "terminal")
  player = np.full(n, TERMINAL, np.int32)
  infoset = np.full(n, -1, np.int32)
  children = np.full((n, n_act), -1, np.int32)
  chance = np.zeros((n, n_act))
  utility = np.zeros(n)
  parent = np.array([p for _, p, _ in nodes], np.int32)
  action_of = np.array([a for _, _, a in nodes], np.int32)
  for h in range(1, n):
    children[parent[h], action_of[h]] = h
  for h, (kind, _, _) in enumerate(nodes):
    if kind[0] == "terminal":
      utility[h] = kind[1]
    elif kind[0] == "chance":
      player[h] = CHANCE
      chance[h, : len(kind[1])] = [p for p, _ in kind[1]]
    else:
      player[h], infoset[h] = kind[1], ids[kind[2]]
  legal = np.zeros((len(ids), n_act), bool)
  infoset_player = np.zeros(len(ids), np.int32)
  for key, (i, na, _) in keys.items():
    legal[ids[key], :na] = True
    infoset_player[ids[key]] = i
  # NumPy leaves: the dtype is fixed when a jitted function first touches them, under its x64 mode.
  game = TabularEFG(player, parent, action_of, children, infoset, chance, utility, infoset_player,
                    legal, int(max(depth_of)))
  return game, ids


def regret_matching(regrets: jax.Array, legal: jax.Array) -> jax.Array:
  """σ(a|I) = R⁺(I,a) / Σ_b R⁺(I,b) over legal actions; uniform over legal actions when Σ R⁺ = 0."""
  pos = jnp.where(legal, jnp.maximum(regrets, 0.0), 0.0)
  total = jnp.sum(pos, axis=-1, keepdims=True)
  uniform = legal / jnp.maximum(jnp.sum(legal, axis=-1, keepdims=True), 1)
  return jnp.where(total > 0, pos / jnp.where(total > 0, total, 1.0), uniform)


def uniform_strategy(game: TabularEFG) -> jax.Array:
  """σ(a|I) = 1/|A(I)| on legal actions."""
  return regret_matching(jnp.zeros(jnp.shape(game.legal)), jnp.asarray(game.legal))


def _node_action_probs(game: TabularEFG, sigma: jax.Array) -> jax.Array:
  """P(h, a): chance probabilities at chance nodes, σ(a | I(h)) at player nodes, 0 at terminals."""
  at_player = sigma[jnp.maximum(game.infoset, 0)]
  probs = jnp.where((game.player == CHANCE)[:, None], game.chance_probs, at_player)
  return jnp.where((game.player == TERMINAL)[:, None], 0.0, probs)


def reach_probabilities(game: TabularEFG, sigma: jax.Array) -> jax.Array:
  """π_q(h) for q = player 0, player 1, chance: `f[3, H]`, each the product of q's own edge
  probabilities on the path to h, so that π(h) = π_0 π_1 π_c."""
  probs = _node_action_probs(game, sigma)
  edge = probs[game.parent, game.action_of]  # probability of the edge into h
  owner = game.player[game.parent]
  owner = jnp.where(owner == CHANCE, 2, owner)
  is_root = jnp.arange(game.player.shape[0]) == 0
  factor = jnp.where((owner[None, :] == jnp.arange(3)[:, None]) & ~is_root, edge, 1.0)
  body = lambda _, r: jnp.where(is_root, 1.0, r[:, game.parent] * factor)
  return jax.lax.fori_loop(0, game.depth, body, jnp.ones((3, game.player.shape[0])), unroll=True)


def _children_values(game: TabularEFG, v: jax.Array) -> jax.Array:
  return jnp.where(game.children >= 0, v[jnp.maximum(game.children, 0)], 0.0)


def node_values(game: TabularEFG, sigma: jax.Array) -> jax.Array:
  """v(h) = u_0(h) at terminals, Σ_a P(h,a) v(child(h,a)) elsewhere: player 0's expected payoff."""
  probs = _node_action_probs(game, sigma)
  terminal = game.player == TERMINAL
  body = lambda _, v: jnp.where(terminal, game.utility, jnp.sum(probs * _children_values(game, v), -1))
  return jax.lax.fori_loop(0, game.depth + 1, body, jnp.asarray(game.utility), unroll=True)


def game_value(game: TabularEFG, sigma: jax.Array) -> jax.Array:
  """Player 0's expected payoff when both play σ: v(root)."""
  check_strategy(game, sigma)
  return node_values(game, sigma)[0]


def _opponent_reach(reach: jax.Array, i: int) -> jax.Array:
  return reach[1 - i] * reach[2]


def _infoset_sum(game: TabularEFG, x: jax.Array) -> jax.Array:
  """Σ over the nodes of each information set (player nodes only): `f[H, ...] -> f[I, ...]`."""
  seg = jnp.where(game.infoset >= 0, game.infoset, game.num_infosets)
  return jax.ops.segment_sum(x, seg, num_segments=game.num_infosets + 1)[:-1]


def counterfactual_values(game: TabularEFG, sigma: jax.Array, i: int,
                          reach: jax.Array | None = None) -> jax.Array:
  """q_i(I, a) = Σ_{h∈I} π_{-i}(h) u_i(h·a) for every information set (meaningful where I is i's);
  `reach` (from `reach_probabilities`) may be passed in to share one forward pass."""
  sign = 1.0 - 2.0 * i
  child_u = sign * _children_values(game, node_values(game, sigma))
  reach = reach_probabilities(game, sigma) if reach is None else reach
  return _infoset_sum(game, _opponent_reach(reach, i)[:, None] * child_u)


def best_response_value(game: TabularEFG, sigma: jax.Array, i: int) -> jax.Array:
  """max_{σ_i'} u_i(σ_i', σ_{-i}): a bottom-up pass where i picks, at each of its information sets,
  argmax_a Σ_{h∈I} π_{-i}(h) v_BR(h·a) (player i's payoff u_i = (1 − 2i)·u_0)."""
  check_strategy(game, sigma)
  sign = 1.0 - 2.0 * i
  probs = _node_action_probs(game, sigma)
  opp = _opponent_reach(reach_probabilities(game, sigma), i)
  terminal, mine = game.player == TERMINAL, game.player == i
  neg = jnp.finfo(probs.dtype).min

  def body(_, v):
    cv = _children_values(game, v)
    q = _infoset_sum(game, opp[:, None] * cv)
    best = jnp.argmax(jnp.where(game.legal, q, neg), axis=-1)
    pick = jnp.take_along_axis(cv, best[jnp.maximum(game.infoset, 0)][:, None], axis=-1)[:, 0]
    return jnp.where(terminal, sign * game.utility, jnp.where(mine, pick, jnp.sum(probs * cv, -1)))

  return jax.lax.fori_loop(0, game.depth + 1, body, sign * jnp.asarray(game.utility), unroll=True)[0]


def exploitability(game: TabularEFG, sigma: jax.Array) -> jax.Array:
  """(max_{σ_0'} u_0(σ_0', σ_1) + max_{σ_1'} u_1(σ_0, σ_1')) / 2 = NashConv/2 (OpenSpiel's
  `exploitability`); zero exactly at a Nash equilibrium of a zero-sum game."""
  return 0.5 * (best_response_value(game, sigma, 0) + best_response_value(game, sigma, 1))


def check_strategy(game: TabularEFG, sigma: jax.Array) -> None:
  """ValueError unless `sigma: f[I, A]` matches the game and (when concrete) rows are distributions."""
  if jnp.shape(sigma) != game.legal.shape:
    raise ValueError(f"`sigma` must have shape {game.legal.shape}, got {jnp.shape(sigma)}.")
  if not isinstance(sigma, jax.core.Tracer):
    s = np.asarray(sigma)
    if np.any(s < -1e-12) or np.any(np.abs(s.sum(-1) - 1) > 1e-6):
      raise ValueError("`sigma` rows must be probability vectors summing to 1.")


def cfr_plus(game: TabularEFG, iters: int, *, track_exploitability: bool = True
             ) -> tuple[jax.Array, jax.Array]:
  """CFR+ with alternating updates; returns the linear average strategy and its exploitability
  after every iteration `f[iters]` (only after the last one when `track_exploitability` is False,
  which skips two best-response passes per iteration).

  For t = 1..T and i = 0, 1 in turn (σ recomputed after player 0's update):
      σ^t = RM⁺(R),  r_t(I,a) = q_i(I,a) − Σ_b σ^t(b|I) q_i(I,b),  R ← max(R + r_t, 0)
      S(I,a) += t · π_i^{σ^t}(I) · σ^t(a|I),   σ̄ = S / Σ_a S
  """
  if iters < 1:
    raise ValueError(f"`iters` must be >= 1, got {iters}.")
  legal = jnp.asarray(game.legal)
  dtype = jnp.asarray(game.utility).dtype
  zeros = jnp.zeros(legal.shape, dtype)
  seg = jnp.where(game.infoset >= 0, game.infoset, game.num_infosets)

  def average(s):
    total = jnp.sum(s, -1, keepdims=True)
    return jnp.where(total > 0, s / jnp.where(total > 0, total, 1.0), uniform_strategy(game))

  def step(carry, t):
    regrets, strat_sum = carry
    for i in (0, 1):
      sigma = regret_matching(regrets, legal)
      reach = reach_probabilities(game, sigma)
      q = counterfactual_values(game, sigma, i, reach)
      inst = q - jnp.sum(sigma * q, -1, keepdims=True)
      own = (game.infoset_player == i)[:, None]
      regrets = jnp.where(own & legal, jnp.maximum(regrets + inst, 0.0), regrets)
      # Perfect recall: every node of I has the same own reach π_i(I).
      own_reach = jax.ops.segment_max(reach[i], seg, num_segments=game.num_infosets + 1)[:-1]
      strat_sum = strat_sum + jnp.where(own, t * own_reach[:, None] * sigma, 0.0)
    expl = exploitability(game, average(strat_sum)) if track_exploitability else jnp.zeros((), dtype)
    return (regrets, strat_sum), expl

  ts = jnp.arange(1, iters + 1, dtype=dtype)
  (_, strat_sum), curve = jax.lax.scan(step, (zeros, zeros), ts)
  avg = average(strat_sum)
  return avg, curve if track_exploitability else exploitability(game, avg)[None]
