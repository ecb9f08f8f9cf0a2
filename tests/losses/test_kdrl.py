import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses import registry
from rljax.losses.kdrl import (
    full_token_rkl,
    kd_loss,
    kdrl_kl_schedule,
    kdrl_loss,
    reward_guided_kd_mask,
)
from rljax.losses.policy_gradient import ppo_clip_loss

B, T, N = 6, 5, 3  # two groups of three responses


def _data(seed=0, dtype=np.float32):
  rng = np.random.default_rng(seed)
  logp = -rng.uniform(0.1, 2.0, (B, T)).astype(dtype)
  old = (logp + rng.normal(0, 0.3, (B, T))).astype(dtype)
  teacher = (logp + rng.normal(0, 0.7, (B, T))).astype(dtype)
  lengths = np.array([5, 3, 1, 4, 0, 2])  # row 4 is empty
  mask = np.arange(T)[None] < lengths[:, None]
  teacher = np.where(mask, teacher, -np.inf).astype(dtype)  # padding may carry -inf
  rewards = np.array([1.0, 0.0, 1.0, 0.0, 0.0, 0.0], dtype)
  adv = np.where(mask, rng.normal(0, 1, (B, 1)), 0).astype(dtype)
  return tuple(jnp.asarray(a) for a in (logp, old, teacher, adv, mask, rewards))


def _value_and_grad(fn, logp, *args, jit=True, **kw):
  vg = jax.value_and_grad(lambda lp, a: fn(lp, *a, **kw)[0])
  return (jax.jit(vg) if jit else vg)(logp, args)


def test_registered():
  assert registry.get("kdrl") is kdrl_loss


def test_zero_coef_is_grpo_bitwise_eagerly():
  logp, old, teacher, adv, mask, rewards = _data()
  v, g = _value_and_grad(kdrl_loss, logp, old, teacher, adv, mask, rewards, kl_coef=0.0, jit=False)
  v_ref, g_ref = _value_and_grad(ppo_clip_loss, logp, old, adv, mask, jit=False)
  # Eagerly the PPO part runs the same ops as the standalone call and β·KD adds an exact 0.
  np.testing.assert_array_equal(v, v_ref)
  np.testing.assert_array_equal(g, g_ref)


@pytest.mark.parametrize("kind, agg", [("k2", "token-mean"), ("k3", "seq-mean-token-mean")])
def test_zero_coef_is_grpo(x64, kind, agg):
  logp, old, teacher, adv, mask, rewards = _data(dtype=np.float64)
  v, g = _value_and_grad(kdrl_loss, logp, old, teacher, adv, mask, rewards, kl_coef=0.0, kl_kind=kind, agg=agg)
  v_ref, g_ref = _value_and_grad(ppo_clip_loss, logp, old, adv, mask, agg=agg)
  np.testing.assert_allclose(v, v_ref, rtol=1e-14)
  np.testing.assert_allclose(g, g_ref, rtol=1e-14, atol=1e-16)


def test_jit_matches_eager_and_metrics_parts(maybe_jit):
  logp, old, teacher, adv, mask, rewards = _data()
  f = maybe_jit(functools.partial(kdrl_loss, kl_coef=0.05, kd_mask="response", agg="seq-mean-token-mean"))
  loss, m = f(logp, old, teacher, adv, mask, rewards)
  eager, _ = kdrl_loss(logp, old, teacher, adv, mask, rewards, kl_coef=0.05, kd_mask="response",
                       agg="seq-mean-token-mean")
  np.testing.assert_allclose(loss, eager, rtol=1e-6)
  np.testing.assert_allclose(m["loss_numerator"] / m["loss_denominator"], loss, rtol=1e-6)
  np.testing.assert_allclose(loss, m["pg_loss"] + 0.05 * m["kd_loss"], rtol=1e-6)
  # response mask: rows 1, 3, 5 are incorrect and non-empty: 3 + 4 + 2 of 15 tokens
  np.testing.assert_allclose(m["kd_frac_tokens"], 9 / 15, rtol=1e-6)


def test_traced_coefficient_from_schedule():
  logp, old, teacher, adv, mask, rewards = _data()

  @jax.jit
  def step_loss(step):
    beta = kdrl_kl_schedule(step, decay=1e-4)
    return kdrl_loss(logp, old, teacher, adv, mask, kl_coef=beta)[0]

  kd, _ = kd_loss(logp, teacher, mask)
  pg, _ = ppo_clip_loss(logp, old, adv, mask)
  np.testing.assert_allclose(step_loss(10), pg + (5e-3 - 1e-3) * kd, rtol=1e-5)


def test_response_mask_all_correct_is_grpo():
  logp, old, teacher, adv, mask, _ = _data()
  ones = jnp.ones((B,))
  v, g = _value_and_grad(kdrl_loss, logp, old, teacher, adv, mask, ones, kl_coef=0.3, kd_mask="response")
  v_ref, g_ref = _value_and_grad(ppo_clip_loss, logp, old, adv, mask)
  np.testing.assert_allclose(v, v_ref, rtol=1e-6)
  np.testing.assert_allclose(g, g_ref, rtol=1e-6, atol=1e-8)


def test_all_incorrect_is_pure_distillation():
  logp, old, teacher, _, mask, _ = _data()
  zeros = jnp.zeros((B,))
  adv = jnp.zeros((B, T))  # an all-wrong group has A = 0
  v, g = _value_and_grad(kdrl_loss, logp, old, teacher, adv, mask, zeros, kl_coef=0.3, kd_mask="response")
  v_kd, g_kd = _value_and_grad(kd_loss, logp, teacher, mask)
  np.testing.assert_allclose(v, 0.3 * v_kd, rtol=1e-6)
  np.testing.assert_allclose(g, 0.3 * g_kd, rtol=1e-6)
  # KD gradient lives on valid tokens only and is finite despite -inf teacher padding.
  assert np.all(np.isfinite(g))
  np.testing.assert_array_equal(np.asarray(g)[~np.asarray(mask)], 0.0)



@pytest.mark.parametrize("kd_mask", ["none", "response"])
def test_zero_pg_coef_is_pure_distillation(kd_mask):
  """c_PG = 0 (the KD baseline) drops the GRPO term whatever the advantages; c_PG scales it linearly."""
  logp, old, teacher, adv, mask, rewards = _data()
  kw = dict(kl_coef=0.3, kd_mask=kd_mask)
  v, g = _value_and_grad(kdrl_loss, logp, old, teacher, adv, mask, rewards, pg_coef=0.0, **kw)
  distill = None if kd_mask == "none" else rewards < 0.5
  v_kd, g_kd = _value_and_grad(kd_loss, logp, teacher, mask, distill=distill)
  np.testing.assert_allclose(v, 0.3 * v_kd, rtol=1e-6)
  np.testing.assert_allclose(g, 0.3 * g_kd, rtol=1e-6, atol=1e-8)
  assert float(jnp.abs(adv).sum()) > 0  # the advantages were non-zero: c_PG = 0 removed them
  _, m2 = kdrl_loss(logp, old, teacher, adv, mask, rewards, pg_coef=2.0, **kw)
  v1, _ = _value_and_grad(kdrl_loss, logp, old, teacher, adv, mask, rewards, **kw)
  v2, _ = _value_and_grad(kdrl_loss, logp, old, teacher, adv, mask, rewards, pg_coef=2.0, **kw)
  np.testing.assert_allclose(v2 - v1, m2["pg_loss"], rtol=1e-5)
  np.testing.assert_allclose(m2["loss_numerator"] / m2["loss_denominator"], v2, rtol=1e-6)

def test_kd_value_is_masked_k2_mean():
  logp, _, teacher, _, mask, _ = _data()
  m = np.asarray(mask)
  d = np.where(m, np.asarray(logp) - np.asarray(teacher), 0)
  distill = jnp.array([True, False, True, True, False, True])
  loss, metrics = kd_loss(logp, teacher, mask, kind="k2", distill=distill)
  expected = np.sum(np.where(m & np.asarray(distill)[:, None], 0.5 * d**2, 0)) / m.sum()
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  np.testing.assert_allclose(metrics["teacher_student_logratio_mean"], -d[m].mean(), rtol=1e-6)


def test_reward_guided_masks():
  r = jnp.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
  np.testing.assert_array_equal(reward_guided_kd_mask(r, mode="none"), [True] * 6)
  np.testing.assert_array_equal(reward_guided_kd_mask(r, mode="response"), [False] + [True] * 5)
  np.testing.assert_array_equal(reward_guided_kd_mask(r, mode="group", group_size=3), [False] * 3 + [True] * 3)
  pm1 = jnp.array([1.0, -1.0, -1.0, -1.0, -1.0, -1.0])  # ±1 rewards separate at the same threshold
  np.testing.assert_array_equal(reward_guided_kd_mask(pm1, mode="group", group_size=3), [False] * 3 + [True] * 3)


def _tabular(seed=1, k=5):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.normal(size=k)), jnp.asarray(rng.normal(size=k))


@pytest.mark.parametrize("kind", ["k1", "k2", "k3"])
def test_tabular_expected_gradients(x64, kind):
  theta, teacher_logits = _tabular()
  k = theta.shape[0]
  log_t = jax.nn.log_softmax(teacher_logits)
  mask = jnp.ones((1, 1), bool)

  def expected_kd(th):
    logpi = jax.nn.log_softmax(th)
    weights = jax.lax.stop_gradient(jnp.exp(logpi))  # exact expectation over y ~ π_θ
    per_y = [kd_loss(logpi[y][None, None], log_t[y][None, None], mask, kind=kind, agg="token-sum")[0]
             for y in range(k)]
    return jnp.sum(weights * jnp.stack(per_y))

  def kl(p_log, q_log):
    return jnp.sum(jnp.exp(p_log) * (p_log - q_log))

  rkl = lambda th: kl(jax.nn.log_softmax(th), log_t)
  fkl = lambda th: kl(log_t, jax.nn.log_softmax(th))
  target = {"k1": jnp.zeros_like(theta), "k2": jax.grad(rkl)(theta), "k3": jax.grad(fkl)(theta)}[kind]
  grad = jax.jit(jax.grad(expected_kd))
  g = grad(theta)
  np.testing.assert_allclose(g, target, atol=1e-12)
  assert kind == "k1" or np.max(np.abs(g)) > 1e-3
  # At π_θ = π_T every estimator's expected gradient vanishes.
  np.testing.assert_allclose(grad(teacher_logits), 0.0, atol=1e-12)


def test_full_token_rkl_is_exact_and_matches_k2_gradient(x64):
  rng = np.random.default_rng(3)
  s, t = jnp.asarray(rng.normal(size=(2, 3, 4))), jnp.asarray(rng.normal(size=(2, 3, 4)))
  mask = jnp.array([[True, True, False], [True, False, False]])
  out = full_token_rkl(s, t, mask)
  p, q = jax.nn.softmax(s, -1), jax.nn.softmax(t, -1)
  exact = np.sum(p * (np.log(p) - np.log(q)), -1)
  np.testing.assert_allclose(out, np.where(mask, exact, 0), rtol=1e-12)
  # Its gradient equals the exact expectation of the sampled k2 gradient (one position).
  th, tl = s[0, 0], t[0, 0]
  g_full = jax.jit(jax.grad(lambda x: full_token_rkl(x[None, None], tl[None, None], jnp.ones((1, 1), bool))[0, 0]))(th)
  log_t = jax.nn.log_softmax(tl)

  def expected_k2(x):
    lp = jax.nn.log_softmax(x)
    return jnp.sum(jax.lax.stop_gradient(jnp.exp(lp)) * 0.5 * (lp - log_t) ** 2)

  np.testing.assert_allclose(g_full, jax.jit(jax.grad(expected_k2))(th), atol=1e-12)


def test_schedule():
  steps = jnp.arange(0, 200)
  betas = np.asarray(jax.jit(jax.vmap(lambda s: kdrl_kl_schedule(s, decay=5e-5)))(steps))
  assert betas[0] == pytest.approx(5e-3)
  assert np.all(np.diff(betas) <= 0)
  assert betas[-1] == pytest.approx(1e-3)
  assert float(kdrl_kl_schedule(10**6, beta0=2e-3, beta_min=5e-4, decay=1e-6)) == pytest.approx(5e-4)
  assert float(kdrl_kl_schedule(0, beta0=2e-3, beta_min=5e-4, decay=0.0)) == pytest.approx(2e-3)


def test_empty_mask_is_finite():
  logp, old, teacher, adv, _, rewards = _data()
  empty = jnp.zeros((B, T), bool)
  v, g = _value_and_grad(kdrl_loss, logp, old, teacher, adv, empty, rewards, kl_coef=0.1, kd_mask="group",
                         group_size=3)
  assert float(v) == 0.0
  np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(kl_coef=-0.1), "kl_coef"),
        (dict(kl_coef=0.1, pg_coef=-1.0), "pg_coef"),
        (dict(kl_coef=0.1, kd_mask="tokens"), "kd_mask"),
        (dict(kl_coef=0.1, kl_kind="k4"), "kl_kind"),
        (dict(kl_coef=0.1, kd_mask="group", group_size=4), "group_size"),
        (dict(kl_coef=0.1, agg="mean"), "agg"),
    ],
)
def test_bad_arguments(kw, name):
  logp, old, teacher, adv, mask, rewards = _data()
  with pytest.raises(ValueError, match=name):
    kdrl_loss(logp, old, teacher, adv, mask, rewards, **kw)


def test_bad_shapes_and_missing_rewards():
  logp, old, teacher, adv, mask, rewards = _data()
  with pytest.raises(ValueError, match="teacher_logp"):
    kdrl_loss(logp, old, teacher[:, :3], adv, mask, kl_coef=0.1)
  with pytest.raises(ValueError, match="rewards"):
    kdrl_loss(logp, old, teacher, adv, mask, kl_coef=0.1, kd_mask="response")
  with pytest.raises(ValueError, match="rewards"):
    kdrl_loss(logp, old, teacher, adv, mask, rewards[:3], kl_coef=0.1, kd_mask="response")
  with pytest.raises(ValueError, match="beta0"):
    kdrl_kl_schedule(0, beta0=1e-4, beta_min=1e-3, decay=1e-5)
  with pytest.raises(ValueError, match="mask"):
    full_token_rkl(jnp.zeros((2, 3, 4)), jnp.zeros((2, 3, 4)), jnp.ones((2, 2), bool))
