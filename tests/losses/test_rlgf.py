import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses.policy_gradient import ppo_clip_loss
from rljax.losses.rlgf import rlgf_masks, rlgf_rollin_lengths, rlgf_schedule

T = 7


def _right_padded(lens, width=T, offset=0):
  pos = np.arange(width)[None]
  lens = np.asarray(lens)[:, None]
  return jnp.asarray((pos >= offset) & (pos < offset + lens))


def _create_mask_row(n, row, width=T):
  """One row of tril's `RollinProcessor.create_mask` (before the Bernoulli(β) mix-in)."""
  length_masks = np.tril(np.ones((width, width)))
  if n < 2:
    return np.zeros(width, bool)
  return length_masks[: n - 1, :][row].astype(bool)


def test_masks_match_tril_rollin_processor_and_buffer():
  lens, ks, want_rollin = [], [], []
  for n in range(T + 1):
    for row in range(max(n - 1, 1)):
      lens.append(n)
      ks.append(row + 1 if n >= 2 else 0)
      want_rollin.append(_create_mask_row(n, row))
  mask = _right_padded(lens)
  rollin, update = rlgf_masks(jnp.asarray(ks), mask, mode="ppo_pp")
  want_rollin = np.stack(want_rollin)
  np.testing.assert_array_equal(rollin, want_rollin)
  masks = np.asarray(mask)
  # ppo_pp.py stores `~rollin_mask`, ppo.py trains on `masks * rollin_masks`.
  np.testing.assert_array_equal(update, masks & ~want_rollin)
  # aggrevated.py flips first (`rollin_mask = ~rollin_mask`), then the buffer flips again.
  _, update_agg = rlgf_masks(jnp.asarray(ks), mask, mode="aggrevated")
  np.testing.assert_array_equal(update_agg, masks & ~(~want_rollin))
  # The learner's tokens: disjoint from the guide's, and together they are the whole response.
  np.testing.assert_array_equal(np.asarray(update) | np.asarray(update_agg), masks)
  assert not np.any(np.asarray(update) & np.asarray(update_agg))


def test_rollin_counts_response_tokens_after_a_prompt():
  mask = _right_padded([4, 3], width=9, offset=3)  # 3 prompt positions, then the response
  rollin, update = rlgf_masks(jnp.array([2, 1]), mask, mode="ppo_pp")
  np.testing.assert_array_equal(np.flatnonzero(rollin[0]), [3, 4])
  np.testing.assert_array_equal(np.flatnonzero(update[0]), [5, 6])
  np.testing.assert_array_equal(np.flatnonzero(rollin[1]), [3])
  np.testing.assert_array_equal(np.flatnonzero(update[1]), [4, 5])


@pytest.mark.parametrize("beta", [0.6, 0.8, 1.0])
def test_rollin_length_distribution(beta):
  n_rep = 30_000
  lens = np.repeat([0, 1, 2, 5], n_rep)
  k = np.asarray(rlgf_rollin_lengths(jax.random.key(0), jnp.asarray(lens), beta=beta))
  assert k.dtype == np.int32
  assert np.all(k[lens < 2] == 0)
  tol = 5 * np.sqrt(0.25 / n_rep)
  for n in (2, 5):
    freq = np.bincount(k[lens == n], minlength=n) / n_rep
    exact = np.r_[1 - beta, np.full(n - 1, beta / (n - 1))]  # P(k=0) = 1−β, else U{1..n−1}
    np.testing.assert_allclose(freq, exact, atol=tol)
    # tril's sampler draws the same law (NumPy port: mix-in, then a uniform tril row).
    rng = np.random.default_rng(1)
    init = rng.choice([True, False], size=n_rep, p=[beta, 1 - beta])
    rows = rng.integers(0, n - 1, size=n_rep)
    port = np.where(init, rows + 1, 0)
    np.testing.assert_allclose(np.bincount(port, minlength=n) / n_rep, exact, atol=tol)


def test_beta_zero_is_plain_ppo():
  lens = jnp.array([7, 3, 1, 0, 5])
  mask = _right_padded(lens)
  k = rlgf_rollin_lengths(jax.random.key(3), lens, beta=0.0)
  np.testing.assert_array_equal(k, 0)
  rollin, update = rlgf_masks(k, mask, mode="ppo_pp")
  assert not np.any(rollin)
  np.testing.assert_array_equal(update, mask)  # every policy token is trained, as in PPO
  _, update_agg = rlgf_masks(k, mask, mode="aggrevated")
  assert not np.any(update_agg)  # AggreVaTeD without a roll-in has no learner token


def test_update_mask_gates_the_ppo_gradient():
  rng = np.random.default_rng(0)
  lens = jnp.array([7, 6, 4])
  mask = _right_padded(lens)
  _, update = rlgf_masks(jnp.array([3, 0, 2]), mask, mode="ppo_pp")
  logp, old = jnp.asarray(-rng.uniform(0.1, 2, (3, T))), jnp.asarray(-rng.uniform(0.1, 2, (3, T)))
  adv = jnp.asarray(rng.normal(size=(3, T)))
  g = jax.grad(lambda lp: ppo_clip_loss(lp, old, adv, update, clip_low=0.999, clip_high=100.0)[0])(logp)
  np.testing.assert_array_equal(np.asarray(g) != 0, np.asarray(update))  # no gradient on guide tokens


def test_schedules():
  it = jnp.arange(50)
  sched = np.asarray(jax.vmap(lambda i: rlgf_schedule(i, kind="d2lols", tau=20))(it))
  np.testing.assert_array_equal(sched, np.arange(50) >= 20)  # AggreVaTeD before τ, PPO++ from τ on
  keys = jax.random.split(jax.random.key(0), 20_000)
  frac = float(jnp.mean(jax.vmap(lambda k: rlgf_schedule(0, kind="lols", tau=0.8, key=k))(keys)))
  assert abs(frac - 0.8) < 5 * np.sqrt(0.16 / 20_000)
  f = jax.jit(lambda i: rlgf_schedule(i, kind="d2lols", tau=20))
  assert not bool(f(19)) and bool(f(20))


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: rlgf_rollin_lengths(jax.random.key(0), jnp.ones(3, int), beta=1.5), "beta"),
        (lambda: rlgf_rollin_lengths(jax.random.key(0), jnp.ones((3, 2), int), beta=0.5), "seq_lens"),
        (lambda: rlgf_masks(jnp.ones(3, int), jnp.ones((3, T), bool), mode="lols"), "mode"),
        (lambda: rlgf_masks(jnp.ones(2, int), jnp.ones((3, T), bool), mode="ppo_pp"), "rollin_len"),
        (lambda: rlgf_schedule(3, kind="lols", tau=0.8), "key"),
        (lambda: rlgf_schedule(3, kind="lols", tau=2.0, key=jax.random.key(0)), "tau"),
        (lambda: rlgf_schedule(3, kind="dagger", tau=2), "kind"),
    ],
)
def test_bad_inputs_raise(call, name):
  with pytest.raises(ValueError, match=f"`{name}`"):
    call()
