"""Spanning capacity (exact search vs brute force, closed forms) and the trajectory-tree learner."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.agnostic_spanning import get_config
from rljax.theory.kernels import spanning
from rljax.theory.tabular import agnostic_spanning as ag
from tests.helpers import assert_monotone, assert_slope, assert_smoke_claims


def _brute_force(pi, A, S, H):
  """max over every transition table in S^{(H−1)·S·A} of the best layer count."""
  tables = np.array(list(itertools.product(range(S), repeat=(H - 1) * S * A))).reshape(-1, H - 1, S, A)
  counts = jax.jit(jax.vmap(lambda t: spanning.layer_counts(pi, t, A)))(jnp.asarray(tables))
  return int(counts.max())


def test_search_matches_brute_force_on_random_classes():
  rng = np.random.default_rng(0)
  for trial in range(6):  # one shape, one compile of the brute force
    pi = rng.integers(-1 if trial % 2 else 0, 2, size=(4, 4, 2))
    c, witness = ag.spanning_capacity(pi, 2)
    assert c == _brute_force(pi, 2, 2, 4)
    assert int(spanning.layer_counts(pi, witness, 2).max()) == c  # the witness attains it
    assert c <= len(spanning.expand_class(pi, 2))  # C(Π) ≤ |Π|


def test_closed_forms():
  for H in (1, 3, 5):
    w = ag.tree_widths(H)
    assert ag.spanning_capacity(ag.all_policies(H, w[-1]), 2, w)[0] == 2**H
    sing = ag.singletons(w, w[-1])
    assert len(sing) == 2**H and ag.spanning_capacity(sing, 2, w)[0] == H + 1
  assert ag.spanning_capacity(np.ones((1, 4, 3), np.int64), 2)[0] == 1  # C({π}) = 1
  # With fewer states than the tree needs, C(Π_all) is capped at A·max_h w_h.
  assert ag.spanning_capacity(ag.all_policies(4, 3), 2)[0] == 6


def test_bad_inputs():
  with pytest.raises(ValueError, match="pi"):
    ag.spanning_capacity(np.full((2, 3, 2), 2), 2)
  with pytest.raises(ValueError, match="widths"):
    ag.spanning_capacity(np.zeros((2, 3, 2), np.int64), 2, widths=(1, 3, 2))
  with pytest.raises(ValueError, match="transitions"):
    spanning.layer_counts(np.zeros((2, 3, 2), np.int64), np.zeros((3, 2, 2), np.int64), 2)
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")


def test_tree_learner_is_unbiased_and_counts_queries(x64):
  H, S = 3, 2
  mdp = ag.random_layered_mdp(jax.random.PRNGKey(1), H, S)
  pi = ag.random_class(jax.random.PRNGKey(2), 6, H, S)
  res = ag.trajectory_tree_learner(jax.random.PRNGKey(3), mdp, pi, 5000)
  v = ag.policy_values(mdp, pi)
  assert float(jnp.max(jnp.abs(res.est_values - v))) < 0.03  # the sd of each estimate is ≲ 0.008
  c, _ = ag.spanning_capacity(pi, 2)
  assert int(res.samples.max()) <= H * c and int(res.samples.min()) >= H  # ≤ H·C(Π) queries per tree


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_predicted_trends(smoke):
  r = smoke.results
  H = r["horizons"]
  assert_slope(2.0**H, r["c_all"].astype(float), 1.0, 1e-9, last_decades=None)  # 2^H
  assert_slope(H + 1.0, r["c_sing"].astype(float), 1.0, 1e-9, last_decades=None)  # linear
  assert np.all(r["size_sing"] == 2**H)  # ... while |Π_sing| is exponential
  assert_monotone(r["c_rand"].astype(float))
  assert r["c_rand"].max() <= 16 and r["c_rand"][-1] < 2 ** H[-1]  # saturation
  cfg = get_config("smoke")
  assert np.all(r["samples_per_tree"] <= cfg.horizon * r["capacity"])
  order = np.argsort(r["capacity"], kind="stable")
  assert r["capacity"][order[-1]] > r["capacity"][order[0]]
  med = np.median(r["samples_to_eps"], 0)
  assert med[order[-1]] > med[order[0]]  # more capacity, more queries for the same ε
  assert np.mean(r["reached_eps"]) > 0.9
