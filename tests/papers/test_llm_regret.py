"""Online learning over experts and the regret-loss LSA (Park, Liu, Ozdaglar & Zhang, 2024):
closed forms, the Hedge bound, and the notebook at the smoke preset."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.llm_regret import get_config
from experiments import llm_regret as ex
from rljax.theory.experts import llm_regret as ol
from tests.helpers import assert_slope, assert_smoke_claims


def test_hedge_is_the_softmax_of_past_losses(x64):
  losses = np.asarray(ol.iid_uniform(jax.random.PRNGKey(0), 7, 3))
  eta = 0.7
  expected = np.zeros_like(losses)
  for t in range(losses.shape[0]):
    w = np.exp(-eta * losses[:t].sum(0))
    expected[t] = w / w.sum()
  np.testing.assert_allclose(ol.hedge(losses, eta), expected, rtol=1e-12)
  np.testing.assert_allclose(ol.hedge(losses, eta)[0], np.full(3, 1 / 3))


def test_ftpl_with_gumbel_noise_plays_hedge_in_distribution(x64):
  losses = ol.iid_uniform(jax.random.PRNGKey(1), 6, 3)
  one, many = jax.jit(lambda k1, k2: (ol.ftpl(k1, losses, 0.8), ol.ftpl(k2, losses, 0.8, n_samples=20_000)))(
      jax.random.PRNGKey(2), jax.random.PRNGKey(3))
  assert set(np.unique(one)) <= {0.0, 1.0} and np.all(np.sum(one, -1) == 1)
  np.testing.assert_allclose(many, ol.hedge(losses, 0.8), atol=0.02)  # 20k draws: sd <= 0.0035


def test_hedge_regret_below_bound_on_every_sequence(x64):
  """Reg_T ≤ √(T ln K/2) with η = √(8 ln K/T), for each sequence of a random batch of every kind and
  every horizon T (sequences padded to 400 rounds, zero after T)."""
  horizons = jnp.asarray([3.0, 10.0, 57.0, 400.0])

  def ratio(key, kind, k, h):
    if kind is None:  # 0/1 losses, the largest per-round variance
      seq = jnp.where(jnp.arange(400)[:, None] < h, jax.random.bernoulli(key, 0.5, (400, k)), 0.0)
    else:
      seq = ol.SEQUENCES[kind](key, 400, k, h)
    return ol.regret(seq, ol.hedge(seq, ol.tuned_eta(h, k))) / ol.hedge_bound(h, k)

  @jax.jit
  def worst(key):
    keys = jax.random.split(key, 64)
    kinds = [(kind, 2 if kind == "alternating" else 3) for kind in (*ol.SEQUENCES, None)]
    per_h = lambda kind, k: jax.vmap(lambda h: jax.vmap(lambda kk: ratio(kk, kind, k, h))(keys))(horizons)
    return jnp.stack([jnp.max(per_h(kind, k)) for kind, k in kinds])

  w = np.asarray(worst(jax.random.PRNGKey(4)))
  assert np.all(w <= 1.0), w
  assert np.max(w) > 0.4, w  # the bound is not vacuous on these sequences


def test_alternating_sequence_closed_forms(x64):
  t = np.arange(1, 61)
  losses = ol.alternating(None, 60)
  np.testing.assert_array_equal(losses[:3], [[0.5, 0.0], [0.0, 1.0], [1.0, 0.0]])
  # FTL always follows the leader that is about to lose: R_t = t/2 − 1/4 at every t.
  np.testing.assert_allclose(ol.cumulative_regret(losses, ol.ftl(losses)), t / 2 - 0.25, atol=1e-12)
  # Hedge loses σ(η/2) from round 2 on: R_t = 1/4 + (t − 1)(σ(η/2) − 1/2).
  eta = 0.3
  np.testing.assert_allclose(ol.cumulative_regret(losses, ol.hedge(losses, eta)),
                             0.25 + (t - 1) * (jax.nn.sigmoid(eta / 2) - 0.5), atol=1e-12)


def test_padded_sequence_gives_the_regret_at_its_horizon(x64):
  key = jax.random.PRNGKey(5)

  @jax.jit
  def gaps():
    out = []
    for kind, f in ol.SEQUENCES.items():
      k = 2 if kind == "alternating" else 3
      padded, short = f(key, 40, k, 17), f(key, 17, k)
      out += [jnp.max(jnp.abs(padded[17:])), jnp.max(jnp.abs(padded[:17] - short))]
      for play in (functools.partial(ol.hedge, eta=0.4), ol.ftl):
        out.append(jnp.abs(ol.regret(padded, play(padded)) - ol.regret(short, play(short))))
    return jnp.stack(out)

  np.testing.assert_allclose(gaps(), 0.0, atol=1e-12)


def test_lsa_with_ftrl_weights_is_hedge(x64):
  losses = ol.sample_sequences(jax.random.PRNGKey(6), 16, 12, 3)
  lsa, hedge, (cos, eta), (cos_anti, _) = jax.jit(lambda: (
      jax.vmap(lambda s: ol.lsa_policy(ol.ftrl_lsa(3, 0.6), s))(losses),
      jax.vmap(lambda s: ol.hedge(s, 0.6))(losses),
      ol.ftrl_alignment(ol.ftrl_lsa(3, 0.6), losses),
      ol.ftrl_alignment(ol.ftrl_lsa(3, -0.6), losses)))()  # the second one follows the loser
  np.testing.assert_allclose(lsa, hedge, atol=1e-12)
  np.testing.assert_allclose([cos, eta, cos_anti], [1.0, 0.6, -1.0], atol=1e-12)


def test_regret_loss_formula_limit_and_gradient(x64):
  losses = ol.sample_sequences(jax.random.PRNGKey(7), 8, 10, 3)
  params = ol.init_lsa(jax.random.PRNGKey(8), 3, 0.5)
  regrets, soft_loss, hard_loss, grads = jax.jit(lambda p: (
      jax.vmap(lambda s: ol.cumulative_regret(s, ol.lsa_policy(p, s)))(losses),
      ol.regret_loss(p, losses), ol.regret_loss(p, losses, k=1e6), jax.grad(ol.regret_loss)(p, losses)))(params)
  regrets = np.asarray(regrets)
  w = np.exp(10.0 * (regrets - regrets.max(1, keepdims=True)))
  soft = (regrets * w).sum(1) / w.sum(1)
  np.testing.assert_allclose(soft_loss, np.mean(np.maximum(soft, 0) ** 2), rtol=1e-10)
  np.testing.assert_allclose(hard_loss, np.mean(np.maximum(regrets.max(1), 0) ** 2), rtol=1e-8)
  assert all(np.all(np.isfinite(g)) and np.any(g != 0) for g in jax.tree.leaves(grads))


def test_bad_inputs_raise():
  losses = jnp.ones((4, 2))
  with pytest.raises(ValueError, match="losses"):
    ol.hedge(jnp.ones(4), 0.1)
  with pytest.raises(ValueError, match="eta"):
    ol.hedge(losses, -1.0)
  with pytest.raises(ValueError, match="eta"):
    ol.ftpl(jax.random.PRNGKey(0), losses, 0.0)
  with pytest.raises(ValueError, match="horizon"):
    ol.tuned_eta(0, 2)
  with pytest.raises(ValueError, match="n_actions"):
    ol.hedge_bound(10, 1)
  with pytest.raises(ValueError, match="n_samples"):
    ol.ftpl(jax.random.PRNGKey(0), losses, 1.0, n_samples=0)
  with pytest.raises(ValueError, match="plays"):
    ol.regret(losses, jnp.ones((3, 2)))
  with pytest.raises(ValueError, match="n_actions"):
    ol.alternating(None, 5, 3)
  with pytest.raises(ValueError, match="kind"):
    ol.sample_sequences(jax.random.PRNGKey(0), 2, 5, 2, "adversarial")
  with pytest.raises(ValueError, match="w_v"):
    ol.lsa_logits(ol.ftrl_lsa(3, 1.0), losses)
  with pytest.raises(ValueError, match="lr"):
    ol.train_lsa(jax.random.PRNGKey(0), ol.LSAConfig(lr=0.0))
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
  cfg = get_config("smoke")
  cfg.sequences = ("iid", "adversarial")
  with pytest.raises(ValueError, match="adversarial"):
    ex.run(cfg)


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_predicted_slopes(smoke):
  results = smoke.results
  rows = {(r["sequence"], r["algo"]): r for r in smoke.summary["metrics"]["regret"]}
  ts = results["T"]
  alt = results["sequences"].index("alternating")
  assert_slope(ts, results["regret"][0, alt], 0.5, 0.1)  # Hedge
  assert_slope(ts, results["regret"][1, alt], 0.5, 0.1)  # FTPL
  assert_slope(ts, results["regret"][2, alt], 1.0, 0.05)  # FTL
  for sequence in results["sequences"]:
    for algo in ("hedge", "ftpl"):
      assert rows[(sequence, algo)]["slope"] <= 0.6, rows[(sequence, algo)]
    assert rows[(sequence, "hedge")]["bound_ratio"] <= 1.0


def test_lsa_learns_ftrl(smoke):
  (row,) = smoke.summary["metrics"]["lsa"]
  assert row["cos"] > 0.9, row
  assert row["loss"] < row["hedge_loss"]  # the regret-loss picks its own step, not Hedge's worst-case one
  assert abs(row["loss"] / row["ftrl_loss"] - 1) < 0.05  # and FTRL with that step matches the LSA
