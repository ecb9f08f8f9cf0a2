"""The game kernels under LSPO (Xu et al., ICML 2025): k-means, CFR+ on Kuhn poker and the cheap-talk
game. LSPO itself (pair builder, loop, reproduction) is tested in tests/papers/test_lspo.py."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.theory.games import cfr, kuhn
from rljax.theory.games import cheap_talk as ct
from rljax.theory.games import kmeans as km
from tests.helpers import assert_slope


# ---------------------------------------------------------------- k-means


def _numpy_lloyd(x, cents, iters):
  for _ in range(iters):
    a = np.argmin(((x[:, None] - cents[None]) ** 2).sum(-1), -1)
    cents = np.stack([x[a == k].mean(0) if np.any(a == k) else cents[k] for k in range(len(cents))])
  return cents


def test_kmeans_matches_numpy_lloyd_and_objective_decreases(x64):
  key = jax.random.PRNGKey(3)
  x = jax.random.normal(jax.random.PRNGKey(0), (120, 3))
  res = km.kmeans(key, x, 5, iters=15)
  ref = _numpy_lloyd(np.asarray(x), np.asarray(km.kmeans_plusplus(key, x, 5)), 15)
  np.testing.assert_allclose(res.centroids, ref, atol=1e-10)
  assert np.all(np.diff(res.inertia_curve) <= 1e-12)  # Lloyd never increases J
  d2 = ((np.asarray(x)[:, None] - np.asarray(res.centroids)[None]) ** 2).sum(-1)
  np.testing.assert_array_equal(res.assignments, d2.argmin(-1))  # assignments are argmin
  np.testing.assert_allclose(res.inertia, d2.min(-1).sum(), rtol=1e-12)


def test_kmeans_recovers_separated_clusters_vmapped_over_seeds(x64):
  centres = 10.0 * jnp.eye(4)
  x = jnp.repeat(centres, 25, axis=0) + 0.2 * jax.random.normal(jax.random.PRNGKey(1), (100, 4))
  truth = np.repeat(np.arange(4), 25)
  res = jax.vmap(lambda k: km.kmeans(k, x, 4, iters=10))(jax.random.split(jax.random.PRNGKey(2), 5))
  for a in np.asarray(res.assignments):  # same partition up to relabelling
    assert len(set(zip(truth, a))) == 4 and len(set(a)) == 4
  # Zero weights drop points: clustering the first two blobs only puts both centroids there.
  w = (truth < 2).astype(x.dtype)
  sub = km.kmeans(jax.random.PRNGKey(0), x, 2, weights=w)
  np.testing.assert_allclose(np.sort(np.asarray(sub.centroids)[:, :2].max(1)), [10.0, 10.0], atol=0.2)
  with pytest.raises(ValueError, match="k"):
    km.kmeans(jax.random.PRNGKey(0), x, 0)
  with pytest.raises(ValueError, match="weights"):
    km.kmeans(jax.random.PRNGKey(0), x, 2, weights=w[:5])


# ---------------------------------------------------------------- Kuhn poker and CFR+


def _kuhn_pure_best_response(i):
  """Brute force over player i's 2^6 pure strategies against the uniform opponent, straight from the
  rules: the opponent's action probabilities are 1/2 everywhere, chance is uniform over 6 deals."""
  keys = [(c, m) for c in range(3) for m in (("", "pb") if i == 0 else ("p", "b"))]
  best = -np.inf
  for bits in itertools.product((0, 1), repeat=len(keys)):
    pure = dict(zip(keys, bits))

    def value(cards, moves):
      u = kuhn.kuhn_payoff(cards, moves)
      if u is not None:
        return u if i == 0 else -u
      mover = len(moves) % 2
      if mover == i:
        return value(cards, moves + "pb"[pure[(cards[i], moves)]])
      return 0.5 * value(cards, moves + "p") + 0.5 * value(cards, moves + "b")

    best = max(best, np.mean([value(d, "") for d in kuhn.DEALS]))
  return best


def test_kuhn_uniform_exploitability_matches_brute_force(x64):
  game = kuhn.make_kuhn_poker()
  sigma = cfr.uniform_strategy(game)
  for i in (0, 1):
    np.testing.assert_allclose(cfr.best_response_value(game, sigma, i), _kuhn_pure_best_response(i), atol=1e-12)
  np.testing.assert_allclose(cfr.exploitability(game, sigma), 11 / 24, atol=1e-12)  # OpenSpiel: 0.458333
  np.testing.assert_allclose(cfr.game_value(game, sigma), 1 / 8, atol=1e-12)
  with pytest.raises(ValueError, match="sigma"):
    cfr.exploitability(game, sigma[:3])
  with pytest.raises(ValueError, match="sigma"):
    cfr.game_value(game, 2 * sigma)


def test_cfr_plus_solves_kuhn(x64):
  game = kuhn.make_kuhn_poker()
  avg, curve = jax.jit(cfr.cfr_plus, static_argnums=1)(game, 1000)
  assert abs(float(cfr.game_value(game, avg)) - kuhn.GAME_VALUE) < 1e-3
  assert curve[-1] < 1e-3 and curve[99] < curve[9]
  assert_slope(np.arange(1, 1001), np.asarray(curve), -1.0, 0.35)
  ids = kuhn.kuhn_infosets()
  assert float(avg[ids[(0, "K", "pb")], 1]) > 0.999  # player 0 always calls with the king
  assert float(avg[ids[(1, "J", "b")], 1]) < 1e-3  # player 1 never calls a bet with the jack
  with pytest.raises(ValueError, match="iters"):
    cfr.cfr_plus(game, 0)


def test_build_efg_validates():
  with pytest.raises(ValueError, match="chance"):
    cfr.build_efg(0, lambda h: ("chance", [(0.5, 1), (0.4, 2)]) if h == 0 else ("terminal", 0.0))

  def mixed_depths(h):
    if h == "":
      return ("player", 0, "a", ["x", "y"])
    if h == "x":
      return ("player", 1, "I", ["xx", "xy"])
    if h == "y":
      return ("player", 0, "b", ["yy"])
    if h == "yy":
      return ("player", 1, "I", ["yyx", "yyy"])
    return ("terminal", 1.0)

  with pytest.raises(ValueError, match="information set"):
    cfr.build_efg("", mixed_depths)


# ---------------------------------------------------------------- cheap-talk game


def test_cheap_talk_best_response_matches_enumeration(x64):
  game, emb, sem = ct.make_cheap_talk_game(jax.random.PRNGKey(0), 40, 3, 4)
  assert emb.shape == (40, 4) and np.bincount(np.asarray(sem)).tolist() == [10] * 4
  logits = jax.random.normal(jax.random.PRNGKey(1), (3, 40))
  p = np.asarray(ct.class_marginals(game, logits))  # [T, C]
  table = np.asarray(ct.payoff_table(game.stakes, 3))  # [T, T, C, 2]
  deals = [(s, r) for s in range(3) for r in range(3) if s != r]
  best = np.inf  # the receiver minimises over its 2^(T·C) pure strategies
  for bits in itertools.product((0, 1), repeat=12):
    a = np.reshape(bits, (3, 4))
    best = min(best, np.mean([sum(p[s, c] * table[s, r, c, a[r, c]] for c in range(4)) for s, r in deals]))
  np.testing.assert_allclose(ct.payoff_vs_best_response(game, logits), best, atol=1e-12)
  with pytest.raises(ValueError, match="n_utterances"):
    ct.make_cheap_talk_game(jax.random.PRNGKey(0), 3)
