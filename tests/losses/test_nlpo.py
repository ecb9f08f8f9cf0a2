import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses.kl import KLControllerState, adaptive_kl_update
from rljax.losses.nlpo import nlpo_masked_logits, nlpo_token_logps
from rljax.ops import top_p_mask
from rljax.losses.policy_gradient import ppo_clip_loss

V = 12
_top_p = jax.jit(top_p_mask, static_argnames="min_tokens_to_keep")
_masked = jax.jit(nlpo_masked_logits, static_argnames="min_keep")
_token_logps = jax.jit(nlpo_token_logps, static_argnames="min_keep")


def _logits(shape, seed=0, scale=2.0):
  return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


def _brute_force_top_p(logits, p, min_keep):
  """Smallest prefix of the descending (stable) order with mass ≥ p, widened to min_keep tokens."""
  out = np.zeros(logits.shape, bool)
  for i, row in enumerate(logits):
    probs = np.exp(row - row.max())
    probs /= probs.sum()
    order = np.argsort(-row, kind="stable")
    k = 1
    while k < len(row) and probs[order[:k]].sum() < p:
      k += 1
    out[i, order[: max(k, min_keep)]] = True
  return out


@pytest.mark.parametrize("p, min_keep", [(0.5, 1), (0.9, 1), (0.9, 4), (0.01, 3), (0.999, 1)])
def test_top_p_mask_is_the_minimal_prefix(p, min_keep):
  logits = _logits((50, V), seed=int(p * 100) + min_keep)
  logits[0, :4] = logits[0, 4]  # ties, broken by index
  keep = np.asarray(_top_p(logits, p, min_tokens_to_keep=min_keep))
  np.testing.assert_array_equal(keep, _brute_force_top_p(logits, p, min_keep))
  assert np.all(keep.sum(-1) >= min_keep)


def test_p_one_keeps_everything_and_nlpo_is_ppo():
  logits = _logits((3, 4, V), seed=1, scale=8.0)  # some tokens with negligible mass
  assert np.all(_top_p(logits, 1.0))
  rng = np.random.default_rng(2)
  tokens = jnp.asarray(rng.integers(0, V, (3, 4)))
  mask = jnp.asarray(np.arange(4)[None] < np.array([4, 2, 0])[:, None])
  policy = logits + _logits((3, 4, V), seed=3, scale=0.1)
  nlpo = _token_logps(policy, logits, tokens, top_p=1.0, mask=mask)
  logsm = policy - np.log(np.exp(policy).sum(-1, keepdims=True))
  plain = np.where(mask, np.take_along_axis(logsm, np.asarray(tokens)[..., None], -1)[..., 0], 0).astype(np.float32)
  np.testing.assert_allclose(nlpo, plain, rtol=1e-5, atol=1e-6)
  old = plain + 0.1
  adv = rng.normal(size=(3,)).astype(np.float32)
  ppo = jax.jit(lambda lp: ppo_clip_loss(lp, old, adv, mask)[0])
  np.testing.assert_allclose(ppo(nlpo), ppo(plain), rtol=1e-5)


def test_masked_distribution_is_normalised_on_the_set():
  policy, psi = _logits((6, V), seed=4), _logits((6, V), seed=5)
  masked = _masked(policy, psi, top_p=0.8, min_keep=2)
  probs = np.asarray(jax.nn.softmax(masked, axis=-1))
  keep = np.asarray(_top_p(psi, 0.8, min_tokens_to_keep=2))
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
  np.testing.assert_array_equal(probs[~keep], 0.0)
  # on the set, π_θ renormalised
  pol = np.exp(policy - policy.max(-1, keepdims=True)) * keep
  np.testing.assert_allclose(probs, pol / pol.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_mask_follows_the_masking_policy_not_the_policy():
  policy = np.zeros((1, V), np.float32)
  policy[0, 0] = 10.0  # π_θ puts its mass on token 0
  psi = np.zeros((1, V), np.float32)
  psi[0, 5] = 10.0  # π_ψ on token 5
  masked = np.asarray(_masked(policy, psi, top_p=0.9))
  assert np.isfinite(masked[0, 5]) and np.isneginf(masked[0, 0])
  np.testing.assert_array_equal(np.isfinite(masked), _top_p(psi, 0.9))


def test_always_keep_and_min_keep():
  psi = _logits((2, V), seed=6)
  always = np.zeros(V, bool)
  always[[0, V - 1]] = True
  masked = np.asarray(_masked(psi, psi, top_p=1e-6, min_keep=1, always_keep=always))
  finite = np.isfinite(masked)
  np.testing.assert_array_equal(finite.sum(-1), 1 + (~np.isin(psi.argmax(-1), [0, V - 1])) * 2)
  assert np.all(finite[:, [0, V - 1]]) and np.all(finite[np.arange(2), psi.argmax(-1)])


def test_gradient_reaches_only_kept_policy_logits():
  policy, psi = _logits((2, 3, V), seed=7), _logits((2, 3, V), seed=8)
  keep = np.asarray(_top_p(psi, 0.7))
  tokens = jnp.asarray(np.argmax(psi, -1))  # the top token is always in the set
  f = lambda pol, ps: jnp.sum(nlpo_token_logps(pol, ps, tokens, top_p=0.7))
  g_pol, g_psi = jax.jit(jax.grad(f, argnums=(0, 1)))(policy, psi)
  assert np.all(np.isfinite(g_pol))
  np.testing.assert_array_equal(np.asarray(g_pol)[~keep], 0.0)
  assert np.all(np.asarray(g_pol)[keep] != 0)
  np.testing.assert_array_equal(g_psi, 0.0)


def test_padding_and_empty_mask_are_finite():
  policy, psi = _logits((2, 3, V), seed=9), _logits((2, 3, V), seed=10)
  tokens = jnp.full((2, 3), V - 1)  # arbitrary ids, possibly outside the set
  mask = jnp.zeros((2, 3), bool)
  out = _token_logps(policy, psi, tokens, top_p=0.5, mask=mask)
  np.testing.assert_array_equal(out, 0.0)
  loss = lambda pol: ppo_clip_loss(nlpo_token_logps(pol, psi, tokens, top_p=0.5, mask=mask), out, 1.0 + out[:, 0], mask)[0]
  g = jax.jit(jax.grad(loss))(policy)
  assert np.all(np.isfinite(g))


def test_adaptive_kl_controller_matches_rl4lms():
  beta = KLControllerState(coef=jnp.float32(0.1))
  up = adaptive_kl_update(beta, jnp.float32(1.5), 1, target=1.0, horizon=10.0)
  down = adaptive_kl_update(beta, jnp.float32(0.9), 1, target=1.0, horizon=10.0)
  # RL4LMs KLController: β·(1 + 0.1·clip((KL − target)/target, −0.2, 0.2))
  np.testing.assert_allclose(up.coef, 0.1 * (1 + 0.1 * 0.2), rtol=1e-6)
  np.testing.assert_allclose(down.coef, 0.1 * (1 + 0.1 * -0.1), rtol=1e-6)
  assert float(up.coef) > 0.1 > float(down.coef)


def test_jit_matches_eager(maybe_jit):
  policy, psi = _logits((2, 3, V), seed=11), _logits((2, 3, V), seed=12)
  tokens = jnp.asarray(np.argmax(psi, -1))
  f = maybe_jit(functools.partial(nlpo_token_logps, top_p=0.6, min_keep=2))
  np.testing.assert_allclose(f(policy, psi, tokens), nlpo_token_logps(policy, psi, tokens, top_p=0.6, min_keep=2), rtol=1e-6)


def test_bad_inputs_raise():
  logits = _logits((2, V))
  with pytest.raises(ValueError, match="`p`"):
    top_p_mask(logits, 0.0)
  with pytest.raises(ValueError, match="`p`"):
    top_p_mask(logits, 1.5)
  with pytest.raises(ValueError, match="min_tokens_to_keep"):
    top_p_mask(logits, 0.5, min_tokens_to_keep=0)
  with pytest.raises(ValueError, match="min_keep"):
    nlpo_masked_logits(logits, logits, min_keep=0)
  with pytest.raises(ValueError, match="top_p"):
    nlpo_masked_logits(logits, logits, top_p=2.0)
  with pytest.raises(ValueError, match="mask_policy_logits"):
    nlpo_masked_logits(logits, logits[:, :5])
  with pytest.raises(ValueError, match="tokens"):
    nlpo_token_logps(logits[None], logits[None], jnp.zeros((1, 3), int))
