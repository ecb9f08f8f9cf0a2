import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses import registry
from rljax.losses.oreal import oreal_advantages, oreal_loss, token_rm_loss, token_rm_weights

B, T, N = 6, 5, 3
REWARDS = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])


def _data(seed=0):
  rng = np.random.default_rng(seed)
  old = -rng.uniform(0.2, 2.0, (B, T))
  logp = old + rng.normal(0, 0.4, (B, T))  # far enough off-policy that clipping is active
  ref = old + rng.normal(0, 0.3, (B, T))
  lengths = np.array([5, 3, 0, 4, 2, 5])  # row 2 (negative) is empty
  mask = np.arange(T)[None] < lengths[:, None]
  adv = np.where(mask, oreal_advantages(jnp.asarray(REWARDS), group_size=N)[:, None], 0)
  return logp, old, ref, adv, mask


def _j(*arrays):
  return tuple(jnp.asarray(a) for a in arrays)


def test_registered():
  assert registry.get("oreal") is oreal_loss


def test_rloo_advantages():
  adv = np.asarray(oreal_advantages(jnp.asarray(REWARDS), group_size=N))
  r = REWARDS.reshape(-1, N)
  loo = (r.sum(1, keepdims=True) - r) / (N - 1)
  np.testing.assert_allclose(adv, (r - loo).reshape(-1), rtol=1e-6)
  # 1/0 rewards: A⁺ = 1 − p̂_loo, A⁻ = −p̂_loo
  np.testing.assert_allclose(adv[0], 1 - 0.0, rtol=1e-6)
  np.testing.assert_allclose(adv[1], -0.5, rtol=1e-6)


def _manual(lp, old, ref, adv, mask, w, *, pos_f, neg_f, sft_w, pg_w, beta):
  """The OREAL loss written out directly (jnp, so it can be differentiated)."""
  r = jnp.exp(lp - old)
  tok = jnp.maximum(-adv * r, -adv * jnp.clip(r, 0.8, 1.2))
  pos, neg = mask & (adv > 0), mask & (adv <= 0)
  d = lp - ref
  k3 = jnp.exp(-d) - 1 + d
  pos_sum = jnp.sum(jnp.where(pos, w * (sft_w * -lp + pg_w * tok), 0))
  return (pos_f * pos_sum / pos.sum() + neg_f * jnp.sum(jnp.where(neg, w * tok, 0)) / neg.sum()
          + beta * jnp.sum(jnp.where(mask, k3, 0)) / mask.sum())


@pytest.mark.parametrize(
    "weights, kw",
    [
        # token weights 1, λ⁺ = λ⁻ = 1, no BC, no KL: PPO-clip with a split token-mean
        (False, dict(pos_f=1.0, neg_f=1.0, sft_w=0.0, pg_w=1.0, beta=0.0)),
        # everything on, with token-RM weights: the released defaults
        (True, dict(pos_f=1.0, neg_f=0.5, sft_w=1.0, pg_w=1.0, beta=0.01)),
    ],
)
def test_loss_and_gradient_match_formula(x64, weights, kw):
  logp, old, ref, adv, mask = _j(*_data())
  w = jnp.asarray(np.random.default_rng(5).uniform(0, 1, (B, T))) if weights else None
  f = lambda lp: oreal_loss(lp, old, ref, adv, mask, w, pos_factor=kw["pos_f"], neg_factor=kw["neg_f"],
                            sft_weight=kw["sft_w"], pg_weight=kw["pg_w"], kl_coef=kw["beta"])
  (v, m), g = jax.jit(jax.value_and_grad(f, has_aux=True))(logp)
  ref_f = lambda lp: _manual(lp, old, ref, adv, mask, 1.0 if w is None else w, **kw)
  v_ref, g_ref = jax.jit(jax.value_and_grad(ref_f))(logp)
  np.testing.assert_allclose(v, v_ref, rtol=1e-12)
  np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-15)
  r = np.exp(np.asarray(logp - old))[np.asarray(mask)]
  assert np.any((r > 1.2) | (r < 0.8))  # clipping is exercised
  parts = (kw["pos_f"] * m["pos_numerator"] / m["pos_denominator"] + kw["neg_f"] * m["neg_numerator"] /
           m["neg_denominator"] + kw["beta"] * m["kl_numerator"] / m["kl_denominator"])
  np.testing.assert_allclose(parts, v, rtol=1e-12)


def test_positives_only_without_pg_is_nll(x64):
  logp, old, ref, adv, mask = _data()
  pos_mask = mask & (adv > 0)
  args = _j(logp, old, ref, adv, pos_mask)
  f = lambda lp: oreal_loss(lp, *args[1:], pg_weight=0.0, kl_coef=0.0)[0]
  v, g = jax.jit(jax.value_and_grad(f))(args[0])
  n_pos = pos_mask.sum()
  np.testing.assert_allclose(v, -logp[pos_mask].sum() / n_pos, rtol=1e-12)
  np.testing.assert_allclose(g, -pos_mask.astype(float) / n_pos, rtol=1e-12)
  # sft_mult_adv (the trainer's pos_mult_adv) scales each token's NLL by its A⁺
  v_adv = jax.jit(functools.partial(oreal_loss, pg_weight=0.0, kl_coef=0.0, sft_mult_adv=True))(*args)[0]
  np.testing.assert_allclose(v_adv, -(adv * logp)[pos_mask].sum() / n_pos, rtol=1e-12)


def test_jit_matches_eager(maybe_jit):
  args = _j(*_data())
  f = maybe_jit(functools.partial(oreal_loss, agg="seq-mean-token-mean"))
  loss, m = f(*args)
  eager, _ = oreal_loss(*args, agg="seq-mean-token-mean")
  np.testing.assert_allclose(loss, eager, rtol=1e-6)
  assert 0 < float(m["pos_frac_tokens"]) < 1


def test_per_response_advantages_broadcast():
  logp, old, ref, adv, mask = _data()
  per_resp = np.asarray(oreal_advantages(jnp.asarray(REWARDS), group_size=N))
  f = jax.jit(oreal_loss)
  a, _ = f(*_j(logp, old, ref, per_resp, mask))
  b, _ = f(*_j(logp, old, ref, adv, mask))
  np.testing.assert_allclose(a, b, rtol=1e-6)


def test_empty_mask_is_finite():
  logp, old, ref, adv, _ = _data()
  empty = jnp.zeros((B, T), bool)
  args = _j(old, ref, adv)
  v, g = jax.jit(jax.value_and_grad(lambda lp: oreal_loss(lp, args[0], args[1], args[2], empty)[0]))(jnp.asarray(logp))
  assert float(v) == 0.0
  np.testing.assert_array_equal(g, 0.0)


def test_token_rm_loss():
  mask = jnp.asarray(_data()[4])
  r = jnp.asarray(REWARDS)
  loss, m = jax.jit(token_rm_loss)(jnp.zeros((B, T)), mask, r)
  np.testing.assert_allclose(loss, np.log(2.0), rtol=1e-6)
  assert float(m["loss_denominator"]) == 5  # the empty row is left out
  scores = jnp.asarray(np.random.default_rng(2).normal(size=(B, T)))
  loss, _ = jax.jit(token_rm_loss)(scores, mask, r)
  mm = np.asarray(mask)
  s = np.where(mm, np.asarray(scores), 0).sum(1) / np.maximum(mm.sum(1), 1)
  p = 1 / (1 + np.exp(-s))
  bce = -(REWARDS * np.log(p) + (1 - REWARDS) * np.log(1 - p))
  np.testing.assert_allclose(loss, bce[mm.any(1)].mean(), rtol=1e-5)
  g = jax.jit(jax.grad(lambda x: token_rm_loss(x, mask, r)[0]))(scores)
  np.testing.assert_array_equal(np.asarray(g)[~mm], 0.0)


def test_token_rm_weights():
  mask = np.asarray(_data()[4])
  scores = np.random.default_rng(3).normal(0, 2, (B, T))
  w = np.asarray(token_rm_weights(jnp.asarray(scores), jnp.asarray(mask), jnp.asarray(REWARDS)))
  assert np.all((w >= 0) & (w <= 1))
  np.testing.assert_array_equal(w[~mask], 0.0)
  prefix = np.cumsum(np.where(mask, scores, 0), 1) / np.maximum(np.cumsum(mask, 1), 1)
  p = 1 / (1 + np.exp(-prefix))
  pos = mask & (REWARDS[:, None] > 0)
  neg = mask & (REWARDS[:, None] <= 0)
  assert (pos & (p <= 0.5)).any() and (pos & (p > 0.5)).any()
  np.testing.assert_array_equal(w[pos & (p <= 0.5)], 0.0)
  np.testing.assert_allclose(w[pos], np.maximum(2 * p - 1, 0)[pos], rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(w[neg], np.maximum(1 - 2 * p, 0)[neg], rtol=1e-5, atol=1e-7)
  # a higher threshold keeps fewer tokens
  w_hi = np.asarray(token_rm_weights(jnp.asarray(scores), jnp.asarray(mask), jnp.asarray(REWARDS), threshold=0.8))
  assert np.all(w_hi <= w + 1e-7)


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(neg_factor=-0.5), "neg_factor"),
        (dict(kl_coef=-1.0), "kl_coef"),
        (dict(kl_kind="k9"), "kl_kind"),
        (dict(agg="mean"), "agg"),
        (dict(clip_low=-0.1), "clip_low"),
    ],
)
def test_bad_arguments(kw, name):
  with pytest.raises(ValueError, match=name):
    oreal_loss(*_j(*_data()), **kw)


def test_bad_shapes():
  logp, old, ref, adv, mask = _j(*_data())
  with pytest.raises(ValueError, match="ref_logp"):
    oreal_loss(logp, old, ref[:, :2], adv, mask)
  with pytest.raises(ValueError, match="token_weights"):
    oreal_loss(logp, old, ref, adv, mask, jnp.ones((B, 2)))
  with pytest.raises(ValueError, match="advantages"):
    oreal_loss(logp, old, ref, adv[:, :2], mask)
  with pytest.raises(ValueError, match="shaping"):
    oreal_advantages(jnp.asarray(REWARDS), group_size=N, shaping="paper")
  with pytest.raises(ValueError, match="rewards"):
    token_rm_loss(jnp.zeros((B, T)), mask, jnp.zeros((B + 1,)))
  with pytest.raises(ValueError, match="threshold"):
    token_rm_weights(jnp.zeros((B, T)), mask, jnp.asarray(REWARDS), threshold=1.0)
