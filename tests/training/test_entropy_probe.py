"""The per-update entropy probe (rljax.training.entropy_probe): it measures, and changes nothing it measures."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rljax import algorithms
from rljax.losses.entropy_mechanism import token_covariance
from rljax.ops.reductions import masked_mean
from rljax.training import testbed as tb_lib
from rljax.training.entropy_probe import PROBE_KEYS, batch_entropy_and_covariance, with_entropy_probe
from rljax.training.step import make_optimizer


@pytest.fixture(scope="module")
def setup():
  cfg = tb_lib.testbed_config("smoke")
  tb = tb_lib.Testbed(cfg)
  preset = algorithms.get("grpo")
  preset.kl.update(coef=0.0, where="none")
  algo = tb.online(preset)
  graphdef = tb.graphdef()
  opt = make_optimizer(3e-2)  # a large step: the entropy visibly moves
  ids, mask, _, _ = tb.prompt_fn(0)(0)

  def fresh():
    model = tb.model(0)
    return algo.init_state(model, opt, rng=jax.random.PRNGKey(0))[1]

  batch = algo.collect(fresh(), ids, mask, jax.random.PRNGKey(1))
  # An untrained model earns no reward (all advantages 0, no update): give the responses advantages of both signs.
  batch["advantages"] = jax.random.normal(jax.random.PRNGKey(2), batch["advantages"].shape)
  return tb, algo, graphdef, opt, fresh, batch


def _entropy(graphdef, params, batch):
  """Token-mean exact entropy at the response positions, from the full logits (independent of the probe)."""
  model = nnx.merge(graphdef, params)
  n = batch["mask"].shape[1]
  logits = model(batch["tokens"][:, :-1], attention_mask=batch["token_mask"][:, :-1])[:, -n:]
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
  return masked_mean(-jnp.sum(jnp.exp(logp) * logp, -1), batch["mask"])


def test_probe_leaves_the_update_unchanged_and_measures_it(setup):
  tb, algo, graphdef, opt, fresh, batch = setup
  plain, m_plain = algo.make_step(opt)(fresh(), batch)
  probed, m = with_entropy_probe(algo, graphdef).make_step(opt)(fresh(), batch)
  jax.tree.map(np.testing.assert_array_equal, plain.params, probed.params)
  for key in m_plain:
    np.testing.assert_array_equal(m[key], m_plain[key])
  assert set(PROBE_KEYS) <= set(m)
  before = fresh().params
  h0, h1 = _entropy(graphdef, before, batch), _entropy(graphdef, probed.params, batch)
  np.testing.assert_allclose(m["probe_entropy"], h0, rtol=1e-5)
  np.testing.assert_allclose(m["probe_entropy_change"], h1 - h0, rtol=1e-4, atol=1e-6)
  assert abs(float(h1 - h0)) > 1e-3  # the step moved the entropy: the check above is not 0 = 0
  # On-policy (the first update of a rollout), the probe's covariance is that of the batch's own log-probabilities.
  cov = masked_mean(token_covariance(batch["old_logp"], batch["advantages"], batch["mask"]), batch["mask"])
  np.testing.assert_allclose(m["probe_cov"], cov, rtol=1e-4, atol=1e-7)


def test_probe_inside_the_online_loop_logs_first_update_and_mean(setup, tmp_path):
  tb, algo, graphdef, _, _, _ = setup
  algo2 = tb.online(algorithms.get("grpo"), minibatches=2)
  state, metrics = algo2.rl_iteration(algo2.init_state(tb.model(0), make_optimizer(1e-3), rng=jax.random.PRNGKey(0))[1],
                                      with_entropy_probe(algo2, graphdef).make_step(make_optimizer(1e-3)),
                                      *tb.prompt_fn(0)(0)[:2], jax.random.PRNGKey(2))
  for key in PROBE_KEYS:
    assert np.isfinite(metrics[key]) and np.isfinite(metrics[f"first_{key}"])
  assert metrics["first_probe_entropy"] > 0
  h, cov = batch_entropy_and_covariance(graphdef, state.params, algo2.collect(state, *tb.prompt_fn(0)(1)[:2],
                                                                               jax.random.PRNGKey(3)))
  assert np.isfinite(h) and np.isfinite(cov)
