"""LiPO listwise losses: numpy loop references and the invariants of spec §5 (preference_rlhf.md)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses import registry
from rljax.losses.lipo import OBJECTIVES, _masked_logsumexp, lambda_weights, lipo_loss
from rljax.losses.preference import dpo_loss, hinge_loss

PAIRWISE = ("pair_logistic", "pair_hinge", "lambda")
BETA = 0.7


# ----------------------------------------------------------------------------- numpy references


def _softplus(x):
  return np.logaddexp(0.0, x)


def _logsumexp(x):
  m = np.max(x)
  return m + np.log(np.sum(np.exp(x - m)))


def _np_ranks(values):
  """1-based rank by values descending; ties to the lower index (stable sort)."""
  order = sorted(range(len(values)), key=lambda i: -values[i])
  ranks = np.empty(len(values), int)
  for r, i in enumerate(order):
    ranks[i] = r + 1
  return ranks


def _np_lambda_weights(s, psi):
  g = 2.0**psi - 1
  inv_d = 1 / np.log(1 + _np_ranks(s))
  n = len(s)
  return np.array([[abs(g[i] - g[j]) * abs(inv_d[i] - inv_d[j]) for j in range(n)] for i in range(n)])


def _np_list_loss(objective, s, psi, margin=1.0, delta=None):
  """One list of real items only (padding already dropped)."""
  n = len(s)
  if objective in PAIRWISE:
    if objective == "lambda" and delta is None:
      delta = _np_lambda_weights(s, psi)
    total = 0.0
    for i in range(n):
      for j in range(n):
        if psi[i] > psi[j]:
          d = s[i] - s[j]
          if objective == "pair_logistic":
            total += _softplus(-d)
          elif objective == "pair_hinge":
            total += max(0.0, margin - d)
          else:
            total += delta[i, j] * _softplus(-d)
    return total
  if objective == "list_mle":
    order = sorted(range(n), key=lambda i: -psi[i])  # Python's sort is stable
    ss = s[order]
    return -sum(ss[i] - _logsumexp(ss[i:]) for i in range(n))
  if objective == "softmax_ce":
    if n == 0 or psi.sum() == 0:
      return 0.0
    return -np.sum(psi / psi.sum() * (s - _logsumexp(s)))
  if objective == "point_mse":
    return np.sum((s - psi) ** 2)
  if objective == "point_sigmoid":
    return np.sum(psi * _softplus(-s) + (1 - psi) * _softplus(s))
  raise AssertionError(objective)


def np_lipo(objective, policy, ref, labels, mask, beta=BETA, margin=1.0):
  policy, ref, labels, mask = (np.asarray(a, np.float64) for a in (policy, ref, labels, mask))
  out = []
  for p, r, y, m in zip(policy, ref, labels, mask.astype(bool)):
    out.append(_np_list_loss(objective, beta * (p[m] - r[m]), y[m], margin))
  return np.array(out)


def np_metrics(policy, ref, labels, mask, beta=BETA):
  ndcgs, correct, gaps, n_pairs = [], 0, 0.0, 0
  for p, r, y, m in zip(policy, ref, labels, np.asarray(mask, bool)):
    s, psi = beta * (p[m] - r[m]), y[m]
    g = 2.0**psi - 1
    dcg = np.sum(g / np.log2(1 + _np_ranks(s)))
    ideal = np.sum(np.sort(g)[::-1] / np.log2(2 + np.arange(len(g))))
    ndcgs.append(dcg / ideal if ideal > 0 else 0.0)
    for i in range(len(s)):
      for j in range(len(s)):
        if psi[i] > psi[j]:
          n_pairs += 1
          correct += s[i] > s[j]
          gaps += s[i] - s[j]
  n = max(n_pairs, 1)
  return {"ndcg_at_k": np.mean(ndcgs), "pair_acc": correct / n, "mean_score_gap": gaps / n}


# ----------------------------------------------------------------------------- data


def make_batch(seed, b=4, k=4, masked_per_row=1, ties=False):
  """Random lists with distinct scores; each row has `masked_per_row` padding items at random places.

  Most tests share the default [4, 4] shape so that the jitted helpers below compile once.
  """
  rng = np.random.default_rng(seed)
  policy = rng.normal(size=(b, k)) * 2 - 5
  ref = rng.normal(size=(b, k)) * 2 - 5
  labels = rng.uniform(size=(b, k))
  if ties:
    labels = np.round(labels * 2) / 2  # values in {0, 0.5, 1}
  mask = np.ones((b, k), bool)
  for row in range(b):
    mask[row, rng.choice(k, masked_per_row, replace=False)] = False
  return policy, ref, labels, mask


def f32(*arrays):
  return tuple(jnp.asarray(a, jnp.float32) if a.dtype != bool else jnp.asarray(a) for a in arrays)


def loss_fn(objective, reduction="none", beta=BETA, **kw):
  return functools.partial(lipo_loss, beta=beta, objective=objective, reduction=reduction, **kw)


# One compiled function evaluates every objective: XLA compiles dominate the test time on CPU.


def all_losses(policy, ref, labels, mask=None, *, reduction="none", hinge_margin=1.0):
  return {o: lipo_loss(policy, ref, labels, mask, beta=BETA, objective=o, reduction=reduction,
                       hinge_margin=hinge_margin) for o in OBJECTIVES}


def all_grads(policy, ref, labels, mask=None):
  """{objective: (∂L/∂policy, ∂L/∂ref)} of the batch-summed loss."""
  def grads(o):
    loss = lambda p, r: lipo_loss(p, r, labels, mask, beta=BETA, objective=o, reduction="sum")[0]
    return jax.grad(loss, (0, 1))(policy, ref)

  return {o: grads(o) for o in OBJECTIVES}


jit_all_losses = jax.jit(all_losses, static_argnames="reduction")  # hinge_margin is traced
jit_all_grads = jax.jit(all_grads)


def close(actual, expected, rtol=1e-5, atol=1e-6, msg=""):
  np.testing.assert_allclose(np.asarray(actual), expected, rtol=rtol, atol=atol, err_msg=msg)


# ----------------------------------------------------------------------------- tests


def _reference_batch():
  policy, ref, labels, mask = make_batch(0, b=4, k=4, ties=False)
  labels[3, :] = [0.2, 0.8, 0.8, 0.5]  # a tied pair (list_mle keeps list order)
  mask[3, :] = [True, True, True, False]
  return policy, ref, labels, mask


def test_matches_numpy_reference():
  policy, ref, labels, mask = _reference_batch()
  out = jit_all_losses(*f32(policy, ref, labels, mask), hinge_margin=1.3)
  expected_metrics = np_metrics(policy, ref, labels, mask)
  for o, (loss, metrics) in out.items():
    close(loss, np_lipo(o, policy, ref, labels, mask, margin=1.3), rtol=2e-5, atol=2e-5, msg=o)
    for name, value in expected_metrics.items():
      close(metrics[name], value, msg=f"{o}/{name}")


def test_jit_equals_eager():
  # Eager dispatch compiles every primitive once, so one eager pass over all objectives is the
  # slowest step here; it is checked against both the jitted run and the numpy reference.
  policy, ref, labels, mask = _reference_batch()
  args = f32(policy, ref, labels, mask)
  eager = all_losses(*args, hinge_margin=1.3)
  jitted = jit_all_losses(*args, hinge_margin=1.3)
  for o in OBJECTIVES:
    jax.tree.map(lambda a, b: close(a, b, rtol=1e-6, atol=1e-7, msg=o), eager[o], jitted[o])
    close(eager[o][0], np_lipo(o, policy, ref, labels, mask, margin=1.3), rtol=2e-5, atol=2e-5, msg=o)


def test_reductions():
  # Every objective ends in the same `checks.reduce_examples` call, so one objective suffices.
  args = f32(*make_batch(1))
  per = np.asarray(jit_all_losses(*args)["lambda"][0])
  assert per.shape == (4,)
  close(jax.jit(loss_fn("lambda", reduction="mean"))(*args)[0], np.mean(per), rtol=1e-6)
  close(jax.jit(loss_fn("lambda", reduction="sum"))(*args)[0], np.sum(per), rtol=1e-6)


def _k2_batch(seed):
  rng = np.random.default_rng(seed)
  policy, ref = rng.normal(size=(4, 2)) - 3, rng.normal(size=(4, 2)) - 3
  labels = rng.uniform(size=(4, 2))
  w, rows = np.argmax(labels, axis=1), np.arange(4)
  assert set(w) == {0, 1}  # the chosen item sits at either position
  dpo, _ = jax.jit(functools.partial(dpo_loss, beta=BETA, reduction="none"))(
      *f32(policy[rows, w], policy[rows, 1 - w], ref[rows, w], ref[rows, 1 - w]))
  return f32(policy, ref, labels), labels, np.asarray(dpo)


def test_k2_pair_logistic_and_list_mle_equal_dpo():
  args, _, dpo = _k2_batch(2)
  out = jit_all_losses(*args)
  for o in ("pair_logistic", "list_mle"):
    close(out[o][0], dpo, rtol=1e-5, msg=o)


def test_k2_lambda_is_weighted_dpo():
  args, labels, dpo = _k2_batch(3)
  delta = np.abs(2.0 ** labels[:, 0] - 2.0 ** labels[:, 1]) * abs(1 / math.log(2) - 1 / math.log(3))
  close(jit_all_losses(*args)["lambda"][0], delta * dpo, rtol=1e-5)


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "tied"])
def test_permutation_equivariance(ties):
  policy, ref, labels, mask = make_batch(4, b=4, k=6, masked_per_row=2, ties=ties)
  rng = np.random.default_rng(5)
  perm = np.stack([rng.permutation(6) for _ in range(4)])
  shuffled = [np.take_along_axis(a, perm, axis=1) for a in (policy, ref, labels, mask)]
  out, out_p = jit_all_losses(*f32(policy, ref, labels, mask)), jit_all_losses(*f32(*shuffled))
  # list_mle breaks label ties by list order, so it is equivariant only for distinct labels.
  for o in OBJECTIVES if not ties else [o for o in OBJECTIVES if o != "list_mle"]:
    jax.tree.map(lambda a, b: close(a, b, msg=o), out_p[o], out[o])


def test_tied_labels_contribute_zero():
  policy, ref, _, mask = make_batch(6)
  out = jit_all_losses(*f32(policy, ref, np.full((4, 4), 0.6), mask))
  for o in PAIRWISE:
    assert np.all(np.asarray(out[o][0]) == 0.0), o
  assert np.all(np.asarray(out["point_mse"][0]) > 0)  # pointwise objectives still see the list


def test_tied_pair_is_skipped():
  # ψ = [0.9, 0.4, 0.4, pad]: only (0, 1) and (0, 2) are pairs; the tied (1, 2) must add nothing.
  policy, ref, _, _ = make_batch(7)
  labels = np.tile([0.9, 0.4, 0.4, 0.0], (4, 1))
  mask = np.tile([True, True, True, False], (4, 1))
  out = jit_all_losses(*f32(policy, ref, labels, mask))
  for o, pair_fn in (("pair_logistic", dpo_loss), ("pair_hinge", hinge_loss)):
    fn = jax.jit(functools.partial(pair_fn, beta=BETA, reduction="none"))
    expected = sum(np.asarray(fn(*f32(policy[:, 0], policy[:, j], ref[:, 0], ref[:, j]))[0]) for j in (1, 2))
    close(out[o][0], expected, rtol=1e-5, msg=o)


def test_padded_list_equals_unpadded():
  policy, ref, labels, _ = make_batch(8, masked_per_row=0)
  # Scores near −300: exp(0 − max) of a zero-filled pad overflows float32 unless it is kept out of exp.
  policy[0] -= 300 / BETA
  real_cols, pad_cols = [0, 2, 3, 4], [1, 5]  # padding in the middle and at the end

  def pad(a, fill):
    out = np.full((4, 6), fill, a.dtype)
    out[:, real_cols] = a
    return out

  # Non-finite padding: any leak into the loss, metrics or gradients shows up as NaN.
  unpadded = (policy, ref, labels, np.ones_like(labels, bool))
  padded = (pad(policy, np.nan), pad(ref, -np.inf), pad(labels, np.inf), pad(unpadded[3], False))
  out, grads = jit_all_losses(*f32(*unpadded)), jit_all_grads(*f32(*unpadded))
  out_p, grads_p = jit_all_losses(*f32(*padded)), jit_all_grads(*f32(*padded))
  for o in OBJECTIVES:
    jax.tree.map(lambda a, b: close(a, b, rtol=1e-6, msg=o), out_p[o], out[o])
    for g, g_p in zip(grads[o], grads_p[o]):
      close(np.asarray(g_p)[:, real_cols], g, rtol=1e-6, msg=o)
      assert np.all(np.asarray(g_p)[:, pad_cols] == 0), o


def test_all_masked_row_is_zero_with_finite_grads():
  policy, ref, labels, mask = make_batch(9)
  mask[1] = False
  policy[1, 0] = np.nan
  args = f32(policy, ref, labels, mask)
  out, grads = jit_all_losses(*args), jit_all_grads(*args)
  for o in OBJECTIVES:
    loss, metrics = out[o]
    assert float(loss[1]) == 0.0, o
    close(loss, np_lipo(o, policy, ref, labels, mask), rtol=2e-5, atol=2e-5, msg=o)
    for g in grads[o]:
      assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[1] == 0), o
    assert all(np.isfinite(v) for v in metrics.values()), o


def test_grads_match_finite_differences(x64):
  policy, ref, labels, mask = make_batch(10, b=2)
  grads = jit_all_grads(*(jnp.asarray(a) for a in (policy, ref, labels, mask)))
  # Δ is fixed at the base point: the numpy reference gets it explicitly, so its finite difference
  # is the gradient of Σ Δ_ij·ℓ(s_i − s_j) with Δ constant.
  deltas = [_np_lambda_weights(BETA * (p[m] - r[m]), y[m]) for p, r, y, m in zip(policy, ref, labels, mask)]

  def np_total(o, p):
    return sum(_np_list_loss(o, BETA * (p[b][mask[b]] - ref[b][mask[b]]), labels[b][mask[b]], delta=deltas[b])
               for b in range(2))

  eps = 1e-6
  for o in OBJECTIVES:
    g_policy, g_ref = grads[o]
    assert g_policy.dtype == jnp.float64
    fd = np.zeros_like(policy)
    for idx in np.ndindex(policy.shape):
      hi, lo = policy.copy(), policy.copy()
      hi[idx] += eps
      lo[idx] -= eps
      fd[idx] = (np_total(o, hi) - np_total(o, lo)) / (2 * eps)
    close(g_policy, fd, rtol=1e-6, atol=1e-8, msg=o)
    close(g_ref, -fd, rtol=1e-6, atol=1e-8, msg=o)
    assert np.all(np.asarray(g_policy)[~mask] == 0), o


def test_masked_logsumexp_is_stable():
  x = np.array([[-300.0, 0.0, -310.0, 50.0], [1.0, 2.0, 3.0, 4.0], [-500.0, 7.0, 9.0, 1e30]])
  mask = np.array([[True, False, True, False], [False] * 4, [True, True, True, False]])
  lse_fn = functools.partial(_masked_logsumexp, mask=mask)
  fn = jax.jit(lambda x: (lse_fn(x), jax.grad(lambda x: jnp.sum(lse_fn(x)))(x)))
  lse, grad = fn(jnp.asarray(x, jnp.float32))
  expected = [_logsumexp(row[m]) if m.any() else 0.0 for row, m in zip(x, mask)]
  close(lse, expected, rtol=1e-6)
  assert float(lse[1]) == 0.0  # an empty row is 0, not −inf
  assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad)[~mask] == 0)
  close(np.asarray(grad)[0, [0, 2]], np.exp(x[0, [0, 2]] - expected[0]), rtol=1e-5)


def test_softmax_ce_zero_label_mass_is_zero():
  policy, ref, _, mask = make_batch(16)
  labels = np.where(np.arange(4)[:, None] == 0, 0.0, np.random.default_rng(0).uniform(size=(4, 4)))
  args = f32(policy, ref, labels, mask)
  loss, grads = jit_all_losses(*args)["softmax_ce"][0], jit_all_grads(*args)["softmax_ce"]
  assert float(loss[0]) == 0.0
  close(loss, np_lipo("softmax_ce", policy, ref, labels, mask), rtol=2e-5)
  for g in grads:
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[0] == 0)


def test_lambda_weights_properties():
  rng = np.random.default_rng(11)
  scores, labels = rng.normal(size=5), rng.uniform(size=5)
  mask = np.array([True, False, True, True, False])
  scores[1] = 100.0  # a masked item with the top score must not push the others down
  delta = np.asarray(jax.jit(lambda_weights)(*f32(scores, labels, mask)))
  close(delta, delta.T, rtol=0, atol=0)
  assert np.all(np.diag(delta) == 0)
  assert np.all(delta[~mask] == 0) and np.all(delta[:, ~mask] == 0)
  real = np.flatnonzero(mask)
  close(delta[np.ix_(real, real)], _np_lambda_weights(scores[real], labels[real]))
  assert np.all(delta[np.ix_(real, real)][~np.eye(3, dtype=bool)] > 0)


def test_lambda_weights_vmap_and_stop_gradient():
  policy, ref, labels, mask = f32(*make_batch(12, b=3, k=5, masked_per_row=2))
  scores = policy - ref

  def fn(s, y):
    return (jax.vmap(lambda_weights)(s, y, mask), lambda_weights(s, y, mask),
            jax.grad(lambda s, y: jnp.sum(lambda_weights(s, y, mask)), (0, 1))(s, y))

  batched, broadcast, (g_scores, g_labels) = jax.jit(fn)(scores, labels)
  assert batched.shape == (3, 5, 5)
  close(batched, broadcast, rtol=1e-6)
  for b in range(3):
    m = np.asarray(mask[b])
    expected = _np_lambda_weights(np.asarray(scores[b])[m], np.asarray(labels[b])[m])
    close(np.asarray(batched[b])[np.ix_(m, m)], expected)
  assert np.all(g_scores == 0) and np.all(g_labels == 0)


def test_lambda_weights_tied_scores_use_list_order():
  # At initialisation π_θ = π_ref, so all s are 0: ranks follow list order and Δ stays nonzero.
  labels = np.array([0.1, 0.9, 0.5])
  delta = np.asarray(jax.jit(lambda_weights)(jnp.zeros(3), jnp.asarray(labels), jnp.ones(3, bool)))
  close(delta, _np_lambda_weights(np.zeros(3), labels), rtol=1e-6)
  assert delta[0, 1] > 0


def test_metrics_values():
  labels = jnp.array([[0.0, 1.0, 0.5], [0.2, 0.2, 0.2]])
  ref = jnp.zeros((2, 3))
  perfect = jnp.array([[1.0, 3.0, 2.0], [0.0, 1.0, 2.0]])
  fn = jax.jit(functools.partial(lipo_loss, beta=1.0))
  _, m = fn(perfect, ref, labels)
  close(m["ndcg_at_k"], 1.0, rtol=1e-6)  # row 2: gains tie, so any order is ideal
  close(m["pair_acc"], 1.0)
  close(m["mean_score_gap"], (2 + 1 + 1) / 3, rtol=1e-6)
  _, m = fn(-perfect, ref, labels)
  assert float(m["ndcg_at_k"]) < 1.0 and float(m["pair_acc"]) == 0.0
  _, m = fn(perfect, ref, jnp.zeros((2, 3)))
  assert float(m["ndcg_at_k"]) == 0.0 and float(m["pair_acc"]) == 0.0


def test_dtypes(x64):
  policy, ref, labels, mask = make_batch(14)
  fn = jax.jit(loss_fn("lambda", reduction="mean"))
  loss, metrics = fn(policy, ref, labels, mask)
  assert loss.dtype == jnp.float64 and metrics["ndcg_at_k"].dtype == jnp.float64
  half = [jnp.asarray(a, jnp.bfloat16) for a in (policy, ref, labels)]
  loss, _ = fn(*half, mask)
  assert loss.dtype == jnp.float32


def test_bad_inputs_raise():
  # Validation runs at trace time, before any computation, so these calls are cheap.
  policy, ref, labels, mask = f32(*make_batch(15))
  with pytest.raises(ValueError, match="ref_logps"):
    lipo_loss(policy, ref[:, :3], labels, beta=BETA)
  with pytest.raises(ValueError, match="labels"):
    lipo_loss(policy, ref, labels[:2], beta=BETA)
  with pytest.raises(ValueError, match="list_mask"):
    lipo_loss(policy, ref, labels, mask[:, :2], beta=BETA)
  with pytest.raises(ValueError, match="policy_logps.*rank 2"):
    lipo_loss(policy[0], ref[0], labels[0], beta=BETA)
  for beta in (0.0, -1.0):
    with pytest.raises(ValueError, match="beta"):
      lipo_loss(policy, ref, labels, beta=beta)
  with pytest.raises(ValueError, match="objective"):
    lipo_loss(policy, ref, labels, beta=BETA, objective="lambdaloss")
  with pytest.raises(ValueError, match="hinge_margin"):
    lipo_loss(policy, ref, labels, beta=BETA, objective="pair_hinge", hinge_margin=-1.0)
  with pytest.raises(ValueError, match="reduction"):
    jax.jit(loss_fn("lambda", reduction="max"))(policy, ref, labels)
  with pytest.raises(ValueError, match="labels"):
    lambda_weights(policy[0], labels[0, :3], mask[0])


def test_registered():
  assert registry.get("lipo") is lipo_loss
