"""Spanning capacity of a finite policy class: deterministic layered-MDP enumeration with pruning.

Shared kernel for Jia, Li, Rakhlin, Sekhari & Srebro, "When is Agnostic Reinforcement Learning
Statistically Tractable?", NeurIPS 2023, whose central measure is the spanning capacity

    C(Π) = max_{M deterministic} max_h |{(s_h, a_h) : ∃π ∈ Π whose trajectory in M visits (s_h, a_h)}|.

Conventions. Layers h = 0..H−1; layer h has `widths[h]` states (at most S), the start state is state 0
of layer 0. A policy class is an int table `pi: [N, H, S]` with entries in {0..A−1}, or −1 for "any
action": a row with −1 entries stands for the product set of all policies that fill them in, so the
class of all policies is a single all-(−1) row. A deterministic MDP is `transitions: [H−1, S, A]`
(next state of layer h+1); rewards play no part in C(Π).

`layer_counts` counts reachable pairs in one MDP (jit, vmap over a batch of MDPs). `spanning_capacity`
maximises over every MDP by a depth-first branch-and-bound over transition maps of the reached pairs
only; it prunes with (i) symmetry: next states whose policy columns are identical are interchangeable,
so maps are enumerated up to their relabelling; (ii) a visited set of configurations (which rows reach
which states, rows merged when their remaining tables coincide); (iii) the history-dependent
relaxation bound `relaxation_bound`, which lets every branch of the trajectory tree pick its own
next state. Exact; exponential in the worst case, meant for H ≤ 6 and a few states per layer.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np


def check_policy_table(pi, n_actions: int, widths=None) -> tuple[np.ndarray, tuple[int, ...]]:
  """Validates `pi: [N, H, S]` (entries −1 or 0..A−1) and `widths` (states per layer, default S)."""
  pi = np.asarray(pi)
  if pi.ndim != 3 or pi.shape[0] < 1 or not np.issubdtype(pi.dtype, np.integer):
    raise ValueError(f"`pi` must be an integer table [N, H, S] with N ≥ 1, got {pi.dtype}{pi.shape}.")
  if n_actions < 1:
    raise ValueError(f"`n_actions` must be positive, got {n_actions}.")
  if pi.min() < -1 or pi.max() >= n_actions:
    raise ValueError(f"`pi` entries must be −1 (any action) or in 0..{n_actions - 1}.")
  H, S = pi.shape[1:]
  widths = (S,) * H if widths is None else tuple(int(w) for w in widths)
  if len(widths) != H or min(widths) < 1 or max(widths) > S:
    raise ValueError(f"`widths` must give H={H} layer sizes in 1..{S}, got {widths}.")
  return pi, widths


def _action_sets(pi: np.ndarray, n_actions: int) -> np.ndarray:
  """acts[n, h, s, a]: whether row n's policies can take a at (h, s)."""
  return (pi[..., None] == -1) | (pi[..., None] == np.arange(n_actions))


def layer_counts(pi, transitions, n_actions: int) -> jax.Array:
  """Reachable pairs per layer in one deterministic MDP: c_h = |{(s, a): ∃π ∈ Π, (s_h^π, a_h^π) = (s, a)}|.

  Forward pass over layers of the reach sets R_h[n, s] (some policy of row n is at s):
  V_h[n,s,a] = R_h[n,s]·[a ∈ A_n(h,s)], c_h = Σ_{s,a} max_n V_h[n,s,a],
  R_{h+1}[n,s'] = max_{s,a} V_h[n,s,a]·[T_h(s,a) = s']. `pi: [N,H,S]`, `transitions: int[H−1,S,A]`;
  returns int[H]. Pure: jit it and vmap it over a batch of transition tables.
  """
  pi = jnp.asarray(pi)
  N, H, S = pi.shape
  transitions = jnp.asarray(transitions)
  if transitions.shape != (H - 1, S, n_actions):
    raise ValueError(f"`transitions` must be [H−1, S, A] = {(H - 1, S, n_actions)}, got {transitions.shape}.")
  acts = (pi[..., None] == -1) | (pi[..., None] == jnp.arange(n_actions))  # [N,H,S,A]
  onehot_next = jax.nn.one_hot(transitions, S, dtype=jnp.bool_)  # [H−1,S,A,S']
  onehot_next = jnp.concatenate([onehot_next, jnp.zeros((1, S, n_actions, S), bool)])

  def layer(reach, xs):
    acts_h, next_h = xs
    visit = reach[:, :, None] & acts_h  # [N,S,A]
    new_reach = jnp.any(visit[..., None] & next_h[None], axis=(1, 2))
    return new_reach, jnp.sum(jnp.any(visit, axis=0))

  reach0 = jnp.zeros((N, S), bool).at[:, 0].set(True)
  _, counts = jax.lax.scan(layer, reach0, (jnp.moveaxis(acts, 1, 0), onehot_next))
  return counts


def expand_class(pi, n_actions: int) -> np.ndarray:
  """The explicit class: every −1 entry filled with every action, duplicates removed; |Π| = its rows."""
  pi, _ = check_policy_table(pi, n_actions)
  rows = []
  for row in pi:
    free = np.argwhere(row == -1)
    for fill in itertools.product(range(n_actions), repeat=len(free)):
      r = row.copy()
      r[tuple(free.T)] = fill
      rows.append(r)
  return np.unique(np.stack(rows), axis=0)


class _Search:
  """Branch-and-bound state: precomputed per-layer row merges, symmetry classes and bounds."""

  def __init__(self, pi: np.ndarray, n_actions: int, widths: tuple[int, ...]):
    self.A, self.widths = n_actions, widths
    self.H = pi.shape[1]
    self.acts = _action_sets(pi, n_actions)
    # Rows whose remaining tables coincide behave identically from layer h on: merge them.
    self.future_id = [np.unique(pi[:, h:].reshape(len(pi), -1), axis=0, return_inverse=True)[1].ravel()
                      for h in range(self.H)]
    self.n_future = [int(f.max()) + 1 for f in self.future_id]
    self.rep = [np.array([np.flatnonzero(f == i)[0] for i in range(n)]) for f, n in zip(self.future_id, self.n_future)]
    # States of a layer are interchangeable when every row acts alike there.
    self.sym = [np.unique(pi[:, h, :widths[h]].T, axis=0, return_inverse=True)[1].ravel() for h in range(self.H)]
    self.best, self.witness, self.seen = 0, None, set()
    self.relax = functools.lru_cache(maxsize=None)(self._relax)

  def _relax(self, h: int, s: int, group: frozenset) -> tuple[int, ...]:
    """Per-layer pair bound for merged rows `group` (layer-h ids) sitting together at state s."""
    reps = self.rep[h][sorted(group)]
    acts = self.acts[reps, h, s]  # [G, A]
    out = [int(np.any(acts, 0).sum())]
    if h + 1 == self.H:
      return tuple(out)
    tail = np.zeros(self.H - h - 1, int)
    for a in np.flatnonzero(np.any(acts, 0)):
      sub = frozenset(self.future_id[h + 1][reps[acts[:, a]]].tolist())
      tail += np.max([self.relax(h + 1, t, sub) for t in range(self.widths[h + 1])], axis=0)
    return tuple(out + tail.tolist())

  def bound(self, h: int, vectors) -> int:
    """max_k min(Σ relaxation vectors at layer k, A·widths[k]) over the layers k ≥ h."""
    tot = np.sum(np.asarray(vectors, int), axis=0) if len(vectors) else np.zeros(self.H - h, int)
    return int(np.max(np.minimum(tot, self.A * np.asarray(self.widths[h:]))))

  def visit(self, h: int, reach: np.ndarray, trans: np.ndarray) -> None:
    key = (h, reach.tobytes())
    if key in self.seen:
      return
    self.seen.add(key)
    acts = self.acts[self.rep[h], h, : self.widths[h]]  # [G, w, A]
    visit = reach[:, :, None] & acts
    pairs = np.argwhere(visit.any(0))
    if len(pairs) > self.best:
      self.best, self.witness = len(pairs), trans.copy()
    if h + 1 == self.H or self.best >= self.cap:
      return
    nxt = self.future_id[h + 1][self.rep[h]]
    groups = [frozenset(nxt[visit[:, s, a]].tolist()) for s, a in pairs]
    alone = [np.max([self.relax(h + 1, t, g) for t in range(self.widths[h + 1])], axis=0) for g in groups]
    self._assign(h, pairs, groups, alone, 0, {}, trans)

  def _assign(self, h, pairs, groups, alone, i, at, trans) -> None:
    """Sends pair i to a state of layer h+1, depth first; `at` maps a state to the row ids sent there.
    A partial assignment is pruned by the bound Σ_t relax(rows at t) + Σ_{pairs left} best relax alone,
    valid because the relaxation is subadditive over unions of rows."""
    placed = [self.relax(h + 1, t, g) for t, g in at.items()]
    if self.bound(h + 1, placed + alone[i:]) <= self.best:
      return
    if i == len(pairs):
      child = np.zeros((self.n_future[h + 1], self.widths[h + 1]), bool)
      for t, g in at.items():
        child[sorted(g), t] = True
      self.visit(h + 1, child, trans)
      return
    sym = self.sym[h + 1]
    free = ~np.isin(np.arange(len(sym)), list(at))
    # Fresh states first (most injective maps first), one per symmetry class, then the used ones.
    fresh = [int(np.flatnonzero((sym == c) & free)[0]) for c in np.unique(sym[free])]
    for t in sorted(fresh) + sorted(at):
      trans[h, pairs[i, 0], pairs[i, 1]] = t
      self._assign(h, pairs, groups, alone, i + 1, {**at, t: at.get(t, frozenset()) | groups[i]}, trans)
      if self.best >= self.cap:
        return

  @property
  def cap(self) -> int:
    return int(np.max(np.minimum(self.A * np.asarray(self.widths), self.A ** np.arange(1, self.H + 1))))


def spanning_capacity(pi, n_actions: int, widths=None) -> tuple[int, np.ndarray]:
  """Exact C(Π) = max over deterministic layered MDPs (layer h has widths[h] states, start state 0)
  of max_h |{(s_h, a_h) reached by some π ∈ Π}|, with a witness MDP `int[H−1, S, A]` attaining it.

  Properties used as checks: C(Π) ≤ |Π|, C(Π) ≤ A^H, C(Π) ≤ A·max_h widths[h], C({π}) = 1.
  """
  pi, widths = check_policy_table(pi, n_actions, widths)
  H, S = pi.shape[1:]
  search = _Search(pi, n_actions, widths)
  reach0 = np.zeros((search.n_future[0], widths[0]), bool)
  reach0[:, 0] = True
  search.visit(0, reach0, np.zeros((max(H - 1, 0), S, n_actions), np.int64))
  return search.best, search.witness
