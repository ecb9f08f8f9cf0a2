import math

import jax
import numpy as np
import pytest

from rljax.losses import registry
from rljax.losses.aggregation import aggregate
from rljax.losses.apo import apo_stcr_scale, dads_kl_weights, weighted_seq_kl_loss
from rljax.losses.kl import kl_penalty
from rljax.losses.policy_gradient import ppo_clip_loss

N = 8
_dads = jax.jit(dads_kl_weights, static_argnames="form")
_stcr = jax.jit(apo_stcr_scale)


def _groups_by_correct_count(fmt=0.5):
  """Group k has k correct answers out of N (k = 0..N); rewards include a format bonus."""
  correct = np.arange(N)[None, :] < np.arange(N + 1)[:, None]
  rewards = correct + fmt * (np.arange(N)[None, :] % 2)  # acc + 0.5·format ∈ [0, 1.5]
  return rewards.astype(np.float32), correct


def test_dads_weights_follow_f_of_difficulty():
  rewards, correct = _groups_by_correct_count()
  adv = np.where(correct, 1.0, -1.0).astype(np.float32)
  w = np.asarray(_dads(rewards, adv))
  np.testing.assert_array_equal(w[~correct], 1.0)  # negatives exactly 1
  d = 1 - np.arange(N + 1) / N
  f = 1 - np.exp(-math.e * (1 - d))
  for k in range(1, N):
    np.testing.assert_allclose(w[k][correct[k]], f[k], rtol=1e-6)
  np.testing.assert_array_equal(w[N], 1.0)  # all correct: degenerate
  np.testing.assert_array_equal(w[0], 1.0)  # all wrong
  pos = [w[k][0] for k in range(1, N)]  # d falls as k rises, so the weight rises
  assert np.all(np.diff(pos) > 0)
  np.testing.assert_allclose(w[4][0], 0.743, atol=1e-3)  # d = 0.5
  np.testing.assert_allclose(w[1][0], 1 - math.exp(-math.e * 0.125), rtol=1e-6)  # d = 0.875: ≈ 0.288
  np.testing.assert_allclose(w[1][0], 0.288, atol=1e-3)


def test_dads_older_exp_form_and_sign_gate():
  rewards, correct = _groups_by_correct_count()
  adv = np.where(correct, 0.7, 0.0).astype(np.float32)  # A = 0 is not a positive
  w = np.asarray(_dads(rewards, adv, form="exp"))
  for k in range(1, N):
    np.testing.assert_allclose(w[k][correct[k]], math.exp(-math.e * (1 - k / N)), rtol=1e-6)
  np.testing.assert_array_equal(w[~correct], 1.0)


def test_stcr_scale_properties():
  rng = np.random.default_rng(0)
  rewards, correct = _groups_by_correct_count()
  lengths = rng.integers(10, 30000, rewards.shape).astype(np.float32)
  s = np.asarray(_stcr(rewards, lengths))
  assert np.all(s >= 1.0) and np.all(s < 2.0)
  np.testing.assert_array_equal(s[correct], 1.0)
  np.testing.assert_array_equal(s[0], 1.0)  # no correct answer: no reference length
  mean_pos = np.array([lengths[k][correct[k]].mean() if k else np.nan for k in range(N + 1)])
  shorter = ~correct & (lengths <= mean_pos[:, None])
  np.testing.assert_array_equal(s[1:][shorter[1:]], 1.0)
  longer = ~correct & (lengths > mean_pos[:, None])
  assert np.all(s[1:][longer[1:]] > 1.0)
  expected = 2 - 1.00001 ** -(lengths - mean_pos[:, None])
  np.testing.assert_allclose(s[1:][longer[1:]], expected[1:][longer[1:]], rtol=1e-5)


def test_stcr_is_monotone_in_length_and_keeps_signs():
  rewards = np.array([[1.0, 0.0, 0.0, 0.0, 0.0, 1.5]], np.float32)
  lengths = np.array([[100, 50, 150, 1000, 10100, 300]], np.float32)
  s = np.asarray(_stcr(rewards, lengths))[0]
  # L̄⁺ = 200: the 150-token wrong answer is unpenalised, longer ones increasingly so
  np.testing.assert_allclose(s, [1, 1, 1, 2 - 1.00001**-800, 2 - 1.00001**-9900, 1], rtol=1e-6)
  assert s[2] < s[3] < s[4] < 2
  np.testing.assert_allclose(2 - 1.00001**-10000, 1.0952, atol=1e-4)
  adv = (rewards[0] - rewards[0].mean()) / (rewards[0].std(ddof=1) + 1e-9)
  assert np.all(np.sign(adv * s) == np.sign(adv))


def _kl_batch(seed=0):
  rng = np.random.default_rng(seed)
  logp = -rng.uniform(0.1, 2.0, (6, 5)).astype(np.float32)
  ref = (logp + rng.normal(0, 0.4, (6, 5))).astype(np.float32)
  mask = np.arange(5)[None] < np.array([5, 3, 1, 4, 2, 5])[:, None]
  w = rng.uniform(0.2, 1.0, 6).astype(np.float32)
  return logp, ref, mask, w


_kl_loss = jax.jit(weighted_seq_kl_loss, static_argnames=("kind", "agg"))


def test_weighted_kl_matches_view_r1():
  logp, ref, mask, w = _kl_batch()
  d = logp - ref
  k3 = np.exp(-d) - 1 + d
  view_r1 = np.mean(w * np.where(mask, k3, 0).sum(1) / mask.sum(1))
  loss, m = _kl_loss(logp, ref, mask, w)
  np.testing.assert_allclose(loss, view_r1, rtol=1e-5)
  np.testing.assert_allclose(m["weight_mean"], w.mean(), rtol=1e-6)
  np.testing.assert_allclose(m["loss_numerator"] / m["loss_denominator"], loss, rtol=1e-6)


def test_switches_off_is_grpo_with_k3_kl_and_beta_zero_ignores_dads():
  logp, ref, mask, _ = _kl_batch(1)
  rewards = np.array([1.0, 0.0, 1.5, 0.0, 0.5, 1.0], np.float32)
  g = rewards.reshape(2, 3)
  adv = ((g - g.mean(1, keepdims=True)) / (g.std(1, ddof=1, keepdims=True) + 1e-9)).reshape(-1)  # View-R1 group_norm
  old = logp + 0.05
  ones = np.ones(6, np.float32)
  dads = np.asarray(_dads(rewards.reshape(2, 3), np.asarray(adv).reshape(2, 3))).reshape(-1)
  assert np.any(dads != 1)

  def apo(lp, weights, beta):
    pg, _ = ppo_clip_loss(lp, old, adv, mask, agg="seq-mean-token-mean")
    return pg + beta * weighted_seq_kl_loss(lp, ref, mask, weights)[0]

  def grpo(lp, beta):
    pg, _ = ppo_clip_loss(lp, old, adv, mask, agg="seq-mean-token-mean")
    return pg + beta * aggregate(kl_penalty(lp, ref, kind="k3"), mask, "seq-mean-token-mean")

  apo_vg = jax.jit(jax.value_and_grad(apo))
  np.testing.assert_allclose(apo_vg(logp, ones, 0.1)[0], jax.jit(grpo)(logp, 0.1), rtol=1e-6)
  (v0, g0), (v1, g1) = apo_vg(logp, ones, 0.0), apo_vg(logp, dads, 0.0)
  np.testing.assert_array_equal(v0, v1)
  np.testing.assert_array_equal(g0, g1)
  assert float(apo_vg(logp, dads, 0.1)[0]) != float(apo_vg(logp, ones, 0.1)[0])


def test_gradient_only_into_logp_and_padding_safe():
  logp, ref, mask, w = _kl_batch(2)
  logp = np.where(mask, logp, -np.inf).astype(np.float32)
  grads = jax.jit(jax.grad(lambda *a: weighted_seq_kl_loss(*a)[0], argnums=(0, 1, 3)))(logp, ref, mask, w)
  assert np.all(np.isfinite(grads[0]))
  np.testing.assert_array_equal(np.asarray(grads[0])[~mask], 0.0)
  np.testing.assert_array_equal(grads[1], 0.0)
  np.testing.assert_array_equal(grads[2], 0.0)
  empty = np.zeros_like(mask)
  assert float(_kl_loss(logp, ref, empty, w)[0]) == 0.0


def test_registered_and_jit_matches_eager(maybe_jit):
  assert registry.get("weighted_seq_kl") is weighted_seq_kl_loss
  rewards, correct = _groups_by_correct_count()
  adv = np.where(correct, 1.0, -1.0).astype(np.float32)
  lengths = np.arange(rewards.size, dtype=np.float32).reshape(rewards.shape) * 97
  f = maybe_jit(lambda r, a, l: (dads_kl_weights(r, a), apo_stcr_scale(r, l)))
  out = f(rewards, adv, lengths)
  np.testing.assert_allclose(out[0], _dads(rewards, adv), rtol=1e-6)
  np.testing.assert_allclose(out[1], _stcr(rewards, lengths), rtol=1e-6)


def test_bad_inputs_raise():
  rewards, correct = _groups_by_correct_count()
  logp, ref, mask, w = _kl_batch()
  with pytest.raises(ValueError, match="form"):
    dads_kl_weights(rewards, rewards, form="linear")
  with pytest.raises(ValueError, match="advantages"):
    dads_kl_weights(rewards, rewards[:, :3])
  with pytest.raises(ValueError, match="base"):
    apo_stcr_scale(rewards, rewards, base=1.0)
  with pytest.raises(ValueError, match="lengths"):
    apo_stcr_scale(rewards, rewards[:2])
  with pytest.raises(ValueError, match="seq_weights"):
    weighted_seq_kl_loss(logp, ref, mask, w[:3])
  with pytest.raises(ValueError, match="agg"):
    weighted_seq_kl_loss(logp, ref, mask, w, agg="mean")
  with pytest.raises(ValueError, match="kind"):
    weighted_seq_kl_loss(logp, ref, mask, w, kind="k4")
