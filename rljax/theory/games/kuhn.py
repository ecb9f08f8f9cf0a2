"""Kuhn poker (Kuhn 1950) as a `TabularEFG`: the standard test game for CFR+ in LSPO's solver stack
(Xu et al., "Learning Strategic Language Agents in the Werewolf Game", ICML 2025).

Three cards J < Q < K, one dealt to each player, ante 1. Player 0 checks or bets 1; player 1 then
checks/bets (after a check) or folds/calls (after a bet); after check–bet player 0 folds or calls.
Action 0 is pass (check/fold), action 1 is bet (bet/call). The game value for player 0 is −1/18.
"""

from __future__ import annotations

from rljax.theory.games.cfr import TabularEFG, build_efg

GAME_VALUE = -1.0 / 18.0
CARDS = "JQK"
DEALS = tuple((a, b) for a in range(3) for b in range(3) if a != b)


def kuhn_payoff(cards: tuple[int, int], moves: str) -> float | None:
  """Player 0's payoff after the action string `moves` ("p"/"b"), or None if play continues:
  a fold loses the pot so far, a showdown wins ±1 (after pp) or ±2 (after a bet and a call)."""
  win = 1.0 if cards[0] > cards[1] else -1.0
  if moves in ("pp",):
    return win
  if moves in ("bb", "pbb"):
    return 2.0 * win
  if moves == "bp":
    return 1.0
  if moves == "pbp":
    return -1.0
  return None


def _expand(hist):
  if hist is None:
    return ("chance", [(1.0 / len(DEALS), (d, "")) for d in DEALS])
  cards, moves = hist
  u = kuhn_payoff(cards, moves)
  if u is not None:
    return ("terminal", u)
  i = len(moves) % 2
  return ("player", i, (i, CARDS[cards[i]], moves), [(cards, moves + "p"), (cards, moves + "b")])


def make_kuhn_poker() -> TabularEFG:
  """The Kuhn poker tree (55 nodes, 12 information sets keyed by (player, own card, moves))."""
  return build_efg(None, _expand)[0]


def kuhn_infosets() -> dict:
  """`{(player, card, moves): infoset id}` for the game returned by `make_kuhn_poker`."""
  return build_efg(None, _expand)[1]
