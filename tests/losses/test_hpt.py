"""UPGE instances (exact gradients, f64) and the HPT kernel's gate (spec §12.3)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import algorithms as algos
from rljax.losses import registry
from rljax.losses.advantages import broadcast_to_tokens, gae, grpo_advantages
from rljax.losses.aggregation import aggregate
from rljax.losses.hpt import (count_correct, hpt_gate, hpt_loss, ppo_stable_mask, unified_pg_loss,
                              upge_instance_loss)
from rljax.losses.policy_gradient import ppo_clip_loss, reinforce_loss

G, N, T, TD = 3, 4, 5, 6
B = G * N
REWARDS = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0], np.float64)  # 0, 3 and 1 correct of 4
COUNTS = np.array([0.0, 3.0, 1.0])
INF = float("inf")


def _rollouts(seed=0, scale="group"):
  rng = np.random.default_rng(seed)
  old = -rng.uniform(0.2, 2.0, (B, T))
  logp = old + rng.normal(0, 0.4, (B, T))  # θ ≠ θ_old, with clipping active
  lengths = rng.integers(1, T + 1, B)
  mask = np.arange(T)[None] < lengths[:, None]
  adv = grpo_advantages(jnp.asarray(REWARDS), group_size=N, scale=scale)
  return logp, old, np.asarray(broadcast_to_tokens(adv, jnp.asarray(mask))), mask


def _demos(seed=1):
  rng = np.random.default_rng(seed)
  demo_logp = -rng.uniform(0.1, 3.0, (G, TD))
  demo_mask = np.arange(TD)[None] < np.array([6, 2, 4])[:, None]
  return demo_logp, demo_mask


def _j(*arrays):
  return tuple(jnp.asarray(a) for a in arrays)


def _grad(f, x):
  return jax.jit(jax.grad(f))(x)


def test_registered():
  assert registry.get("upge") is unified_pg_loss
  assert registry.get("hpt") is hpt_loss


# --------------------------------------------------------------------------------------------- UPGE


def test_sft_instance_has_nll_gradient(x64):
  logp, _, _, mask = _rollouts()
  lp, m = _j(logp, mask)
  g_nll = _grad(lambda x: aggregate(-x, m, "token-mean"), lp)
  np.testing.assert_allclose(_grad(lambda x: unified_pg_loss(x, x, jnp.ones((B, T)), m)[0], lp), g_nll,
                             rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(_grad(lambda x: upge_instance_loss("sft", x, m)[0], lp), g_nll, rtol=1e-12, atol=1e-15)


def test_ppo_instance_with_gae_advantages_has_ppo_clip_gradient(x64):
  """PPO: denominator π_old, the clip mask as 1_stable and token-level GAE advantages."""
  logp, old, _, mask = _j(*_rollouts())
  rng = np.random.default_rng(3)
  token_rewards = jnp.asarray(rng.normal(size=(B, T))) * mask
  adv, _ = gae(token_rewards, jnp.asarray(rng.normal(size=(B, T))), mask, gamma=1.0, lam=0.95)
  assert 0 < int(jnp.sum(mask & ~ppo_stable_mask(logp, old, adv))) < int(jnp.sum(mask))  # clipping is active
  g_ppo = _grad(lambda x: ppo_clip_loss(x, old, adv, mask, clip_low=0.2, clip_high=0.28)[0], logp)
  g = _grad(lambda x: upge_instance_loss("ppo", x, mask, adv, old, clip_low=0.2, clip_high=0.28)[0], logp)
  np.testing.assert_allclose(g, g_ppo, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("agg", ["seq-mean-token-mean", "token-mean", "seq-mean-token-sum"])
def test_grpo_instance_has_ppo_clip_gradient(x64, agg):
  """GRPO: group-normalised rewards, PPO clip mask, any aggregation (the original GRPO's per-sequence mean)."""
  logp, old, adv, mask = _j(*_rollouts())
  stable = ppo_stable_mask(logp, old, adv)
  assert 0 < int(jnp.sum(mask & ~stable)) < int(jnp.sum(mask))
  g_ppo = _grad(lambda x: ppo_clip_loss(x, old, adv, mask, agg=agg)[0], logp)
  np.testing.assert_allclose(_grad(lambda x: unified_pg_loss(x, old, adv, mask, stable, agg=agg)[0], logp), g_ppo,
                             rtol=1e-12, atol=1e-15)
  seq_adv = grpo_advantages(jnp.asarray(REWARDS), group_size=N)  # f[B], broadcast by the instance
  g_inst = _grad(lambda x: upge_instance_loss("grpo", x, mask, seq_adv, old, agg=agg)[0], logp)
  np.testing.assert_allclose(g_inst, g_ppo, rtol=1e-12, atol=1e-15)
  # Without the stabilisation mask the estimator is the unclipped importance-weighted PG: different.
  assert not np.allclose(_grad(lambda x: unified_pg_loss(x, old, adv, mask, agg=agg)[0], logp), g_ppo)


def test_reinforce_and_rft_instances(x64):
  logp, _, _, mask = _j(*_rollouts())
  adv = jnp.asarray(REWARDS - REWARDS.reshape(G, N).mean(1).repeat(N))
  g_ref = _grad(lambda x: reinforce_loss(x, adv, mask)[0], logp)
  np.testing.assert_allclose(_grad(lambda x: upge_instance_loss("reinforce", x, mask, adv)[0], logp), g_ref,
                             rtol=1e-12, atol=1e-15)
  g_rft = _grad(lambda x: upge_instance_loss("rft", x, mask, jnp.asarray(REWARDS))[0], logp)
  keep = np.asarray(mask) & (REWARDS[:, None] > 0)
  np.testing.assert_allclose(g_rft, -keep.astype(float) / np.asarray(mask).sum(), rtol=1e-12, atol=1e-15)


def test_ppo_stable_mask_rule():
  r = jnp.array([[0.5, 1.0, 1.5, 0.5, 1.0, 1.5]])
  adv = jnp.array([[1.0, 1.0, 1.0, -1.0, -1.0, -1.0]])
  stable = ppo_stable_mask(jnp.log(r), jnp.zeros_like(r), adv)
  np.testing.assert_array_equal(stable, [[True, True, False, False, True, True]])


# ---------------------------------------------------------------------------------------------- HPT


def test_count_correct_counts_rewards_at_one():
  r = jnp.array([1.0, 0.0, 0.5, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
  np.testing.assert_array_equal(count_correct(r, 4), [2.0, 0.0, 4.0])
  np.testing.assert_array_equal(count_correct(jnp.ones(9), 3), [3.0, 3.0, 3.0])
  with pytest.raises(ValueError, match="rewards"):
    count_correct(r[:10], 4)


@pytest.mark.parametrize("agg", [None, "seq-mean-token-sum-norm", "token-mean"])
def test_gate_below_zero_is_the_rl_loss(x64, agg):
  """γ = −1: every prompt trains RL; the loss is the unclipped PG (= UPGE with π_old, 1_stable = 1), summed over
  tokens / T by default (agg None: rl_norm="width"), else aggregated by `agg`."""
  logp, old, adv, mask = _j(*_rollouts(scale="none"))
  demo_logp, demo_mask = _j(*_demos())
  k = jnp.asarray(COUNTS)
  norm = dict(rl_norm="width") if agg is None else dict(rl_norm="agg", agg=agg)
  ref_agg, scale = ("token-sum", 1 / T) if agg is None else (agg, 1.0)
  f = lambda x: hpt_loss(x, old, adv, mask, demo_logp, demo_mask, k, gamma=-1.0, **norm)[0]
  v, g = jax.jit(jax.value_and_grad(f))(logp)
  v_ref, g_ref = jax.jit(jax.value_and_grad(
      lambda x: scale * ppo_clip_loss(x, old, adv, mask, clip_low=INF, clip_high=INF, agg=ref_agg)[0]))(logp)
  np.testing.assert_allclose(v, v_ref, rtol=1e-13)
  np.testing.assert_allclose(g, g_ref, rtol=1e-13, atol=1e-16)
  np.testing.assert_allclose(g, scale * _grad(lambda x: unified_pg_loss(x, old, adv, mask, agg=ref_agg)[0], logp),
                             rtol=1e-12, atol=1e-16)
  if agg is None:  # the authors' RL loss by hand: −Σ m·Â·r / T, not divided by the number of rollouts
    lp, ol, ad, mk = _rollouts(scale="none")
    np.testing.assert_allclose(v, np.sum(np.where(mk, -ad * np.exp(lp - ol), 0)) / T, rtol=1e-12)
  # with a clip range set, the RL side is PPO-clip
  clipped = lambda x: hpt_loss(x, old, adv, mask, demo_logp, demo_mask, k, gamma=-1.0, clip_low=0.2,
                               clip_high=0.2, **norm)[0]
  g_clip = _grad(lambda x: scale * ppo_clip_loss(x, old, adv, mask, agg=ref_agg)[0], logp)
  np.testing.assert_allclose(_grad(clipped, logp), g_clip, rtol=1e-13, atol=1e-16)
  assert not np.allclose(g_clip, g)


def test_gate_n_is_sft_coef_times_demo_nll(x64):
  logp, old, adv, mask = _j(*_rollouts())
  demo_logp, demo_mask = _j(*_demos())
  k = jnp.asarray(COUNTS)
  f = lambda x, d: hpt_loss(x, old, adv, mask, d, demo_mask, k, gamma=float(N), sft_coef=0.3)[0]
  v, (g_roll, g_demo) = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(logp, demo_logp)
  v_ref, g_ref = jax.jit(jax.value_and_grad(lambda d: 0.3 * aggregate(-d, demo_mask, "token-mean")))(demo_logp)
  np.testing.assert_allclose(v, v_ref, rtol=1e-13)
  np.testing.assert_allclose(g_demo, g_ref, rtol=1e-13)
  np.testing.assert_array_equal(g_roll, 0.0)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0])
def test_mixed_counts_select_exactly_k_le_gate(x64, maybe_jit, gamma):
  logp, old, adv, mask = _j(*_rollouts(scale="none"))
  demo_logp, demo_mask = _j(*_demos())
  k = jnp.asarray(COUNTS)  # 0, 3, 1 correct
  sft_prompts = COUNTS <= gamma
  f = maybe_jit(lambda x, d: hpt_loss(x, old, adv, mask, d, demo_mask, k, gamma=gamma, sft_coef=0.5)[0])
  g_roll, g_demo = jax.grad(f, argnums=(0, 1))(logp, demo_logp)
  rows_sft = np.repeat(sft_prompts, N)
  np.testing.assert_array_equal(np.asarray(g_roll)[rows_sft], 0.0)
  np.testing.assert_array_equal(np.asarray(g_demo)[~sft_prompts], 0.0)
  dl, dm = _demos()
  assert np.all(np.asarray(g_demo)[sft_prompts][dm[sft_prompts]] != 0)
  lp, ol, ad, mk = _rollouts(scale="none")
  rl_rows = mk & ~rows_sft[:, None]
  assert np.all(np.asarray(g_roll)[rl_rows & (ad != 0)] != 0)
  # value: Σ over the RL prompts' rollout tokens / T + 0.5 · token-mean NLL of the SFT prompts' demonstrations
  rl = np.sum(np.where(rl_rows, -ad * np.exp(lp - ol), 0)) / T
  sft = -dl[sft_prompts][dm[sft_prompts]].mean()
  loss, m = jax.jit(functools.partial(hpt_loss, gamma=gamma, sft_coef=0.5))(logp, old, adv, mask, demo_logp,
                                                                          demo_mask, k)
  np.testing.assert_allclose(loss, rl + 0.5 * sft, rtol=1e-12)
  np.testing.assert_allclose(f(logp, demo_logp), rl + 0.5 * sft, rtol=1e-12)
  np.testing.assert_allclose(m["frac_sft_prompts"], sft_prompts.mean())
  np.testing.assert_allclose(m["rl_loss"], rl, rtol=1e-12)
  np.testing.assert_allclose(m["sft_loss"], sft, rtol=1e-12)


def test_soft_gate(x64):
  k = jnp.asarray(COUNTS)
  np.testing.assert_array_equal(hpt_gate(k, gamma=0.0), [0.0, 1.0, 1.0])
  np.testing.assert_array_equal(hpt_gate(k, gamma=1.0), [0.0, 1.0, 0.0])
  alpha = np.asarray(hpt_gate(k, gamma=1.0, mode="soft", temperature=2.0))
  np.testing.assert_allclose(alpha, 1 / (1 + np.exp(-(COUNTS - 1.5) / 2.0)), rtol=1e-12)
  # τ → 0 recovers the switch
  np.testing.assert_allclose(hpt_gate(k, gamma=1.0, mode="soft", temperature=1e-3), [0.0, 1.0, 0.0], atol=1e-100)
  logp, old, adv, mask = _j(*_rollouts(scale="none"))
  demo_logp, demo_mask = _j(*_demos())
  soft = functools.partial(hpt_loss, gamma=1.0, mode="soft", temperature=2.0, rl_norm="agg", agg="token-mean")
  loss, _ = jax.jit(soft)(logp, old, adv, mask, demo_logp, demo_mask, k)
  lp, ol, ad, mk = _rollouts(scale="none")
  tok = -np.repeat(alpha, N)[:, None] * ad * np.exp(lp - ol)
  dl, dm = _demos()
  expected = tok[mk].mean() + ((1 - alpha)[:, None] * -dl)[dm].sum() / dm.sum()
  np.testing.assert_allclose(loss, expected, rtol=1e-12)


def test_preset_gates_on_the_batch_rewards(x64):
  """Through `algorithms.resolve`: k_q from batch['rewards'], Dr.GRPO advantages, no clip, Σ/T, the entropy
  bonus on the token-mean entropy."""
  cfg = algos.get("hpt")
  cfg.group_size = N
  advantage_fn, loss_fn = algos.resolve(cfg)
  logp, old, _, mask = _j(*_rollouts())
  demo_logp, demo_mask = _j(*_demos())
  entropy = jnp.asarray(np.random.default_rng(5).uniform(0, 2, (B, T)))
  batch = {"rewards": jnp.asarray(REWARDS), "mask": mask, "old_logp": old, "demo_logp": demo_logp,
           "demo_mask": demo_mask, "entropy": entropy}
  batch |= advantage_fn(batch)
  np.testing.assert_allclose(batch["advantages"], REWARDS - REWARDS.reshape(G, N).mean(1).repeat(N))
  loss, metrics = jax.jit(loss_fn)(logp, batch)
  want, _ = hpt_loss(logp, old, batch["advantages"], mask, demo_logp, demo_mask, jnp.asarray(COUNTS))
  ent = aggregate(entropy, mask, "token-mean")
  np.testing.assert_allclose(loss, want - 0.001 * ent, rtol=1e-12)
  np.testing.assert_allclose(metrics["frac_sft_prompts"], 1 / 3)


def test_empty_masks_are_finite():
  logp, old, adv, _ = (jnp.asarray(a, jnp.float32) for a in _rollouts())
  demo_logp, _ = (jnp.asarray(a, jnp.float32) for a in _demos())
  empty, demo_empty = jnp.zeros((B, T), bool), jnp.zeros((G, TD), bool)
  for gamma in (0.0, -1.0, float(N)):
    f = lambda x, d: hpt_loss(x, old, adv, empty, d, demo_empty, jnp.asarray(COUNTS, jnp.float32), gamma=gamma)[0]
    v, g = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(logp, demo_logp)
    assert float(v) == 0.0
    assert all(np.all(np.asarray(x) == 0) for x in g)
  v, g = jax.jit(jax.value_and_grad(lambda x: unified_pg_loss(x, old, adv, empty)[0]))(logp)
  assert float(v) == 0.0 and np.all(np.asarray(g) == 0)


def test_bad_arguments():
  logp, old, adv, mask = _j(*_rollouts())
  demo_logp, demo_mask = _j(*_demos())
  k = jnp.asarray(COUNTS)
  call = functools.partial(hpt_loss, logp, old, adv, mask)
  with pytest.raises(ValueError, match="num_correct"):
    call(demo_logp, demo_mask, k[:2])
  with pytest.raises(ValueError, match="demo_logp"):
    call(demo_logp[:, :3], demo_mask, k)
  with pytest.raises(ValueError, match="logp"):
    hpt_loss(logp[:10], old[:10], adv[:10], mask[:10], demo_logp, demo_mask, k)
  with pytest.raises(ValueError, match="mode"):
    call(demo_logp, demo_mask, k, mode="hard")
  with pytest.raises(ValueError, match="temperature"):
    call(demo_logp, demo_mask, k, mode="soft", temperature=0.0)
  with pytest.raises(ValueError, match="sft_coef"):
    call(demo_logp, demo_mask, k, sft_coef=-1.0)
  with pytest.raises(ValueError, match="agg"):
    call(demo_logp, demo_mask, k, agg="mean")
  with pytest.raises(ValueError, match="rl_norm"):
    call(demo_logp, demo_mask, k, rl_norm="batch")
  with pytest.raises(ValueError, match="clip_low"):
    call(demo_logp, demo_mask, k, clip_low=-0.1)
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
