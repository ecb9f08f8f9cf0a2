"""Advantage estimators (rljax.losses.advantages) against rlax, numpy re-implementations of the peers'
formulas, and their defining identities."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

from rljax.losses import advantages as A


class _Jitted:
  """`J.f(*args, **kw)` runs `jax.jit(partial(A.f, **kw))(*args)`: on a 2-core CPU one compile is
  cheaper than eager op-by-op dispatch. Eager execution is covered by the `maybe_jit` tests."""

  def __getattr__(self, name):
    fn = getattr(A, name)
    return lambda *args, **kw: jax.jit(functools.partial(fn, **kw))(*args)


J = _Jitted()


def _right_padded(rng, batch, length, min_len=0):
  lengths = rng.integers(min_len, length + 1, size=batch)
  lengths[0], lengths[-1] = length, min_len  # always include a full and the shortest row
  return np.arange(length)[None, :] < lengths[:, None]


# ----------------------------------------------------------------------------------------------
# GAE


@jax.jit
def _rlax_gae(rewards, values, mask, gamma, lam):
  """rlax on right-padded rows: discount_t = γ·mask_t, values·mask with a 0 bootstrap appended."""
  discounts = gamma * mask
  v = jnp.concatenate([values * mask, jnp.zeros((values.shape[0], 1))], axis=1)
  gae_row = lambda r, d, v: rlax.truncated_generalized_advantage_estimation(r, d, lam, v)
  return jax.vmap(gae_row)(rewards * mask, discounts, v)


def test_gae_matches_rlax_row_by_row(maybe_jit, x64):
  rng = np.random.default_rng(0)
  mask = _right_padded(rng, 7, 9)
  values = rng.normal(size=mask.shape)
  rewards = 0.1 * rng.normal(size=mask.shape)  # e.g. −β·KL per token …
  eos = mask.sum(1) - 1
  rows = np.flatnonzero(eos >= 0)
  rewards[rows, eos[rows]] += rng.choice([0.0, 1.0], size=rows.size)  # … plus the score at EOS
  fn = maybe_jit(A.gae)
  for gamma, lam in [(1.0, 1.0), (1.0, 0.95), (0.9, 0.0), (0.97, 0.6)]:
    # Traced γ, λ: one compile for all four (range checks apply to concrete values only).
    adv, ret = fn(rewards, values, mask, gamma=jnp.asarray(gamma), lam=jnp.asarray(lam))
    expected = np.asarray(_rlax_gae(rewards, values, mask, gamma, lam))
    assert adv.dtype == jnp.float64
    np.testing.assert_allclose(adv, expected * mask, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ret, (expected + values) * mask, rtol=0, atol=1e-12)


def test_gae_lambda_one_is_reward_to_go_and_lambda_zero_is_td_error(x64):
  rng = np.random.default_rng(1)
  mask = _right_padded(rng, 5, 8)
  rewards, values = rng.normal(size=(2,) + mask.shape)
  _, ret = J.gae(rewards, values, mask, gamma=1.0, lam=1.0)
  reward_to_go = np.cumsum((rewards * mask)[:, ::-1], axis=1)[:, ::-1] * mask
  np.testing.assert_allclose(ret, reward_to_go, atol=1e-12)
  gamma = 0.8
  adv, _ = J.gae(rewards, values, mask, gamma=gamma, lam=0.0)
  next_values = np.concatenate([values[:, 1:] * mask[:, 1:], np.zeros((5, 1))], axis=1)
  td = (rewards + gamma * next_values - values) * mask
  np.testing.assert_allclose(adv, td, atol=1e-12)


def test_gae_skips_interior_masked_tokens(x64):
  """Tool tokens inserted inside a response leave every other token's advantage unchanged."""
  rng = np.random.default_rng(2)
  length, extra = 6, 3
  rewards, values = rng.normal(size=(2, 1, length))
  compact_mask = np.ones((1, length), bool)
  adv_c, ret_c = J.gae(rewards, values, compact_mask, gamma=0.9, lam=0.8)
  # Insert `extra` masked tokens after positions 1, 3, 3 (interior), plus one padding token.
  keep = np.array([0, 1, -1, 2, 3, -1, -1, 4, 5, -1])
  wide_r = np.where(keep >= 0, rewards[0, keep], np.nan)[None]
  wide_v = np.where(keep >= 0, values[0, keep], 1e6)[None]
  wide_m = (keep >= 0)[None]
  assert wide_m.sum() == length and (~wide_m).sum() == extra + 1
  adv_w, ret_w = J.gae(wide_r, wide_v, wide_m, gamma=0.9, lam=0.8)
  np.testing.assert_allclose(np.asarray(adv_w)[wide_m], adv_c[0], atol=1e-12)
  np.testing.assert_allclose(np.asarray(ret_w)[wide_m], ret_c[0], atol=1e-12)
  np.testing.assert_array_equal(np.asarray(adv_w)[~wide_m], 0.0)  # NaN/garbage did not leak
  grads = jax.grad(lambda v: J.gae(wide_r, v, wide_m, gamma=0.9, lam=0.8)[0].sum())(jnp.asarray(wide_v))
  assert np.all(np.isfinite(grads)) and np.all(np.asarray(grads)[~wide_m] == 0)


def test_gae_empty_rows_and_errors():
  mask = np.zeros((2, 4), bool)
  adv, ret = J.gae(np.ones((2, 4)), np.ones((2, 4)), mask, gamma=1.0, lam=1.0)
  np.testing.assert_array_equal(adv, 0.0)
  np.testing.assert_array_equal(ret, 0.0)
  with pytest.raises(ValueError, match="`values` has shape"):
    J.gae(np.ones((2, 4)), np.ones((2, 5)), mask, gamma=1.0, lam=1.0)
  with pytest.raises(ValueError, match="`rewards` must have rank 2"):
    J.gae(np.ones(4), np.ones(4), np.ones(4, bool), gamma=1.0, lam=1.0)
  with pytest.raises(ValueError, match="`lam` must be in"):
    J.gae(np.ones((2, 4)), np.ones((2, 4)), mask, gamma=1.0, lam=1.5)
  with pytest.raises(ValueError, match="`gamma` must be in"):
    J.gae(np.ones((2, 4)), np.ones((2, 4)), mask, gamma=-0.1, lam=1.0)


# ----------------------------------------------------------------------------------------------
# Whitening


def test_whiten_matches_verl_trl_formula(maybe_jit, x64):
  rng = np.random.default_rng(3)
  mask = _right_padded(rng, 6, 7, min_len=1)
  x = rng.normal(2.0, 3.0, size=mask.shape)
  vals = x[mask]
  mu, var = vals.mean(), vals.var(ddof=1)  # unbiased, as verl/TRL `masked_whiten`
  out = maybe_jit(A.whiten)(x, mask)
  np.testing.assert_allclose(out, (x - mu) / np.sqrt(var + 1e-8) * mask, atol=1e-12)
  kept = maybe_jit(functools.partial(A.whiten, shift_mean=False))(x, mask)
  np.testing.assert_allclose(kept, ((x - mu) / np.sqrt(var + 1e-8) + mu) * mask, atol=1e-12)
  # OpenRLHF's biased variance would differ by sqrt(N/(N−1)): make sure we are not that one.
  assert not np.allclose(out, (x - mu) / np.sqrt(vals.var() + 1e-8) * mask, atol=1e-6)


def test_whiten_degenerate_masks_are_finite():
  x = np.array([[3.0, -1.0, 7.0]])
  one = np.array([[False, True, False]])
  np.testing.assert_array_equal(J.whiten(x, one), [[0.0, 0.0, 0.0]])
  np.testing.assert_allclose(J.whiten(x, one, shift_mean=False), [[0.0, -1.0, 0.0]])
  none = np.zeros_like(one)
  np.testing.assert_array_equal(J.whiten(x, none), 0.0)
  np.testing.assert_array_equal(J.whiten(x, none, shift_mean=False), 0.0)
  const = np.full((1, 7), 0.7, np.float32)  # a constant batch: exact zeros, not rounding error · 1e4
  np.testing.assert_array_equal(J.whiten(const, np.ones((1, 7), bool)), 0.0)
  with pytest.raises(ValueError, match="`mask` has shape"):
    J.whiten(x, np.ones((1, 2), bool))


# ----------------------------------------------------------------------------------------------
# Group estimators


def _trl_grpo(rewards, n, scale, eps):
  """TRL GRPOTrainer's inline advantage (view(-1, n); torch.std is unbiased)."""
  grouped = rewards.reshape(-1, n)
  adv = rewards - np.repeat(grouped.mean(1), n)
  if scale == "group":
    adv = adv / (np.repeat(grouped.std(1, ddof=1), n) + eps)
  elif scale == "batch":
    adv = adv / (rewards.std(ddof=1) + eps)
  return adv


def test_grpo_matches_trl_formula(maybe_jit, x64):
  rng = np.random.default_rng(4)
  rewards = rng.choice([0.0, 1.0], size=24) + 0.1 * rng.normal(size=24)
  rewards[8:12] = 1.0  # a constant group
  for scale in ("group", "batch", "none"):
    fn = maybe_jit(functools.partial(A.grpo_advantages, group_size=4, scale=scale))
    for eps in (1e-4, 1e-6):  # TRL's and verl's (traced: one compile per scale)
      out = fn(rewards, eps=jnp.asarray(eps))
      np.testing.assert_allclose(out, _trl_grpo(rewards, 4, scale, eps), rtol=0, atol=1e-12)
      np.testing.assert_allclose(np.asarray(out).reshape(-1, 4).sum(1), 0.0, atol=1e-12)


def test_grpo_std_identity(x64):
  """Unbiased std: the population std of a group's advantages is sqrt((n−1)/n); population std: 1."""
  n = 5
  rewards = np.random.default_rng(5).normal(size=4 * n)
  unbiased = np.asarray(J.grpo_advantages(rewards, group_size=n, eps=0.0)).reshape(-1, n)
  np.testing.assert_allclose(unbiased.std(1), np.sqrt((n - 1) / n), atol=1e-12)
  population = np.asarray(J.grpo_advantages(rewards, group_size=n, eps=0.0, std_ddof=0)).reshape(-1, n)
  np.testing.assert_allclose(population.std(1), 1.0, atol=1e-12)
  default = np.asarray(J.grpo_advantages(rewards, group_size=n)).reshape(-1, n)
  np.testing.assert_allclose(default.std(1), np.sqrt((n - 1) / n), rtol=1e-5)


def test_grpo_constant_groups_and_singletons_give_zeros():
  rewards = jnp.asarray([0.7, 0.7, 0.7, 0.1, 0.1, 0.1, 1.0, 0.0, 1.0], jnp.float32)
  for scale in ("group", "batch", "none"):
    out = np.asarray(J.grpo_advantages(rewards, group_size=3, scale=scale))
    np.testing.assert_array_equal(out[:6], 0.0)
    assert np.all(np.isfinite(out)) and np.abs(out[6:]).min() > 0.1
  zero_eps = J.grpo_advantages(jnp.full(6, 0.3), group_size=3, eps=0.0)  # 0/0 guarded
  np.testing.assert_array_equal(zero_eps, 0.0)
  grads = jax.grad(lambda r: J.grpo_advantages(r, group_size=3)[0])(rewards)
  assert np.all(np.isfinite(grads))
  np.testing.assert_array_equal(J.grpo_advantages(rewards, group_size=1), 0.0)
  np.testing.assert_array_equal(J.rloo_advantages(rewards, group_size=1), 0.0)
  np.testing.assert_array_equal(J.opo_advantages(rewards, np.ones(9), group_size=1), 0.0)


def test_grpo_valid_mask_equals_compacted_groups(x64):
  rng = np.random.default_rng(6)
  rewards = rng.normal(size=12)
  valid = np.ones(12, bool)
  valid[[1, 6, 7]] = False
  rewards_nan = np.where(valid, rewards, np.nan)  # filtered samples may carry anything
  for scale in ("group", "batch", "none"):
    out = np.asarray(J.grpo_advantages(rewards_nan, group_size=4, scale=scale, valid=valid))
    np.testing.assert_array_equal(out[~valid], 0.0)
    batch_std = rewards[valid].std(ddof=1)
    for g in range(3):
      idx = [i for i in range(4 * g, 4 * g + 4) if valid[i]]
      r = rewards[idx]
      expected = r - r.mean()
      if scale == "group":
        expected = expected / (r.std(ddof=1) + 1e-6)
      elif scale == "batch":
        expected = expected / (batch_std + 1e-6)
      np.testing.assert_allclose(out[idx], expected, atol=1e-12)
  rloo = np.asarray(J.rloo_advantages(rewards_nan, group_size=4, valid=valid))
  np.testing.assert_allclose(rloo[[4, 5]], [(rewards[4] - rewards[5]), (rewards[5] - rewards[4])], atol=1e-12)
  np.testing.assert_array_equal(rloo[~valid], 0.0)


def test_rloo_is_scaled_dr_grpo_with_own_reward_outside_the_baseline(maybe_jit, x64):
  n = 4
  rewards = jnp.asarray(np.random.default_rng(7).normal(size=3 * n))
  rloo = maybe_jit(functools.partial(A.rloo_advantages, group_size=n))(rewards)
  dr = maybe_jit(functools.partial(A.grpo_advantages, group_size=n, scale="none"))(rewards)
  np.testing.assert_array_equal(rloo, n / (n - 1) * dr)
  r = np.asarray(rewards).reshape(-1, n)
  leave_one_out = r - (r.sum(1, keepdims=True) - r) / (n - 1)
  np.testing.assert_allclose(rloo, leave_one_out.reshape(-1), atol=1e-12)
  # ∂A_i/∂R_i = 1 (the baseline of i ignores R_i), ∂A_i/∂R_j = −1/(n−1) inside the group, 0 outside.
  jac = np.asarray(jax.jacobian(lambda x: J.rloo_advantages(x, group_size=n))(rewards))
  block = np.eye(n) * (1 + 1 / (n - 1)) - 1 / (n - 1)
  np.testing.assert_allclose(jac, np.kron(np.eye(3), block), atol=1e-12)


def test_passk_rewards_only_the_best_sample(x64):
  rewards = np.array([0.2, 0.9, 0.5, 0.1,   1.0, 1.0, 0.0, 0.3,   0.0, 0.0, 0.0, 0.0])
  out = np.asarray(J.passk_advantages(rewards, group_size=4))
  g0 = rewards[:4]
  expected0 = (0.9 - 0.5) / (g0.std(ddof=1) + 1e-6)
  np.testing.assert_allclose(out[:4], [0.0, expected0, 0.0, 0.0], atol=1e-12)
  np.testing.assert_array_equal(out[4:], 0.0)  # a tied maximum and an all-equal group: all 0
  raw = np.asarray(J.passk_advantages(rewards, group_size=4, scale_by_std=False))
  np.testing.assert_allclose(raw[:4], [0.0, 0.4, 0.0, 0.0], atol=1e-12)
  with pytest.raises(ValueError, match="`group_size` must be >= 2"):
    J.passk_advantages(rewards, group_size=1)


def test_opo_length_weighted_baseline(x64):
  rng = np.random.default_rng(8)
  rewards = rng.normal(size=8)
  lengths = rng.integers(1, 20, size=8)
  out = np.asarray(J.opo_advantages(rewards, lengths, group_size=4))
  for g in range(2):
    s, w = rewards[4 * g:4 * g + 4], lengths[4 * g:4 * g + 4]
    np.testing.assert_allclose(out[4 * g:4 * g + 4], s - (w * s).sum() / w.sum(), atol=1e-12)
    np.testing.assert_allclose((w * out[4 * g:4 * g + 4]).sum(), 0.0, atol=1e-12)
  empty = J.opo_advantages(np.array([1.0, 0.0]), np.zeros(2), group_size=2)  # plain-mean fallback
  np.testing.assert_allclose(empty, [0.5, -0.5])


def test_group_size_and_shape_errors():
  r = jnp.zeros(6)
  with pytest.raises(ValueError, match=r"`group_size` \(4\) must divide the batch size B = 6"):
    J.grpo_advantages(r, group_size=4)
  with pytest.raises(ValueError, match="must divide"):
    J.rloo_advantages(r, group_size=5)
  with pytest.raises(ValueError, match="Python int"):
    J.grpo_advantages(r, group_size=2.0)
  with pytest.raises(ValueError, match="`group_size` must be >= 1"):
    J.grpo_advantages(r, group_size=0)
  with pytest.raises(ValueError, match="`rewards` must have rank 1"):
    J.grpo_advantages(jnp.zeros((2, 3)), group_size=3)
  with pytest.raises(ValueError, match="`scale` must be one of"):
    J.grpo_advantages(r, group_size=3, scale="global")
  with pytest.raises(ValueError, match="`valid` has shape"):
    J.grpo_advantages(r, group_size=3, valid=jnp.ones(5, bool))
  with pytest.raises(ValueError, match="`lengths` has shape"):
    J.opo_advantages(r, jnp.ones(5), group_size=3)
  with pytest.raises(ValueError, match="`std_ddof`"):
    J.grpo_advantages(r, group_size=3, std_ddof=2)


# ----------------------------------------------------------------------------------------------
# REINFORCE++, ReMax, broadcasting


def _np_reinforce_pp(scores, mask, kl, beta, gamma):
  """REINFORCE++ by hand: score at the last valid token − β·kl, reward-to-go skipping masked steps,
  then masked whitening with the unbiased variance (verl `masked_whiten`)."""
  rew = -beta * kl * mask
  returns = np.zeros_like(rew)
  for i in range(mask.shape[0]):
    valid = np.flatnonzero(mask[i])
    if valid.size:
      rew[i, valid[-1]] += scores[i]
    g = 0.0
    for t in valid[::-1]:
      g = rew[i, t] + gamma * g
      returns[i, t] = g
  vals = returns[mask]
  adv = (returns - vals.mean()) / np.sqrt(vals.var(ddof=1) + 1e-8) * mask
  return adv, returns


def _mask_with_holes(rng, batch, length):
  mask = _right_padded(rng, batch, length, min_len=2)
  mask[1, 1] = False  # an interior tool token
  return mask


def test_reinforce_pp_matches_hand_computation(maybe_jit, x64):
  rng = np.random.default_rng(9)
  mask = _mask_with_holes(rng, 6, 7)
  scores = rng.choice([0.0, 1.0], size=6)
  kl = 0.3 * rng.normal(size=mask.shape)
  fn = maybe_jit(functools.partial(A.reinforce_pp_advantages, kl_coef=0.05, gamma=0.95))
  adv, ret = fn(scores, mask, token_kl=kl)
  exp_adv, exp_ret = _np_reinforce_pp(scores, mask, kl, 0.05, 0.95)
  np.testing.assert_allclose(adv, exp_adv, atol=1e-12)
  np.testing.assert_allclose(ret, exp_ret, atol=1e-12)
  # No KL, γ = 1: every token of a response carries its (whitened) score.
  adv0, ret0 = J.reinforce_pp_advantages(scores, mask)
  np.testing.assert_allclose(ret0, scores[:, None] * mask, atol=1e-12)
  np.testing.assert_allclose(adv0, _np_reinforce_pp(scores, mask, kl, 0.0, 1.0)[0], atol=1e-12)


def test_reinforce_pp_baseline_matches_verl_and_openrlhf_forms(x64):
  rng = np.random.default_rng(10)
  n = 3
  mask = _mask_with_holes(rng, 6, 5)
  scores = rng.normal(size=6)
  centered = scores - np.repeat(scores.reshape(-1, n).mean(1), n)
  # verl `reinforce_plus_plus_baseline` (no KL): (s − mean_g) broadcast, then masked_whiten.
  adv, _ = J.reinforce_pp_advantages(scores, mask, baseline="group", group_size=n)
  b = centered[:, None] * mask
  vals = b[mask]
  np.testing.assert_allclose(adv, (b - vals.mean()) / np.sqrt(vals.var(ddof=1) + 1e-8) * mask, atol=1e-12)
  # With a KL term: baseline on the score first, then −β·kl per token and reward-to-go (OpenRLHF).
  kl = rng.normal(size=mask.shape)
  adv_kl, ret_kl = J.reinforce_pp_advantages(
      scores, mask, baseline="group", group_size=n, token_kl=kl, kl_coef=0.1)
  exp_adv, exp_ret = _np_reinforce_pp(centered, mask, kl, 0.1, 1.0)
  np.testing.assert_allclose(adv_kl, exp_adv, atol=1e-12)
  np.testing.assert_allclose(ret_kl, exp_ret, atol=1e-12)


def test_reinforce_pp_errors():
  mask = np.ones((4, 3), bool)
  s = np.zeros(4)
  with pytest.raises(ValueError, match="needs `group_size`"):
    J.reinforce_pp_advantages(s, mask, baseline="group")
  with pytest.raises(ValueError, match="only used with baseline='group'"):
    J.reinforce_pp_advantages(s, mask, group_size=2)
  with pytest.raises(ValueError, match="given together"):
    J.reinforce_pp_advantages(s, mask, token_kl=np.zeros((4, 3)))
  with pytest.raises(ValueError, match="`token_kl` has shape"):
    J.reinforce_pp_advantages(s, mask, token_kl=np.zeros((4, 2)), kl_coef=0.1)
  with pytest.raises(ValueError, match=r"`rewards` must have shape \[B\]"):
    J.reinforce_pp_advantages(np.zeros(3), mask)
  with pytest.raises(ValueError, match="must divide"):
    J.reinforce_pp_advantages(s, mask, baseline="group", group_size=3)
  adv, ret = J.reinforce_pp_advantages(s, np.zeros((4, 3), bool))  # empty mask: finite zeros
  np.testing.assert_array_equal(adv, 0.0)
  np.testing.assert_array_equal(ret, 0.0)


def test_remax_reward_to_go_minus_greedy(maybe_jit, x64):
  rng = np.random.default_rng(11)
  mask = _mask_with_holes(rng, 4, 5)
  scores, greedy = rng.normal(size=(2, 4))
  adv, ret = maybe_jit(A.remax_advantages)(scores, greedy, mask)
  np.testing.assert_allclose(adv, (scores - greedy)[:, None] * mask, atol=1e-12)
  np.testing.assert_allclose(ret, scores[:, None] * mask, atol=1e-12)
  token_rewards = rng.normal(size=mask.shape)
  adv_t, ret_t = maybe_jit(A.remax_advantages)(token_rewards, greedy, mask)
  rtg = np.cumsum((token_rewards * mask)[:, ::-1], axis=1)[:, ::-1] * mask  # verl's flip-cumsum-flip
  np.testing.assert_allclose(ret_t, rtg, atol=1e-12)
  np.testing.assert_allclose(adv_t, (rtg - greedy[:, None]) * mask, atol=1e-12)
  with pytest.raises(ValueError, match="`greedy_rewards` has shape"):
    J.remax_advantages(scores, greedy[:3], mask)


def test_broadcast_to_tokens():
  mask = np.array([[True, True, False], [False, False, False]])
  out = J.broadcast_to_tokens(jnp.asarray([2.0, jnp.nan]), mask)
  np.testing.assert_array_equal(out, [[2.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
  with pytest.raises(ValueError, match="`advantages` has shape"):
    J.broadcast_to_tokens(jnp.ones(3), mask)
  with pytest.raises(ValueError, match="`mask` must have rank 2"):
    J.broadcast_to_tokens(jnp.ones(2), mask[0])


def test_overlong_penalty_knots_and_continuity():
  from rljax.losses.advantages import overlong_penalty

  lengths = jnp.asarray([0, 16, 17, 20, 23, 24, 25, 100])
  out = overlong_penalty(lengths, max_len=24, cache_len=8, factor=2.0)
  # 0 up to L_max − L_cache = 16, then linear to −factor at L_max = 24, then −factor.
  np.testing.assert_allclose(out, [0, 0, -0.25, -1.0, -1.75, -2.0, -2.0, -2.0])
  with pytest.raises(ValueError, match="cache_len"):
    overlong_penalty(lengths, max_len=4, cache_len=8)


def test_dynamic_sampling_mask_drops_exactly_the_constant_groups():
  from rljax.losses.advantages import dynamic_sampling_mask

  rewards = jnp.asarray([1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0.7, 0.7, 0.7, 0.7])
  keep = dynamic_sampling_mask(rewards, group_size=4)
  np.testing.assert_array_equal(keep, [True] * 4 + [False] * 12)
  with pytest.raises(ValueError, match="group_size"):
    dynamic_sampling_mask(rewards, group_size=3)
