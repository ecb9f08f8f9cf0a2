
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses import registry
from rljax.losses.reward_model import bt_reward_loss, polar_loss

B = 6


def _data(seed=0, dtype=np.float32):
  rng = np.random.default_rng(seed)
  return tuple(jnp.asarray(rng.normal(scale=2.0, size=B).astype(dtype)) for _ in range(3))


def test_registered():
  assert registry.get("bt_reward") is bt_reward_loss
  assert registry.get("polar") is polar_loss


def test_bt_is_softplus_of_negative_margin():
  c, r, _ = _data()
  per, m = bt_reward_loss(c, r, reduction="none")
  np.testing.assert_allclose(per, np.logaddexp(0, -(np.asarray(c) - np.asarray(r))), rtol=1e-6)
  np.testing.assert_allclose(m["reward_acc"], np.mean(np.asarray(c) > np.asarray(r)))
  np.testing.assert_allclose(m["margin_mean"], np.mean(c - r), rtol=1e-6)
  np.testing.assert_allclose(m["chosen_reward"], np.mean(c), rtol=1e-6)
  np.testing.assert_allclose(m["rejected_reward"], np.mean(r), rtol=1e-6)


def test_swap_gives_softplus_of_positive_margin():
  c, r, _ = _data()
  per, m = bt_reward_loss(r, c, reduction="none")
  np.testing.assert_allclose(per, np.logaddexp(0, np.asarray(c) - np.asarray(r)), rtol=1e-6)
  _, m_cr = bt_reward_loss(c, r)
  np.testing.assert_allclose(m["reward_acc"], 1 - m_cr["reward_acc"])


def test_margin():
  c, r, margin = _data()
  margin = jnp.abs(margin)
  per, m = bt_reward_loss(c, r, margin=margin, reduction="none")
  np.testing.assert_allclose(per, np.logaddexp(0, -(c - r - margin)), rtol=1e-6)
  # accuracy and margin metrics describe the rewards, not the margin-shifted logits
  np.testing.assert_allclose(m["margin_mean"], np.mean(c - r), rtol=1e-6)
  np.testing.assert_allclose(m["reward_acc"], np.mean(np.asarray(c) > np.asarray(r)))
  g = jax.grad(lambda mg: bt_reward_loss(c, r, margin=mg)[0])(margin)
  np.testing.assert_array_equal(g, 0.0)


def test_gradient_into_both_rewards():
  c, r, _ = _data()
  gc, gr = jax.grad(lambda c, r: bt_reward_loss(c, r, reduction="sum")[0], argnums=(0, 1))(c, r)
  sig = 1 / (1 + np.exp(np.asarray(c - r)))
  np.testing.assert_allclose(gc, -sig, rtol=1e-5)
  np.testing.assert_allclose(gr, sig, rtol=1e-5)


def test_polar_equals_bt():
  c, r, _ = _data()
  for reduction in ("mean", "sum", "none"):
    lp, mp = polar_loss(c, r, reduction=reduction)
    lb, mb = bt_reward_loss(c, r, reduction=reduction)
    np.testing.assert_array_equal(lp, lb)
    for k in mb:
      np.testing.assert_array_equal(mp[k], mb[k])


@pytest.mark.parametrize("with_margin", [False, True])
def test_jit_matches_eager(with_margin, maybe_jit):
  c, r, margin = _data()
  kw = dict(margin=margin) if with_margin else {}
  loss, m = maybe_jit(bt_reward_loss)(c, r, **kw)
  loss_ref, m_ref = bt_reward_loss(c, r, **kw)
  np.testing.assert_allclose(loss, loss_ref, rtol=1e-6)
  for k in m_ref:
    np.testing.assert_allclose(m[k], m_ref[k], rtol=1e-6, err_msg=k)
  np.testing.assert_allclose(maybe_jit(polar_loss)(c, r)[0], polar_loss(c, r)[0], rtol=1e-6)


def test_large_margins_are_finite(x64):
  c = jnp.array([1e3, -1e3])
  r = jnp.zeros(2)
  per, _ = bt_reward_loss(c, r, reduction="none")
  assert per.dtype == jnp.float64
  np.testing.assert_allclose(per, [0.0, 1e3], atol=1e-12)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda c, r, m: bt_reward_loss(c, r[:3]), "rejected_rewards"),
        (lambda c, r, m: bt_reward_loss(c[None], r[None]), "chosen_rewards"),
        (lambda c, r, m: bt_reward_loss(c, r, margin=m[:2]), "margin"),
        (lambda c, r, m: bt_reward_loss(c, r, reduction="avg"), "reduction"),
        (lambda c, r, m: polar_loss(c, r[:3]), "rejected_rewards"),
    ],
)
def test_bad_inputs_raise(call, name):
  with pytest.raises(ValueError, match=f"`{name}`"):
    call(*_data())
