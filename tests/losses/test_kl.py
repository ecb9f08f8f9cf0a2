"""KL estimators, KL-penalised rewards and the adaptive KL controller (rljax.losses.kl)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses import kl as K

KINDS = ("k1", "k2", "k3", "abs")


def _np_kl(d, kind):
  return {"k1": d, "k2": 0.5 * d**2, "k3": np.exp(-d) - 1 + d, "abs": np.abs(d)}[kind]


def _np_dkl(d, kind):
  """∂k/∂logp (ref_logp fixed)."""
  return {"k1": np.ones_like(d), "k2": d, "k3": 1 - np.exp(-d), "abs": np.sign(d)}[kind]


def _logps(seed, shape=(4, 6), scale=1.5):
  rng = np.random.default_rng(seed)
  return (-np.abs(rng.normal(size=shape)) * scale, -np.abs(rng.normal(size=shape)) * scale)


def test_values_and_gradients_match_formulas(maybe_jit, x64):
  logp, ref = _logps(0)
  d = logp - ref
  for kind in KINDS:
    fn = maybe_jit(functools.partial(K.kl_penalty, kind=kind))
    np.testing.assert_allclose(fn(logp, ref), _np_kl(d, kind), rtol=1e-12, atol=1e-14)
    g_logp, g_ref = jax.grad(lambda a, b: fn(a, b).sum(), argnums=(0, 1))(logp, ref)
    np.testing.assert_allclose(g_logp, _np_dkl(d, kind), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(g_ref, 0.0)  # the reference is stop-gradiented


def test_k2_k3_nonnegative_and_k3_accurate_for_small_d():
  rng = np.random.default_rng(1)
  d = np.concatenate([rng.normal(scale=5.0, size=500), rng.normal(scale=1e-4, size=500), [0.0, 1e-8, -1e-8]])
  logp = jnp.asarray(d, jnp.float32)
  ref = jnp.zeros_like(logp)
  for kind in ("k2", "k3", "abs"):
    assert np.all(np.asarray(K.kl_penalty(logp, ref, kind=kind)) >= 0), kind
  assert np.any(np.asarray(K.kl_penalty(logp, ref, kind="k1")) < 0)  # k1 is not a pointwise bound
  # expm1(−d) + d keeps relative accuracy near d = 0, where exp(−d) − 1 + d loses it in float32.
  small = np.asarray(logp, np.float64)[500:1000]
  k3 = np.asarray(K.kl_penalty(logp[500:1000], ref[500:1000], kind="k3"), np.float64)
  truth = np.expm1(-small) + small  # ~d²/2 ≈ 5e-9
  np.testing.assert_allclose(k3, truth, rtol=0, atol=1e-10)
  naive = np.asarray(jnp.exp(-logp[500:1000]) - 1 + logp[500:1000], np.float64)
  assert np.abs(naive - truth).max() > 1e-9  # the form this test guards against


def test_expected_gradients_by_enumeration(x64):
  """Tabular softmax, T = 1: E_{y~π}[∇k(y)] = 0, ∇KL(π‖ref), ∇KL(ref‖π) for k1, k2, k3, exactly."""
  rng = np.random.default_rng(2)
  theta = jnp.asarray(rng.normal(size=7))
  ref_logp = jax.nn.log_softmax(jnp.asarray(rng.normal(size=7)))

  def expected_estimator(th, kind):
    logp = jax.nn.log_softmax(th)
    # Enumerate all K actions, weighted by π with the sampling distribution held fixed.
    return jnp.sum(jax.lax.stop_gradient(jnp.exp(logp)) * K.kl_penalty(logp, ref_logp, kind=kind))

  def reverse_kl(th):
    logp = jax.nn.log_softmax(th)
    return jnp.sum(jnp.exp(logp) * (logp - ref_logp))

  def forward_kl(th):
    return jnp.sum(jnp.exp(ref_logp) * (ref_logp - jax.nn.log_softmax(th)))

  @jax.jit
  def all_gradients(th):
    grads = {kind: jax.grad(expected_estimator)(th, kind) for kind in ("k1", "k2", "k3")}
    values = {kind: expected_estimator(th, kind) for kind in ("k1", "k3")}
    return grads, values, jax.grad(reverse_kl)(th), jax.grad(forward_kl)(th), reverse_kl(th)

  grads, values, g_reverse, g_forward, kl = all_gradients(theta)
  np.testing.assert_allclose(grads["k1"], 0.0, rtol=0, atol=1e-10)
  np.testing.assert_allclose(grads["k2"], g_reverse, rtol=0, atol=1e-10)
  np.testing.assert_allclose(grads["k3"], g_forward, rtol=0, atol=1e-10)
  assert np.abs(np.asarray(g_forward - g_reverse)).max() > 1e-2  # the two targets really differ
  for kind in ("k1", "k3"):  # and their values are unbiased for the reverse KL
    np.testing.assert_allclose(values[kind], kl, atol=1e-12)


def test_clamp_reproduces_verl_low_var_kl(x64):
  d = np.array([-30.0, -21.0, -5.0, -1.0, 0.3, 12.0, 19.0, 25.0])
  logp, ref = d - 2.0, np.full_like(d, -2.0)
  fn = jax.jit(functools.partial(K.kl_penalty, kind="k3", clamp=20.0))
  x = np.clip(ref - logp, -20, 20)  # verl: kl = ref − logp, clamped, then exp(kl) − kl − 1 clamped to ±10
  verl = np.clip(np.exp(x) - x - 1, -10, 10)
  np.testing.assert_allclose(fn(logp, ref), verl, rtol=1e-12)
  grad = np.asarray(jax.grad(lambda a: fn(a, ref).sum())(logp))
  active = np.abs(np.exp(-d) - 1 + d) < 10  # inside both clips
  np.testing.assert_allclose(grad[active], 1 - np.exp(-d[active]), rtol=1e-12)
  np.testing.assert_array_equal(grad[~active], 0.0)
  assert active.sum() == 2 and (~active).sum() == 6
  unclamped = np.asarray(K.kl_penalty(logp, ref, kind="k3"))  # TRL: no clamp
  np.testing.assert_allclose(unclamped, np.exp(-d) - 1 + d, rtol=1e-12)
  for kind in ("k1", "k2", "abs"):  # verl clamps only k3
    np.testing.assert_array_equal(K.kl_penalty(logp, ref, kind=kind, clamp=20.0), K.kl_penalty(logp, ref, kind=kind))
  small = np.asarray(K.kl_penalty(logp, ref, kind="k3", clamp=4.0))
  assert small.max() == 2.0  # value bound clamp/2


def test_kl_penalty_errors():
  with pytest.raises(ValueError, match="`kind` must be one of"):
    K.kl_penalty(jnp.zeros(3), jnp.zeros(3), kind="k4")
  with pytest.raises(ValueError, match="`ref_logp` has shape"):
    K.kl_penalty(jnp.zeros((2, 3)), jnp.zeros((2, 4)), kind="k1")
  with pytest.raises(ValueError, match="`clamp` must be > 0"):
    K.kl_penalty(jnp.zeros(3), jnp.zeros(3), kind="k3", clamp=0.0)


def test_kl_penalized_rewards(maybe_jit, x64):
  logp, ref = _logps(3, (4, 6))
  mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], bool)
  scores = np.array([1.0, -1.0, 0.5, 2.0])
  fn = maybe_jit(functools.partial(K.kl_penalized_rewards, kl_coef=0.1))
  rew = np.asarray(fn(scores, logp, ref, mask))
  expected = -0.1 * (logp - ref) * mask
  expected[0, 5] += 1.0
  expected[1, 3] += -1.0  # the last valid token, after an interior masked one
  expected[2, 0] += 0.5   # the empty row 3 gets nothing
  np.testing.assert_allclose(rew, expected, atol=1e-12)
  k3 = K.kl_penalized_rewards(scores, logp, ref, mask, kl_coef=0.1, kind="k3")
  np.testing.assert_allclose(k3 - expected, -0.1 * (np.exp(ref - logp) - 1 - (ref - logp) - (logp - ref)) * mask, atol=1e-12)
  # A reward: no gradient reaches the log-probs or the scores.
  grads = jax.grad(lambda s, a: fn(s, a, ref, mask).sum(), argnums=(0, 1))(scores, logp)
  for g in grads:
    np.testing.assert_array_equal(g, 0.0)
  with pytest.raises(ValueError, match="`scores` has shape"):
    K.kl_penalized_rewards(scores[:3], logp, ref, mask, kl_coef=0.1)
  with pytest.raises(ValueError, match="`kl_coef` must be >= 0"):
    K.kl_penalized_rewards(scores, logp, ref, mask, kl_coef=-0.1)
  with pytest.raises(ValueError, match="`logp` must have rank 2"):
    K.kl_penalized_rewards(scores, logp[0], ref[0], mask[0], kl_coef=0.1)


def test_adaptive_kl_controller_matches_hand_computation(maybe_jit):
  update = maybe_jit(functools.partial(K.adaptive_kl_update, target=0.1, horizon=10000))
  state = K.KLControllerState(coef=jnp.asarray(0.2))
  up = update(state, jnp.asarray(0.15), 256)      # error 0.5, clipped to 0.2
  np.testing.assert_allclose(up.coef, 0.2 * (1 + 0.2 * 256 / 10000), rtol=1e-6)
  down = update(state, jnp.asarray(0.09), 256)    # error −0.1, inside the clip
  np.testing.assert_allclose(down.coef, 0.2 * (1 - 0.1 * 256 / 10000), rtol=1e-6)
  floor = update(state, jnp.asarray(0.0), 512)    # error −1, clipped to −0.2
  np.testing.assert_allclose(floor.coef, 0.2 * (1 - 0.2 * 512 / 10000), rtol=1e-6)
  # A scan of updates (pure state threading) equals the loop of the torch controllers.
  kls = jnp.asarray([0.3, 0.05, 0.12, 0.1])
  final, _ = jax.lax.scan(lambda s, k: (update(s, k, 64), None), state, kls)
  beta = 0.2
  for k in np.asarray(kls, np.float64):
    beta *= 1 + np.clip(k / 0.1 - 1, -0.2, 0.2) * 64 / 10000
  np.testing.assert_allclose(final.coef, beta, rtol=1e-6)
  with pytest.raises(ValueError, match="`target` must be > 0"):
    K.adaptive_kl_update(state, 0.1, 1, target=0.0, horizon=10)
  with pytest.raises(ValueError, match="`horizon` must be > 0"):
    K.adaptive_kl_update(state, 0.1, 1, target=0.1, horizon=-1)
  with pytest.raises(ValueError, match="`observed_kl` must be a scalar"):
    K.adaptive_kl_update(state, jnp.ones(3), 1, target=0.1, horizon=10)
