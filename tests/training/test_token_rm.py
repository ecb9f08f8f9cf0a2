"""The token-level reward model of OREAL in the online loop (`rljax.training.token_rm`)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import rljax.algorithms as algos
from rljax.losses import oreal
from rljax.training import token_rm
from rljax.training.step import make_optimizer
from rljax.training import testbed


def test_first_deviation():
  ref = jnp.asarray([[3, 5, 7, 2, 0], [3, 5, 7, 2, 0], [3, 5, 7, 2, 0], [3, 5, 7, 2, 0]])
  comp = jnp.asarray([[3, 5, 7, 2, 0], [3, 6, 7, 2, 0], [3, 5, 2, 0, 0], [3, 5, 7, 7, 9]])
  mask = jnp.asarray([[1, 1, 1, 1, 0], [1, 1, 1, 1, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
  # identical; a wrong second token; an early <eos> (2) at position 2; wrong from position 3
  np.testing.assert_array_equal(token_rm.first_deviation(comp, mask, ref), [-1, 1, 2, 3])


def test_localisation():
  scores = jnp.asarray([[0.0, -3.0, 1.0, 0.0], [0.0, 1.0, -2.0, 5.0], [-1.0, 0.0, 0.0, -9.0], [0.0, 0.0, 0.0, 0.0]])
  mask = jnp.asarray([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]], bool)  # row 2: −9 is padding
  first = jnp.asarray([1, 1, 0, -1])  # row 3 has no error
  rows = jnp.asarray([True, True, True, True])
  out = {k: float(v) for k, v in token_rm.localisation(scores, mask, first, rows).items()}
  assert out["count"] == 3
  np.testing.assert_allclose(out["precision"], 2 / 3)  # rows 0 and 2 hit, row 1 names position 2
  np.testing.assert_allclose(out["uniform"], (1 / 4 + 1 / 4 + 1 / 3) / 3)
  np.testing.assert_allclose(out["prior"], 2 / 3)  # position 1 holds two of the three errors
  only = token_rm.localisation(scores, mask, first, jnp.asarray([False, True, False, False]))
  assert float(only["count"]) == 1 and float(only["precision"]) == 0.0


def _setup(freeze_steps=1, rm_lr=1e-2):
  cfg = testbed.testbed_config("smoke")
  cfg.rl.update(prompts=2, group_size=4)
  tb = testbed.Testbed(cfg)
  graph = nnx.graphdef(token_rm.attach(tb.model(0)))
  base = tb.online("oreal", graphdef=graph)
  algo = token_rm.make_token_rm_rl(base, graph, lr=rm_lr, freeze_steps=freeze_steps)
  opt = make_optimizer(1e-2)
  _, state = algo.init_state(tb.model(0), opt, rng=jax.random.key(0))
  problems = tb.problems(jax.random.key(1), 2)
  batch = algo.collect(state, problems.ids, problems.mask, jax.random.key(2))
  # Mixed outcomes in both groups (the random policy is always wrong), advantages and keep redone.
  batch["rewards"] = jnp.asarray([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0])
  batch |= algos.resolve(base.config)[0]({**batch, "key": jax.random.key(3)})
  return tb, graph, base, algo, opt, state, batch


def _split(params):
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  pol = [np.asarray(v) for p, v in flat if p[0].key == "policy"]
  rm = [np.asarray(v) for p, v in flat if p[0].key in token_rm.RM_KEYS]
  return pol, rm


def test_token_scores_read_the_token_itself():
  tb = testbed.Testbed(testbed.testbed_config("smoke"))
  model = token_rm.attach(tb.model(0))
  problems = tb.problems(jax.random.key(0), 2)
  t = tb.suite.sft_targets(problems)
  n = t["completion"].shape[1]
  s0 = token_rm.token_scores(model, t["tokens"], t["mask"], n)
  old = t["tokens"][:, -n + 2]
  tokens = t["tokens"].at[:, -n + 2].set(jnp.where(old == 10, 11, 10))  # change response token 2
  s1 = token_rm.token_scores(model, tokens, t["mask"], n)
  np.testing.assert_array_equal(s0[:, :2], s1[:, :2])  # causal: earlier tokens unchanged
  assert np.all(np.asarray(s0[:, 2]) != np.asarray(s1[:, 2]))  # the changed token's own score moves
  with pytest.raises(ValueError, match="attach"):
    token_rm.token_scores(tb.model(0), t["tokens"], t["mask"], n)


def test_freeze_then_joint_updates_and_weighted_loss():
  tb, graph, base, algo, opt, state, batch = _setup(freeze_steps=1)
  step = algo.make_step(opt, donate=False)
  pol0, rm0 = _split(state.params)
  s1, m1 = step(state, batch)
  pol1, rm1 = _split(s1.params)
  assert float(m1["policy_on"]) == 0.0
  assert all(np.array_equal(a, b) for a, b in zip(pol0, pol1))  # actor frozen
  assert any(not np.array_equal(a, b) for a, b in zip(rm0, rm1))  # the RM learns
  s2, m2 = step(s1, batch)
  pol2, _ = _split(s2.params)
  assert float(m2["policy_on"]) == 1.0
  assert any(not np.array_equal(a, b) for a, b in zip(pol1, pol2))
  # The loss is L_policy(ω) + L_RM with ω = token_rm_weights of the RM's token scores, and
  # L_RM = BCE on the kept responses only.
  model = nnx.merge(graph, s1.params)
  n = batch["mask"].shape[1]
  scores = token_rm.token_scores(model, batch["tokens"], batch["token_mask"], n)
  w = oreal.token_rm_weights(scores, batch["mask"], batch["rewards"])
  pol_loss, _ = base.loss_fn(model, {**batch, "token_weights": w}, jax.random.key(0), s1.extra)
  rm_loss, _ = oreal.token_rm_loss(scores, batch["mask"] & batch["keep"][:, None], batch["rewards"])
  total, m = algo.loss_fn(model, {**batch, "update": jnp.asarray(5)}, jax.random.key(0), s1.extra)
  np.testing.assert_allclose(total, pol_loss + rm_loss, rtol=1e-5)
  np.testing.assert_allclose(m["rm_loss"], rm_loss, rtol=1e-6)
  unweighted, _ = base.loss_fn(model, batch, jax.random.key(0), s1.extra)
  assert abs(float(pol_loss) - float(unweighted)) > 1e-4  # the weights do enter the policy loss
  # rm_data="all": the RM's BCE runs over every sampled response, not only the kept pair
  every = token_rm.make_token_rm_rl(base, graph, lr=1e-2, rm_data="all")
  _, m_all = every.loss_fn(model, batch, jax.random.key(0), s1.extra)
  np.testing.assert_allclose(m_all["rm_loss"], oreal.token_rm_loss(scores, batch["mask"], batch["rewards"])[0],
                             rtol=1e-6)
  assert not np.allclose(m_all["rm_loss"], rm_loss)


def test_joint_optimizer_gives_the_rm_its_own_rate():
  params = {"policy": jnp.ones(3), "critic": jnp.ones(2), "value_head": jnp.ones(1)}
  grads = jax.tree.map(jnp.ones_like, params)
  opt = token_rm.joint_optimizer(optax.apply_if_finite(optax.sgd(0.1), 5), optax.apply_if_finite(optax.sgd(2.0), 5))
  updates, _ = opt.update(grads, opt.init(params), params)
  np.testing.assert_allclose(updates["policy"], -0.1)
  np.testing.assert_allclose(updates["critic"], -2.0)
  np.testing.assert_allclose(updates["value_head"], -2.0)


@pytest.mark.parametrize("kw, match", [(dict(lr=0.0), "lr"), (dict(lr=1e-3, threshold=1.0), "threshold"),
                                       (dict(lr=1e-3, freeze_steps=-1), "freeze_steps"),
                                       (dict(lr=1e-3, rm_data="pairs"), "rm_data")])
def test_bad_arguments(kw, match):
  tb = testbed.Testbed(testbed.testbed_config("smoke"))
  graph = nnx.graphdef(token_rm.attach(tb.model(0)))
  with pytest.raises(ValueError, match=match):
    token_rm.make_token_rm_rl(tb.online("oreal", graphdef=graph), graph, **kw)
  with pytest.raises(ValueError, match="OREAL"):
    token_rm.make_token_rm_rl(tb.online("grpo", graphdef=graph), graph, lr=1e-3)
