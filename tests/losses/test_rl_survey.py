"""The length toy (`rljax.theory.pg.length_bandit`) and the host reward that splits lengths by correctness
(`rljax.rewards.length_split`), used by the survey's experiment (spec §1.4: GRPO's 1/|o| length bias)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rljax import losses
from rljax.rewards.length_split import LengthSplit
from rljax.tasks import toy_suite
from rljax.theory.pg import length_bandit as lb

WIDTH = 6


def _env(n_prompts=1, n_answers=3, width=WIDTH):
  return lb.make_length_bandit(jax.random.PRNGKey(0), n_prompts=n_prompts, n_answers=n_answers, width=width)


def _all_responses(params, env):
  """Every response of prompt 0 (answer × length × stopped) and its probability."""
  rows = [(k, L, True) for k in range(params.theta.shape[1]) for L in range(2, env.width + 1)]
  rows += [(k, env.width, False) for k in range(params.theta.shape[1])]
  k, L, stopped = (jnp.asarray(x) for x in zip(*rows))
  reward = (k == env.correct[0]).astype(jnp.float32)
  return lb.Responses(jnp.zeros_like(k), k, L, stopped, reward)


def test_token_logps_sum_to_a_distribution_and_match_expected_length():
  env = _env()
  params = lb.init_params(env)._replace(phi=jnp.array([[-1.0, 0.3, 2.0]]))
  r = _all_responses(params, env)
  logp, mask = lb.token_logps(params, r, env.width)
  assert np.array_equal(mask.sum(-1), r.length)
  prob = jnp.exp(jnp.sum(jnp.where(mask, logp, 0.0), -1))
  assert float(prob.sum()) == pytest.approx(1.0, abs=1e-6)
  for k in range(3):
    sel = r.answer == k
    cond = float(jnp.sum(prob[sel] * r.length[sel]) / jnp.sum(prob[sel]))
    assert cond == pytest.approx(float(lb.expected_length(params.phi[0, k], env.width)), rel=1e-5)


def test_sampled_lengths_follow_the_closed_form():
  env = _env(n_prompts=2, width=10)
  params = lb.init_params(env)
  r = lb.sample(jax.random.PRNGKey(1), params, env, 4000)
  assert int(r.length.min()) >= 2 and int(r.length.max()) <= env.width
  assert not bool(jnp.any(~r.stopped & (r.length < env.width)))
  assert float(r.length.mean()) == pytest.approx(float(lb.expected_length(env.stop_logit, env.width)), rel=0.02)
  assert np.array_equal(r.reward, (r.answer == env.correct[r.prompt]).astype(np.float32))


def _expected_phi_ascent(agg: str, advantage: float) -> float:
  """Exact E[−∂_φ loss] over the lengths of one answer, with a fixed advantage, one response per batch."""
  env = _env(width=12)
  params = lb.init_params(env)._replace(theta=jnp.array([[20.0, 0.0, 0.0]]))  # answer 0 almost surely
  r = _all_responses(params, env)
  logp, mask = lb.token_logps(params, r, env.width)
  prob = jnp.exp(jnp.sum(jnp.where(mask, logp, 0.0), -1))
  loss_fn = functools.partial(losses.ppo_clip_loss, agg=agg)

  def one(single):
    single = jax.tree.map(lambda x: x[None], single)
    return lb.kernel_gradient(params, single, jnp.array([advantage]), env.width, loss_fn).phi[0, 0]

  return float(jnp.sum(prob * jax.vmap(one)(r)))


def test_per_response_normalisation_biases_length_and_a_constant_one_does_not():
  # seq-mean-token-mean weights a response by 1/L: a negative advantage lowers the stop logit (longer),
  # a positive one raises it (shorter); with a constant normaliser the expected push is exactly zero.
  assert _expected_phi_ascent("seq-mean-token-mean", -1.0) < -1e-3
  assert _expected_phi_ascent("seq-mean-token-mean", +1.0) > 1e-3
  for agg in ("seq-mean-token-sum", "seq-mean-token-sum-norm"):
    assert abs(_expected_phi_ascent(agg, -1.0)) < 1e-6


def test_training_trace_is_exact_at_the_start_and_grpo_lengthens_wrong_answers():
  env = lb.make_length_bandit(jax.random.PRNGKey(2), n_prompts=16, n_answers=4, width=16)
  p0 = lb.init_params(env)
  reward0, wrong0, right0 = lb.expected_stats(p0, env)
  assert float(wrong0) == pytest.approx(float(right0)) == pytest.approx(float(lb.expected_length(env.stop_logit, 16)))

  def train(scale, agg):
    fn = lb.make_train(env, steps=100, group_size=8, optimizer=optax.adam(0.05),
                       advantage_fn=functools.partial(losses.grpo_advantages, group_size=8, scale=scale),
                       loss_fn=functools.partial(losses.ppo_clip_loss, agg=agg))
    return jax.jit(fn)(jax.random.PRNGKey(3), p0)[1]

  grpo, dr = train("group", "seq-mean-token-mean"), train("none", "seq-mean-token-sum-norm")
  assert float(grpo.reward[0]) == pytest.approx(float(reward0))
  assert float(grpo.length_wrong[-1] - grpo.length_wrong[0]) > 3.0
  assert abs(float(dr.length_wrong[-1] - dr.length_wrong[0])) < 1.5


def test_bad_bandit_arguments():
  with pytest.raises(ValueError, match="n_answers"):
    lb.make_length_bandit(jax.random.PRNGKey(0), n_prompts=2, n_answers=1, width=4)
  with pytest.raises(ValueError, match="width"):
    lb.make_length_bandit(jax.random.PRNGKey(0), n_prompts=2, n_answers=2, width=1)
  with pytest.raises(ValueError, match="stop_prob"):
    lb.make_length_bandit(jax.random.PRNGKey(0), n_prompts=2, n_answers=2, width=4, stop_prob=1.0)


def test_length_split_keeps_the_rewards_and_splits_lengths():
  suite = toy_suite.make_suite(("add",), 1)
  batch = suite.sample(jax.random.PRNGKey(0), jnp.zeros(3, jnp.int32))
  t = suite.sft_targets(batch)
  completion, cmask = np.array(t["completion"]), np.array(t["completion_mask"])
  completion[1, :] = toy_suite.EOS_ID  # a one-token wrong response
  cmask[1, :] = False
  cmask[1, 0] = True
  reward = LengthSplit(suite.reward_fn)
  rewards, metrics = reward(np.asarray(batch.ids), np.asarray(batch.mask), completion, cmask, None)
  direct = suite.reward_fn(jnp.concatenate([batch.ids, completion], 1),
                           jnp.concatenate([jnp.zeros_like(batch.mask), cmask], 1))
  assert np.array_equal(rewards, np.asarray(direct)) and rewards.tolist() == [1.0, 0.0, 1.0]
  lengths = cmask.sum(-1)
  assert metrics == {"n_correct": 2.0, "length_correct": float(lengths[[0, 2]].mean()), "n_incorrect": 1.0,
                     "length_incorrect": 1.0}
  assert reward.on_host
