"""A bet-by-talk signalling game over ~200 utterances: the CPU stand-in for Werewolf discussion in
LSPO (Xu et al., "Learning Strategic Language Agents in the Werewolf Game", ICML 2025).

Each of two players is dealt a distinct card from T (sender type s, receiver card r; uniform over
the T(T−1) deals). The sender says one of U utterances; each utterance u carries a hidden meaning
c(u) among C semantic classes, a claim that commits the sender to a stake b_c (e.g. "weak",
"neutral", "strong", "all-in"), and an embedding e(u) drawn around the class centre. The receiver
understands the claim (it acts on c(u)) and folds (the sender wins the ante, +1) or calls (showdown
for ±(1 + b_c)). Zero-sum; the sender is player 0. Meaning and stakes are hidden from the learner,
which only sees embeddings, so it must discover that strong claims work as bets and weak hands
should sometimes bluff.

The same tree with M abstract messages in place of the C classes is LSPO's latent game:
`signaling_structure(T, M)` builds it once, `signaling_game` fills in payoffs and legal messages.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.games import cfr

CLASS_NAMES = ("weak claim", "neutral", "strong claim", "all-in claim")
STAKES = (0.0, 0.5, 1.0, 2.0)


class CheapTalkGame(NamedTuple):
  utterance_emb: jax.Array  # f[U, D]
  semantics: jax.Array  # i[U], hidden class c(u)
  stakes: jax.Array  # f[C]
  prior_logits: jax.Array  # f[T, U], the pretrained "LLM" the loop starts from


class SignalingStructure(NamedTuple):
  template: cfr.TabularEFG  # utilities and sender legality filled in by `signaling_game`
  term_index: np.ndarray  # i[H], flat index into payoffs f[T, T, M, 2] (−1 off terminals)
  sender_infosets: np.ndarray  # i[T]
  n_messages: int


def payoff_table(stakes: jax.Array, n_types: int) -> jax.Array:
  """u_0(s, r, c, a) `f[T, T, C, 2]`: a = 0 fold → +1; a = 1 call → (1 + b_c)·sign(s − r)."""
  s = jnp.arange(n_types)
  sign = jnp.sign(s[:, None] - s[None, :]).astype(jnp.result_type(stakes, float))
  call = (1.0 + stakes)[None, None, :] * sign[:, :, None]
  return jnp.stack([jnp.ones_like(call), call], axis=-1)


@functools.lru_cache(maxsize=None)
def signaling_structure(n_types: int, n_messages: int) -> SignalingStructure:
  """Deal (s, r) → sender infoset s picks m ∈ [M] → receiver infoset (r, m) folds/calls → terminal."""
  if n_types < 2 or n_messages < 1:
    raise ValueError(f"need `n_types` >= 2 and `n_messages` >= 1, got {n_types}, {n_messages}.")
  deals = [(s, r) for s in range(n_types) for r in range(n_types) if s != r]
  index = {}

  def expand(h):
    if h == ():
      return ("chance", [(1.0 / len(deals), d) for d in deals])
    if len(h) == 2:
      return ("player", 0, ("s", h[0]), [(*h, m) for m in range(n_messages)])
    if len(h) == 3:
      return ("player", 1, ("r", h[1], h[2]), [(*h, a) for a in range(2)])
    index[h] = len(index)
    return ("terminal", float(np.ravel_multi_index(h, (n_types, n_types, n_messages, 2))))

  template, ids = cfr.build_efg((), expand)
  # `build_efg` stored each terminal's flat payoff index as its utility; move it to `term_index`.
  term = np.where(template.player == cfr.TERMINAL, template.utility, -1).astype(np.int32)
  template = template.replace(utility=np.zeros_like(template.utility))
  return SignalingStructure(template, term, np.array([ids[("s", s)] for s in range(n_types)]), n_messages)


def signaling_game(struct: SignalingStructure, payoffs: jax.Array, sender_legal: jax.Array) -> cfr.TabularEFG:
  """The latent game with payoffs `f[T, T, M, 2]` and the messages `bool[T, M]` each type may send."""
  n_types, m = struct.sender_infosets.shape[0], struct.n_messages
  if payoffs.shape != (n_types, n_types, m, 2) or sender_legal.shape != (n_types, m):
    raise ValueError(f"`payoffs` must be {(n_types, n_types, m, 2)} and `sender_legal` {(n_types, m)}, "
                     f"got {payoffs.shape} and {sender_legal.shape}.")
  t = struct.template
  utility = jnp.where(struct.term_index >= 0, payoffs.ravel()[np.maximum(struct.term_index, 0)], 0.0)
  legal = jnp.asarray(t.legal).at[struct.sender_infosets, :m].set(sender_legal)
  return t.replace(utility=utility, legal=legal)


def sender_strategy(struct: SignalingStructure, probs: jax.Array) -> jax.Array:
  """Embeds the sender's message distribution `f[T, M]` into an `f[I, A]` strategy (receiver rows
  uniform; best responses ignore them)."""
  t = struct.template
  sigma = cfr.uniform_strategy(t).astype(probs.dtype)
  return sigma.at[struct.sender_infosets].set(jnp.zeros_like(sigma[struct.sender_infosets])).at[
      struct.sender_infosets, : struct.n_messages].set(probs)


def true_game(game: CheapTalkGame) -> tuple[cfr.TabularEFG, SignalingStructure]:
  """The game at the level of meanings (messages = the C classes): what the receiver acts on."""
  n_types, n_cls = game.prior_logits.shape[0], game.stakes.shape[0]
  struct = signaling_structure(n_types, n_cls)
  legal = jnp.ones((n_types, n_cls), bool)
  return signaling_game(struct, payoff_table(game.stakes, n_types), legal), struct


def class_marginals(game: CheapTalkGame, logits: jax.Array) -> jax.Array:
  """p(c | s) = Σ_{u: c(u)=c} π(u | s) with π = softmax(logits): `f[T, C]`."""
  probs = jnp.exp(jax.nn.log_softmax(logits, -1))
  return probs @ jax.nn.one_hot(game.semantics, game.stakes.shape[0], dtype=probs.dtype)


def payoff_vs_best_response(game: CheapTalkGame, logits: jax.Array) -> jax.Array:
  """min_{receiver} u_0(π, receiver) = −BR_1(π): the utterance policy's guaranteed payoff."""
  efg, struct = true_game(game)
  return -cfr.best_response_value(efg, sender_strategy(struct, class_marginals(game, logits)), 1)


def make_cheap_talk_game(
    key: jax.Array, n_utterances: int = 200, n_types: int = 3, emb_dim: int = 8, *,
    stakes=STAKES, spread: float = 0.35, honesty: float = 2.0, prior_noise: float = 0.5,
) -> tuple[CheapTalkGame, jax.Array, jax.Array]:
  """Samples the game; returns (game, utterance_emb f[U, D], utterance_semantics i[U]).

  Classes are assigned round-robin (balanced), centres are unit vectors, e(u) = centre_c(u) +
  spread·N(0, I/D). The prior is an honest talker:
      logit(u | s) = honesty·(2s/(T−1) − 1)·(2b_c/b_max − 1) + prior_noise·N(0, 1),
  so weak types make weak claims and strong types strong ones, which a receiver can exploit.
  """
  stakes = jnp.asarray(stakes, jnp.result_type(float))
  n_cls = stakes.shape[0]
  if n_utterances < n_cls:
    raise ValueError(f"`n_utterances` must be >= the {n_cls} classes, got {n_utterances}.")
  if spread < 0 or prior_noise < 0:
    raise ValueError(f"`spread` and `prior_noise` must be >= 0, got {spread}, {prior_noise}.")
  k_perm, k_cent, k_emb, k_prior = jax.random.split(key, 4)
  sem = jax.random.permutation(k_perm, jnp.arange(n_utterances) % n_cls)
  cent = jax.random.normal(k_cent, (n_cls, emb_dim), stakes.dtype)
  cent = cent / jnp.linalg.norm(cent, axis=-1, keepdims=True)
  emb = cent[sem] + spread * jax.random.normal(k_emb, (n_utterances, emb_dim), stakes.dtype) / np.sqrt(emb_dim)
  strength = 2 * jnp.arange(n_types, dtype=stakes.dtype) / (n_types - 1) - 1
  boldness = 2 * stakes / jnp.max(stakes) - 1
  prior = honesty * strength[:, None] * boldness[sem][None, :]
  prior = prior + prior_noise * jax.random.normal(k_prior, prior.shape, stakes.dtype)
  return CheapTalkGame(emb, sem, stakes, prior), emb, sem
