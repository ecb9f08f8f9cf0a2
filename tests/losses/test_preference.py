"""Invariants of the DPO-family kernels (rljax.losses.preference)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import losses
from rljax.losses import preference as P
from rljax.theory.kernels.lbfgs import lbfgs_minimize

B = 16


def _inputs(seed=0, dtype=jnp.float32, scale=3.0):
  keys = jax.random.split(jax.random.PRNGKey(seed), 4)
  return tuple(scale * jax.random.normal(k, (B,), dtype) - 20.0 for k in keys)


def _margin(pc, pr, rc, rr):
  return (pc - rc) - (pr - rr)


def _softplus(x):
  return np.logaddexp(0.0, x)


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


ALL_PAIRWISE = {
    "dpo": dict(beta=0.3),
    "cdpo": dict(beta=0.3, epsilon=0.2),
    "rdpo": dict(beta=0.3, epsilon=0.2),
    "ipo": dict(beta=0.3),
    "hinge": dict(beta=0.3),
}


def _reference_per_example(name, h, beta, eps=0.0):
  """Independent numpy formulas for each link, per example."""
  u = beta * h
  if name == "dpo":
    return _softplus(-u)
  if name == "cdpo":
    return (1 - eps) * _softplus(-u) + eps * _softplus(u)
  if name == "rdpo":
    return ((1 - eps) * _softplus(-u) - eps * _softplus(u)) / (1 - 2 * eps)
  if name == "ipo":
    return (h - 1 / (2 * beta)) ** 2
  if name == "hinge":
    return np.maximum(0.0, 1 - u)
  raise AssertionError(name)


@pytest.mark.parametrize("name", sorted(ALL_PAIRWISE))
def test_values_match_formula_jit_and_eager(name, maybe_jit):
  kw = ALL_PAIRWISE[name]
  fn = maybe_jit(functools.partial(losses.get(name), **kw, reduction="none"))
  args = _inputs()
  out, metrics = fn(*args)
  h = np.asarray(_margin(*args), np.float64)
  expected = _reference_per_example(name, h, kw["beta"], kw.get("epsilon", 0.0))
  np.testing.assert_allclose(out, expected, rtol=2e-5, atol=1e-5)
  mean, _ = maybe_jit(functools.partial(losses.get(name), **kw))(*args)
  np.testing.assert_allclose(mean, expected.mean(), rtol=2e-5, atol=1e-5)
  np.testing.assert_allclose(metrics["margin_mean"], h.mean(), rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(metrics["reward_acc"], (h > 0).mean())
  pc, pr, rc, rr = (np.asarray(a) for a in args)
  np.testing.assert_allclose(metrics["chosen_reward"], (kw["beta"] * (pc - rc)).mean(), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(metrics["rejected_reward"], (kw["beta"] * (pr - rr)).mean(), rtol=1e-4, atol=1e-4)


def test_rdpo_at_zero_noise_is_dpo():
  args = _inputs(1)
  a, _ = P.rdpo_loss(*args, beta=0.5, epsilon=0.0, reduction="none")
  b, _ = P.dpo_loss(*args, beta=0.5, reduction="none")
  np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("eps", [0.05, 0.2, 0.45])
def test_rdpo_is_exactly_unbiased_for_clean_dpo(eps, x64):
  pc, pr, rc, rr = _inputs(2, jnp.float64)
  observed, _ = P.rdpo_loss(pc, pr, rc, rr, beta=0.7, epsilon=eps, reduction="none")
  swapped, _ = P.rdpo_loss(pr, pc, rr, rc, beta=0.7, epsilon=eps, reduction="none")
  clean, _ = P.dpo_loss(pc, pr, rc, rr, beta=0.7, reduction="none")
  assert observed.dtype == jnp.float64
  np.testing.assert_allclose((1 - eps) * observed + eps * swapped, clean, rtol=0, atol=1e-12)


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_cdpo_is_the_expected_dpo_loss_under_flips(eps, x64):
  pc, pr, rc, rr = _inputs(3, jnp.float64)
  c, _ = P.cdpo_loss(pc, pr, rc, rr, beta=0.4, epsilon=eps, reduction="none")
  clean, _ = P.dpo_loss(pc, pr, rc, rr, beta=0.4, reduction="none")
  flipped, _ = P.dpo_loss(pr, pc, rr, rc, beta=0.4, reduction="none")
  np.testing.assert_allclose(c, (1 - eps) * clean + eps * flipped, atol=1e-12)
  smoothed, _ = P.dpo_loss(pc, pr, rc, rr, beta=0.4, label_smoothing=eps, reduction="none")
  np.testing.assert_array_equal(c, smoothed)


def _closed_form_weight(name, h, beta, eps=0.0, gamma=0.0):
  """−∂ℓ/∂h for each link."""
  u = beta * h
  if name == "dpo":
    return beta * _sigmoid(-u)
  if name == "cdpo":
    return beta * ((1 - eps) * _sigmoid(-u) - eps * _sigmoid(u))
  if name == "rdpo":
    return beta * ((1 - eps) * _sigmoid(-u) + eps * _sigmoid(u)) / (1 - 2 * eps)
  if name == "ipo":
    return -2 * (h - 1 / (2 * beta))
  if name == "hinge":
    return beta * (u < 1)
  raise AssertionError(name)


@pytest.mark.parametrize("name", sorted(ALL_PAIRWISE))
def test_gradients_equal_closed_forms(name, x64):
  kw = ALL_PAIRWISE[name]
  args = _inputs(4, jnp.float64)
  fn = lambda *a: losses.get(name)(*a, **kw)[0]
  grads = jax.grad(fn, argnums=(0, 1, 2, 3))(*args)
  h = np.asarray(_margin(*args))
  w = _closed_form_weight(name, h, kw["beta"], kw.get("epsilon", 0.0)) / B
  # h = (pc − rc) − (pr − rr): ∂/∂pc = −w, ∂/∂pr = +w, and the reference inputs mirror them.
  for g, sign in zip(grads, (-1, 1, 1, -1)):
    np.testing.assert_allclose(g, sign * w, atol=1e-12)
  _, metrics = losses.get(name)(*args, **kw)
  np.testing.assert_allclose(metrics["grad_weight_mean"], w.mean() * B, atol=1e-12)


def test_cdpo_gradient_vanishes_where_rdpo_keeps_pushing(x64):
  beta, eps = 0.5, 0.2
  h_star = np.log((1 - eps) / eps) / beta
  pc = jnp.asarray([h_star], jnp.float64)
  zero = jnp.zeros(1, jnp.float64)
  g_c = jax.grad(lambda p: P.cdpo_loss(p, zero, zero, zero, beta=beta, epsilon=eps)[0])(pc)
  g_r = jax.grad(lambda p: P.rdpo_loss(p, zero, zero, zero, beta=beta, epsilon=eps)[0])(pc)
  np.testing.assert_allclose(g_c, 0.0, atol=1e-14)
  assert float(g_r[0]) < -0.1 * beta  # still pushes the observed label, by a clear margin


def test_rdpo_is_negative_and_linear_for_large_margins(x64):
  beta, eps = 1.0, 0.3
  zero = jnp.zeros(2, jnp.float64)
  h = jnp.asarray([50.0, 60.0], jnp.float64)
  loss, _ = P.rdpo_loss(h, zero, zero, zero, beta=beta, epsilon=eps, reduction="none")
  assert np.all(np.asarray(loss) < 0)
  np.testing.assert_allclose(loss[1] - loss[0], -10 * eps * beta / (1 - 2 * eps), rtol=1e-9)


def test_simpo_matches_formula_and_reduces_to_reference_free_dpo(maybe_jit):
  pc, pr, _, _ = _inputs(5)
  loss, m = maybe_jit(functools.partial(P.simpo_loss, beta=2.0, gamma=0.5, reduction="none"))(pc, pr)
  u = 2.0 * np.asarray(pc - pr, np.float64) - 0.5
  np.testing.assert_allclose(loss, _softplus(-u), rtol=1e-5)
  np.testing.assert_allclose(m["chosen_reward"], 2.0 * np.mean(pc), rtol=1e-5)
  zero = jnp.zeros_like(pc)
  no_margin, _ = P.simpo_loss(pc, pr, beta=2.0, gamma=0.0, reduction="none")
  dpo, _ = P.dpo_loss(pc, pr, zero, zero, beta=2.0, reduction="none")
  np.testing.assert_allclose(no_margin, dpo, rtol=1e-6)


def test_inpo_with_full_mixing_is_ipo(maybe_jit):
  pc, pr, rc, rr = _inputs(6)
  qc, qr = _inputs(7)[:2]
  eta = 0.25
  inpo, _ = maybe_jit(functools.partial(P.inpo_loss, eta=eta, tau=1 / eta, reduction="none"))(pc, pr, rc, rr, qc, qr)
  ipo, _ = P.ipo_loss(pc, pr, rc, rr, beta=1 / eta, reduction="none")
  np.testing.assert_allclose(inpo, ipo, rtol=1e-5)


def test_inpo_is_invariant_to_per_prompt_constants():
  args = list(_inputs(8)) + list(_inputs(9)[:2])
  shift = jax.random.normal(jax.random.PRNGKey(10), (B,))
  base, _ = P.inpo_loss(*args, eta=0.5, tau=0.4, reduction="none")
  # Each of π, π_ref and π_t gets its own per-prompt constant (e.g. a different normaliser).
  moved = [args[0] + shift, args[1] + shift, args[2] - 2 * shift, args[3] - 2 * shift,
           args[4] + 3 * shift, args[5] + 3 * shift]
  out, _ = P.inpo_loss(*moved, eta=0.5, tau=0.4, reduction="none")
  np.testing.assert_allclose(out, base, rtol=1e-4, atol=1e-4)


def _lbfgs(objective, x0, iters=200):
  return lbfgs_minimize(objective, x0, max_iters=iters).x


def _all_pairs(k):
  a, b = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
  return a.ravel(), b.ravel()


def test_dpo_population_optimum_is_power_of_data_ratio(x64):
  """y_w ~ π_w, y_l ~ π_l independently: the tabular DPO(β) optimum is π_ref·(π_w/π_l)^{1/β}."""
  k, beta = 6, 0.7
  keys = jax.random.split(jax.random.PRNGKey(11), 3)
  log_ref, log_pw, log_pl = (jax.nn.log_softmax(jax.random.normal(kk, (k,), jnp.float64)) for kk in keys)
  a, b = _all_pairs(k)
  weights = jnp.exp(log_pw[a] + log_pl[b])

  def population_loss(logits):
    logp = jax.nn.log_softmax(logits)
    per_pair, _ = P.dpo_loss(logp[a], logp[b], log_ref[a], log_ref[b], beta=beta, reduction="none")
    return jnp.sum(weights * per_pair)

  log_pi = jax.nn.log_softmax(_lbfgs(population_loss, jnp.zeros(k, jnp.float64)))
  expected = jax.nn.log_softmax(log_ref + (log_pw - log_pl) / beta)
  np.testing.assert_allclose(log_pi, expected, atol=1e-7)


def test_inpo_minimiser_is_the_mirror_descent_step(x64):
  """Exact pair weights π_t(y)π_t(y')P(y≻y'): argmin E[L_t] = π_t^{1−ητ} π_ref^{ητ} e^{η P(y≻π_t)}."""
  k, eta, tau = 5, 0.8, 0.5
  keys = jax.random.split(jax.random.PRNGKey(12), 3)
  log_ref = jax.nn.log_softmax(jax.random.normal(keys[0], (k,), jnp.float64))
  log_prev = jax.nn.log_softmax(jax.random.normal(keys[1], (k,), jnp.float64))
  skew = jax.random.normal(keys[2], (k, k), jnp.float64)
  pref = jax.nn.sigmoid(skew - skew.T)  # P[i, j] = P(i ≻ j), P + Pᵀ = 1, an intransitive game
  a, b = _all_pairs(k)
  weights = jnp.exp(log_prev[a] + log_prev[b]) * pref[a, b]  # (a labelled winner, b loser)

  def expected_loss(logits):
    logp = jax.nn.log_softmax(logits)
    per_pair, _ = P.inpo_loss(
        logp[a], logp[b], log_ref[a], log_ref[b], log_prev[a], log_prev[b], eta=eta, tau=tau, reduction="none"
    )
    return jnp.sum(weights * per_pair)

  log_pi = jax.nn.log_softmax(_lbfgs(expected_loss, jnp.zeros(k, jnp.float64)))
  win_vs_prev = pref @ jnp.exp(log_prev)  # P(y ≻ π_t)
  omd = jax.nn.log_softmax((1 - eta * tau) * log_prev + eta * tau * log_ref + eta * win_vs_prev)
  np.testing.assert_allclose(log_pi, omd, atol=1e-8)


def test_dtypes_bf16_to_float32_and_float64_kept(x64):
  args16 = _inputs(13, jnp.bfloat16)
  loss, metrics = P.dpo_loss(*args16, beta=0.1)
  assert loss.dtype == jnp.float32 and metrics["margin_mean"].dtype == jnp.float32
  loss64, _ = P.rdpo_loss(*_inputs(13, jnp.float64), beta=0.1, epsilon=0.1)
  assert loss64.dtype == jnp.float64


def test_traced_hyperparameters_vmap_over_epsilon():
  args = _inputs(14)
  eps = jnp.asarray([0.0, 0.1, 0.3])
  out = jax.vmap(lambda e: P.rdpo_loss(*args, beta=0.5, epsilon=e)[0])(eps)
  for i, e in enumerate([0.0, 0.1, 0.3]):
    np.testing.assert_allclose(out[i], P.rdpo_loss(*args, beta=0.5, epsilon=e)[0], rtol=1e-6)


def test_metrics_carry_no_gradient():
  args = _inputs(15)
  g = jax.grad(lambda p: P.dpo_loss(p, *args[1:], beta=0.1)[1]["margin_mean"])(args[0])
  np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda a: P.rdpo_loss(*a, beta=0.1, epsilon=0.5), "epsilon"),
        (lambda a: P.cdpo_loss(*a, beta=0.1, epsilon=0.7), "epsilon"),
        (lambda a: P.rdpo_loss(*a, beta=0.1, epsilon=-0.1), "epsilon"),
        (lambda a: P.dpo_loss(*a, beta=0.0), "beta"),
        (lambda a: P.ipo_loss(*a, beta=-1.0), "beta"),
        (lambda a: P.dpo_loss(*a, beta=0.1, label_smoothing=0.5), "label_smoothing"),
        (lambda a: P.dpo_loss(a[0], a[1][:3], a[2], a[3], beta=0.1), "policy_rejected_logps"),
        (lambda a: P.dpo_loss(a[0], a[1], a[2], a[3][None], beta=0.1), "ref_rejected_logps"),
        (lambda a: P.dpo_loss(a[0][None], a[1][None], a[2][None], a[3][None], beta=0.1), "rank 1"),
        (lambda a: P.dpo_loss(*a, beta=0.1, reduction="avg"), "reduction"),
        (lambda a: P.simpo_loss(a[0], a[1], beta=1.0, gamma=-1.0), "gamma"),
        (lambda a: P.inpo_loss(*a, a[0], a[1], eta=1.0, tau=2.0), "eta \\* tau"),
        (lambda a: P.inpo_loss(*a, a[0], a[1][:2], eta=1.0, tau=0.5), "prev_rejected_logps"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, match):
  with pytest.raises(ValueError, match=match):
    call(_inputs(16))


def test_registry():
  assert losses.get("rdpo") is P.rdpo_loss
  assert losses.rdpo_loss is P.rdpo_loss
  assert {"dpo", "cdpo", "rdpo", "ipo", "hinge", "simpo", "inpo"} <= set(losses.names())
  with pytest.raises(KeyError, match="known"):
    losses.get("nope")
  assert losses.names("pairwise") == ["cdpo", "dpo", "hinge", "inpo", "ipo", "rdpo", "simpo"]
  assert losses.spec("simpo").reads == ("chosen_mean_logps", "rejected_mean_logps")
  with pytest.raises(ValueError, match="already registered"):
    losses.register("dpo", kind="pairwise", reads=P.PAIR_READS)(P.dpo_loss)
  with pytest.raises(ValueError, match="`reads` names 3 fields"):
    losses.register("dpo_bad", kind="pairwise", reads=P.PAIR_READS[:3])(P.dpo_loss)
  with pytest.raises(ValueError, match="kind"):
    losses.register("dpo_bad", kind="pairs", reads=P.PAIR_READS)
