import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses import registry
from rljax import algorithms as algos
from rljax.losses.advantages import gae
from rljax.losses.ppo_max import (
    FLAGS,
    PPOMaxConfig,
    RunningMeanStd,
    bt_lm_loss,
    moss_whiten,
    normalize_and_clip_rewards,
    ppo_max_advantages,
    ppo_max_loss,
)
from rljax.losses.reward_model import bt_reward_loss

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


class _MossRunningMoments:
  """Port of MOSS-RLHF utils.RunningMoments (single process)."""

  def __init__(self):
    self.mean, self.var, self.std, self.count = 0.0, 1.0, 1.0, 1e-24

  def update(self, xs):
    xs = np.asarray(xs, np.float64)
    delta, tot = xs.mean() - self.mean, self.count + xs.size
    tot_sum = self.var * self.count + delta**2 * self.count * xs.size / tot + xs.var() * xs.size
    self.mean += delta * xs.size / tot
    self.var = tot_sum / tot
    self.std = np.sqrt(self.var * tot / (tot - 1))
    self.count = tot


def _moss_whiten(xs, mask):
  """Port of MOSS-RLHF utils.whiten (shift_mean=True); xs is 0 in the padding, as ExperienceDataset pads it."""
  xs = np.where(mask, xs, 0.0)
  mean = xs.sum() / mask.sum()
  var = np.sum((xs - mean) ** 2 * mask) / mask.sum()
  return (xs - mean) / np.sqrt(var + 1e-6)


def _moss_rollout(d, cfg, running):
  """Port of PPOTrainer.make_experiences + ExperienceDataset.get_advantages_and_returns (right-padded rows)."""
  r = np.asarray(d["scores"], np.float64).copy()
  if cfg.use_reward_scaling:
    running.update(r)
    r = (r - running.mean) / running.std if cfg.use_reward_norm else r / running.std
  if cfg.use_reward_clip:
    r = np.clip(r, -cfg.reward_clip, cfg.reward_clip)
  adv, ret = np.zeros((B, T)), np.zeros((B, T))
  for i in range(B):
    n = int(d["mask"][i].sum())
    rewards = list(-cfg.kl_coef * (d["old_logp"][i, :n] - d["ref_logp"][i, :n]))
    if n:
      rewards[-1] += r[i]
    values, last, out = list(d["old_values"][i, :n]), 0.0, []
    for t in reversed(range(n)):
      nextvalues = values[t + 1] if t < n - 1 else 0.0
      last = rewards[t] + cfg.gamma * nextvalues - values[t] + cfg.gamma * cfg.lam * last
      out.append(last)
    adv[i, :n] = out[::-1]
    ret[i, :n] = adv[i, :n] + values
  return adv, ret


def _moss_criterion(d, adv, ret, entropy, cfg):
  """Port of PPOTrainer.criterion (no pretraining loss)."""
  m = d["mask"].astype(np.float64)
  n = m.sum()
  if cfg.use_advantage_norm:
    adv = _moss_whiten(adv, d["mask"])
  if cfg.use_advantage_clip:
    adv = np.clip(adv, -cfg.advantage_clip, cfg.advantage_clip)
  values, old_values = d["values"].astype(np.float64), d["old_values"]
  values_clipped = np.clip(values, old_values - cfg.value_clip, old_values + cfg.value_clip)
  vf1, vf2 = (values - ret) ** 2, (values_clipped - ret) ** 2
  vf = 0.5 * np.sum((np.maximum(vf1, vf2) if cfg.use_critic_loss_clip else vf1) * m) / n
  ratio = np.exp((d["logp"] - d["old_logp"]) * m)
  pg1, pg2 = -adv * ratio, -adv * np.clip(ratio, 1 - cfg.pg_clip, 1 + cfg.pg_clip)
  pg = np.sum((np.maximum(pg1, pg2) if cfg.use_policy_loss_clip else pg1) * m) / n
  loss = pg + cfg.vf_coef * vf
  if cfg.use_entropy_loss:
    loss += cfg.entropy_coef * abs(np.sum(entropy * m) / n - cfg.entropy_clip)
  return loss, pg, vf


_ALL_ON = PPOMaxConfig(use_reward_norm=True, use_reward_clip=True, reward_clip=1.5, use_advantage_norm=True,
                       use_advantage_clip=True, use_entropy_loss=True, entropy_coef=0.01, entropy_clip=2.0)


@pytest.mark.parametrize("cfg", [PPOMaxConfig(), _ALL_ON, dataclasses.replace(PPOMaxConfig(), kl_coef=0.1),
                                 dataclasses.replace(_ALL_ON, use_reward_scaling=False, use_policy_loss_clip=False,
                                                     use_critic_loss_clip=False)],
                         ids=["scripts", "all-on", "zh-kl", "no-scaling-no-clips"])
def test_matches_moss_rlhf_trainer(cfg):
  """Two rollouts (running statistics carried) and their losses against a port of MOSS-RLHF's trainer."""
  running, stats = _MossRunningMoments(), RunningMeanStd.create()
  loss_fn = jax.jit(functools.partial(ppo_max_loss, cfg=cfg))
  for it in range(2):
    d = _rollout(10 + it)
    entropy = np.abs(np.random.default_rng(it).normal(2.0, 1.0, (B, T))).astype(np.float32)
    adv, ret, stats, _ = _adv(d["scores"], d["old_logp"], d["ref_logp"], d["old_values"], d["mask"], stats, cfg=cfg)
    want_adv, want_ret = _moss_rollout(d, cfg, running)
    np.testing.assert_allclose(np.where(d["mask"], adv, 0), want_adv, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.where(d["mask"], ret, 0), want_ret, rtol=1e-4, atol=1e-5)
    if cfg.use_reward_scaling:
      np.testing.assert_allclose(stats.std(), running.std, rtol=1e-5)
    loss, m = loss_fn(d["logp"], d["old_logp"], adv, d["values"], d["old_values"], ret, d["mask"],
                      entropy=entropy)
    want, pg, vf = _moss_criterion(d, want_adv, want_ret, entropy, cfg)
    np.testing.assert_allclose(loss, want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m["pg_loss"], pg, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m["vf_loss"], vf, rtol=1e-4, atol=1e-6)


def test_moss_whiten_is_biased_with_eps_1e6(x64):
  rng = np.random.default_rng(5)
  x, mask = rng.normal(size=(3, 7)), rng.random((3, 7)) < 0.6
  out = np.asarray(moss_whiten(jnp.asarray(x), jnp.asarray(mask)))
  np.testing.assert_allclose(out[mask], _moss_whiten(x, mask)[mask], rtol=1e-12)
  np.testing.assert_array_equal(out[~mask], 0.0)
  np.testing.assert_allclose(np.var(out[mask]), np.var(x[mask]) / (np.var(x[mask]) + 1e-6), rtol=1e-12)
  np.testing.assert_array_equal(moss_whiten(jnp.ones((2, 2)), jnp.zeros((2, 2), bool)), 0.0)


def test_defaults_pin_the_released_scripts():
  """train_ppo_zh.sh / run_en.sh switches; constants from config_ppo.py; kernel and preset agree."""
  cfg = PPOMaxConfig()
  on = {f for f in FLAGS if getattr(cfg, f)}
  assert on == {"use_reward_scaling", "use_policy_loss_clip", "use_critic_loss_clip"}
  assert (cfg.kl_coef, cfg.kl_kind, cfg.gamma, cfg.lam) == (0.02, "k1", 1.0, 0.95)
  assert (cfg.pg_clip, cfg.value_clip, cfg.vf_coef, cfg.reward_clip, cfg.advantage_clip) == (0.2, 0.2, 1.0, 10.0, 0.5)
  assert (cfg.entropy_coef, cfg.entropy_clip, cfg.agg) == (0.0, 35.0, "token-mean")
  p = algos.get("ppo_max")
  assert (p.kl.kind, p.kl.coef, p.kl.where, p.kl.adaptive) == ("k1", cfg.kl_coef, "reward", None)
  assert p.advantage == "gae" and dict(p.advantage_kwargs) == dict(gamma=cfg.gamma, lam=cfg.lam)
  assert dict(p.reward_norm) == dict(enabled=True, clip=None, shift_mean=False)
  assert p.critic.enabled and (p.critic.value_clip, p.critic.vf_coef) == (cfg.value_clip, cfg.vf_coef)
  assert not p.critic.whiten_advantages
  kw = p.loss_kwargs
  assert (p.loss, kw.clip_low, kw.clip_high, kw.dual_clip) == ("ppo_clip", cfg.pg_clip, cfg.pg_clip, None)
  assert p.entropy_coef == 0.0 and p.agg == cfg.agg


def test_advantage_clip_and_gradients_flow_to_logp_and_values_only():
  d = _rollout(2)
  cfg = dataclasses.replace(PPOMaxConfig(), use_advantage_norm=True, use_advantage_clip=True)
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
  adv, ret, _, _ = _adv(d["scores"], d["old_logp"], d["ref_logp"], d["old_values"], empty, RunningMeanStd.create(),
                        cfg=cfg)
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
