"""Invariants and peer parity of the token-level policy losses (rljax.losses.policy_gradient)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import losses
from rljax.losses import aggregation
from rljax.losses.policy_gradient import cispo_loss, gspo_loss, ppo_clip_loss, reinforce_loss

B, T = 4, 6
LENGTHS = np.array([6, 3, 1, 0])  # the last row is empty
MODES = aggregation.MODES


def _mask(lengths=LENGTHS, t=T):
  return np.arange(t)[None] < np.asarray(lengths)[:, None]


def _data(seed=0, scale=0.4, lengths=LENGTHS, per_seq_adv=False, dtype=np.float32):
  rng = np.random.default_rng(seed)
  b = len(lengths)
  logp = -rng.uniform(0.05, 3.0, (b, T))
  old = logp - rng.normal(0.0, scale, (b, T))
  adv = rng.normal(0.0, 1.0, (b,) if per_seq_adv else (b, T))
  return logp.astype(dtype), old.astype(dtype), adv.astype(dtype), _mask(lengths)


def _np_aggregate(loss, mask, mode, norm=None):
  """Hand aggregation by loops, independent of rljax.losses.aggregation."""
  rows = [loss[i][mask[i]] for i in range(loss.shape[0])]
  nonempty = [r for r in rows if r.size]
  s = len(nonempty)
  if mode == "token-mean":
    n = sum(r.size for r in rows)
    return sum(r.sum() for r in rows) / n if n else 0.0
  if mode == "token-sum":
    return sum(r.sum() for r in rows)
  if not s:
    return 0.0
  if mode == "seq-mean-token-mean":
    return sum(r.mean() for r in nonempty) / s
  if mode == "seq-mean-token-sum":
    return sum(r.sum() for r in nonempty) / s
  return sum(r.sum() for r in nonempty) / (s * (loss.shape[1] if norm is None else norm))


def _np_ppo(logp, old, adv, eps_l, eps_h, dual=None, clamp=None):
  delta = np.asarray(logp, np.float64) - old
  if clamp is not None:
    delta = np.clip(delta, -clamp, clamp)
  r = np.exp(delta)
  l1, l2 = -adv * r, -adv * np.clip(r, 1 - eps_l, 1 + eps_h)
  out = np.maximum(l1, l2)
  if dual is not None:
    out = np.where(adv < 0, np.minimum(out, -adv * dual), out)
  return out


def _grad(fn, logp, *args, **kw):
  return np.asarray(jax.grad(lambda lp: fn(lp, *args, **kw)[0])(jnp.asarray(logp)))


def _broadcast(adv):
  return np.broadcast_to(adv[:, None], (adv.shape[0], T)) if adv.ndim == 1 else adv


def test_registered():
  for name, fn in [("ppo_clip", ppo_clip_loss), ("gspo", gspo_loss), ("cispo", cispo_loss), ("reinforce", reinforce_loss)]:
    assert losses.get(name) is fn


# ---------------------------------------------------------------------------------------------
# PPO-clip


def test_ppo_on_policy_is_minus_mean_advantage(maybe_jit):
  logp, _, adv, mask = _data()
  fn = maybe_jit(ppo_clip_loss)
  loss, m = fn(logp, logp, adv, mask)
  n = mask.sum()
  np.testing.assert_allclose(loss, -adv[mask].sum() / n, rtol=1e-6)
  g = _grad(ppo_clip_loss, logp, logp, adv, mask)
  np.testing.assert_allclose(g, np.where(mask, -adv / n, 0), rtol=1e-6, atol=1e-8)
  assert m["clipfrac"] == 0 and m["approx_kl"] == 0 and m["ratio_mean"] == 1


@pytest.mark.parametrize("mode", MODES)
def test_ppo_matches_hand_aggregation(mode):
  logp, old, adv, mask = _data(1)
  loss, m = ppo_clip_loss(logp, old, adv, mask, clip_low=0.1, clip_high=0.28, agg=mode)
  expected = _np_aggregate(_np_ppo(logp, old, adv, 0.1, 0.28), mask, mode)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  np.testing.assert_allclose(m["loss_numerator"] / m["loss_denominator"], loss, rtol=1e-6)


def test_ppo_zero_gradient_exactly_where_clipping_is_active():
  eps_l, eps_h = 0.2, 0.28
  delta = np.array([[0.5, -0.5, 0.5, -0.5, 0.1, -0.1]], np.float32)  # r = 1.65, 0.61, ..., 1.1, 0.9
  adv = np.array([[1.0, -1.0, -1.0, 1.0, 1.0, -1.0]], np.float32)
  logp = np.full((1, T), -1.0, np.float32)
  mask = np.ones((1, T), bool)
  g = np.asarray(_grad(ppo_clip_loss, logp, logp - delta, adv, mask, clip_low=eps_l, clip_high=eps_h))
  r = np.exp(delta.astype(np.float64))
  # r > 1+ε_h with A > 0 and r < 1−ε_l with A < 0: clipped, no gradient
  assert g[0, 0] == 0 and g[0, 1] == 0
  # the pessimistic branch keeps the gradient outside the range in the other direction and inside it
  np.testing.assert_allclose(g[0, 2:], -adv[0, 2:] * r[0, 2:] / T, rtol=1e-6)
  _, m = ppo_clip_loss(logp, logp - delta, adv, mask, clip_low=eps_l, clip_high=eps_h)
  np.testing.assert_allclose(m["clipfrac"], 2 / T)


def test_dual_clip_caps_negative_advantage_loss():
  c = 3.0
  delta = np.log(np.array([[5.0, 10.0, 2.0, 5.0, 0.5, 1.0]]))
  adv = np.array([[-1.0, -0.5, -2.0, 1.0, -1.0, 0.7]])
  logp = np.full((1, T), -2.0, np.float32)
  old = (logp - delta).astype(np.float32)
  mask = np.ones((1, T), bool)
  kw = dict(dual_clip=c, agg="token-sum")
  g = np.asarray(_grad(ppo_clip_loss, logp, old, adv.astype(np.float32), mask, **kw))
  cols = lambda i: (logp[:, i:i + 1], old[:, i:i + 1], adv[:, i:i + 1].astype(np.float32), mask[:, i:i + 1])
  per_token = [ppo_clip_loss(*cols(i), **kw)[0] for i in range(T)]
  # A < 0 and r > c: loss −A·c, constant
  np.testing.assert_allclose(per_token[:2], -adv[0, :2] * c, rtol=1e-6)
  assert g[0, 0] == 0 and g[0, 1] == 0
  # A < 0 and r < c: ordinary PPO (unclipped branch, r·|A|); A > 0: clip at 1+ε, no cap
  np.testing.assert_allclose(per_token[2], 2.0 * 2.0, rtol=1e-6)
  np.testing.assert_allclose(g[0, 2], 4.0, rtol=1e-6)
  np.testing.assert_allclose(per_token[3], -1.2, rtol=1e-6)
  _, m = ppo_clip_loss(logp, old, adv.astype(np.float32), mask, dual_clip=c)
  np.testing.assert_allclose(m["clipfrac_lower"], 2 / T)
  # without dual clip the same tokens carry −A·r and its gradient
  loss0 = ppo_clip_loss(logp[:, :1], old[:, :1], adv[:, :1].astype(np.float32), mask[:, :1])[0]
  np.testing.assert_allclose(loss0, 5.0, rtol=1e-5)


def test_infinite_clip_is_vanilla_importance_weighted_pg(maybe_jit):
  logp, old, adv, mask = _data(2, scale=1.0)
  fn = maybe_jit(functools.partial(ppo_clip_loss, clip_low=jnp.inf, clip_high=jnp.inf))
  loss, m = fn(logp, old, adv, mask)
  r = np.exp(logp.astype(np.float64) - old)
  n = mask.sum()
  np.testing.assert_allclose(loss, np.sum(np.where(mask, -adv * r, 0)) / n, rtol=1e-5)
  g = _grad(ppo_clip_loss, logp, old, adv, mask, clip_low=jnp.inf, clip_high=jnp.inf)
  np.testing.assert_allclose(g, np.where(mask, -adv * r / n, 0), rtol=1e-5, atol=1e-8)
  assert m["clipfrac"] == 0
  # and the finite default does clip this data, so the comparison above is not vacuous
  assert ppo_clip_loss(logp, old, adv, mask)[1]["clipfrac"] > 0


def _np_verl_vanilla(old, logp, adv, mask, eps_l, eps_h, c, mode):
  """numpy transcription of verl `compute_policy_loss_vanilla` + `agg_loss`."""
  nkl = np.clip(logp.astype(np.float64) - old, -20.0, 20.0)
  ratio = np.exp(nkl)
  ppo_kl = (-nkl * mask).sum() / mask.sum()
  l1 = -adv * ratio
  l2 = -adv * np.clip(ratio, 1 - eps_l, 1 + eps_h)
  cl1 = np.maximum(l1, l2)
  clipfrac = ((l2 > l1) * mask).sum() / mask.sum()
  l3 = -adv * c
  cl2 = np.minimum(l3, cl1)
  clipfrac_lower = ((cl1 > l3) * (adv < 0) * mask).sum() / mask.sum()
  pg = np.where(adv < 0, cl2, cl1)
  lengths = mask.sum(-1)
  if mode == "token-mean":
    loss = (pg * mask).sum() / mask.sum()
  elif mode == "seq-mean-token-mean":
    per = (pg * mask).sum(-1) / (lengths + 1e-8)
    loss = per[lengths > 0].mean()
  elif mode == "seq-mean-token-sum":
    loss = (pg * mask).sum(-1)[lengths > 0].mean()
  return loss, clipfrac, clipfrac_lower, ppo_kl


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
def test_parity_with_verl_vanilla(mode):
  logp, old, adv, mask = _data(3, scale=0.8)
  old[0, 0] = logp[0, 0] - 25.0  # δ = 25 > 20: clamped, A < 0 there hits the dual cap
  adv[0, 0] = -1.5
  old[1, 1] = logp[1, 1] + 25.0  # δ = −25
  loss, m = ppo_clip_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.28, dual_clip=3.0,
                          log_ratio_clamp=20.0, agg=mode)
  e_loss, e_cf, e_cfl, e_kl = _np_verl_vanilla(old, logp, adv, mask, 0.2, 0.28, 3.0, mode)
  np.testing.assert_allclose(loss, e_loss, rtol=1e-5)
  np.testing.assert_allclose(m["clipfrac"], e_cf, rtol=1e-6)
  np.testing.assert_allclose(m["clipfrac_lower"], e_cfl, rtol=1e-6)
  np.testing.assert_allclose(m["approx_kl"], e_kl, rtol=1e-5, atol=1e-6)
  assert e_cfl > 0


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo"])
def test_parity_with_trl_grpo(loss_type):
  lengths = np.array([6, 2, 4, 5])  # TRL divides by B, so no empty row here
  logp, old, adv, mask = _data(4, scale=0.5, lengths=lengths, per_seq_adv=True)
  eps_l, eps_h = 0.2, 0.28
  coef_1 = np.exp(logp.astype(np.float64) - old)
  a = adv[:, None]
  per_token = -np.minimum(coef_1 * a, np.clip(coef_1, 1 - eps_l, 1 + eps_h) * a)
  m = mask.astype(np.float64)
  if loss_type == "grpo":
    expected = ((per_token * m).sum(-1) / np.maximum(m.sum(-1), 1)).mean()
    mode = "seq-mean-token-mean"
  elif loss_type == "bnpo":
    expected = (per_token * m).sum() / m.sum()
    mode = "token-mean"
  else:
    expected = (per_token * m).sum() / (len(lengths) * T)  # max_completion_length = T
    mode = "seq-mean-token-sum-norm"
  loss, _ = ppo_clip_loss(logp, old, adv, mask, clip_low=eps_l, clip_high=eps_h, agg=mode)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_sequence_advantages_broadcast_over_tokens():
  logp, old, adv, mask = _data(5, per_seq_adv=True)
  for fn in (ppo_clip_loss, gspo_loss, cispo_loss):
    a, ma = fn(logp, old, adv, mask)
    b, mb = fn(logp, old, _broadcast(adv), mask)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ma["loss_numerator"], mb["loss_numerator"])


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_microbatch_parts_accumulate_exactly(mode):
  logp, old, adv, mask = _data(6)
  full, _ = ppo_clip_loss(logp, old, adv, mask, agg=mode)
  parts = [ppo_clip_loss(logp[s], old[s], adv[s], mask[s], agg=mode)[1] for s in (slice(0, 1), slice(1, None))]
  num = sum(p["loss_numerator"] for p in parts)
  den = sum(p["loss_denominator"] for p in parts)
  np.testing.assert_allclose(num / den, full, rtol=1e-6)


def test_padding_garbage_does_not_leak():
  logp, old, adv, mask = _data(7)
  bad_logp = np.where(mask, logp, -np.inf).astype(np.float32)
  bad_old = np.where(mask, old, np.nan).astype(np.float32)
  bad_adv = np.where(mask, adv, np.nan).astype(np.float32)
  for fn in (ppo_clip_loss, gspo_loss, cispo_loss):
    clean, _ = fn(logp, old, adv, mask)
    dirty, m = fn(bad_logp, bad_old, bad_adv, mask)
    np.testing.assert_allclose(dirty, clean, rtol=1e-6)
    assert all(np.isfinite(v) for v in m.values())
    g = _grad(fn, bad_logp, bad_old, bad_adv, mask)
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~mask] == 0)


def test_traced_clip_hyperparameters():
  logp, old, adv, mask = _data(8, scale=0.6)
  f = jax.jit(lambda e: ppo_clip_loss(logp, old, adv, mask, clip_high=e)[0])
  np.testing.assert_allclose(f(0.28), ppo_clip_loss(logp, old, adv, mask, clip_high=0.28)[0], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# GSPO


def test_gspo_equal_deltas_give_token_ratio():
  logp, _, adv, mask = _data(9)
  d = 0.13
  loss, m = gspo_loss(logp, logp - d, adv, mask, clip_low=jnp.inf, clip_high=jnp.inf, agg="token-mean")
  np.testing.assert_allclose(m["ratio_mean"], np.exp(d), rtol=1e-5)
  ref, _ = ppo_clip_loss(logp, logp - d, adv, mask, clip_low=jnp.inf, clip_high=jnp.inf)
  np.testing.assert_allclose(loss, ref, rtol=1e-5)


@pytest.mark.parametrize("mode", ["seq-mean-token-mean", "token-mean"])
def test_gspo_single_token_is_ppo_clip(mode):
  logp, old, adv, _ = _data(10, scale=0.3)
  mask = _mask([1, 1, 1, 0])
  old[0, 0], adv[0, 0] = logp[0, 0] - 0.5, 1.0  # r = 1.65 > 1 + ε_h with A > 0: clipped
  kw = dict(clip_low=0.1, clip_high=0.15, agg=mode)
  a, ma = gspo_loss(logp, old, adv, mask, **kw)
  b, mb = ppo_clip_loss(logp, old, adv, mask, **kw)
  np.testing.assert_allclose(a, b, rtol=1e-6)
  np.testing.assert_allclose(_grad(gspo_loss, logp, old, adv, mask, **kw),
                             _grad(ppo_clip_loss, logp, old, adv, mask, **kw), rtol=1e-6)
  np.testing.assert_allclose(ma["clipfrac"], mb["clipfrac"])
  assert mb["clipfrac"] > 0  # both branches exercised


def test_gspo_token_ratio_value_independent_of_position():
  logp, old, _, mask = _data(11)
  seq = np.array([np.exp(np.mean(logp[i, :n].astype(np.float64) - old[i, :n])) for i, n in enumerate(LENGTHS[:3])])
  for i, n in enumerate(LENGTHS[:3]):
    values = []
    for t in range(n):
      onehot = np.zeros((B, T), np.float32)
      onehot[i, t] = 1.0  # isolates ℓ_{i,t} = −s_{i,t} under token-sum
      loss, _ = gspo_loss(logp, old, onehot, mask, clip_low=jnp.inf, clip_high=jnp.inf, agg="token-sum")
      values.append(-float(loss))
    np.testing.assert_array_equal(values, values[0])
    np.testing.assert_allclose(values[0], seq[i], rtol=1e-5)


def test_gspo_gradient_closed_form(x64):
  rng = np.random.default_rng(12)
  lengths = np.array([5, 3, 6, 0])
  mask = _mask(lengths)
  logp = -rng.uniform(0.1, 2.0, (4, T))
  old = logp - rng.normal(0.0, 1e-3, (4, T))
  old[0] = logp[0] - 0.01  # mean δ = 0.01 > ε_h: clipped where A > 0
  old[1] = logp[1] + 1e-4  # s = e^-1e-4 inside [1 − ε_l, 1 + ε_h]: unclipped
  # per-token advantages: the stop-gradient token form gives token t the weight −A_t·s, whereas
  # differentiating exp(mean δ) directly would spread the row's advantages over all its tokens
  adv = rng.normal(0.0, 1.0, (4, T))
  adv[0, :2] = [1.0, -1.0]
  eps_l, eps_h = 3e-4, 4e-4
  g = _grad(gspo_loss, logp, old, adv, mask, clip_low=eps_l, clip_high=eps_h)
  expected = np.zeros((4, T))
  s_count = (lengths > 0).sum()
  for i, n in enumerate(lengths):
    if n == 0:
      continue
    s = np.exp(np.mean(logp[i, :n] - old[i, :n]))
    a = adv[i, :n]
    clipped = -a * np.clip(s, 1 - eps_l, 1 + eps_h) > -a * s
    expected[i, :n] = np.where(clipped, 0.0, -a * s / (n * s_count))
  np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-14)
  assert g[0, 0] == 0 and g[0, 1] != 0 and np.all(g[1, :3] != 0)


def test_gspo_log_ratio_clamp():
  logp = np.full((1, 2), -1.0, np.float32)
  old = logp - 12.0
  adv = np.array([-1.0], np.float32)
  mask = np.ones((1, 2), bool)
  clamped, _ = gspo_loss(logp, old, adv, mask)
  np.testing.assert_allclose(clamped, np.exp(10.0), rtol=1e-5)
  assert np.all(_grad(gspo_loss, logp, old, adv, mask) == 0)
  free, _ = gspo_loss(logp, old, adv, mask, max_log_ratio=None)
  np.testing.assert_allclose(free, np.exp(12.0), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# CISPO and REINFORCE


@pytest.mark.parametrize("clips", [dict(), dict(clip_low=0.2, clip_high=0.2), dict(clip_low=None, clip_high=None)])
def test_cispo_gradient_is_clipped_weight_times_advantage(clips):
  logp, old, adv, mask = _data(13, scale=1.2)
  g = _grad(cispo_loss, logp, old, adv, mask, **clips)
  r = np.exp(logp.astype(np.float64) - old)
  lo = -np.inf if clips.get("clip_low") is None else 1 - clips["clip_low"]
  hi = np.inf if clips.get("clip_high", 4.0) is None else 1 + clips.get("clip_high", 4.0)
  w = np.clip(r, lo, hi)
  np.testing.assert_allclose(g, np.where(mask, -w * adv / mask.sum(), 0), rtol=1e-5, atol=1e-8)
  _, m = cispo_loss(logp, old, adv, mask, **clips)
  np.testing.assert_allclose(m["clipfrac"], np.mean(((r < lo) | (r > hi))[mask]), rtol=1e-6)


def test_cispo_parity_with_trl_and_verl():
  logp, old, adv, mask = _data(14, scale=1.5)
  lp = logp.astype(np.float64)
  r = np.exp(lp - old)
  # TRL: −sg(min(r, ε_high))·A·logp with absolute ε_high = 5, token-mean ("dapo")
  trl = np.sum(np.where(mask, -np.minimum(r, 5.0) * adv * lp, 0)) / mask.sum()
  np.testing.assert_allclose(cispo_loss(logp, old, adv, mask)[0], trl, rtol=1e-5)
  # verl: two-sided clip of the ±20-clamped ratio
  old2 = old.copy()
  old2[0, 0] = logp[0, 0] - 30.0
  r2 = np.exp(np.clip(lp - old2, -20, 20))
  verl = np.sum(np.where(mask, -np.clip(r2, 0.8, 1.2) * adv * lp, 0)) / mask.sum()
  out, _ = cispo_loss(logp, old2, adv, mask, clip_low=0.2, clip_high=0.2, log_ratio_clamp=20.0)
  np.testing.assert_allclose(out, verl, rtol=1e-5)


def test_reinforce_gradient():
  logp, _, adv, mask = _data(15, per_seq_adv=True)
  loss, _ = reinforce_loss(logp, adv, mask)
  a = _broadcast(adv)
  np.testing.assert_allclose(loss, np.sum(np.where(mask, -a * logp, 0)) / mask.sum(), rtol=1e-6)
  g = _grad(reinforce_loss, logp, adv, mask)
  np.testing.assert_allclose(g, np.where(mask, -a / mask.sum(), 0), rtol=1e-6)
  # the ratio losses reduce to REINFORCE's gradient on-policy
  np.testing.assert_allclose(_grad(ppo_clip_loss, logp, logp, adv, mask), g, rtol=1e-6)
  np.testing.assert_allclose(_grad(cispo_loss, logp, logp, adv, mask), g, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Shared behaviour

ALL = {
    "ppo_clip": (ppo_clip_loss, dict(dual_clip=3.0, log_ratio_clamp=20.0)),
    "gspo": (gspo_loss, dict()),
    "cispo": (cispo_loss, dict()),
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_jit_matches_eager(name):
  fn, kw = ALL[name]
  logp, old, adv, mask = _data(16, scale=0.5)
  f = functools.partial(fn, **kw)
  a, ma = f(logp, old, adv, mask)
  b, mb = jax.jit(f)(logp, old, adv, mask)
  np.testing.assert_allclose(a, b, rtol=1e-6)
  for k in ma:
    np.testing.assert_allclose(ma[k], mb[k], rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(jax.grad(lambda lp: f(lp, old, adv, mask)[0])(logp),
                             jax.jit(jax.grad(lambda lp: f(lp, old, adv, mask)[0]))(logp), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(ALL))
def test_empty_mask_gives_zero_loss(name, maybe_jit):
  fn, kw = ALL[name]
  logp, old, adv, _ = _data(17)
  mask = np.zeros((B, T), bool)
  loss, m = maybe_jit(functools.partial(fn, **kw))(logp, old, adv, mask)
  assert loss == 0 and all(np.isfinite(v) for v in m.values())
  g = _grad(fn, logp, old, adv, mask, **kw)
  assert np.all(np.asarray(g) == 0)
  g = _grad(reinforce_loss, logp, adv, mask)
  assert reinforce_loss(logp, adv, mask)[0] == 0 and np.all(np.asarray(g) == 0)


def _bad(fn, name, **kw):
  logp, old, adv, mask = _data(18)
  args = dict(logp=logp, old_logp=old, advantages=adv, mask=mask)
  args.update({k: v for k, v in kw.items() if k in args})
  hyper = {k: v for k, v in kw.items() if k not in args}
  with pytest.raises(ValueError, match=f"`{name}`"):
    fn(args["logp"], args["old_logp"], args["advantages"], args["mask"], **hyper)


@pytest.mark.parametrize("fn", [ppo_clip_loss, gspo_loss, cispo_loss])
def test_bad_shapes_raise(fn):
  logp, old, adv, mask = _data(18)
  _bad(fn, "logp", logp=logp[0], old_logp=old[0], mask=mask[0])
  _bad(fn, "old_logp", old_logp=old[:, :3])
  _bad(fn, "mask", mask=mask[:2])
  _bad(fn, "advantages", advantages=adv[:, :2])
  _bad(fn, "advantages", advantages=adv[:2, 0])
  _bad(fn, "agg", agg="mean")
  _bad(fn, "clip_low", clip_low=-0.1)
  _bad(fn, "clip_high", clip_high=-0.1)


def test_bad_hyperparameters_raise():
  _bad(ppo_clip_loss, "dual_clip", dual_clip=1.0)
  _bad(ppo_clip_loss, "dual_clip", dual_clip=0.5)
  _bad(ppo_clip_loss, "log_ratio_clamp", log_ratio_clamp=0.0)
  _bad(ppo_clip_loss, "clip_low", clip_low=None)
  _bad(gspo_loss, "max_log_ratio", max_log_ratio=-1.0)
  _bad(cispo_loss, "log_ratio_clamp", log_ratio_clamp=-1.0)
  logp, _, adv, mask = _data(18)
  with pytest.raises(ValueError, match="`agg`"):
    reinforce_loss(logp, adv, mask, agg="sum")
  with pytest.raises(ValueError, match="`advantages`"):
    reinforce_loss(logp, adv[:, :1], mask)
