import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses import registry
from rljax.losses.advantages import broadcast_to_tokens, grpo_advantages
from rljax.losses.nft import implicit_negative_logratio, nft_loss
from rljax.losses.policy_gradient import ppo_clip_loss

G, N, T = 3, 4, 5
B = G * N
REWARDS = np.array([1, 0, 0, 1, 0, 1, 1, 1, 1, 0, 0, 0], np.float64)  # accuracies 1/2, 3/4, 1/4


def _tiny_model(seed=0, d=3, v=6):
  """A linear-softmax "LM": logp(W) of fixed random tokens under random per-token features."""
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(B, T, d)))
  y = jnp.asarray(rng.integers(0, v, (B, T)))
  w0 = jnp.asarray(rng.normal(size=(d, v)))

  def logp_fn(w):
    logits = jnp.einsum("btd,dv->btv", x, w)
    return jnp.take_along_axis(jax.nn.log_softmax(logits), y[..., None], -1)[..., 0]

  lengths = rng.integers(1, T + 1, B)
  mask = jnp.asarray(np.arange(T)[None] < lengths[:, None])
  return w0, logp_fn, mask


def _group_acc(rewards):
  return jnp.repeat(rewards.reshape(G, N).mean(1), N)


def _data(seed=0, dtype=np.float32):
  rng = np.random.default_rng(seed)
  old = -rng.uniform(0.2, 2.0, (B, T)).astype(dtype)
  logp = (old + rng.normal(0, 0.3, (B, T))).astype(dtype)
  lengths = np.array([5, 3, 1, 4, 0, 2, 5, 5, 4, 3, 2, 1])
  mask = np.arange(T)[None] < lengths[:, None]
  r = REWARDS.astype(dtype)
  return jnp.asarray(logp), jnp.asarray(old), jnp.asarray(mask), jnp.asarray(r), _group_acc(jnp.asarray(r))


def test_registered():
  assert registry.get("nft") is nft_loss



def test_defaults_are_the_released_scripts():
  """The kernel's own defaults are NVlabs/NFT train_7B.sh / train_32B.sh (read there): normalize=1,
  neg_weight=1.0, clamp_negative=1.0, clamp_positive=0.0, ratio_type="token", and dp_actor.py's log-ratio
  clamp 10 and accuracy clip [0.02, 0.98]; the preset repeats them."""
  import inspect

  from rljax import algorithms

  d = {k: p.default for k, p in inspect.signature(nft_loss).parameters.items()
       if p.default is not inspect.Parameter.empty}
  released = dict(weighting="one_minus_r", neg_weight=1.0, eps_neg=1.0, eps_pos=0.0, ratio_type="token",
                  log_ratio_clamp=10.0, acc_clip=(0.02, 0.98))
  assert {k: d[k] for k in released} == released
  preset = algorithms.get("nft").loss_kwargs.to_dict()
  assert {k: tuple(v) if isinstance(v, list) else v for k, v in preset.items()} == released
  # With these defaults the negative term is −log max(x, 1): zero on-policy and never above its on-policy
  # weight, so the default call keeps the on-policy Dr. GRPO gradient (tested below with weighting given).
  _, old, mask, r, acc = _data()
  assert float(nft_loss(old, old, mask, r, acc)[0]) == 0.0

@pytest.mark.parametrize(
    "agg, eps_neg", [("token-mean", 1.0), ("seq-mean-token-mean", 1e-2), ("seq-mean-token-sum-norm", 1.0)]
)
def test_on_policy_gradient_equals_grpo(x64, agg, eps_neg):
  """NFT(ω = sqrt((1−r̂)/r̂)) ≡ GRPO with population-std advantages and eps = 0 (no clamp active)."""
  w0, logp_fn, mask = _tiny_model()
  rewards = jnp.asarray(REWARDS)
  old = jax.lax.stop_gradient(logp_fn(w0))

  def nft(w):
    return nft_loss(logp_fn(w), old, mask, rewards, _group_acc(rewards), weighting="grpo", eps_neg=eps_neg, agg=agg)[0]

  def grpo(w, ddof):
    adv = grpo_advantages(rewards, group_size=N, std_ddof=ddof, eps=0.0)
    return ppo_clip_loss(logp_fn(w), old, broadcast_to_tokens(adv, mask), mask, agg=agg)[0]

  g_nft = jax.jit(jax.grad(nft))(w0)
  grad_grpo = jax.jit(jax.grad(grpo), static_argnums=1)
  np.testing.assert_allclose(g_nft, grad_grpo(w0, 0), rtol=1e-10, atol=1e-13)
  # With verl's unbiased (n−1) std the gradients are only proportional: A shrinks by sqrt((n−1)/n).
  g_unbiased = grad_grpo(w0, 1)
  assert not np.allclose(g_nft, g_unbiased, rtol=1e-3)
  np.testing.assert_allclose(g_nft, np.sqrt(N / (N - 1)) * g_unbiased, rtol=1e-10, atol=1e-13)


def test_on_policy_one_minus_r_equals_dr_grpo(x64):
  w0, logp_fn, mask = _tiny_model(seed=1)
  rewards = jnp.asarray(REWARDS)
  old = jax.lax.stop_gradient(logp_fn(w0))
  nft = lambda w: nft_loss(logp_fn(w), old, mask, rewards, _group_acc(rewards), weighting="one_minus_r")[0]
  adv = broadcast_to_tokens(grpo_advantages(rewards, group_size=N, scale="none"), mask)
  dr = lambda w: ppo_clip_loss(logp_fn(w), old, adv, mask, agg="seq-mean-token-sum-norm")[0]
  np.testing.assert_allclose(jax.jit(jax.grad(nft))(w0), jax.jit(jax.grad(dr))(w0), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("ratio_type", ["token", "sequence"])
def test_on_policy_value_is_zero(ratio_type):
  _, old, mask, r, acc = _data()
  loss, m = jax.jit(functools.partial(nft_loss, ratio_type=ratio_type))(old, old, mask, r, acc)
  assert float(loss) == 0.0
  assert float(m["implicit_neg_ratio_min"]) == pytest.approx(1.0)


def test_neg_weight_zero_is_rft_gradient():
  _, old, mask, r, acc = _data()
  g = jax.jit(jax.grad(lambda lp: nft_loss(lp, old, mask, r, acc, weighting="none", neg_weight=0.0,
                                             agg="token-sum")[0]))(old)
  np.testing.assert_allclose(g, -np.where(np.asarray(mask), np.asarray(r)[:, None], 0), rtol=1e-6)


def test_value_and_clamped_gradient_match_formula():
  logp, old, mask, r, acc = _data()
  eps_neg, lo_hi = 0.5, (0.02, 0.98)
  loss, m = jax.jit(functools.partial(nft_loss, weighting="none", eps_neg=eps_neg, agg="token-sum"))(
      logp, old, mask, r, acc)
  a = np.clip(np.asarray(acc, np.float64), *lo_hi)[:, None]
  ratio = np.exp(np.asarray(logp, np.float64) - np.asarray(old, np.float64))
  proxy = (1 - a * ratio) / (1 - a)
  rr, mm = np.asarray(r)[:, None], np.asarray(mask)
  per_tok = rr * -np.log(ratio) + (1 - rr) * -np.log(np.maximum(proxy, eps_neg))
  np.testing.assert_allclose(loss, np.sum(np.where(mm, per_tok, 0)), rtol=1e-5)
  # Gradient-preserving clamp: d/dlogp of −log clampg(proxy) = a·R/((1 − a)·max(proxy, ε)).
  g = jax.jit(jax.grad(lambda lp: nft_loss(lp, old, mask, r, acc, weighting="none", eps_neg=eps_neg,
                                             agg="token-sum")[0]))(logp)
  expected = np.where(mm, rr * -1 + (1 - rr) * a * ratio / ((1 - a) * np.maximum(proxy, eps_neg)), 0)
  np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-7)
  neg_tok = mm & (rr < 1)
  clamped = (proxy < eps_neg) & neg_tok
  assert 0 < clamped.sum() < neg_tok.sum()  # the data exercises both branches
  np.testing.assert_allclose(m["frac_neg_clamped"], clamped.sum() / neg_tok.sum(), rtol=1e-6)
  np.testing.assert_allclose(m["implicit_neg_ratio_min"], proxy[neg_tok].min(), rtol=1e-5)
  np.testing.assert_allclose(m["pos_loss"] + m["neg_loss"], loss, rtol=1e-6)


def test_negative_term_monotone_and_bounded_gradient(x64):
  acc = jnp.array([0.5])
  mask, r = jnp.ones((1, 1), bool), jnp.zeros((1,))
  deltas = jnp.linspace(-2.0, 1.5, 50)  # R up to e^1.5 > 1/r̂ = 2: π⁻ would go negative
  f = lambda d, eps: nft_loss(d.reshape(1, 1), jnp.zeros((1, 1)), mask, r, acc, weighting="none", eps_neg=eps)[0]
  for eps in (1e-2, 1.0):
    vals = np.asarray(jax.jit(jax.vmap(functools.partial(f, eps=eps)))(deltas))
    grads = np.asarray(jax.jit(jax.vmap(jax.grad(functools.partial(f, eps=eps))))(deltas))
    assert np.all(np.isfinite(vals)) and np.all(np.isfinite(grads))
    assert np.all(np.diff(vals) >= 0)  # non-decreasing in R (flat only where the clamp holds the value)
    assert np.all(grads >= 0)
    # |∂ℓ/∂δ| = r̂R/((1−r̂)·max(proxy, ε)) ≤ r̂·R_max/((1−r̂)·ε); here normalised by the seq-sum-norm T = 1.
    assert grads.max() <= 0.5 * np.exp(1.5) / (0.5 * eps) + 1e-4


def test_sequence_ratio():
  logp, old, mask, r, acc = _data()
  loss, _ = jax.jit(functools.partial(nft_loss, ratio_type="sequence", weighting="none", eps_neg=1e-2,
                                      agg="seq-mean-token-mean"))(logp, old, mask, r, acc)
  mm = np.asarray(mask)
  a = np.clip(np.asarray(acc, np.float64), 0.02, 0.98)
  seq_ratio = np.exp(np.minimum(np.sum(np.where(mm, np.asarray(logp) - np.asarray(old), 0), -1), 10.0))
  proxy = (1 - a * seq_ratio) / (1 - a)
  rr = np.asarray(r)
  per_seq = rr * -np.log(seq_ratio) + (1 - rr) * -np.log(np.maximum(proxy, 1e-2))
  valid = mm.any(-1)
  np.testing.assert_allclose(loss, per_seq[valid].mean(), rtol=1e-5)


def test_implicit_negative_logratio():
  logp, old, _, _, acc = _data()
  out = np.asarray(implicit_negative_logratio(logp + 0.5, old, acc))
  a = np.asarray(acc, np.float64)[:, None]
  proxy = (1 - a * np.exp(np.asarray(logp, np.float64) + 0.5 - np.asarray(old))) / (1 - a)
  pos = proxy > 0
  assert pos.any() and (~pos).any()
  np.testing.assert_allclose(out[pos], np.log(proxy[pos]), rtol=1e-4, atol=1e-5)
  assert np.all(out[~pos] == -np.inf)


def test_jit_matches_eager(maybe_jit):
  logp, old, mask, r, acc = _data()
  f = maybe_jit(functools.partial(nft_loss, weighting="grpo", eps_neg=0.1, agg="token-mean"))
  loss, m = f(logp, old, mask, r, acc)
  eager, _ = nft_loss(logp, old, mask, r, acc, weighting="grpo", eps_neg=0.1, agg="token-mean")
  np.testing.assert_allclose(loss, eager, rtol=1e-6)
  np.testing.assert_allclose(m["loss_numerator"] / m["loss_denominator"], loss, rtol=1e-6)


def test_empty_mask_is_finite():
  logp, old, _, r, acc = _data()
  empty = jnp.zeros((B, T), bool)
  v, g = jax.jit(jax.value_and_grad(lambda lp: nft_loss(lp, old, empty, r, acc)[0]))(logp)
  assert float(v) == 0.0
  np.testing.assert_array_equal(g, 0.0)
  _, m = jax.jit(nft_loss)(logp, old, empty, r, acc)
  assert all(np.isfinite(float(x)) for x in m.values())


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(weighting="sqrt"), "weighting"),
        (dict(ratio_type="seq"), "ratio_type"),
        (dict(neg_weight=-1.0), "neg_weight"),
        (dict(eps_neg=0.0), "eps_neg"),
        (dict(eps_pos=-0.1), "eps_pos"),
        (dict(acc_clip=(0.0, 0.9)), "acc_clip"),
        (dict(agg="mean"), "agg"),
        (dict(norm=10.0, agg="token-mean"), "norm"),
    ],
)
def test_bad_arguments(kw, name):
  logp, old, mask, r, acc = _data()
  with pytest.raises(ValueError, match=name):
    nft_loss(logp, old, mask, r, acc, **kw)


def test_bad_shapes():
  logp, old, mask, r, acc = _data()
  with pytest.raises(ValueError, match="rewards"):
    nft_loss(logp, old, mask, r[:3], acc)
  with pytest.raises(ValueError, match="group_acc"):
    nft_loss(logp, old, mask, r, acc[:, None])
  with pytest.raises(ValueError, match="old_logp"):
    nft_loss(logp, old[:, :2], mask, r, acc)
