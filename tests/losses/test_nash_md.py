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


_loss = jax.jit(nash_md_pg_loss, static_argnames=("kl_estimator", "agg"))
_grad = jax.jit(jax.grad(lambda *a, **kw: nash_md_pg_loss(*a, **kw)[0]), static_argnames=("kl_estimator", "agg"))


def _trl_compute_losses(logp, ref_logp, mask, probability, beta):
  """NumPy port of TRL `NashMDTrainer._compute_losses` (trl/trainer/nash_md_trainer.py), after
  `_compute_logprobs` zeroes padding with `masked_fill(padding_mask, 0.0)`; returns
  (loss.mean(), score, kl_div_log)."""
  logp = np.where(mask, logp, 0.0)
  ref_logp = np.where(mask, ref_logp, 0.0)
  score = (probability - 0.5) * logp.sum(1)
  log_ratio = logp - ref_logp  # torch.no_grad() in TRL
  kl_div_log = log_ratio.sum(1)
  kl_div_loss = (log_ratio * logp).sum(1)
  loss = beta * kl_div_loss - score
  return loss.mean(), score, kl_div_log


def _trl_grad(logp, ref_logp, mask, probability, beta):
  """d(TRL loss)/d logp: log_ratio is a constant, so each token gets (beta·log_ratio_t − (P − ½))/B."""
  lr = np.where(mask, logp - ref_logp, 0.0)
  return np.where(mask, beta * lr - (probability - 0.5)[:, None], 0.0) / logp.shape[0]


@pytest.mark.parametrize("seed", [0, 6])
def test_token_mode_matches_trl_compute_losses(seed):
  logp, ref, pref, mask = _batch(seed)
  tau = 0.1
  trl_loss, trl_score, trl_kl = _trl_compute_losses(logp, ref, mask, pref, tau)
  loss, m = _loss(logp, ref, pref, mask, tau=tau, kl_estimator="token")
  np.testing.assert_allclose(loss, trl_loss, rtol=1e-5)
  np.testing.assert_allclose(_loss(logp, ref, pref, mask, tau=tau)[0], loss, rtol=0)  # "token" is the default
  np.testing.assert_allclose(m["kl"], trl_kl.mean(), rtol=1e-5)
  np.testing.assert_allclose(m["score"], trl_score.mean(), rtol=1e-5)
  np.testing.assert_allclose(m["loss_numerator"] / m["loss_denominator"], loss, rtol=1e-6)
  np.testing.assert_allclose(_grad(logp, ref, pref, mask, tau=tau, kl_estimator="token"),
                             _trl_grad(logp, ref, mask, pref, tau), rtol=1e-5, atol=1e-7)


def test_token_mode_matches_trl_in_float64(x64):
  logp, ref, pref, mask = (a.astype(np.float64) if a.dtype == np.float32 else a for a in _batch(7))
  loss = nash_md_pg_loss(logp, ref, pref, mask, tau=0.3, kl_estimator="token")[0]
  assert loss.dtype == jnp.float64
  np.testing.assert_allclose(loss, _trl_compute_losses(logp, ref, mask, pref, 0.3)[0], rtol=1e-12)


def test_empty_response_batch_mean_differs_from_trl_only_by_s_over_b():
  logp, ref, pref, mask = _batch(8)
  mask = mask.copy()
  mask[2] = False  # TRL's loss.mean() counts the empty row, seq-mean-token-sum does not
  loss = _loss(logp, ref, pref, mask, tau=0.1)[0]
  np.testing.assert_allclose(loss * (B - 1) / B, _trl_compute_losses(logp, ref, mask, pref, 0.1)[0], rtol=1e-5)


def test_sequence_mode_value():
  logp, ref, pref, mask = _batch()
  tau = 0.1
  lp, lr = np.where(mask, logp, 0), np.where(mask, logp - ref, 0)
  expected = np.mean(tau * lr.sum(1) * lp.sum(1) - (pref - 0.5) * lp.sum(1))
  loss, m = _loss(logp, ref, pref, mask, tau=tau, kl_estimator="sequence")
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  np.testing.assert_allclose(m["kl"], lr.sum(1).mean(), rtol=1e-5)
  np.testing.assert_allclose(m["score"], np.mean((pref - 0.5) * lp.sum(1)), rtol=1e-5)


@pytest.mark.parametrize("kl_estimator", ["token", "sequence"])
def test_gradient_is_preference_pg_minus_kl_reinforce(kl_estimator):
  logp, ref, pref, mask = _batch(1)
  tau = 0.3
  g = np.asarray(_grad(logp, ref, pref, mask, tau=tau, kl_estimator=kl_estimator))
  lr = np.where(mask, logp - ref, 0)
  coef = lr if kl_estimator == "token" else np.broadcast_to(lr.sum(1, keepdims=True), lr.shape)
  expected = np.where(mask, tau * coef - (pref - 0.5)[:, None], 0) / B  # seq-mean-token-sum
  np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-7)


def test_modes_coincide_for_one_token_responses_and_tau_zero_and_differ_by_cross_terms():
  # Sample-wise identity: g_seq − g_tok = τ·m_t·Σ_{s≠t} r_s / S, zero when each response has one token or τ = 0.
  logp, ref, pref, mask = _batch(9)
  one = np.zeros_like(mask)
  one[np.arange(B), np.array([0, 2, 0, 4])] = True
  for m, tau in ((one, 0.4), (mask, 0.0)):
    np.testing.assert_allclose(_grad(logp, ref, pref, m, tau=tau, kl_estimator="sequence"),
                               _grad(logp, ref, pref, m, tau=tau, kl_estimator="token"), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(_loss(logp, ref, pref, m, tau=tau, kl_estimator="sequence")[0],
                               _loss(logp, ref, pref, m, tau=tau, kl_estimator="token")[0], rtol=1e-6)
  tau = 0.4
  lr = np.where(mask, logp - ref, 0)
  diff = np.asarray(_grad(logp, ref, pref, mask, tau=tau, kl_estimator="sequence")
                    - _grad(logp, ref, pref, mask, tau=tau, kl_estimator="token"))
  np.testing.assert_allclose(diff, np.where(mask, tau * (lr.sum(1, keepdims=True) - lr), 0) / B, rtol=1e-5, atol=1e-7)
  assert np.abs(diff).max() > 1e-3


def test_expected_gradients_by_exact_enumeration(x64):
  """Two-token autoregressive softmax policy over V tokens, all V² responses weighted by sg(π(y)),
  P ≡ ½ so only the KL term acts. In expectation: "sequence" gives τ·∇KL(π_θ‖μ) of whole sequences;
  both modes agree on the second-token logits θ2 (the cross term E[∇ℓ_2·r_1] vanishes); on θ1 "token"
  gives only τ·∇KL(π_1‖μ_1), dropping the future term τ·E[∇ℓ_1·KL_2(y_1)]."""
  v, tau = 3, 0.7
  rng = np.random.default_rng(10)
  th1, th2 = rng.normal(size=v), rng.normal(size=(v, v))
  mu1 = jax.nn.log_softmax(jnp.asarray(rng.normal(size=v)))
  mu2 = jax.nn.log_softmax(jnp.asarray(rng.normal(size=(v, v))), -1)
  a, b = np.divmod(np.arange(v * v), v)  # all responses y = (a, b)
  ref = jnp.stack([mu1[a], mu2[a, b]], -1)
  mask1, half = np.ones((1, 2), bool), np.full(1, 0.5)

  def seq_logps(t1, t2):
    return jnp.stack([jax.nn.log_softmax(t1)[a], jax.nn.log_softmax(t2, -1)[a, b]], -1)

  def expected_loss(t1, t2, kl_estimator):
    lp = seq_logps(t1, t2)
    per_y = jax.vmap(lambda l, r: nash_md_pg_loss(l[None], r[None], half, mask1, tau=tau, kl_estimator=kl_estimator)[0])
    return jnp.sum(jax.lax.stop_gradient(jnp.exp(lp.sum(-1))) * per_y(lp, ref))

  def kl_seq(t1, t2):
    lp = seq_logps(t1, t2).sum(-1)
    return jnp.sum(jnp.exp(lp) * (lp - ref.sum(-1)))

  def kl_first(t1):
    l1 = jax.nn.log_softmax(t1)
    return jnp.sum(jnp.exp(l1) * (l1 - mu1))

  g_seq = jax.grad(expected_loss, argnums=(0, 1))(th1, th2, "sequence")
  g_tok = jax.grad(expected_loss, argnums=(0, 1))(th1, th2, "token")
  exact = jax.grad(kl_seq, argnums=(0, 1))(th1, th2)
  np.testing.assert_allclose(g_seq[0], tau * exact[0], rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(g_seq[1], tau * exact[1], rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(g_tok[1], g_seq[1], rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(g_tok[0], tau * jax.grad(kl_first)(th1), rtol=1e-10, atol=1e-12)
  assert np.abs(np.asarray(g_tok[0]) - np.asarray(g_seq[0])).max() > 1e-3


def test_half_preference_leaves_only_the_kl_term_and_tau_zero_only_the_score():
  logp, ref, _, mask = _batch(2)
  half = np.full(B, 0.5, np.float32)
  g_kl = np.asarray(_grad(logp, ref, half, mask, tau=0.2))
  np.testing.assert_allclose(g_kl, np.where(mask, 0.2 * (logp - ref), 0) / B, rtol=1e-5, atol=1e-7)
  for kl_estimator in ("token", "sequence"):
    np.testing.assert_array_equal(_grad(logp, ref, half, mask, tau=0.0, kl_estimator=kl_estimator), 0.0)


@pytest.mark.parametrize("kl_estimator", ["token", "sequence"])
def test_only_policy_logps_receive_gradients(kl_estimator):
  logp, ref, pref, mask = _batch(3)
  loss = lambda *a: nash_md_pg_loss(*a, mask, tau=0.1, kl_estimator=kl_estimator)[0]  # noqa: E731
  g = jax.grad(loss, argnums=(1, 2))(logp, ref, pref)
  np.testing.assert_array_equal(g[0], 0.0)
  np.testing.assert_array_equal(g[1], 0.0)


@pytest.mark.parametrize("kl_estimator", ["token", "sequence"])
def test_padding_with_neg_inf_and_empty_mask_are_finite(kl_estimator):
  logp, ref, pref, mask = _batch(4)
  logp = np.where(mask, logp, -np.inf).astype(np.float32)
  kw = dict(tau=0.1, kl_estimator=kl_estimator)
  loss = _loss(logp, ref, pref, mask, **kw)[0]
  g = _grad(logp, ref, pref, mask, **kw)
  assert np.isfinite(loss) and np.all(np.isfinite(g))
  empty = np.zeros_like(mask)
  assert float(_loss(logp, ref, pref, empty, **kw)[0]) == 0.0
  np.testing.assert_array_equal(_grad(logp, ref, pref, empty, **kw), 0.0)


def test_registered_and_jit_matches_eager(maybe_jit):
  assert registry.get("nash_md_pg") is nash_md_pg_loss
  spec = registry.spec("nash_md_pg")
  assert spec.reads == ("logp", "ref_logp", "pref_prob", "mask")
  logp, ref, pref, mask = _batch(5)
  batch = {"logp": logp, "ref_logp": ref, "pref_prob": pref, "mask": mask}
  np.testing.assert_allclose(spec(functools.partial(nash_md_pg_loss, tau=0.1), batch)[0],
                             _loss(logp, ref, pref, mask, tau=0.1)[0], rtol=1e-6)
  for kl_estimator in ("token", "sequence"):
    f = maybe_jit(functools.partial(nash_md_pg_loss, tau=0.1, agg="token-mean", kl_estimator=kl_estimator))
    np.testing.assert_allclose(f(logp, ref, pref, mask)[0],
                               _loss(logp, ref, pref, mask, tau=0.1, agg="token-mean", kl_estimator=kl_estimator)[0],
                               rtol=1e-6)


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
  with pytest.raises(ValueError, match="kl_estimator"):
    nash_md_pg_loss(logp, ref, pref, mask, kl_estimator="full")
  with pytest.raises(TypeError, match="kl_grad"):
    nash_md_pg_loss(logp, ref, pref, mask, kl_grad="token")  # renamed to kl_estimator
  with pytest.raises(ValueError, match="agg"):
    nash_md_pg_loss(logp, ref, pref, mask, agg="mean")
  with pytest.raises(ValueError, match="`ref_logp`"):
    nash_md_pg_loss(logp, ref[:, :2], pref, mask)
  with pytest.raises(ValueError, match="`mask`"):
    nash_md_pg_loss(logp, ref, pref, mask[:, :2])
