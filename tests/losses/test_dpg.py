import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses import registry
from rljax.losses.dpg import dpg_loss

K = 5
COUNTS = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # π_θ = COUNTS / 15 at θ = log COUNTS


def _target(seed=0):
  """A normalised target P over K outcomes and its log."""
  rng = np.random.default_rng(seed)
  log_p = jax.nn.log_softmax(jnp.asarray(rng.normal(size=K)))
  return log_p


def _forward_kl(theta, log_p):
  return jnp.sum(jnp.exp(log_p) * (log_p - jax.nn.log_softmax(theta)))


def test_registered():
  assert registry.get("dpg") is dpg_loss


def test_expected_gradient_equals_forward_kl_gradient_unnormalised_weights(x64):
  """E_{y~π}[∇ℓ(y)] by exact enumeration, q = π, normalised target: = ∇ KL(P‖π_θ)."""
  log_p = _target()
  theta = jnp.asarray(np.random.default_rng(1).normal(size=K))
  ys = jnp.arange(K)

  def expected_surrogate(th):
    logp = jax.nn.log_softmax(th)
    q = jax.lax.stop_gradient(logp[ys])
    per, _ = dpg_loss(logp[ys], log_p[ys], q, self_normalize=False, reduction="none")
    return jnp.sum(jax.lax.stop_gradient(jnp.exp(logp)) * per)

  g = jax.jit(jax.grad(expected_surrogate))(theta)
  g_kl = jax.grad(_forward_kl)(theta, log_p)
  np.testing.assert_allclose(g, g_kl, rtol=1e-10, atol=1e-12)
  assert not np.allclose(g_kl, 0.0, atol=1e-3)


@pytest.mark.parametrize("log_z", [0.0, 7.3])
def test_self_normalised_gradient_on_exact_multiset_sample(x64, log_z):
  """Batch = every outcome y repeated COUNTS[y] times, i.e. exactly distributed as q = π_θ.

  The self-normalised estimator is then exact, for any unnormalised target P̃ = Z·P.
  """
  log_p = _target()
  theta = jnp.log(jnp.asarray(COUNTS))
  ys = jnp.repeat(jnp.arange(K), COUNTS.astype(int))

  def surrogate(th):
    logp = jax.nn.log_softmax(th)[ys]
    return dpg_loss(logp, log_p[ys] + log_z, jax.lax.stop_gradient(logp))

  g, metrics = jax.jit(jax.grad(surrogate, has_aux=True))(theta)
  np.testing.assert_allclose(g, jax.grad(_forward_kl)(theta, log_p), rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(metrics["log_z"], log_z, atol=1e-10)
  np.testing.assert_allclose(metrics["kl_forward"], _forward_kl(theta, log_p), rtol=1e-10)
  np.testing.assert_allclose(metrics["mean_weight"], 1.0, rtol=1e-12)
  w = np.exp(np.asarray(log_p))[ys] / (COUNTS / COUNTS.sum())[ys]  # per-sample P/π
  np.testing.assert_allclose(metrics["ess_frac"], w.sum() ** 2 / (w**2).sum() / len(ys), rtol=1e-10)


def test_unnormalised_weights_and_metrics():
  rng = np.random.default_rng(2)
  logp, target, proposal = (jnp.asarray(rng.normal(size=4).astype(np.float32)) for _ in range(3))
  per, m = dpg_loss(logp, target, proposal, self_normalize=False, reduction="none")
  w = np.exp(np.asarray(target - proposal))
  np.testing.assert_allclose(per, -w * np.asarray(logp), rtol=1e-5)
  np.testing.assert_allclose(m["mean_weight"], w.mean(), rtol=1e-5)
  np.testing.assert_allclose(m["log_z"], np.log(w.mean()), rtol=1e-5)
  np.testing.assert_allclose(m["ess_frac"], w.sum() ** 2 / (w**2).sum() / 4, rtol=1e-5)
  np.testing.assert_allclose(m["kl_forward"], np.mean(w * np.asarray(target - logp)), rtol=1e-5)
  per_sn, _ = dpg_loss(logp, target, proposal, reduction="none")
  np.testing.assert_allclose(per_sn, -4 * w / w.sum() * np.asarray(logp), rtol=1e-5)
  loss_sum = dpg_loss(logp, target, proposal, reduction="sum")[0]
  np.testing.assert_allclose(loss_sum, np.sum(per_sn), rtol=1e-5)


def test_gradient_only_into_policy_logps():
  rng = np.random.default_rng(3)
  args = tuple(jnp.asarray(rng.normal(size=4).astype(np.float32)) for _ in range(3))
  for sn in (True, False):
    g = jax.grad(lambda *a: dpg_loss(*a, self_normalize=sn)[0], argnums=(0, 1, 2))(*args)
    np.testing.assert_array_equal(g[1], 0.0)
    np.testing.assert_array_equal(g[2], 0.0)
    assert np.all(np.asarray(g[0]) < 0)  # every sample's likelihood is pushed up


def test_large_log_weights_do_not_overflow():
  logp = jnp.array([-1.0, -2.0, -3.0, -4.0])
  target = jnp.array([500.0, 480.0, 0.0, 1.0])
  loss, m = dpg_loss(logp, target, jnp.zeros(4))
  assert np.isfinite(loss) and all(np.isfinite(v) for v in m.values())
  np.testing.assert_allclose(m["ess_frac"], 1 / 4, rtol=1e-5)  # one weight dominates


@pytest.mark.parametrize("self_normalize", [True, False])
def test_jit_matches_eager(self_normalize, maybe_jit):
  rng = np.random.default_rng(4)
  args = tuple(jnp.asarray(rng.normal(size=4).astype(np.float32)) for _ in range(3))
  f = maybe_jit(functools.partial(dpg_loss, self_normalize=self_normalize))
  loss, m = f(*args)
  loss_ref, m_ref = dpg_loss(*args, self_normalize=self_normalize)
  np.testing.assert_allclose(loss, loss_ref, rtol=1e-6)
  for k in m_ref:
    np.testing.assert_allclose(m[k], m_ref[k], rtol=1e-6, err_msg=k)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda a: dpg_loss(a, a[:2], a), "target_unnorm_logps"),
        (lambda a: dpg_loss(a, a, a[:2]), "proposal_logps"),
        (lambda a: dpg_loss(a[None], a[None], a[None]), "seq_logps"),
        (lambda a: dpg_loss(a[:0], a[:0], a[:0]), "seq_logps"),
        (lambda a: dpg_loss(a, a, a, self_normalize="yes"), "self_normalize"),
        (lambda a: dpg_loss(a, a, a, reduction="avg"), "reduction"),
    ],
)
def test_bad_inputs_raise(call, name):
  with pytest.raises(ValueError, match=f"`{name}`"):
    call(jnp.zeros(4))
