import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import algorithms as algos
from rljax.losses.kl import KLControllerState, adaptive_kl_update, kl_penalized_rewards
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
  loss = lambda pol: ppo_clip_loss(nlpo_token_logps(pol, psi, tokens, top_p=0.5, mask=mask), out, 1.0 + out[:, 0],
                                   mask)[0]
  g = jax.jit(jax.grad(loss))(policy)
  assert np.all(np.isfinite(g))


def _rl4lms_learned_top_p(mask_logits, top_mask, min_tokens_to_keep, special_ids=()):
  """NumPy port of RL4LMs `MaskLogitsProcessorCasualLM._get_action_masks`, mask_type 'learned_top_p'."""
  order = np.argsort(-mask_logits, axis=-1, kind="stable")
  sorted_logits = np.take_along_axis(mask_logits, order, -1).astype(np.float64)
  probs = np.exp(sorted_logits - sorted_logits[:, :1])
  cumulative = np.cumsum(probs / probs.sum(-1, keepdims=True), -1)
  remove = cumulative > top_mask
  if min_tokens_to_keep > 1:
    remove[:, : min_tokens_to_keep - 1] = False
  remove[:, 1:] = remove[:, :-1].copy()
  remove[:, 0] = False
  keep = np.zeros_like(remove)
  np.put_along_axis(keep, order, ~remove, -1)
  keep[:, list(special_ids)] = True
  return keep


@pytest.mark.parametrize("p, min_keep, vocab", [(0.9, 100, 256), (0.9, 1, 256), (0.5, 3, V), (0.95, 4, 64)])
def test_set_matches_rl4lms_learned_top_p(p, min_keep, vocab):
  """The kept set is RL4LMs' (no exact ties in continuous logits), with the IMDB preset's p and min_keep."""
  # row scales from flat (nucleus of most of the vocabulary) to peaked (a few tokens)
  psi = _logits((40, vocab), seed=vocab + min_keep) * np.linspace(0.1, 2.0, 40, dtype=np.float32)[:, None]
  special = (0, vocab - 1)
  always = np.isin(np.arange(vocab), special)
  masked = np.asarray(_masked(psi + 1.0, psi, top_p=p, min_keep=min_keep, always_keep=always))
  want = _rl4lms_learned_top_p(psi, p, min_keep, special)
  np.testing.assert_array_equal(np.isfinite(masked), want)
  if min_keep == 100:
    assert np.all(want.sum(-1) >= 100) and np.any(want.sum(-1) > 102)  # the nucleus sometimes exceeds min_keep


def test_raw_logps_feed_rl4lms_kl_reward():
  """`return_raw`: the masked log-prob (PPO ratio) and the unmasked one (RL4LMs `raw_log_probs`), whose
  difference to π_0 is alg_wrappers.py's per-token KL reward −β·(raw − ref)."""
  policy, psi, ref = _logits((3, 5, V), seed=13), _logits((3, 5, V), seed=14), _logits((3, 5, V), seed=15)
  tokens = jnp.asarray(np.argmax(psi, -1))
  mask = np.arange(5)[None] < np.array([5, 3, 1])[:, None]
  masked, raw = jax.jit(functools.partial(nlpo_token_logps, top_p=0.7, min_keep=2, return_raw=True))(
      policy, psi, tokens, mask=jnp.asarray(mask))
  gather = lambda lg, keep: np.take_along_axis(
      np.where(keep, lg, -np.inf) - np.log(np.sum(np.where(keep, np.exp(lg), 0), -1, keepdims=True)),
      np.asarray(tokens)[..., None], -1)[..., 0]
  keep = _rl4lms_learned_top_p(psi.reshape(-1, V), 0.7, 2).reshape(psi.shape)
  np.testing.assert_allclose(masked, np.where(mask, gather(policy, keep), 0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(raw, np.where(mask, gather(policy, np.ones_like(keep)), 0), rtol=1e-5, atol=1e-6)
  gap = np.asarray(masked)[mask] - np.asarray(raw)[mask]
  assert np.all(gap >= 0) and np.any(gap > 0)
  ref_lp = np.where(mask, gather(ref, np.ones_like(keep)), 0)
  scores = np.array([1.0, -0.5, 2.0], np.float32)
  rewards = kl_penalized_rewards(scores, raw, ref_lp, mask, kl_coef=0.1)
  want = np.where(mask, -0.1 * (np.asarray(raw) - ref_lp), 0)
  want[np.arange(3), mask.sum(1) - 1] += scores
  np.testing.assert_allclose(rewards, want, rtol=1e-5, atol=1e-6)


def test_adaptive_kl_controller_matches_rl4lms():
  cfg = algos.get("nlpo")
  target, horizon = cfg.kl.adaptive.target, cfg.kl.adaptive.horizon
  assert cfg.kl.adaptive.per == "rollout"  # n_steps = 1
  # kl_controllers.py's own example: KLController(kl_coeff=0.1, target_kl=0.1), steps -0.2, 0.3, 0.4
  coef, state = 0.1, KLControllerState(coef=jnp.float32(cfg.kl.coef))
  for kl in (-0.2, 0.3, 0.4, 0.11):
    coef *= 1 + 0.1 * float(np.clip((kl - 0.1) / 0.1, -0.2, 0.2))
    state = adaptive_kl_update(state, jnp.float32(kl), 1, target=target, horizon=horizon)
    np.testing.assert_allclose(state.coef, coef, rtol=1e-6)
  np.testing.assert_allclose(coef, 0.1 * 0.98 * 1.02 * 1.02 * 1.01, rtol=1e-12)


def test_preset_pins_rl4lms_imdb_constants():
  """gpt2_nlpo.yml (HEAD) + NLPO constructor defaults + MaskedCausalLMActorCriticPolicy."""
  cfg = algos.get("nlpo")
  assert dict(cfg.nlpo) == dict(enabled=True, top_p=0.9, min_keep=100, update_every=5)
  assert (cfg.kl.kind, cfg.kl.coef, cfg.kl.where) == ("k1", 0.1, "reward")
  assert dict(cfg.kl.adaptive) == dict(target=0.1, horizon=10.0, per="rollout")
  assert cfg.advantage == "gae" and dict(cfg.advantage_kwargs) == dict(gamma=0.99, lam=0.95)
  assert (cfg.loss, cfg.loss_kwargs.clip_low, cfg.loss_kwargs.clip_high) == ("ppo_clip", 0.2, 0.2)
  assert cfg.loss_kwargs.dual_clip is None and cfg.loss_kwargs.log_ratio_clamp is None
  # clip_range_vf None; vf_coef 0.5·F.mse_loss = 1·(½·MSE); normalize_advantage True; ent_coef 0
  assert cfg.critic.enabled and cfg.critic.value_clip is None and cfg.critic.vf_coef == 1.0
  assert cfg.critic.whiten_advantages and cfg.entropy_coef == 0.0 and cfg.agg == "token-mean"
  assert tuple(cfg.unchecked) == ()


def test_jit_matches_eager(maybe_jit):
  policy, psi = _logits((2, 3, V), seed=11), _logits((2, 3, V), seed=12)
  tokens = jnp.asarray(np.argmax(psi, -1))
  f = maybe_jit(functools.partial(nlpo_token_logps, top_p=0.6, min_keep=2))
  want = nlpo_token_logps(policy, psi, tokens, top_p=0.6, min_keep=2)
  np.testing.assert_allclose(f(policy, psi, tokens), want, rtol=1e-6)


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
