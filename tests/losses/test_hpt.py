import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses import registry
from rljax.losses.advantages import broadcast_to_tokens, grpo_advantages
from rljax.losses.aggregation import aggregate
from rljax.losses.hpt import hpt_gate, hpt_loss, ppo_stable_mask, unified_pg_loss, upge_instance_loss
from rljax.losses.policy_gradient import ppo_clip_loss, reinforce_loss

G, N, T, TD = 3, 4, 5, 6
B = G * N
REWARDS = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0], np.float64)  # accuracies 0, 3/4, 1/4


def _rollouts(seed=0):
  rng = np.random.default_rng(seed)
  old = -rng.uniform(0.2, 2.0, (B, T))
  logp = old + rng.normal(0, 0.4, (B, T))  # θ ≠ θ_old, with clipping active
  lengths = rng.integers(0, T + 1, B)
  mask = np.arange(T)[None] < lengths[:, None]
  adv = np.asarray(broadcast_to_tokens(grpo_advantages(jnp.asarray(REWARDS), group_size=N), jnp.asarray(mask)))
  return logp, old, adv, mask


def _demos(seed=1):
  rng = np.random.default_rng(seed)
  demo_logp = -rng.uniform(0.1, 3.0, (G, TD))
  demo_mask = np.arange(TD)[None] < np.array([6, 2, 4])[:, None]
  return demo_logp, demo_mask


def _acc():
  return REWARDS.reshape(G, N).mean(1)


def _vg(f, x):
  return jax.jit(jax.value_and_grad(f))(x)


def test_registered():
  assert registry.get("upge") is unified_pg_loss
  assert registry.get("hpt") is hpt_loss


def test_sft_instance_has_nll_gradient(x64):
  logp, _, _, mask = _rollouts()
  lp, m = jnp.asarray(logp), jnp.asarray(mask)
  g = jax.jit(jax.grad(lambda x: unified_pg_loss(x, x, jnp.ones((B, T)), m)[0]))(lp)
  g_nll = jax.jit(jax.grad(lambda x: aggregate(-x, m, "token-mean")))(lp)
  np.testing.assert_allclose(g, g_nll, rtol=1e-12, atol=1e-15)
  g_inst = jax.jit(jax.grad(lambda x: upge_instance_loss("sft", x, m)[0]))(lp)
  np.testing.assert_allclose(g_inst, g_nll, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-sum"])
def test_ppo_instance_has_ppo_clip_gradient(x64, agg):
  logp, old, adv, mask = (jnp.asarray(a) for a in _rollouts())
  stable = ppo_stable_mask(logp, old, adv)
  assert 0 < int(jnp.sum(mask & ~stable)) < int(jnp.sum(mask))  # clipping is active somewhere
  g = jax.jit(jax.grad(lambda x: unified_pg_loss(x, old, adv, mask, stable, agg=agg)[0]))(logp)
  g_ppo = jax.jit(jax.grad(lambda x: ppo_clip_loss(x, old, adv, mask, dual_clip=None, agg=agg)[0]))(logp)
  np.testing.assert_allclose(g, g_ppo, rtol=1e-12, atol=1e-15)
  g_inst = jax.jit(jax.grad(lambda x: upge_instance_loss("grpo", x, mask, adv, old, agg=agg)[0]))(logp)
  np.testing.assert_allclose(g_inst, g_ppo, rtol=1e-12, atol=1e-15)
  # Without the stabilisation mask the estimator is the unclipped importance-weighted PG: different.
  g_raw = jax.jit(jax.grad(lambda x: unified_pg_loss(x, old, adv, mask, agg=agg)[0]))(logp)
  assert not np.allclose(g_raw, g_ppo)


def test_reinforce_and_rft_instances(x64):
  logp, _, _, mask = (jnp.asarray(a) for a in _rollouts())
  baseline = REWARDS.reshape(G, N).mean(1).repeat(N)
  adv = jnp.asarray(REWARDS - baseline)
  g = jax.jit(jax.grad(lambda x: upge_instance_loss("reinforce", x, mask, adv)[0]))(logp)
  g_ref = jax.jit(jax.grad(lambda x: reinforce_loss(x, adv, mask)[0]))(logp)
  np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-15)
  correct = jnp.asarray(REWARDS)
  g_rft = jax.jit(jax.grad(lambda x: upge_instance_loss("rft", x, mask, correct)[0]))(logp)
  keep = np.asarray(mask) & (REWARDS[:, None] > 0)
  np.testing.assert_allclose(g_rft, -keep.astype(float) / np.asarray(mask).sum(), rtol=1e-12, atol=1e-15)


def test_ppo_stable_mask_rule():
  r = jnp.array([[0.5, 1.0, 1.5, 0.5, 1.0, 1.5]])
  adv = jnp.array([[1.0, 1.0, 1.0, -1.0, -1.0, -1.0]])
  stable = ppo_stable_mask(jnp.log(r), jnp.zeros_like(r), adv)
  np.testing.assert_array_equal(stable, [[True, True, False, False, True, True]])


def test_all_rl_is_grpo(x64):
  logp, old, adv, mask = (jnp.asarray(a) for a in _rollouts())
  demo_logp, demo_mask = (jnp.asarray(a) for a in _demos())
  acc = jnp.asarray(_acc())
  for agg in ("token-mean", "token-sum", "seq-mean-token-sum-norm"):
    f = lambda x: hpt_loss(x, old, adv, mask, demo_logp, demo_mask, acc, gamma=-1.0, agg=agg)[0]
    v, g = _vg(f, logp)
    v_ref, g_ref = _vg(lambda x: ppo_clip_loss(x, old, adv, mask, agg=agg)[0], logp)
    np.testing.assert_allclose(v, v_ref, rtol=1e-13)
    np.testing.assert_allclose(g, g_ref, rtol=1e-13, atol=1e-16)


def test_all_sft_is_demo_nll(x64):
  logp, old, adv, mask = (jnp.asarray(a) for a in _rollouts())
  demo_logp, demo_mask = (jnp.asarray(a) for a in _demos())
  acc = jnp.asarray(_acc())
  f = lambda d: hpt_loss(logp, old, adv, mask, d, demo_mask, acc, gamma=1.0)[0]
  v, g = _vg(f, demo_logp)
  v_ref, g_ref = _vg(lambda d: aggregate(-d, demo_mask, "token-mean"), demo_logp)
  np.testing.assert_allclose(v, v_ref, rtol=1e-13)
  np.testing.assert_allclose(g, g_ref, rtol=1e-13)
  g_roll = jax.jit(jax.grad(lambda x: hpt_loss(x, old, adv, mask, demo_logp, demo_mask, acc, gamma=1.0)[0]))(logp)
  np.testing.assert_array_equal(g_roll, 0.0)


def test_switch_gate_selects_per_prompt(x64, maybe_jit):
  logp, old, adv, mask = (jnp.asarray(a) for a in _rollouts())
  demo_logp, demo_mask = (jnp.asarray(a) for a in _demos())
  acc = jnp.asarray(_acc())  # γ = 0: prompt 0 (all wrong) → SFT, prompts 1, 2 → RL
  f = maybe_jit(lambda x, d: hpt_loss(x, old, adv, mask, d, demo_mask, acc)[0])
  g_roll, g_demo = jax.grad(f, argnums=(0, 1))(logp, demo_logp)
  rows_sft = np.repeat(np.asarray(_acc()) <= 0, N)
  np.testing.assert_array_equal(np.asarray(g_roll)[rows_sft], 0.0)
  np.testing.assert_array_equal(np.asarray(g_demo)[1:], 0.0)
  assert np.any(np.asarray(g_demo)[0] != 0) and np.any(np.asarray(g_roll)[~rows_sft] != 0)
  # value: one token-mean over the RL prompts' rollout tokens and prompt 0's demonstration tokens
  lp, ol, ad, mk = _rollouts()
  r = np.exp(lp - ol)
  tok = np.maximum(-ad * r, -ad * np.clip(r, 0.8, 1.2))
  rl_tok = mk & ~rows_sft[:, None]
  dl, dm = _demos()
  expected = (tok[rl_tok].sum() - dl[0][dm[0]].sum()) / (rl_tok.sum() + dm[0].sum())
  loss, m = jax.jit(hpt_loss)(logp, old, adv, mask, demo_logp, demo_mask, acc)
  np.testing.assert_allclose(loss, expected, rtol=1e-12)
  np.testing.assert_allclose(f(logp, demo_logp), expected, rtol=1e-12)
  np.testing.assert_allclose(m["frac_sft_prompts"], 1 / 3)


def test_soft_gate(x64):
  acc = jnp.asarray(_acc())
  np.testing.assert_array_equal(hpt_gate(acc, gamma=0.0), [0.0, 1.0, 1.0])
  alpha = np.asarray(hpt_gate(acc, gamma=0.5, mode="soft", temperature=0.2))
  np.testing.assert_allclose(alpha, 1 / (1 + np.exp(-(_acc() - 0.5) / 0.2)), rtol=1e-12)
  logp, old, adv, mask = (jnp.asarray(a) for a in _rollouts())
  demo_logp, demo_mask = (jnp.asarray(a) for a in _demos())
  loss, _ = jax.jit(functools.partial(hpt_loss, gamma=0.5, mode="soft", temperature=0.2))(
      logp, old, adv, mask, demo_logp, demo_mask, acc)
  lp, ol, ad, mk = _rollouts()
  r = np.exp(lp - ol)
  a_rows = np.repeat(alpha, N)[:, None] * ad
  tok = np.maximum(-a_rows * r, -a_rows * np.clip(r, 0.8, 1.2))
  dl, dm = _demos()
  expected = (tok[mk].sum() + ((1 - alpha)[:, None] * -dl)[dm].sum()) / (mk.sum() + dm.sum())
  np.testing.assert_allclose(loss, expected, rtol=1e-12)


def test_empty_masks_are_finite():
  logp, old, adv, _ = (jnp.asarray(a, jnp.float32) for a in _rollouts())
  demo_logp, _ = (jnp.asarray(a, jnp.float32) for a in _demos())
  acc = jnp.asarray(_acc(), jnp.float32)
  empty, demo_empty = jnp.zeros((B, T), bool), jnp.zeros((G, TD), bool)
  f = lambda x, d: hpt_loss(x, old, adv, empty, d, demo_empty, acc)[0]
  v, g = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(logp, demo_logp)
  assert float(v) == 0.0
  assert all(np.all(np.asarray(x) == 0) for x in g)
  v, g = jax.jit(jax.value_and_grad(lambda x: unified_pg_loss(x, old, adv, empty)[0]))(logp)
  assert float(v) == 0.0 and np.all(np.asarray(g) == 0)


def test_bad_arguments():
  logp, old, adv, mask = (jnp.asarray(a) for a in _rollouts())
  demo_logp, demo_mask = (jnp.asarray(a) for a in _demos())
  acc = jnp.asarray(_acc())
  call = functools.partial(hpt_loss, logp, old, adv, mask)
  with pytest.raises(ValueError, match="group_acc"):
    call(demo_logp, demo_mask, acc[:2])
  with pytest.raises(ValueError, match="demo_logp"):
    call(demo_logp[:, :3], demo_mask, acc)
  with pytest.raises(ValueError, match="logp"):
    hpt_loss(logp[:10], old[:10], adv[:10], mask[:10], demo_logp, demo_mask, acc)
  with pytest.raises(ValueError, match="mode"):
    call(demo_logp, demo_mask, acc, mode="hard")
  with pytest.raises(ValueError, match="temperature"):
    call(demo_logp, demo_mask, acc, mode="soft", temperature=0.0)
  with pytest.raises(ValueError, match="agg"):
    call(demo_logp, demo_mask, acc, agg="mean")
  with pytest.raises(ValueError, match="method"):
    upge_instance_loss("dpo", logp, mask, adv)
  with pytest.raises(ValueError, match="advantages"):
    upge_instance_loss("sft", logp, mask, adv)
  with pytest.raises(ValueError, match="old_logp"):
    upge_instance_loss("ppo", logp, mask, adv)
  with pytest.raises(ValueError, match="log_denominator"):
    unified_pg_loss(logp, old[:, :2], adv, mask)
  with pytest.raises(ValueError, match="stable_mask"):
    unified_pg_loss(logp, old, adv, mask, jnp.ones((B, 2), bool))
