import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses import registry
from rljax.losses.alol import VARIANTS, advantage_filter, alol_loss, priority_probs

B, T = 5, 6


def _data(seed=0, dtype=np.float32):
  rng = np.random.default_rng(seed)
  pol = -rng.uniform(0.05, 3.0, (B, T)).astype(dtype)
  ref = (pol + rng.normal(0, 0.3, (B, T))).astype(dtype)
  lengths = np.array([6, 3, 1, 4, 0])  # last row: empty response
  mask = np.arange(T)[None] < lengths[:, None]
  weights = np.array([0.7, -0.4, 0.0, 1.3, 0.5], dtype)
  return jnp.asarray(pol), jnp.asarray(ref), jnp.asarray(mask), jnp.asarray(weights)


def _kw(variant, **kw):
  if variant == "a_lol_kl":
    kw.setdefault("clip_eps", 0.0)
    kw.setdefault("kl_beta", 0.3)
  return dict(variant=variant, **kw)


def _grad(variant, pol, ref, mask, w, argnum=0, **kw):
  f = lambda p, r: alol_loss(p, r, mask, w, **_kw(variant, **kw))[0]
  return jax.grad(f, argnums=argnum)(pol, ref)


def test_registered():
  assert registry.get("alol") is alol_loss


def test_nll_is_masked_summed_nll():
  pol, ref, mask, w = _data()
  per, _ = alol_loss(pol, ref, mask, w, variant="nll", reduction="none")
  expected = -np.sum(np.where(mask, pol, 0), axis=1)
  np.testing.assert_allclose(per, expected, rtol=1e-6)
  loss, m = alol_loss(pol, ref, mask, w, variant="nll")
  np.testing.assert_allclose(loss, expected.mean(), rtol=1e-6)
  np.testing.assert_allclose(m["nll"], expected.mean(), rtol=1e-6)


@pytest.mark.parametrize("variant", ["a_lol", "a_lol_seq", "a_lol_ref_free"])
def test_nonpositive_advantage_has_zero_gradient(variant):
  pol, ref, mask, w = _data()
  g = _grad(variant, pol, ref, mask, w)
  np.testing.assert_array_equal(g[w <= 0], 0.0)
  # positive-advantage rows with tokens do get gradient
  assert np.all(np.abs(np.asarray(g)[np.asarray((w > 0)[:, None] & mask)]) > 0)


def test_a_lol_kl_nonpositive_advantage_gets_only_kl_gradient():
  pol, ref, mask, w = _data()
  beta = 0.3
  g = _grad("a_lol_kl", pol, ref, mask, w, kl_beta=beta)
  neg = np.asarray(w <= 0)
  np.testing.assert_allclose(np.asarray(g)[neg], np.where(mask[neg], beta / B, 0.0), rtol=1e-6)
  # Without the β term the gradient is a_lol_ref_free's: zero on A ≤ 0.
  g_free = _grad("a_lol_ref_free", pol, ref, mask, w)
  np.testing.assert_allclose(np.asarray(g) - beta / B * np.asarray(mask), g_free, rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(g_free[w <= 0], 0.0)


def test_a_lol_kl_value():
  pol, ref, mask, w = _data()
  per, m = alol_loss(pol, ref, mask, w, variant="a_lol_kl", clip_eps=0.0, kl_beta=0.2, reduction="none")
  sp, sr = np.where(mask, pol, 0).sum(1), np.where(mask, ref, 0).sum(1)
  np.testing.assert_allclose(per, np.maximum(w, 0) * -sp + 0.2 * (sp - sr), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(m["kl"], np.mean(sp - sr), rtol=1e-5)


@pytest.mark.parametrize("clip_eps", [0.9, 0.5, None, 1.0])
def test_a_lol_equals_ref_free_gradient_at_reference(clip_eps):
  pol, _, mask, w = _data()
  w = jnp.abs(w) + 0.1
  g_alol = _grad("a_lol", pol, pol, mask, w, clip_eps=clip_eps)
  g_free = _grad("a_lol_ref_free", pol, pol, mask, w)
  np.testing.assert_allclose(g_alol, g_free, rtol=1e-6)
  # Away from the reference the ratio (here unclipped or wide) changes the gradient.
  _, ref, _, _ = _data()
  g_off = _grad("a_lol", pol, ref, mask, w, clip_eps=clip_eps)
  assert not np.allclose(g_off, g_free, rtol=1e-3)


def test_a_lol_seq_at_unit_token_ratio_equals_ref_free():
  pol, _, mask, w = _data()
  for reduction in ("mean", "none"):
    a = alol_loss(pol, pol, mask, w, variant="a_lol_seq", reduction=reduction)[0]
    b = alol_loss(pol, pol, mask, w, variant="a_lol_ref_free", reduction=reduction)[0]
    np.testing.assert_allclose(a, b, rtol=1e-6)
  np.testing.assert_allclose(
      _grad("a_lol_seq", pol, pol, mask, w), _grad("a_lol_ref_free", pol, pol, mask, w), rtol=1e-6
  )


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_gradient_into_reference(variant):
  pol, ref, mask, w = _data()
  g_ref = _grad(variant, pol, ref, mask, w, argnum=1)
  np.testing.assert_array_equal(g_ref, 0.0)
  if variant in ("a_lol", "a_lol_seq", "r_lol", "a_lol_kl"):
    kw = _kw(variant, clip_eps=0.0 if variant == "a_lol_kl" else None)
    f = lambda r: alol_loss(pol, r, mask, jnp.abs(w) + 0.1, **kw)[0]
    assert abs(float(f(ref + 0.2)) - float(f(ref))) > 1e-4


@pytest.mark.parametrize("variant", ["a_lol", "r_lol"])
def test_sequence_ratio_clip_bounds(variant):
  pol, _, mask, _ = _data()
  w = jnp.ones(B)
  eps = 0.3
  shift = jnp.array([5.0, -5.0, 0.01, -0.01, 0.0])[:, None] * mask  # per-sequence log ratio ±5 or small
  ref = pol - shift / jnp.maximum(mask.sum(1, keepdims=True), 1)
  per, m = alol_loss(pol, ref, mask, w, variant=variant, clip_eps=eps, reduction="none")
  nll = -np.where(mask, pol, 0).sum(1)
  log_rho = np.where(mask, pol - ref, 0).sum(1)
  expected_ratio = np.clip(np.exp(log_rho), 1 - eps, 1 + eps)
  np.testing.assert_allclose(per, expected_ratio * nll, rtol=1e-5)
  np.testing.assert_allclose(expected_ratio[:2], [1 + eps, 1 - eps], rtol=1e-6)
  np.testing.assert_allclose(m["clip_frac"], 2 / B)
  g = _grad(variant, pol, ref, mask, w, clip_eps=eps, reduction="sum")
  np.testing.assert_allclose(g, -expected_ratio[:, None] * mask, rtol=1e-5)
  unclipped, m_none = alol_loss(pol, ref, mask, w, variant=variant, clip_eps=None, reduction="none")
  np.testing.assert_allclose(unclipped, np.exp(log_rho) * nll, rtol=1e-4)
  assert float(m_none["clip_frac"]) == 0.0


def test_token_ratio_clip_bounds():
  pol, _, mask, _ = _data()
  w = jnp.full(B, 2.0)
  rng = np.random.default_rng(3)
  log_rt = rng.choice([-2.0, 2.0, 0.05], size=(B, T))
  ref = pol - log_rt
  g = _grad("a_lol_seq", pol, ref, mask, w, clip_eps=0.5, reduction="sum")
  expected = -2.0 * np.clip(np.exp(log_rt), 0.5, 1.5) * mask
  np.testing.assert_allclose(g, expected, rtol=1e-5)
  _, m = alol_loss(pol, ref, mask, w, variant="a_lol_seq", clip_eps=0.5)
  np.testing.assert_allclose(m["clip_frac"], np.mean(np.abs(log_rt)[np.asarray(mask)] > 1), rtol=1e-6)


def test_a_lol_kl_requires_zero_clip():
  pol, ref, mask, w = _data()
  with pytest.raises(ValueError, match="clip_eps"):
    alol_loss(pol, ref, mask, w, variant="a_lol_kl", kl_beta=0.2)
  with pytest.raises(ValueError, match="clip_eps"):
    alol_loss(pol, ref, mask, w, variant="a_lol_kl", kl_beta=0.2, clip_eps=None)
  loss, _ = alol_loss(pol, ref, mask, w, variant="a_lol_kl", kl_beta=0.2, clip_eps=0.0)
  assert np.isfinite(loss)


def test_kl_beta_defaults_to_the_released_code_default():
  # lolrl_qlora_llama_hh.py `ScriptArguments.kl_beta = 0.0` (the old README's 0.2 is not the code's).
  assert inspect.signature(alol_loss).parameters["kl_beta"].default == 0.0
  pol, ref, mask, w = _data()
  # The default is a plain A-LoL: no KL term in any variant.
  per, _ = alol_loss(pol, ref, mask, w, variant="a_lol", reduction="none")
  rho = np.clip(np.exp(np.where(mask, pol - ref, 0).sum(1)), 0.1, 1.9)
  np.testing.assert_allclose(per, np.maximum(w, 0) * rho * -np.where(mask, pol, 0).sum(1), rtol=1e-5)


@pytest.mark.parametrize("kl_beta", [None, 0.0, -0.2])
def test_a_lol_kl_requires_positive_kl_beta(kl_beta):
  pol, ref, mask, w = _data()
  kw = {} if kl_beta is None else {"kl_beta": kl_beta}
  with pytest.raises(ValueError, match="`kl_beta`"):
    alol_loss(pol, ref, mask, w, variant="a_lol_kl", clip_eps=0.0, **kw)


@pytest.mark.parametrize("variant", ["a_lol_seq", "a_lol_ref_free", "wbc", "r_gold", "nll"])
def test_kl_beta_refused_where_the_reference_has_no_kl_term(variant):
  pol, ref, mask, w = _data()
  with pytest.raises(ValueError, match="`kl_beta`"):
    alol_loss(pol, ref, mask, w, variant=variant, kl_beta=0.1)


def _hh_kl_branch(pol, ref, mask, weights, beta, advantage):
  """NumPy port of lolrl_qlora_llama_hh.py's `a_lol` / `r_lol` branch with `kl_beta > 0`."""
  nll_t, base_nll_t, m = -np.asarray(pol, np.float64), -np.asarray(ref, np.float64), np.asarray(mask, float)
  per_seq_neg_log_probs = (nll_t * m).sum(1)
  baseline_full_seq_log_probs = (base_nll_t * m).sum(1)  # a negative log-prob, as in the script
  weight = np.clip(np.asarray(weights, np.float64), 0.0, None) if advantage else np.asarray(weights, np.float64)
  kl_penalty = beta * (baseline_full_seq_log_probs - per_seq_neg_log_probs).mean()
  return (per_seq_neg_log_probs * weight).mean() + kl_penalty


@pytest.mark.parametrize("variant", ["a_lol", "r_lol"])
def test_hh_kl_branch_matches_the_reference(variant):
  pol, ref, mask, w = _data()
  beta = 0.25
  loss, _ = alol_loss(pol, ref, mask, w, variant=variant, clip_eps=0.0, kl_beta=beta)
  np.testing.assert_allclose(loss, _hh_kl_branch(pol, ref, mask, w, beta, variant == "a_lol"), rtol=1e-5)
  with pytest.raises(ValueError, match="clip_eps"):  # the script's `assert ppo_clip == 0.0`
    alol_loss(pol, ref, mask, w, variant=variant, kl_beta=beta)
  if variant == "a_lol":  # HH "A-LoL KL" is the generation-task script's `a_lol_kl`
    kw = dict(clip_eps=0.0, kl_beta=beta, reduction="none")
    np.testing.assert_allclose(alol_loss(pol, ref, mask, w, variant="a_lol", **kw)[0],
                               alol_loss(pol, ref, mask, w, variant="a_lol_kl", **kw)[0], rtol=1e-6)
    np.testing.assert_allclose(_grad("a_lol", pol, ref, mask, w, clip_eps=0.0, kl_beta=beta),
                               _grad("a_lol_kl", pol, ref, mask, w, clip_eps=0.0, kl_beta=beta), rtol=1e-6)


def _generation_task_loop(algo, pol, ref, mask, rewards, values, ppo_clip, kl_beta):
  """NumPy port of the loss in train_generation_task_with_off_policy_PG.py's training loop.

  `per_token_log_probs` there are *negative* log-probs; the loss is the batch mean of `per_response_loss`.
  """
  per_token_log_probs = -np.asarray(pol, np.float64)
  baseline_per_token_log_probs = -np.asarray(ref, np.float64)
  response_mask = np.asarray(mask, np.float64)
  rewards = np.asarray(rewards, np.float64)
  if algo in ("nll", "wbc"):
    per_response_loss = np.sum(per_token_log_probs * response_mask, axis=1)
    if algo == "wbc":
      per_response_loss = per_response_loss * rewards
  elif algo == "r_gold":
    lower_bound_per_token_probs = np.maximum(np.exp(-per_token_log_probs), 0.1)
    lm_loss = per_token_log_probs * lower_bound_per_token_probs
    per_response_loss = np.sum(lm_loss * response_mask, axis=1) * rewards
  else:
    if algo == "a_lol_seq":
      isr_t = np.exp(baseline_per_token_log_probs - per_token_log_probs) * response_mask
      if ppo_clip is not None:
        isr_t = np.clip(isr_t, 1 - ppo_clip, 1 + ppo_clip) * response_mask
      per_response_loss_with_is = np.sum(per_token_log_probs * isr_t * response_mask, axis=1)
    else:
      if algo in ("r_lol", "a_lol"):
        isr = np.exp(np.sum(baseline_per_token_log_probs * response_mask, axis=1)
                     - np.sum(per_token_log_probs * response_mask, axis=1))
        if ppo_clip is not None:
          isr = np.clip(isr, 1 - ppo_clip, 1 + ppo_clip)
      else:
        isr = 1.0
      per_response_loss_with_is = isr * np.sum(per_token_log_probs * response_mask, axis=1)
    if algo in ("a_lol_seq", "a_lol", "a_lol_ref_free", "a_lol_kl"):
      advantage = np.clip(rewards - values, 0.0, None)
      per_response_loss = per_response_loss_with_is * advantage
      if algo == "a_lol_kl":
        baseline_per_response_log_probs = np.sum(baseline_per_token_log_probs * response_mask, axis=1)
        per_response_loss = per_response_loss + kl_beta * (baseline_per_response_log_probs - per_response_loss_with_is)
    else:
      per_response_loss = per_response_loss_with_is * rewards
  return np.mean(per_response_loss)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("ppo_clip", [0.3, 0.9, None])
def test_parity_with_the_generation_task_script(variant, ppo_clip, x64):
  pol, ref, mask, _ = _data(seed=4, dtype=np.float64)
  ref = pol + (ref - pol) * 0.5  # keep ratios in a range where some clip and some do not
  rng = np.random.default_rng(7)
  rewards, values = rng.uniform(0, 1, B), rng.uniform(0, 1, B)
  kl_beta = 0.2 if variant == "a_lol_kl" else 0.0
  clip_eps = 0.0 if variant == "a_lol_kl" else ppo_clip  # the script ignores ppo_clip in a_lol_kl
  weights = rewards - values if variant.startswith("a_lol") else rewards
  loss, _ = alol_loss(pol, ref, mask, jnp.asarray(weights), variant=variant, clip_eps=clip_eps, kl_beta=kl_beta)
  want = _generation_task_loop(variant, pol, ref, mask, rewards, values, ppo_clip, kl_beta)
  np.testing.assert_allclose(loss, want, rtol=1e-10, atol=1e-12)


def test_reward_variants_use_raw_reward_and_gold_weight():
  pol, ref, mask, w = _data()
  nll = -np.where(mask, pol, 0).sum(1)
  per_wbc, _ = alol_loss(pol, ref, mask, w, variant="wbc", reduction="none")
  np.testing.assert_allclose(per_wbc, np.asarray(w) * nll, rtol=1e-6)  # negative R not clamped
  per_free, _ = alol_loss(pol, ref, mask, w, variant="a_lol_ref_free", reduction="none")
  np.testing.assert_allclose(per_free, np.maximum(w, 0) * nll, rtol=1e-6)
  u = 0.2
  per_gold, _ = alol_loss(pol, ref, mask, w, variant="r_gold", gold_floor=u, reduction="none")
  gw = np.maximum(np.exp(pol), u)
  np.testing.assert_allclose(per_gold, np.asarray(w) * np.where(mask, gw * -pol, 0).sum(1), rtol=1e-5)
  # The GOLD weight is a constant: dL/dlogπ_t = −R·max(π_t, u).
  g = _grad("r_gold", pol, ref, mask, w, gold_floor=u, reduction="sum")
  np.testing.assert_allclose(g, -np.asarray(w)[:, None] * gw * mask, rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_jit_matches_eager(variant, maybe_jit):
  pol, ref, mask, w = _data()
  f = maybe_jit(functools.partial(alol_loss, **_kw(variant)))
  loss, metrics = f(pol, ref, mask, w)
  ref_loss, ref_metrics = alol_loss(pol, ref, mask, w, **_kw(variant))
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
  for k in ref_metrics:
    np.testing.assert_allclose(metrics[k], ref_metrics[k], rtol=1e-6, err_msg=k)


@pytest.mark.parametrize("variant", VARIANTS)
def test_empty_masks_are_finite(variant):
  pol, ref, _, w = _data()
  mask = jnp.zeros((B, T), bool)
  pol = pol.at[:, -1].set(-jnp.inf)  # padding may hold anything
  loss, metrics = alol_loss(pol, ref, mask, w, **_kw(variant))
  assert float(loss) == 0.0  # no tokens: zero NLL, zero KL, ratio 1
  assert all(np.isfinite(v) for v in metrics.values())
  assert np.all(np.isfinite(_grad(variant, pol, ref, mask, w)))


def test_reductions_and_x64(x64):
  pol, ref, mask, w = _data(dtype=np.float64)
  per, _ = alol_loss(pol, ref, mask, w, variant="a_lol", reduction="none")
  assert per.shape == (B,) and per.dtype == jnp.float64
  np.testing.assert_allclose(alol_loss(pol, ref, mask, w, variant="a_lol", reduction="sum")[0], per.sum())
  np.testing.assert_allclose(alol_loss(pol, ref, mask, w, variant="a_lol")[0], per.mean())


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(ref_token_logps=jnp.zeros((B, T + 1))), "ref_token_logps"),
        (dict(mask=jnp.ones((B, 2), bool)), "mask"),
        (dict(weights=jnp.ones(B + 1)), "weights"),
        (dict(weights=jnp.ones((B, 1))), "weights"),
        (dict(policy_token_logps=jnp.zeros(B)), "policy_token_logps"),
        (dict(variant="a_lol_2"), "variant"),
        (dict(clip_eps=1.5), "clip_eps"),
        (dict(kl_beta=-0.1), "kl_beta"),
        (dict(gold_floor=2.0), "gold_floor"),
        (dict(reduction="avg"), "reduction"),
    ],
)
def test_bad_inputs_raise(kwargs, name):
  pol, ref, mask, w = _data()
  args = dict(policy_token_logps=pol, ref_token_logps=ref, mask=mask, weights=w)
  args.update({k: v for k, v in kwargs.items() if k in args})
  kw = {k: v for k, v in kwargs.items() if k not in args}
  with pytest.raises(ValueError, match=f"`{name}`"):
    alol_loss(*args.values(), **kw)


def test_advantage_filter():
  rewards = jnp.array([0.9, 0.2, 0.5, 0.1])
  values = jnp.array([0.4, 0.6, 0.5, -0.3])
  adv_pos, keep = advantage_filter(rewards, values)
  np.testing.assert_allclose(adv_pos, [0.5, 0.0, 0.0, 0.4], rtol=1e-6)
  np.testing.assert_array_equal(keep, [True, False, False, True])
  g = jax.grad(lambda v: advantage_filter(rewards, v)[0].sum())(values)
  np.testing.assert_array_equal(g, 0.0)
  with pytest.raises(ValueError, match="`values`"):
    advantage_filter(rewards, values[:3])


def test_priority_probs(maybe_jit):
  f = maybe_jit(priority_probs)
  p = f(jnp.array([0.0, 1.0, 3.0, -2.0]))
  np.testing.assert_allclose(p, [0.0, 0.25, 0.75, 0.0], rtol=1e-6)
  u = f(jnp.zeros(4))
  np.testing.assert_allclose(u, 0.25)
  assert np.all(np.isfinite(f(jnp.array([-1.0, -2.0])))) and float(f(jnp.array([-1.0, -2.0])).sum()) == 1.0
  with pytest.raises(ValueError, match="`adv_pos`"):
    priority_probs(jnp.ones((2, 2)))
