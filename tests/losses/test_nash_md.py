import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses import registry
from rljax.losses.nash_md import geometric_mixture_logits, nash_md_pg_loss

B, T, V = 4, 5, 7
_mix = jax.jit(geometric_mixture_logits)


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _logits(seed):
  return np.random.default_rng(seed).normal(size=(3, V)).astype(np.float32) * 2


def test_mixture_endpoints_and_normalisation():
  pol, ref = _logits(0), _logits(1)
  np.testing.assert_allclose(_mix(pol, ref, beta=0.0), _log_softmax(pol), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(_mix(pol, ref, beta=1.0), _log_softmax(ref), rtol=1e-5, atol=1e-6)
  for beta in (0.125, 0.5, 0.9):
    mixed = np.asarray(_mix(pol, ref, beta=beta))
    np.testing.assert_allclose(np.exp(mixed).sum(-1), 1.0, rtol=1e-5)
    expected = _log_softmax((1 - beta) * _log_softmax(pol) + beta * _log_softmax(ref))
    np.testing.assert_allclose(mixed, expected, rtol=1e-5, atol=1e-6)


def test_mixture_with_masked_tokens():
  pol, ref = _logits(2), _logits(3)
  pol[:, 0] = -np.inf  # a token the policy cannot emit
  ref[:, 1] = -np.inf
  np.testing.assert_allclose(_mix(pol, ref, beta=1.0), _log_softmax(ref), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(_mix(pol, ref, beta=0.0), _log_softmax(pol), rtol=1e-5, atol=1e-6)
  mid = np.asarray(_mix(pol, ref, beta=0.5))
  assert np.all(np.isneginf(mid[:, :2])) and np.all(np.isfinite(mid[:, 2:]))
  np.testing.assert_allclose(np.exp(mid).sum(-1), 1.0, rtol=1e-5)


def test_mixture_passes_no_gradient():
  pol, ref = _logits(4), _logits(5)
  g = jax.grad(lambda p, r: jnp.sum(geometric_mixture_logits(p, r, beta=0.3)[:, 0]), argnums=(0, 1))(pol, ref)
  np.testing.assert_array_equal(g[0], 0.0)
  np.testing.assert_array_equal(g[1], 0.0)


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  logp = -rng.uniform(0.1, 2.0, (B, T)).astype(np.float32)
  ref = (logp + rng.normal(0, 0.4, (B, T))).astype(np.float32)
  pref = rng.uniform(0, 1, B).astype(np.float32)
  mask = np.arange(T)[None] < np.array([5, 3, 1, 4])[:, None]
  return logp, ref, pref, mask


_loss = jax.jit(nash_md_pg_loss, static_argnames=("kl_grad", "agg"))
_grad = jax.jit(jax.grad(lambda *a, **kw: nash_md_pg_loss(*a, **kw)[0]), static_argnames=("kl_grad", "agg"))


def test_value_matches_trl_surrogate():
  logp, ref, pref, mask = _batch()
  tau = 0.1
  lp, lr = np.where(mask, logp, 0), np.where(mask, logp - ref, 0)
  trl = np.mean(tau * (lr * lp).sum(1) - (pref - 0.5) * lp.sum(1))
  loss, m = _loss(logp, ref, pref, mask, tau=tau)
  np.testing.assert_allclose(loss, trl, rtol=1e-5)
  np.testing.assert_allclose(m["kl"], lr.sum(1).mean(), rtol=1e-5)
  np.testing.assert_allclose(m["score"], np.mean((pref - 0.5) * lp.sum(1)), rtol=1e-5)
  np.testing.assert_allclose(m["loss_numerator"] / m["loss_denominator"], loss, rtol=1e-6)


@pytest.mark.parametrize("kl_grad", ["token", "sequence"])
def test_gradient_is_preference_pg_minus_kl_reinforce(kl_grad):
  logp, ref, pref, mask = _batch(1)
  tau = 0.3
  g = np.asarray(_grad(logp, ref, pref, mask, tau=tau, kl_grad=kl_grad))
  lr = np.where(mask, logp - ref, 0)
  coef = lr if kl_grad == "token" else np.broadcast_to(lr.sum(1, keepdims=True), lr.shape)
  expected = np.where(mask, tau * coef - (pref - 0.5)[:, None], 0) / B  # seq-mean-token-sum
  np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-7)


def test_half_preference_leaves_only_the_kl_term_and_tau_zero_only_the_score():
  logp, ref, _, mask = _batch(2)
  half = np.full(B, 0.5, np.float32)
  g_kl = np.asarray(_grad(logp, ref, half, mask, tau=0.2))
  np.testing.assert_allclose(g_kl, np.where(mask, 0.2 * (logp - ref), 0) / B, rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(_grad(logp, ref, half, mask, tau=0.0), 0.0)


def test_only_policy_logps_receive_gradients():
  logp, ref, pref, mask = _batch(3)
  g = jax.grad(lambda *a: nash_md_pg_loss(*a, mask, tau=0.1)[0], argnums=(1, 2))(logp, ref, pref)
  np.testing.assert_array_equal(g[0], 0.0)
  np.testing.assert_array_equal(g[1], 0.0)


def test_padding_with_neg_inf_and_empty_mask_are_finite():
  logp, ref, pref, mask = _batch(4)
  logp = np.where(mask, logp, -np.inf).astype(np.float32)
  loss = _loss(logp, ref, pref, mask, tau=0.1)[0]
  g = _grad(logp, ref, pref, mask, tau=0.1)
  assert np.isfinite(loss) and np.all(np.isfinite(g))
  empty = np.zeros_like(mask)
  assert float(_loss(logp, ref, pref, empty, tau=0.1)[0]) == 0.0
  np.testing.assert_array_equal(_grad(logp, ref, pref, empty, tau=0.1), 0.0)


def test_registered_and_jit_matches_eager(maybe_jit):
  assert registry.get("nash_md_pg") is nash_md_pg_loss
  logp, ref, pref, mask = _batch(5)
  f = maybe_jit(functools.partial(nash_md_pg_loss, tau=0.1, agg="token-mean"))
  np.testing.assert_allclose(f(logp, ref, pref, mask)[0], _loss(logp, ref, pref, mask, tau=0.1, agg="token-mean")[0], rtol=1e-6)


def test_bad_inputs_raise():
  logp, ref, pref, mask = _batch()
  with pytest.raises(ValueError, match="beta"):
    geometric_mixture_logits(_logits(0), _logits(1), beta=1.5)
  with pytest.raises(ValueError, match="ref_logits"):
    geometric_mixture_logits(_logits(0), _logits(1)[:, :3], beta=0.5)
  with pytest.raises(ValueError, match="tau"):
    nash_md_pg_loss(logp, ref, pref, mask, tau=-0.1)
  with pytest.raises(ValueError, match="pref_prob"):
    nash_md_pg_loss(logp, ref, pref[:2], mask)
  with pytest.raises(ValueError, match="kl_grad"):
    nash_md_pg_loss(logp, ref, pref, mask, kl_grad="full")
  with pytest.raises(ValueError, match="agg"):
    nash_md_pg_loss(logp, ref, pref, mask, agg="mean")
  with pytest.raises(ValueError, match="ref_logps"):
    nash_md_pg_loss(logp, ref[:, :2], pref, mask)
