"""Entropy mechanism (Cui et al. 2025): token covariance, Clip-Cov, KL-Cov, entropy dynamics, R(H) law."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import algorithms, losses
from rljax.losses import entropy_mechanism as em
from rljax.losses.entropy_mechanism import (
    clip_cov_loss,
    entropy_performance_fit,
    kl_cov_loss,
    predicted_entropy_change,
    token_covariance,
)
from rljax.losses.policy_gradient import ppo_clip_loss

B, T = 4, 8
LENGTHS = np.array([8, 5, 2, 0])
KEY = jax.random.key(0)


def _mask(lengths=LENGTHS, t=T):
  return np.arange(t)[None] < np.asarray(lengths)[:, None]


def _data(seed=0, scale=0.3, lengths=LENGTHS, t=T):
  rng = np.random.default_rng(seed)
  b = len(lengths)
  logp = -rng.uniform(0.05, 4.0, (b, t)).astype(np.float32)
  old = (logp - rng.normal(0.0, scale, (b, t))).astype(np.float32)
  adv = rng.normal(0.0, 1.5, (b, t)).astype(np.float32)
  return logp, old, adv, _mask(lengths, t)


def _np_cov(logp, adv, mask):
  lp, a = logp[mask].astype(np.float64), adv[mask].astype(np.float64)
  out = np.zeros(mask.shape)
  out[mask] = (a - a.mean()) * (lp - lp.mean())
  return out


def _grad(fn, logp, *args, **kw):
  return np.asarray(jax.grad(lambda lp: fn(lp, *args, **kw)[0])(jnp.asarray(logp)))


def test_registered():
  assert losses.get("clip_cov") is clip_cov_loss
  assert losses.get("kl_cov") is kl_cov_loss


def test_token_covariance_matches_numpy_and_passes_no_gradient():
  logp, _, adv, mask = _data()
  cov = token_covariance(logp, adv, mask)
  np.testing.assert_allclose(cov, _np_cov(logp, adv, mask), rtol=1e-5, atol=1e-6)
  assert np.all(np.asarray(cov)[~mask] == 0)
  # extra padding (garbage included) changes nothing
  wide = lambda x, fill: np.concatenate([x, np.full((B, 3), fill, x.dtype)], axis=1)
  cov_wide = token_covariance(wide(logp, np.nan), wide(adv, 7.0), wide(mask, False))
  np.testing.assert_allclose(np.asarray(cov_wide)[:, :T], cov, rtol=1e-6)
  g = jax.grad(lambda lp: jnp.sum(token_covariance(lp, adv, mask)))(jnp.asarray(logp))
  assert np.all(np.asarray(g) == 0)
  # per-sequence advantages broadcast
  a1 = adv[:, 0]
  np.testing.assert_allclose(token_covariance(logp, a1, mask),
                             token_covariance(logp, np.repeat(a1[:, None], T, 1), mask))


# ---------------------------------------------------------------------------------------------
# Clip-Cov


def test_clip_cov_without_candidates_is_ppo_clip(maybe_jit):
  logp, old, adv, mask = _data(1, scale=0.5)
  kw = dict(clip_low=0.2, clip_high=0.28)
  fn = maybe_jit(functools.partial(clip_cov_loss, key=KEY, cov_lb=1e6, cov_ub=2e6, clip_ratio=0.5, **kw))
  a, ma = fn(logp, old, adv, mask)
  b, mb = maybe_jit(functools.partial(ppo_clip_loss, **kw))(logp, old, adv, mask)
  np.testing.assert_array_equal(a, b)
  ga = _grad(clip_cov_loss, logp, old, adv, mask, key=KEY, cov_lb=1e6, cov_ub=2e6, clip_ratio=0.5, **kw)
  np.testing.assert_array_equal(ga, _grad(ppo_clip_loss, logp, old, adv, mask, **kw))
  assert ma["num_selected"] == 0 and ma["frac_selected"] == 0
  np.testing.assert_array_equal(ma["clipfrac"], mb["clipfrac"])


def test_clip_cov_default_clip_range_is_the_authors_one():
  """ε_low = ε_high = 1 (PRIME-RL/Entropy-Mechanism-of-RL recipe/dapo/{7b,32b}_clip_cov.sh), not PPO's 0.2."""
  logp, old, adv, mask = _data(13, scale=0.6)
  r = np.exp(logp - old.astype(np.float64))[mask]
  assert np.any((r > 1.2) & (r < 2.0)) and np.any(r < 0.8)  # ratios that ε = 0.2 clips and ε = 1 does not
  none = dict(key=KEY, cov_lb=1e6, cov_ub=2e6)  # no candidates: exactly PPO-clip with the kernel's ε
  loss, m = clip_cov_loss(logp, old, adv, mask, **none)
  ref, m_ref = ppo_clip_loss(logp, old, adv, mask, clip_low=1.0, clip_high=1.0)
  np.testing.assert_array_equal(loss, ref)
  np.testing.assert_array_equal(_grad(clip_cov_loss, logp, old, adv, mask, **none),
                                _grad(ppo_clip_loss, logp, old, adv, mask, clip_low=1.0, clip_high=1.0))
  assert m["clipfrac"] == m_ref["clipfrac"] < ppo_clip_loss(logp, old, adv, mask)[1]["clipfrac"]
  assert not np.isclose(loss, ppo_clip_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.2)[0], rtol=1e-4)


def _band(cov, mask, lo_q, hi_q):
  vals = cov[mask]
  return float(np.quantile(vals, lo_q)), float(np.quantile(vals, hi_q))


def test_clip_cov_selected_tokens():
  logp, old, adv, mask = _data(2, scale=0.3, lengths=[8, 8, 6, 3], t=8)
  cov = _np_cov(logp, adv, mask)
  lb, ub = _band(cov, mask, 0.3, 0.97)
  ratio = 0.2
  n = mask.sum()
  k = max(int(ratio * n), 1)
  kw = dict(clip_ratio=ratio, cov_lb=lb, cov_ub=ub)  # the default ε_low = ε_high = 1: r clipped to [0, 2]
  ppo_g = _grad(ppo_clip_loss, logp, old, adv, mask, clip_low=1.0, clip_high=1.0)
  ppo_tok = np.where(mask, np.maximum(-adv * np.exp(logp - old.astype(np.float64)),
                                      -adv * np.clip(np.exp(logp - old.astype(np.float64)), 0.0, 2.0)), 0)
  unclipped = mask & (ppo_g != 0)
  candidates = unclipped & (cov > lb) & (cov < ub)
  assert candidates.sum() > k  # the draw is a real choice
  seen = set()
  for seed in range(4):
    key = jax.random.key(seed)
    loss, m = clip_cov_loss(logp, old, adv, mask, key=key, **kw)
    g = _grad(clip_cov_loss, logp, old, adv, mask, key=key, **kw)
    selected = (g == 0) & unclipped
    assert selected.sum() == k == m["num_selected"] == m["k"]
    assert np.all(candidates[selected])
    assert np.all((cov[selected] > lb) & (cov[selected] < ub))
    np.testing.assert_allclose(g[~selected], ppo_g[~selected], rtol=1e-6)
    # verl's corr = 0: selected losses are zeroed, yet still counted in the token-mean denominator
    np.testing.assert_allclose(loss, np.where(selected, 0, ppo_tok).sum() / n, rtol=1e-5)
    np.testing.assert_allclose(m["frac_selected"], k / n, rtol=1e-6)
    seen.add(tuple(np.flatnonzero(selected)))
  assert len(seen) > 1  # different keys draw different subsets


def test_clip_cov_draw_is_uniform_over_candidates():
  logp, old, adv, mask = _data(3, scale=0.05, lengths=[3, 3, 0, 0], t=4)
  kw = dict(clip_ratio=1 / 3, cov_lb=-1e9, cov_ub=1e9)  # every unclipped token is a candidate; k = 2
  n_keys = 3000

  @jax.jit
  def selected(key):
    g = jax.grad(lambda lp: clip_cov_loss(lp, old, adv, mask, key=key, **kw)[0])(jnp.asarray(logp))
    return g == 0

  sel = np.asarray(jax.vmap(selected)(jax.random.split(KEY, n_keys)))
  assert (mask & (_grad(ppo_clip_loss, logp, old, adv, mask) != 0)).sum() == 6
  freq = sel[:, mask].mean(0)
  np.testing.assert_allclose(freq, 2 / 6, atol=0.04)
  assert np.all(sel.reshape(n_keys, -1).sum(-1) - (~mask).sum() == 2)


def test_k_counts_valid_tokens_not_padding():
  logp, old, adv, mask = _data(4, scale=0.05, lengths=[8, 8, 4, 0], t=8)  # N = 20
  kw = dict(clip_ratio=0.1, cov_lb=-1e9, cov_ub=1e9)  # k = 2, whatever the padding
  pad = lambda x, fill: np.pad(x, ((0, 4), (0, 12)), constant_values=fill)  # B·T: 32 -> 160

  @jax.jit
  def counts(*args):
    m_clip = clip_cov_loss(*args, key=KEY, **kw)[1]
    m_kl = kl_cov_loss(*args, kl_ratio=0.1)[1]
    return [m[name] for m in (m_clip, m_kl) for name in ("k", "num_selected")]

  for args in [(logp, old, adv, mask), (pad(logp, -1.0), pad(old, -1.0), pad(adv, 1.0), pad(mask, False))]:
    np.testing.assert_array_equal(counts(*args), [2, 2, 2, 2])


@pytest.mark.parametrize("ratio", [2e-4, 0.1, 0.7, 1 / 3, 0.29, 1.0])
def test_dynamic_k_reproduces_float64_rounding(ratio):
  size = 1000
  counts = jnp.arange(size + 1)
  k_of = jax.vmap(lambda n: em._dynamic_k(ratio, n, size)[0])
  expected = [max(int(ratio * n), 1) for n in range(size + 1)]
  np.testing.assert_array_equal(k_of(counts), expected)
  assert em._dynamic_k(ratio, 0, size)[1] == min(max(int(ratio * size), 1), size)
  # a traced ratio falls back to the compute-dtype floor with the full bound
  k_traced, k_max = jax.jit(lambda r: em._dynamic_k(r, jnp.int32(500), size)[0])(ratio), size
  assert abs(int(k_traced) - max(int(ratio * 500), 1)) <= 1 and k_max == size


# ---------------------------------------------------------------------------------------------
# KL-Cov


def _np_verl_kl_cov(old, logp, adv, mask, ratio, coef):
  """numpy transcription of verl `compute_policy_loss_kl_cov` (ties resolved by index)."""
  nkl = logp.astype(np.float64) - old
  pg = -adv * np.exp(nkl)
  pg_kl = pg + coef * np.abs(nkl)
  idx = np.flatnonzero(mask)
  a, lp = adv[mask].astype(np.float64), logp[mask].astype(np.float64)
  cov = (a - a.mean()) * (lp - lp.mean())
  kk = max(1, int(len(cov) * ratio))
  top = idx[np.argsort(-cov, kind="stable")[:kk]]
  flat = pg.reshape(-1).copy()
  flat[top] = pg_kl.reshape(-1)[top]
  return np.sum(np.where(mask, flat.reshape(pg.shape), 0)) / mask.sum(), top


def test_kl_cov_zero_coef_is_unclipped_surrogate(maybe_jit):
  logp, old, adv, mask = _data(5, scale=0.8)
  loss, _ = maybe_jit(functools.partial(kl_cov_loss, kl_ratio=0.3, kl_coef=0.0))(logp, old, adv, mask)
  ref, _ = ppo_clip_loss(logp, old, adv, mask, clip_low=jnp.inf, clip_high=jnp.inf)
  np.testing.assert_allclose(loss, ref, rtol=1e-6)
  r = np.exp(logp - old.astype(np.float64))
  np.testing.assert_allclose(loss, np.sum(np.where(mask, -adv * r, 0)) / mask.sum(), rtol=1e-5)
  # ... which differs from PPO-clip on this data
  assert not np.isclose(loss, ppo_clip_loss(logp, old, adv, mask)[0], rtol=1e-3)


@pytest.mark.parametrize("ratio", [2e-3, 1.0])
def test_kl_cov_on_policy_is_minus_mean_advantage(ratio):
  logp, _, adv, mask = _data(6)
  loss, m = kl_cov_loss(logp, logp, adv, mask, kl_ratio=ratio, kl_coef=5.0)
  np.testing.assert_allclose(loss, -adv[mask].mean(), rtol=1e-5)
  # |δ| has gradient sign(0) = 0 at δ = 0 (as in torch), so on-policy KL-Cov is plain PG
  np.testing.assert_allclose(_grad(kl_cov_loss, logp, logp, adv, mask, kl_ratio=ratio, kl_coef=5.0),
                             np.where(mask, -adv / mask.sum(), 0), rtol=1e-6)


def test_kl_cov_penalises_exactly_the_top_k_tokens(maybe_jit):
  logp, old, adv, mask = _data(7, scale=0.4)
  ratio, coef = 0.25, 0.5
  n = mask.sum()
  k = max(int(ratio * n), 1)
  g = _grad(kl_cov_loss, logp, old, adv, mask, kl_ratio=ratio, kl_coef=coef)
  base = np.where(mask, -adv * np.exp(logp - old.astype(np.float64)) / n, 0)
  differs = ~np.isclose(g, base, rtol=1e-5, atol=1e-8)
  assert differs.sum() == k
  expected_loss, top = _np_verl_kl_cov(old, logp, adv, mask, ratio, coef)
  np.testing.assert_array_equal(np.flatnonzero(differs), np.sort(top))
  delta = (logp - old.astype(np.float64)).reshape(-1)[top]
  np.testing.assert_allclose((g - base).reshape(-1)[top], coef * np.sign(delta) / n, rtol=1e-4)
  loss, m = maybe_jit(functools.partial(kl_cov_loss, kl_ratio=ratio, kl_coef=coef))(logp, old, adv, mask)
  np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
  assert m["num_selected"] == k and m["k"] == k
  np.testing.assert_allclose(m["frac_selected"], k / n, rtol=1e-6)
  cov = _np_cov(logp, adv, mask)
  np.testing.assert_allclose(m["cov_mean"], cov[mask].mean(), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(m["cov_max"], cov[mask].max(), rtol=1e-5)
  np.testing.assert_allclose(m["abs_kl"], np.abs(logp - old.astype(np.float64))[mask].mean(), rtol=1e-5)


def test_kl_cov_ties_go_to_lower_index():
  mask = _mask([4, 4, 0, 0], 4)
  sign_a = np.array([1, 1, -1, -1, 1, 1, -1, -1], np.float32)
  sign_l = np.array([-1, 1, 1, -1, -1, 1, 1, -1], np.float32)
  pad = lambda x: np.concatenate([x.reshape(2, 4), np.zeros((2, 4), np.float32)])
  adv, logp = pad(sign_a), pad(-2.0 + 0.5 * sign_l)  # Cov = +0.5 at the odd slots 1, 3, 5, 7, −0.5 elsewhere
  old = logp - 0.3
  g = _grad(kl_cov_loss, logp, old, adv, mask, kl_ratio=3 / 8, kl_coef=1.0)  # k = 3 of the 4 tied
  base = np.where(mask, -adv * np.exp(0.3) / mask.sum(), 0)
  differs = ~np.isclose(g, base, rtol=1e-5, atol=1e-8)
  np.testing.assert_array_equal(np.flatnonzero(differs), [1, 3, 5])


# ---------------------------------------------------------------------------------------------
# Shared behaviour

COV_LOSSES = {
    "clip_cov": functools.partial(clip_cov_loss, key=KEY, cov_lb=-1e9, cov_ub=1e9, clip_ratio=0.2),
    "kl_cov": functools.partial(kl_cov_loss, kl_ratio=0.2),
}


@pytest.mark.parametrize("name", sorted(COV_LOSSES))
def test_jit_matches_eager(name):
  fn = COV_LOSSES[name]
  logp, old, adv, mask = _data(8, scale=0.5)
  a, ma = fn(logp, old, adv, mask)
  b, mb = jax.jit(fn)(logp, old, adv, mask)
  np.testing.assert_allclose(a, b, rtol=1e-6)
  for k in ma:
    np.testing.assert_allclose(ma[k], mb[k], rtol=1e-6, atol=1e-7)
  assert ma["num_selected"] > 0


@pytest.mark.parametrize("name", sorted(COV_LOSSES))
def test_empty_mask_gives_zero_loss(name):
  fn = COV_LOSSES[name]
  logp, old, adv, _ = _data(9)
  mask = np.zeros((B, T), bool)
  loss, m = jax.jit(fn)(logp, old, adv, mask)
  assert loss == 0 and all(np.isfinite(v) for v in m.values()) and m["num_selected"] == 0
  assert np.all(_grad(fn, logp, old, adv, mask) == 0)


def _raises(name, fn, *args, **kw):
  with pytest.raises(ValueError, match=f"`{name}`"):
    fn(*args, **kw)


def test_bad_inputs_raise():
  logp, old, adv, mask = _data(10)
  for fn in COV_LOSSES.values():
    _raises("logp", fn, logp[0], old[0], adv[0], mask[0])
    _raises("old_logp", fn, logp, old[:, :2], adv, mask)
    _raises("mask", fn, logp, old, adv, mask[:1])
    _raises("advantages", fn, logp, old, adv[:, :3], mask)
    _raises("agg", fn, logp, old, adv, mask, agg="tokens")
  for bad in (0.0, -0.1, 1.5):
    _raises("clip_ratio", clip_cov_loss, logp, old, adv, mask, key=KEY, clip_ratio=bad)
    _raises("kl_ratio", kl_cov_loss, logp, old, adv, mask, kl_ratio=bad)
  _raises("cov_lb", clip_cov_loss, logp, old, adv, mask, key=KEY, cov_lb=5.0, cov_ub=1.0)
  _raises("clip_low", clip_cov_loss, logp, old, adv, mask, key=KEY, clip_low=-0.2)
  _raises("key", clip_cov_loss, logp, old, adv, mask, key=None)
  _raises("kl_coef", kl_cov_loss, logp, old, adv, mask, kl_coef=-1.0)
  _raises("mask", token_covariance, logp, adv, mask[:, :2])
  _raises("delta_logits", predicted_entropy_change, jnp.zeros((2, 3)), jnp.zeros((2, 4)))
  _raises("logits", predicted_entropy_change, jnp.zeros(()), jnp.zeros(()))
  _raises("R", entropy_performance_fit, jnp.zeros(3), jnp.zeros(4))
  _raises("H", entropy_performance_fit, jnp.zeros((3, 1)), jnp.zeros((3, 1)))
  _raises("H", entropy_performance_fit, jnp.zeros(1), jnp.zeros(1))


# ---------------------------------------------------------------------------------------------
# Entropy dynamics and the R(H) law


def _entropy(z):
  logp = jax.nn.log_softmax(z, axis=-1)
  return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


@pytest.mark.parametrize("step", [1e-4, 1e-5])
def test_predicted_entropy_change_matches_finite_differences(x64, step):
  rng = np.random.default_rng(11)
  z = rng.normal(0, 2.0, (3, 7))
  u = rng.normal(0, 1.0, (3, 7))
  dz = step * u / np.linalg.norm(u, axis=-1, keepdims=True)
  central = (_entropy(z + dz) - _entropy(z - dz)) / 2  # O(‖Δz‖³) error
  pred = predicted_entropy_change(z, dz)
  assert pred.dtype == jnp.float64
  np.testing.assert_allclose(pred, central, rtol=1e-6)
  # and a one-sided step agrees to first order only
  one_sided = _entropy(z + dz) - _entropy(z)
  np.testing.assert_allclose(pred, one_sided, rtol=50 * step)


def test_predicted_entropy_change_policy_gradient_forms(x64):
  rng = np.random.default_rng(12)
  z = rng.normal(0, 1.5, 9)
  adv = rng.normal(0, 1.0, 9)
  eta = 0.03
  pi = np.exp(z - z.max())
  pi /= pi.sum()
  log_pi = np.log(pi)
  cov = lambda x, y: np.sum(pi * (x - pi @ x) * (y - pi @ y))
  # natural PG, Δz = η·A
  np.testing.assert_allclose(predicted_entropy_change(z, eta * adv), -eta * cov(log_pi, adv), rtol=1e-12)
  # exact tabular PG, Δz = η·π·A
  np.testing.assert_allclose(predicted_entropy_change(z, eta * pi * adv), -eta * cov(log_pi, pi * adv), rtol=1e-12)
  # a constant logit shift leaves the policy and the entropy unchanged
  np.testing.assert_allclose(predicted_entropy_change(z, eta * adv + 3.0), -eta * cov(log_pi, adv), rtol=1e-10)
  # entropy falls when the likely action has the positive advantage
  assert predicted_entropy_change(np.array([2.0, 0.0, 0.0]), np.array([1.0, -0.5, -0.5])) < 0
  # actions with π = 0 contribute nothing (no NaN)
  out = predicted_entropy_change(np.array([0.0, 1.0, -np.inf]), np.array([0.1, -0.1, 5.0]))
  np.testing.assert_allclose(out, predicted_entropy_change(np.array([0.0, 1.0]), np.array([0.1, -0.1])), rtol=1e-12)


def test_entropy_performance_fit_recovers_law(x64):
  a, b = 0.35, 0.9
  H = np.linspace(0.05, 1.2, 25)
  R = -a * np.exp(H) + b
  fit = jax.jit(entropy_performance_fit)(H, R)
  np.testing.assert_allclose(fit["a"], a, rtol=1e-12)
  np.testing.assert_allclose(fit["b"], b, rtol=1e-12)
  np.testing.assert_allclose(fit["ceiling"], b - a, rtol=1e-12)
  np.testing.assert_allclose(fit["r2"], 1.0, rtol=1e-12)
  noisy = entropy_performance_fit(H, R + np.random.default_rng(0).normal(0, 0.05, H.shape))
  assert 0 < noisy["r2"] < 1
  slope, intercept = np.polyfit(np.exp(H), R + np.random.default_rng(0).normal(0, 0.05, H.shape), 1)
  np.testing.assert_allclose([noisy["a"], noisy["b"]], [-slope, intercept], rtol=1e-9)


def test_presets_follow_the_authors_recipes():
  """Clip-Cov: ε_low = ε_high = 1, r = 2e-4, band (1, 5); KL-Cov: κ = 2e-3, β = 1 (7B); both G = 8, token-mean,
  no KL (recipe/dapo/7b_{clip,kl}_cov.sh); all checked, so nothing is left `unchecked`."""
  clip = algorithms.get("clip_cov")
  assert dict(clip.loss_kwargs) == dict(clip_ratio=2e-4, cov_lb=1.0, cov_ub=5.0, clip_low=1.0, clip_high=1.0)
  kl = algorithms.get("kl_cov")
  assert dict(kl.loss_kwargs) == dict(kl_ratio=2e-3, kl_coef=1.0)
  for p in (clip, kl):
    assert (p.group_size, p.agg, p.kl.where, p.entropy_coef, p.unchecked) == (8, "token-mean", "none", 0.0, ())
