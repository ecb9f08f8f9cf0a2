import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses import registry
from rljax.losses.refuel import rebel_loss, refuel_branch_points, refuel_loss, refuel_q_values

B = 6
NAMES = ("policy_logps_a", "policy_logps_b", "old_logps_a", "old_logps_b", "rewards_a", "rewards_b")


def _data(seed=0, dtype=np.float32):
  rng = np.random.default_rng(seed)
  arrs = [-rng.uniform(1, 20, B), -rng.uniform(1, 20, B), -rng.uniform(1, 20, B), -rng.uniform(1, 20, B)]
  arrs += [rng.normal(size=B), rng.normal(size=B)]
  return tuple(jnp.asarray(a.astype(dtype)) for a in arrs)


def test_registered():
  assert registry.get("rebel") is rebel_loss
  assert registry.get("refuel") is refuel_loss


def test_value_and_gradient_formula():
  pa, pb, oa, ob, ra, rb = _data()
  eta = 0.7
  per, m = rebel_loss(pa, pb, oa, ob, ra, rb, eta=eta, reduction="none")
  resid = (pa - oa) - (pb - ob) - eta * (ra - rb)
  np.testing.assert_allclose(per, resid**2, rtol=1e-5)
  np.testing.assert_allclose(m["reg_residual"], resid.mean(), rtol=1e-5, atol=1e-6)
  g = jax.grad(lambda *p: rebel_loss(*p, oa, ob, ra, rb, eta=eta)[0], argnums=(0, 1))(pa, pb)
  np.testing.assert_allclose(g[0], 2 * resid / B, rtol=1e-5)
  np.testing.assert_allclose(g[1], -2 * resid / B, rtol=1e-5)


def test_no_gradient_into_old_logps_or_rewards():
  args = _data()
  g = jax.grad(lambda *a: rebel_loss(*a, eta=1.0)[0], argnums=(2, 3, 4, 5))(*args)
  for gi in g:
    np.testing.assert_array_equal(gi, 0.0)


def test_paper_form_has_same_minimiser_scaled_by_eta_squared():
  pa, pb, oa, ob, ra, rb = _data()
  eta = 0.25
  paper = jnp.mean(((1 / eta) * ((pa - oa) - (pb - ob)) - (ra - rb)) ** 2)
  np.testing.assert_allclose(rebel_loss(pa, pb, oa, ob, ra, rb, eta=eta)[0] / eta**2, paper, rtol=1e-5)


@pytest.mark.parametrize("eta", [0.3, 2.5])
def test_exact_tabular_minimiser_is_mirror_descent_step(x64, eta):
  k = 5
  rng = np.random.default_rng(1)
  log_pi_t = rng.normal(size=k)
  log_pi_t -= np.log(np.exp(log_pi_t).sum())
  r = rng.normal(size=k)
  ia, ib = map(np.array, zip(*itertools.permutations(range(k), 2)))  # every ordered pair

  def loss(theta):
    lp = jax.nn.log_softmax(theta)
    return rebel_loss(lp[ia], lp[ib], log_pi_t[ia], log_pi_t[ib], r[ia], r[ib], eta=eta, reduction="sum")[0]

  # The loss is quadratic in the logits (log Z cancels in Δℓ): solve the normal equations exactly.
  derivs = jax.jit(lambda t: (jax.hessian(loss)(t), *jax.value_and_grad(loss)(t)))
  h, _, g = map(np.asarray, derivs(jnp.zeros(k)))
  theta_star = np.linalg.lstsq(h, -g, rcond=None)[0]
  softmax = lambda x: np.exp(x - x.max()) / np.exp(x - x.max()).sum()
  expected = softmax(log_pi_t + eta * r)
  np.testing.assert_allclose(softmax(theta_star), expected, rtol=1e-6, atol=1e-9)
  _, loss_star, g_star = derivs(jnp.asarray(np.log(expected)))
  assert float(loss_star) < 1e-12 and np.all(np.abs(g_star) < 1e-9)
  # the 1/η convention would give a different policy
  assert not np.allclose(softmax(theta_star), softmax(log_pi_t + r / eta), atol=1e-3)


def test_zero_iff_logratio_difference_matches_scaled_reward_difference():
  _, pb, oa, ob, ra, rb = _data()
  eta = 0.6
  pa_exact = oa + (pb - ob) + eta * (ra - rb)
  per, m = rebel_loss(pa_exact, pb, oa, ob, ra, rb, eta=eta, reduction="none")
  np.testing.assert_allclose(per, 0.0, atol=1e-9)
  assert abs(float(m["reg_residual"])) < 1e-5
  bump = jnp.array([0.0, 0.1, 0.0, -0.05, 0.0, 1.0])
  per2, _ = rebel_loss(pa_exact + bump, pb, oa, ob, ra, rb, eta=eta, reduction="none")
  np.testing.assert_array_equal(np.asarray(per2) > 1e-6, np.asarray(bump) != 0)


def test_invariant_to_per_prompt_reward_constant():
  pa, pb, oa, ob, ra, rb = _data()
  c = jnp.asarray(np.random.default_rng(5).normal(scale=10, size=B).astype(np.float32))
  f = lambda ra, rb, pa: rebel_loss(pa, pb, oa, ob, ra, rb, eta=0.8, reduction="none")[0]
  np.testing.assert_allclose(f(ra + c, rb + c, pa), f(ra, rb, pa), rtol=1e-4, atol=1e-5)
  gf = lambda ra, rb: jax.grad(lambda p: f(ra, rb, p).sum())(pa)
  np.testing.assert_allclose(gf(ra + c, rb + c), gf(ra, rb), rtol=1e-4, atol=1e-5)


def test_swap_symmetry():
  pa, pb, oa, ob, ra, rb = _data()
  loss_ab, m_ab = rebel_loss(pa, pb, oa, ob, ra, rb, eta=0.5, reduction="none")
  loss_ba, m_ba = rebel_loss(pb, pa, ob, oa, rb, ra, eta=0.5, reduction="none")
  np.testing.assert_allclose(loss_ab, loss_ba, rtol=1e-6)
  np.testing.assert_allclose(m_ab["sign_align"], m_ba["sign_align"])
  np.testing.assert_allclose(m_ab["reg_residual"], -m_ba["reg_residual"], rtol=1e-6)
  f = lambda a, b, oa, ob, ra, rb: rebel_loss(a, b, oa, ob, ra, rb, eta=0.5)[0]
  ga = jax.grad(f, argnums=(0, 1))(pa, pb, oa, ob, ra, rb)
  gb = jax.grad(f, argnums=(0, 1))(pb, pa, ob, oa, rb, ra)
  np.testing.assert_allclose(ga[0], gb[1], rtol=1e-6)
  np.testing.assert_allclose(ga[1], gb[0], rtol=1e-6)


def test_sign_align():
  z = jnp.zeros(4)
  pa = jnp.array([1.0, -1.0, 2.0, 0.5])  # Δℓ signs: +, −, +, +
  ra = jnp.array([0.3, -0.2, -1.0, 0.0])  # Δr signs:  +, −, −, 0
  _, m = rebel_loss(pa, z, z, z, ra, z, eta=1.0)
  np.testing.assert_allclose(m["sign_align"], 0.5)
  # With a the higher-reward ("chosen") response, it is the reference code's mean(Δℓ > 0).
  ra_pos = jnp.array([0.3, 0.2, 1.0, 0.1])
  _, m = rebel_loss(pa, z, z, z, ra_pos, z, eta=1.0)
  np.testing.assert_allclose(m["sign_align"], np.mean(np.asarray(pa) > 0))
  np.testing.assert_allclose(m["sign_align"], m["reward_acc"])


def test_refuel_is_rebel_kernel():
  args = _data()
  l1, m1 = rebel_loss(*args, eta=0.9, reduction="none")
  l2, m2 = refuel_loss(*args, eta=0.9, reduction="none")
  np.testing.assert_array_equal(l1, l2)
  assert m1.keys() == m2.keys()
  with pytest.raises(ValueError, match="`q_b`"):
    refuel_loss(*args[:5], args[5][:2], eta=1.0)


@pytest.mark.parametrize("fn", [rebel_loss, refuel_loss])
def test_jit_matches_eager(fn, maybe_jit):
  args = _data()
  loss, m = maybe_jit(functools.partial(fn, eta=0.7))(*args)
  loss_ref, m_ref = fn(*args, eta=0.7)
  np.testing.assert_allclose(loss, loss_ref, rtol=1e-6)
  for k in m_ref:
    np.testing.assert_allclose(m[k], m_ref[k], rtol=1e-6, atol=1e-7, err_msg=k)


def test_reductions_and_x64(x64):
  args = _data(dtype=np.float64)
  per, _ = rebel_loss(*args, eta=1.0, reduction="none")
  assert per.dtype == jnp.float64 and per.shape == (B,)
  np.testing.assert_allclose(rebel_loss(*args, eta=1.0, reduction="sum")[0], per.sum())


@pytest.mark.parametrize("i", range(6))
def test_shape_mismatch_names_argument(i):
  args = list(_data())
  args[i] = args[i][:3]
  with pytest.raises(ValueError, match=f"`{NAMES[i]}`"):
    rebel_loss(*args, eta=1.0)


def test_bad_hyperparameters_raise():
  args = _data()
  with pytest.raises(ValueError, match="`eta`"):
    rebel_loss(*args, eta=0.0)
  with pytest.raises(ValueError, match="`reduction`"):
    rebel_loss(*args, eta=1.0, reduction="max")
  with pytest.raises(ValueError, match="`policy_logps_a`"):
    rebel_loss(*(a[None] for a in args), eta=1.0)


# ---- REFUEL data protocol (ZhaolinGao/REFUEL) ----


def test_branch_points_setting_one_match_generate_py():
  H, n = 5, 200_000
  length, turn = map(np.asarray, refuel_branch_points(jax.random.key(0), H, setting="one", shape=(n,)))
  assert length.dtype == np.int32 and length.shape == turn.shape == (n,)
  assert length.min() == 0 and length.max() == H - 1 and np.all((0 <= turn) & (turn <= length))
  # Exact joint law: P(L = l, h = k) = 1/H · 1/(l+1) for 0 ≤ k ≤ l < H.
  exact = np.array([[1 / H / (l + 1) if k <= l else 0.0 for k in range(H)] for l in range(H)])
  emp = np.zeros((H, H))
  np.add.at(emp, (length, turn), 1.0 / n)
  np.testing.assert_allclose(emp, exact, atol=5 * np.sqrt(exact.max() / n))
  # ... which is the law of generate.py's own sampler (a NumPy port of its two lines).
  rng = np.random.default_rng(0)
  sampled_len = rng.choice(H, size=n)
  sampled_h = rng.integers(0, sampled_len + 1)  # np.random.randint(0, sampled_len + 1)
  port = np.zeros((H, H))
  np.add.at(port, (sampled_len, sampled_h), 1.0 / n)
  np.testing.assert_allclose(port, exact, atol=5 * np.sqrt(exact.max() / n))
  # The branch turn is not uniform on {0..H−1}: early turns are favoured.
  assert exact.sum(0)[0] > 2 * exact.sum(0)[-1]


def test_branch_points_setting_two_is_uniform_over_each_dialogue():
  turns = jnp.array([1, 2, 5, 3] * 20_000, jnp.int32)
  length, turn = map(np.asarray, refuel_branch_points(jax.random.key(1), turns, setting="two"))
  np.testing.assert_array_equal(length, np.asarray(turns) - 1)  # the whole conversation is scored
  assert np.all((0 <= turn) & (turn < np.asarray(turns)))
  for n in (2, 3, 5):
    freq = np.bincount(turn[np.asarray(turns) == n], minlength=n) / 20_000
    np.testing.assert_allclose(freq, 1 / n, atol=5 * np.sqrt(1 / n / 20_000))
  f = jax.jit(lambda k, t: refuel_branch_points(k, t, setting="two"))
  np.testing.assert_array_equal(f(jax.random.key(1), turns)[1], turn)


def test_branch_points_bad_inputs():
  with pytest.raises(ValueError, match="`num_turns`"):
    refuel_branch_points(jax.random.key(0), 0)
  with pytest.raises(ValueError, match="`num_turns`"):
    refuel_branch_points(jax.random.key(0), jnp.array([3, 4]), setting="one")
  with pytest.raises(ValueError, match="`setting`"):
    refuel_branch_points(jax.random.key(0), 3, setting="three")


def _setting_two_rewards(score, response_mask, response_length, penalty, logprob, ref_logprob, kl_coef):
  """NumPy port of setting_two/anthropic_hh/refuel.py, steps 3–5 (per-token log-probs, turn-h mask)."""
  contain_pad_token = response_mask.sum(-1) != response_length - 1
  scores = np.where(contain_pad_token, score, np.full_like(score, penalty))
  logprobs = (logprob * response_mask[:, 1:]).sum(-1)
  ref_logprobs = (ref_logprob * response_mask[:, 1:]).sum(-1)
  kl = logprobs - ref_logprobs
  return -kl_coef * kl + scores


def test_q_values_match_setting_two_and_feed_the_loss():
  rng = np.random.default_rng(3)
  n, T, response_length = 8, 12, 6
  score = rng.normal(size=n)
  lens = rng.integers(1, response_length, size=n)
  lens[[1, 4]] = response_length - 1  # never emitted EOS: truncated, gets the penalty
  response_mask = np.zeros((n, T), int)
  for i, l in enumerate(lens):
    response_mask[i, 3:3 + l] = 1
  logprob, ref_logprob = -rng.uniform(0, 2, (n, T - 1)), -rng.uniform(0, 2, (n, T - 1))
  want = _setting_two_rewards(score, response_mask, response_length, -10.0, logprob, ref_logprob, 0.05)
  m = response_mask[:, 1:]
  q = refuel_q_values(jnp.asarray(score), truncated=jnp.asarray(lens == response_length - 1), penalty=-10.0,
                      turn_logps=jnp.asarray((logprob * m).sum(-1)),
                      turn_ref_logps=jnp.asarray((ref_logprob * m).sum(-1)), kl_coef=0.05)
  np.testing.assert_allclose(q, want, rtol=1e-5, atol=1e-6)
  kl = ((logprob - ref_logprob) * m).sum(-1)
  np.testing.assert_allclose(np.asarray(q)[[1, 4]], -10.0 - 0.05 * kl[[1, 4]], rtol=1e-5)
  # Setting one: Q̂ is the score itself.
  np.testing.assert_array_equal(refuel_q_values(jnp.asarray(score, jnp.float32)), np.float32(score))
  # Pairs are consecutive rows (first, second generation); the loss is the code's reg_diff² mean.
  eta = 1.0
  new_lp, old_lp = rng.normal(size=n), rng.normal(size=n)
  ratio = new_lp - old_lp
  code_loss = np.mean((ratio[0::2] - ratio[1::2] - eta * (want[0::2] - want[1::2])) ** 2)
  pairs = (new_lp[0::2], new_lp[1::2], old_lp[0::2], old_lp[1::2])
  loss, _ = refuel_loss(*(jnp.asarray(x, jnp.float32) for x in pairs), q[0::2], q[1::2], eta=eta)
  np.testing.assert_allclose(loss, code_loss, rtol=1e-5)


def test_q_values_bad_inputs_and_no_gradient():
  s = jnp.ones(3)
  with pytest.raises(ValueError, match="`penalty`"):
    refuel_q_values(s, truncated=jnp.zeros(3, bool))
  with pytest.raises(ValueError, match="`turn_ref_logps`"):
    refuel_q_values(s, turn_logps=s)
  with pytest.raises(ValueError, match="`kl_coef`"):
    refuel_q_values(s, turn_logps=s, turn_ref_logps=s, kl_coef=-1.0)
  with pytest.raises(ValueError, match="`turn_logps`"):
    refuel_q_values(s, turn_logps=s[:2], turn_ref_logps=s[:2])
  g = jax.grad(lambda lp: refuel_q_values(s, turn_logps=lp, turn_ref_logps=s, kl_coef=0.1).sum())(s)
  np.testing.assert_array_equal(g, 0.0)
