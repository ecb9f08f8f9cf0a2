import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses import registry
from rljax.losses.advantages import gae, whiten
from rljax.losses.kl import kl_penalized_rewards
from rljax.losses.policy_gradient import ppo_clip_loss
from rljax.losses.ppo_max import (
    FLAGS,
    PPOMaxConfig,
    RunningMeanStd,
    bt_lm_loss,
    normalize_and_clip_rewards,
    ppo_max_advantages,
    ppo_max_loss,
)
from rljax.losses.reward_model import bt_reward_loss
from rljax.losses.value import value_loss

B, T = 4, 6
VANILLA = PPOMaxConfig(kl_coef=0.0, **{f: False for f in FLAGS})


def test_merge_equals_statistics_of_concatenation(x64):
  rng = np.random.default_rng(0)
  sizes, scales = [5, 17, 1, 40], [1.0, 3.0, 0.5, 1e-3]
  parts = [rng.normal(3.0, 2.0, n) * s for n, s in zip(sizes, scales)]
  # one padded [4, 40] array with validity masks: a single compiled update for all four parts
  padded = np.stack([np.pad(p, (0, 40 - len(p)), constant_values=np.nan) for p in parts])
  valid = np.arange(40)[None] < np.array(sizes)[:, None]

  @jax.jit
  def run(x, v):
    a, b, c, d = (RunningMeanStd.create(dtype=jnp.float64).update(x[i], v[i]) for i in range(4))
    empty = RunningMeanStd.create(dtype=jnp.float64)
    orders = (a.merge(b).merge(c).merge(d), a.merge(b.merge(c.merge(d))), d.merge(b).merge(a.merge(c)))
    return orders, (a, empty.merge(a), a.merge(empty), a.update(x[1], jnp.zeros_like(v[1])))

  orders, (a, left, right, same) = run(padded, valid)
  full = np.concatenate(parts)
  for merged in orders:
    np.testing.assert_allclose(merged.mean, full.mean(), rtol=1e-12)
    np.testing.assert_allclose(merged.var, full.var(), rtol=1e-12)
    assert float(merged.count) == len(full)
  np.testing.assert_allclose(orders[0].std(), full.std(ddof=1), rtol=1e-12)
  # empty batches and the fresh state carry no weight
  for s in (left, right, same):
    np.testing.assert_allclose(s.mean, a.mean, rtol=1e-15)
    np.testing.assert_allclose(s.var, a.var, rtol=1e-15)
    assert float(s.count) == float(a.count)


def test_update_with_valid_mask_and_vector_shape(x64):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(20, 3))
  valid = rng.random(20) < 0.6
  s = RunningMeanStd.create((3,), jnp.float64).update(jnp.asarray(x), jnp.asarray(valid))
  np.testing.assert_allclose(s.mean, x[valid].mean(0), rtol=1e-12)
  np.testing.assert_allclose(s.var, x[valid].var(0), rtol=1e-12)


def test_stats_are_a_scannable_pytree():
  xs = jnp.asarray(np.random.default_rng(2).normal(size=(5, 8)), jnp.float32)
  final, _ = jax.lax.scan(lambda s, x: (s.update(x), None), RunningMeanStd.create(), xs)
  np.testing.assert_allclose(final.mean, np.mean(xs), rtol=1e-5)
  np.testing.assert_allclose(final.var, np.var(xs), rtol=1e-4)


def test_identity_with_unit_stats_and_no_clip():
  r = jnp.asarray([-30.0, -1.0, 0.0, 2.5, 40.0])
  stats = RunningMeanStd(jnp.float32(0.0), jnp.float32(1.0), jnp.float32(7.0))
  for clip in (None, float("inf")):
    out, same = normalize_and_clip_rewards(r, stats, clip=clip, update=False, unbiased=False)
    np.testing.assert_array_equal(out, r)
    assert same is stats
  clipped, _ = normalize_and_clip_rewards(r, stats, clip=10.0, update=False, unbiased=False)
  np.testing.assert_array_equal(clipped, np.clip(r, -10, 10))


def test_matches_moss_rlhf_running_moments():
  """MOSS-RLHF `RunningMoments` (count starts at 1e-24), update-then-normalise, unbiased std."""
  rng = np.random.default_rng(3)
  mean, var, count = 0.0, 1.0, 1e-24
  stats = RunningMeanStd.create()
  norm = jax.jit(functools.partial(normalize_and_clip_rewards, clip=None))
  scale = jax.jit(functools.partial(normalize_and_clip_rewards, clip=None, shift_mean=False))
  for _ in range(3):
    r = rng.normal(2.0, 3.0, 8).astype(np.float32)
    delta = r.mean() - mean
    tot = count + r.size
    var = (var * count + delta**2 * count * r.size / tot + r.var() * r.size) / tot
    mean += delta * r.size / tot
    count = tot
    std = np.sqrt(var * count / (count - 1))
    np.testing.assert_allclose(scale(r, stats)[0], r / std, rtol=1e-5)
    out, stats = norm(r, stats)
    np.testing.assert_allclose(out, (r - mean) / std, rtol=1e-4, atol=1e-5)


def _rollout(seed=0):
  rng = np.random.default_rng(seed)
  f = lambda *s: rng.normal(size=s).astype(np.float32)
  mask = np.arange(T)[None] < np.array([6, 4, 1, 5])[:, None]
  old_logp = -np.abs(f(B, T))
  return dict(scores=f(B) * 5, old_logp=old_logp, ref_logp=old_logp + 0.3 * f(B, T), old_values=f(B, T),
              mask=mask, logp=old_logp + 0.2 * f(B, T), values=f(B, T))


_adv = jax.jit(ppo_max_advantages, static_argnames="cfg")
_loss = jax.jit(ppo_max_loss, static_argnames="cfg")


def _targets(d, cfg):
  return _adv(d["scores"], d["old_logp"], d["ref_logp"], d["old_values"], d["mask"], RunningMeanStd.create(), cfg=cfg)


def test_every_trick_off_is_vanilla_policy_gradient():
  d = _rollout()
  adv, ret, stats, _ = _targets(d, VANILLA)
  token_rewards = np.where(np.arange(T)[None] == d["mask"].sum(1)[:, None] - 1, d["scores"][:, None], 0)
  ref_adv, ref_ret = gae(token_rewards, d["old_values"], d["mask"], gamma=1.0, lam=0.95)
  np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(ret, ref_ret, rtol=1e-5, atol=1e-6)
  assert float(stats.count) == 0.0  # reward scaling off: the statistics are untouched
  loss, m = _loss(d["logp"], d["old_logp"], adv, d["values"], d["old_values"], ret, d["mask"], cfg=VANILLA)
  m_ = d["mask"]
  ratio = np.exp(d["logp"] - d["old_logp"])
  pg = np.sum(np.where(m_, -np.asarray(adv) * ratio, 0)) / m_.sum()
  vf = 0.5 * np.sum(np.where(m_, (d["values"] - np.asarray(ret)) ** 2, 0)) / m_.sum()
  np.testing.assert_allclose(loss, pg + vf, rtol=1e-5)
  np.testing.assert_allclose(m["pg_loss"], pg, rtol=1e-5)


def test_default_recipe_matches_its_generic_parts():
  d, cfg = _rollout(1), PPOMaxConfig()
  adv, ret, stats, _ = _targets(d, cfg)
  loss, m = _loss(d["logp"], d["old_logp"], adv, d["values"], d["old_values"], ret, d["mask"], cfg=cfg)

  @jax.jit
  def reference():
    r_tilde, stats_ref = normalize_and_clip_rewards(d["scores"], RunningMeanStd.create(), clip=10.0)
    rewards = kl_penalized_rewards(r_tilde, d["old_logp"], d["ref_logp"], d["mask"], kl_coef=0.02)
    ref_adv, _ = gae(rewards, d["old_values"], d["mask"], gamma=1.0, lam=0.95)
    pg, _ = ppo_clip_loss(d["logp"], d["old_logp"], whiten(adv, d["mask"]), d["mask"])
    vf, _ = value_loss(d["values"], d["old_values"], ret, d["mask"], clip=0.2)
    return stats_ref, ref_adv, pg + vf

  stats_ref, ref_adv, ref_loss = reference()
  np.testing.assert_allclose(stats.mean, stats_ref.mean, rtol=1e-6)
  np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  np.testing.assert_allclose(m["loss_numerator"] / m["loss_denominator"], loss, rtol=1e-6)
  # the critic term is ½·max(unclipped, clipped)
  v, vo, r_ = d["values"], d["old_values"], np.asarray(ret)
  vmax = np.maximum((v - r_) ** 2, (np.clip(v, vo - 0.2, vo + 0.2) - r_) ** 2)
  np.testing.assert_allclose(m["vf_loss"], 0.5 * vmax[d["mask"]].mean(), rtol=1e-5)


def test_advantage_clip_and_gradients_flow_to_logp_and_values_only():
  d = _rollout(2)
  cfg = dataclasses.replace(PPOMaxConfig(), use_advantage_clip=True)
  adv, ret, _, _ = _targets(d, cfg)
  args = (d["logp"], d["old_logp"], adv, d["values"], d["old_values"], ret, d["mask"])
  grads = jax.jit(jax.grad(lambda *a: ppo_max_loss(*a, cfg=cfg)[0], argnums=tuple(range(6))))(*args)
  m = _loss(*args, cfg=cfg)[1]
  n = d["mask"].sum()
  # logp and values get gradient on every token whose clip is inactive, and only there
  assert np.sum(np.asarray(grads[0])[d["mask"]] == 0) == round(float(m["clipfrac"]) * n)
  assert np.sum(np.asarray(grads[3])[d["mask"]] == 0) == round(float(m["vf_clipfrac"]) * n)
  assert np.sum(np.asarray(grads[0])[d["mask"]] != 0) > n // 2
  for i in (1, 2, 4, 5):
    np.testing.assert_array_equal(grads[i], 0.0)
  assert float(m["advantage_mean"]) <= 0.5


def test_empty_mask_is_finite():
  d = _rollout(3)
  empty = np.zeros((B, T), bool)
  cfg = PPOMaxConfig()
  adv, ret, _, _ = _adv(d["scores"], d["old_logp"], d["ref_logp"], d["old_values"], empty, RunningMeanStd.create(), cfg=cfg)
  loss = _loss(d["logp"], d["old_logp"], adv, d["values"], d["old_values"], ret, empty, cfg=cfg)[0]
  assert float(loss) == 0.0


def test_bt_lm_loss():
  rng = np.random.default_rng(4)
  rc, rr = rng.normal(size=B).astype(np.float32), rng.normal(size=B).astype(np.float32)
  logps = -np.abs(rng.normal(size=(B, T))).astype(np.float32)
  mask = np.arange(T)[None] < np.array([6, 4, 1, 5])[:, None]
  run = jax.jit(lambda lp, c: (bt_lm_loss(rc, rr, lp, mask, lm_coef=c), bt_reward_loss(rc, rr)[0],
                               jax.grad(lambda x: bt_lm_loss(rc, rr, x, mask, lm_coef=c)[0])(lp)))
  (loss0, _), bt, _ = run(logps, 0.0)
  np.testing.assert_allclose(loss0, bt, rtol=1e-6)
  (loss, m), _, g = run(logps, 2.0)
  nll = -logps[mask].mean()
  np.testing.assert_allclose(loss, np.mean(np.logaddexp(0, -(rc - rr))) + 2.0 * nll, rtol=1e-5)
  np.testing.assert_allclose(m["lm_loss"], nll, rtol=1e-5)
  np.testing.assert_allclose(g, np.where(mask, -2.0 / mask.sum(), 0), rtol=1e-5)
  assert registry.get("bt_lm") is bt_lm_loss and registry.get("ppo_max") is ppo_max_loss


def test_jit_matches_eager(maybe_jit):
  r = jnp.asarray([1.0, -2.0, 30.0])
  f = maybe_jit(functools.partial(normalize_and_clip_rewards, clip=5.0))
  out, stats = f(r, RunningMeanStd.create())
  ref, ref_stats = normalize_and_clip_rewards(r, RunningMeanStd.create(), clip=5.0)
  np.testing.assert_allclose(out, ref, rtol=1e-6)
  np.testing.assert_allclose(stats.var, ref_stats.var, rtol=1e-6)


def test_bad_inputs_raise():
  stats = RunningMeanStd.create((3,))
  with pytest.raises(ValueError, match="`x`"):
    stats.update(jnp.zeros((4, 2)))
  with pytest.raises(ValueError, match="valid"):
    stats.update(jnp.zeros((4, 3)), jnp.ones(5, bool))
  with pytest.raises(ValueError, match="clip"):
    normalize_and_clip_rewards(jnp.zeros(3), RunningMeanStd.create(), clip=0.0)
  with pytest.raises(ValueError, match="rewards"):
    normalize_and_clip_rewards(jnp.zeros((3, 2)), RunningMeanStd.create())
  with pytest.raises(ValueError, match="agg"):
    ppo_max_loss(*(jnp.zeros((2, 3)),) * 6, jnp.ones((2, 3), bool), cfg=PPOMaxConfig(agg="mean"))
  with pytest.raises(ValueError, match="lm_coef"):
    bt_lm_loss(jnp.zeros(2), jnp.zeros(2), jnp.zeros((2, 3)), jnp.ones((2, 3), bool), lm_coef=-1.0)
  with pytest.raises(ValueError, match="chosen_rewards"):
    bt_lm_loss(jnp.zeros(3), jnp.zeros(3), jnp.zeros((2, 3)), jnp.ones((2, 3), bool))
