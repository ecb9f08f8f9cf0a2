"""LSPO (Xu et al., ICML 2025): the preference-pair builder, one LSPO iteration and the reproduction (Kuhn
CFR+ and the cheap-talk loop) run by the notebook at the smoke preset. The game kernels (k-means, CFR+,
Kuhn poker, the cheap-talk game) are tested in tests/theory/test_games.py."""

from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.lspo import get_config
from rljax.theory.games import kuhn, lspo
from rljax.theory.games import cheap_talk as ct
from tests.helpers import assert_monotone, assert_slope, assert_smoke_claims


def test_preference_pairs_order_and_margin(x64):
  states = jnp.array([0, 1])
  cand = jnp.array([[0, 1, 2], [3, 4, 5]])
  cluster_of = jnp.array([0, 1, 1, 2, 2, 2])
  value = jnp.array([[1.0, 0.0, 5.0], [0.0, 0.0, 0.3]])  # [S, K]; decision 1: all one cluster
  pairs = lspo.build_preference_pairs(states, cand, cluster_of, value, margin=0.5)
  m = np.asarray(pairs.mask)
  got = sorted(zip(np.asarray(pairs.chosen)[m].tolist(), np.asarray(pairs.rejected)[m].tolist()))
  assert got == [(0, 1), (0, 2)]  # the higher-valued cluster is always chosen; the 1–2 tie gives nothing
  np.testing.assert_allclose(np.asarray(pairs.pref)[m], jax.nn.sigmoid(1.0))
  assert np.asarray(pairs.state)[m].tolist() == [0, 0]
  with pytest.raises(ValueError, match="margin"):
    lspo.build_preference_pairs(states, cand, cluster_of, value, margin=-1.0)


def test_lspo_iteration_calls_dpo_loss_and_improves(x64):
  game, _, _ = ct.make_cheap_talk_game(jax.random.PRNGKey(0))
  cfg = lspo.LSPOConfig(cfr_iters=50, dpo_steps=10)
  state = lspo.LSPOState(lspo.init_params(game), jnp.zeros(200, bool))
  with mock.patch.object(lspo, "dpo_loss", wraps=lspo.dpo_loss) as spy:
    new, metrics = jax.jit(lspo.lspo_iteration, static_argnums=3)(jax.random.PRNGKey(1), state, game, cfg)
  assert spy.call_count >= 2  # chosen-first and swapped terms of the soft-label DPO loss
  before = ct.payoff_vs_best_response(game, lspo.policy_log_probs(state.params, game))
  assert metrics["payoff"] > before + 0.02
  assert metrics["dpo_loss_last"] < metrics["dpo_loss_first"] and metrics["n_pairs"] > 0
  assert int(metrics["pool_size"]) == int(new.seen.sum()) > 0


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_predicted_trends(smoke):
  r = smoke.results
  assert r["lspo_payoff"].shape == (6, 5) and r["rl_payoff"].shape == (6, 2, 5)
  assert abs(r["kuhn_value"] - kuhn.GAME_VALUE) < 1e-3 and r["kuhn_exploitability"][-1] < 1e-3
  assert_slope(r["kuhn_iters"], r["kuhn_exploitability"], -1.0, 0.3)
  med = np.median(r["lspo_payoff"], 0)
  assert_monotone(med)  # payoff rises with every LSPO iteration ...
  assert med[-1] > med[0] + 0.15 and med[-1] < r["equilibrium_value"] + 1e-9  # ... towards the value
  # Paired over seeds: after the last iteration LSPO beats direct RL at its best learning rate.
  best_rl = r["rl_payoff"][:, :, -1].max(1)
  assert np.mean(r["lspo_payoff"][:, -1] > best_rl) >= 5 / 6


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
