import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rljax.algorithms as algos
from experiments.oreal import bon_enumerated
from rljax.losses import registry
from rljax.losses.advantages import rloo_advantages
from rljax.losses.oreal import (bon_alpha, bon_policy, one_pos_one_neg, oreal_advantages, oreal_loss, token_rm_loss,
                                token_rm_weights)

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


# ------------------------------------------------------------------------------ the one-pair filter

FILTER_REWARDS = np.array([[1, 0, 0, 1, 1], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 0, 0]], np.float32)


def test_one_pos_one_neg_keeps_one_correct_and_one_wrong_per_mixed_group():
  keep = np.asarray(jax.jit(one_pos_one_neg)(jnp.asarray(FILTER_REWARDS), jax.random.key(0)))
  pos = FILTER_REWARDS > 0
  np.testing.assert_array_equal((keep & pos).sum(1), [1, 0, 0, 1])
  np.testing.assert_array_equal((keep & ~pos).sum(1), [1, 0, 0, 1])


def test_one_pos_one_neg_draws_uniformly():
  keys = jax.random.split(jax.random.key(1), 3000)
  keep = np.asarray(jax.jit(jax.vmap(one_pos_one_neg, in_axes=(None, 0)))(jnp.asarray(FILTER_REWARDS), keys))
  freq = keep.mean(0)
  # group 0: 3 correct (1/3 each), 2 wrong (1/2 each); group 3: the single correct always, 4 wrong (1/4 each)
  expected = np.array([[1 / 3, 1 / 2, 1 / 2, 1 / 3, 1 / 3], [0] * 5, [0] * 5, [1 / 4, 1 / 4, 1, 1 / 4, 1 / 4]])
  np.testing.assert_allclose(freq, expected, atol=0.035)  # > 4 standard errors at 3000 draws


def _oreal_batch(rewards, n):
  b = rewards.size
  rng = np.random.default_rng(0)
  mask = np.arange(4)[None] < rng.integers(1, 5, b)[:, None]
  logp = -rng.uniform(0.1, 2.0, (b, 4))
  return jnp.asarray(logp), {"rewards": jnp.asarray(rewards.reshape(-1)), "mask": jnp.asarray(mask),
                             "old_logp": jnp.asarray(logp + 0.05), "ref_logp": jnp.asarray(logp - 0.1),
                             "key": jax.random.key(3)}


def test_preset_filters_after_rloo_on_the_whole_group():
  n = FILTER_REWARDS.shape[1]
  cfg = algos.get("oreal")
  cfg.group_size = n
  assert cfg.filter_trajectory and "key" in algos.required_inputs(cfg)["advantage"]
  logp, batch = _oreal_batch(FILTER_REWARDS, n)
  adv_fn, loss_fn = algos.resolve(cfg)
  out = jax.jit(adv_fn)(batch)
  # RLOO of all n responses, not of the kept pair (the pair would give ±1 in every group)
  np.testing.assert_allclose(out["advantages"], rloo_advantages(batch["rewards"], group_size=n), rtol=1e-6)
  keep = one_pos_one_neg(jnp.asarray(FILTER_REWARDS), batch["key"]).reshape(-1)
  np.testing.assert_array_equal(out["keep"], keep)
  # the loss is the kernel (released trainer's settings) on the kept responses with those advantages
  loss, _ = loss_fn(logp, {**batch, **out})
  expected, _ = oreal_loss(logp, batch["old_logp"], batch["ref_logp"], out["advantages"],
                           batch["mask"] & keep[:, None], pos_factor=1.0, neg_factor=0.5, sft_weight=1.0,
                           pg_weight=0.0, sft_mult_adv=True, kl_coef=0.01, kl_kind="k3")
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  # off: no keep mask, no key needed
  cfg.filter_trajectory = False
  assert "key" not in algos.required_inputs(cfg)["advantage"]
  assert "keep" not in algos.resolve(cfg)[0]({k: v for k, v in batch.items() if k != "key"})


def test_filter_trajectory_must_be_bool():
  cfg = algos.get("oreal").to_dict()  # a plain dict: a ConfigDict would refuse the str itself
  cfg["filter_trajectory"] = "yes"
  with pytest.raises(ValueError, match="filter_trajectory"):
    algos.resolve(cfg)


# --------------------------------------------------------------------------------------- best of N


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_bon_policy_is_the_enumerated_best_of_n_and_a_tilted_pi0(x64, n):
  rng = np.random.default_rng(n)
  pi0 = rng.dirichlet(np.ones(4))
  correct = np.array([True, False, True, False])
  closed = np.asarray(bon_policy(jnp.asarray(pi0), jnp.asarray(correct, jnp.float64), n))
  np.testing.assert_allclose(closed, bon_enumerated(pi0, correct, n), rtol=0, atol=1e-14)
  alpha = float(bon_alpha(jnp.asarray(pi0[correct].sum()), n))
  if n == 1:
    assert alpha == np.inf
    np.testing.assert_allclose(closed, pi0, atol=1e-15)
  else:
    tilted = pi0 * np.exp(correct / alpha)
    np.testing.assert_allclose(closed, tilted / tilted.sum(), rtol=1e-12)
    assert closed[correct].sum() > pi0[correct].sum()  # BoN raises the pass rate


def test_bon_edge_cases(x64):
  pi0 = jnp.asarray([0.2, 0.3, 0.5])
  for r in ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]):  # p = 0 or 1: BoN is π₀, α = ∞
    np.testing.assert_allclose(bon_policy(pi0, jnp.asarray(r), 4), pi0, rtol=1e-15)
  assert np.all(np.isinf(np.asarray(bon_alpha(jnp.asarray([0.0, 1.0]), 4))))
  # α falls as N grows (BoN is greedier)
  alphas = [float(bon_alpha(jnp.asarray(0.3), n)) for n in (2, 4, 8, 16)]
  assert np.all(np.diff(alphas) < 0)
  with pytest.raises(ValueError, match="`n`"):
    bon_policy(pi0, jnp.asarray([1.0, 0.0, 0.0]), 0)
  with pytest.raises(ValueError, match="`n`"):
    bon_alpha(jnp.asarray(0.5), True)
