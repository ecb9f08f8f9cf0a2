"""The sort-free processors against their sort-based definitions, and the inverse-CDF draw against the
distribution it draws from (exact enumeration over a grid of uniforms)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import sampling
from rljax.ops.masks import top_k_mask, top_p_mask
from rljax.sampling import processors


def _sorted_top_p(x, p, min_keep=1):
  """The definition: descending stable order, keep rank r iff the mass before it is < p (or r < min_keep)."""
  order = jnp.argsort(-x, axis=-1, stable=True)
  probs = jnp.take_along_axis(jax.nn.softmax(x, axis=-1), order, axis=-1)
  cum = jnp.cumsum(probs, axis=-1)
  before = jnp.concatenate([jnp.zeros_like(cum[..., :1]), cum[..., :-1]], axis=-1)
  keep = (before < p) | (jnp.arange(x.shape[-1]) < min_keep) | (p >= 1)
  return jnp.take_along_axis(keep, jnp.argsort(order, axis=-1), axis=-1)


def _sorted_top_k(x, k):
  v = x.shape[-1]
  if k <= 0 or k >= v:
    return jnp.ones(x.shape, bool)
  return x >= jnp.sort(x, axis=-1)[..., v - k][..., None]


def _sorted_process(x, temperature, top_k, top_p, min_p):
  x = x / temperature
  x = jnp.where(_sorted_top_k(x, top_k), x, -jnp.inf)
  x = jnp.where(_sorted_top_p(x, top_p), x, -jnp.inf)
  x = jnp.where(x >= x.max(-1, keepdims=True) + np.log(max(min_p, 1e-38)), x, -jnp.inf) if min_p > 0 else x
  return jax.nn.log_softmax(x, axis=-1)


_top_p = jax.jit(top_p_mask, static_argnames="min_tokens_to_keep")
_top_k = jax.jit(top_k_mask)


def _random_logits(rng, v, kind):
  x = rng.normal(size=(6, v)).astype(np.float32) * rng.choice([0.05, 1.0, 8.0])
  if kind == "ties":
    x = np.round(x * 2) / 2
  elif kind == "masked":
    x[:, rng.permutation(v)[: v // 3]] = -np.inf
  elif kind == "underflow":  # probabilities that round to 0
    x[:, : v // 2] -= 200.0
  return jnp.asarray(x)


@pytest.mark.parametrize("kind", ["plain", "ties", "masked", "underflow"])
def test_masks_equal_the_sorted_definitions_on_random_logits(kind):
  rng = np.random.default_rng(["plain", "ties", "masked", "underflow"].index(kind))
  for v in (1, 2, 9, 97):
    x = _random_logits(rng, v, kind)
    for p in (1e-30, 0.1, 0.5, float(rng.uniform()), 0.9, 0.999, 1.0):
      for min_keep in (1, 3):
        np.testing.assert_array_equal(_top_p(x, p, min_tokens_to_keep=min_keep), _sorted_top_p(x, p, min_keep),
                                      err_msg=f"top-p v={v} p={p} min_keep={min_keep}")
    for k in (-1, 0, 1, 2, v // 2, v - 1, v, v + 3):
      np.testing.assert_array_equal(_top_k(x, k), _sorted_top_k(x, k), err_msg=f"top-k v={v} k={k}")


@pytest.mark.parametrize("scale", [0.2, 4.0])  # flat: searched over all V; peaked: among the top blocks
def test_masks_on_a_large_vocabulary(scale):
  v = 20000
  rng = np.random.default_rng(int(scale * 10))
  x = rng.normal(size=(3, v)).astype(np.float32) * scale
  x[0, 1000:1100] = x[0, 7]  # a hundred ties
  x[1, rng.permutation(v)[:5000]] = -np.inf
  x = jnp.asarray(x)
  for k in (1, 50, 64, 65, 3000):
    np.testing.assert_array_equal(_top_k(x, k), _sorted_top_k(x, k), err_msg=f"k={k}")
  # Against the definition in float64: over 10^4 terms the float32 running sum of the sorted reference
  # drifts by ~1e-7, so only tokens whose preceding mass lies that close to p may differ.
  x64 = np.asarray(x, np.float64)
  probs = np.exp(x64 - x64.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  order = np.argsort(-x64, axis=-1, kind="stable")
  rank = np.argsort(order, axis=-1)
  sorted_probs = np.take_along_axis(probs, order, -1)
  before = np.take_along_axis(np.cumsum(sorted_probs, -1) - sorted_probs, rank, -1)
  for p in (1e-9, 0.5, 0.9, 0.99):
    for min_keep in (1, 100):
      keep = np.asarray(_top_p(x, p, min_tokens_to_keep=min_keep))
      expect = (before < p) | (rank < min_keep)
      ambiguous = np.abs(before - p) < 1e-5
      np.testing.assert_array_equal(keep[~ambiguous], expect[~ambiguous], err_msg=f"p={p} min_keep={min_keep}")


def test_top_p_splits_ties_by_index_exactly():
  # Eight equal logits (probability 1/8 each, exact in float): the mass before the i-th is i/8.
  x = jnp.zeros((1, 8))
  for p, n in ((1e-9, 1), (0.125, 1), (0.126, 2), (0.5, 4), (0.51, 5), (0.875, 7), (0.9, 8)):
    keep = np.asarray(_top_p(x, p))[0]
    np.testing.assert_array_equal(keep, np.arange(8) < n, err_msg=f"p={p}")
  # Ties at the threshold after distinct larger logits, with −0 and +0 (one value) and a masked token.
  x = jnp.asarray([[0.0, -0.0, np.log(2.0), 0.0, -np.inf, -0.0, np.log(2.0) - 40, 0.0]])
  for p in (0.2, 0.3, 0.45, 0.5, 0.6, 0.8, 0.95, 0.999999):
    np.testing.assert_array_equal(_top_p(x, p), _sorted_top_p(x, p), err_msg=f"p={p}")
    np.testing.assert_array_equal(_top_p(x, p, min_tokens_to_keep=6), _sorted_top_p(x, p, 6), err_msg=f"p={p}")


@pytest.mark.parametrize("temperature, top_k, top_p, min_p", [
    (1.0, 0, 1.0, 0.0), (0.7, 5, 1.0, 0.0), (1.3, 0, 0.8, 0.0), (1.0, 0, 1.0, 0.2), (0.9, 20, 0.95, 0.02),
    (1.0, 200, 1e-9, 0.0), (2.0, 1, 1.0, 0.0), (0.5, 0, 0.999, 1.0)])
def test_processed_log_probs_equal_the_sorted_pipeline(temperature, top_k, top_p, min_p):
  rng = np.random.default_rng(top_k)
  params = sampling.sampling_params(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
  process = jax.jit(sampling.process_logits)
  for kind in ("plain", "ties", "masked"):
    x = _random_logits(rng, 97, kind)
    np.testing.assert_array_equal(process(x, params), _sorted_process(x, temperature, top_k, top_p, min_p))


def _enumerate(logits, grid):
  """Token counts of `draw` over u = (i + 1/2) / grid, i < grid: the exact distribution on that grid."""
  b, v = logits.shape
  u = (jnp.arange(grid) + 0.5) / grid
  rows = jnp.repeat(logits, grid, axis=0)
  tokens, logq = jax.jit(processors.draw)(rows, jnp.tile(u, b))
  counts = np.stack([np.bincount(np.asarray(t), minlength=v) for t in np.asarray(tokens).reshape(b, grid)])
  expect = np.asarray(jnp.take_along_axis(jax.nn.log_softmax(rows, -1), tokens[:, None], -1)[:, 0])
  np.testing.assert_allclose(np.asarray(logq), expect, atol=2e-6)
  return counts


@pytest.mark.parametrize("v", [7, 2000])  # one level, and blocks of a divisor of V near √V
def test_draw_inverts_the_cdf_exactly(v):
  rng = np.random.default_rng(v)
  x = rng.normal(size=(2, v)).astype(np.float32) * 3
  x[:, rng.permutation(v)[: v // 4]] = -np.inf
  x[1, 1] = x[1, 0] - 120  # probability that underflows to 0
  x = jnp.asarray(x)
  grid = 1 << 16
  counts = _enumerate(x, grid)
  probs = np.asarray(jax.nn.softmax(x, axis=-1), np.float64)
  assert counts[probs == 0].sum() == 0, "drew a token of probability 0"
  # Token j owns the u in [Σ_{i<j} p_i, Σ_{i≤j} p_i): ⌊p_j·grid⌋ or ⌈p_j·grid⌉ grid points (up to rounding).
  np.testing.assert_array_less(np.abs(counts / grid - probs), 1.0 / grid + 1e-6)


def test_draw_edges_and_greedy():
  x = jnp.asarray([[-jnp.inf, 1.0, 2.0, -jnp.inf, 2.0, -jnp.inf]])
  below_one = np.nextafter(np.float32(1), np.float32(0))
  tokens, _ = processors.draw(jnp.tile(x, (2, 1)), jnp.asarray([0.0, below_one]))
  np.testing.assert_array_equal(tokens, [1, 4])  # first and last token of positive probability
  greedy = sampling.sampling_params(greedy=True)
  token, logq = processors.sample(x, jnp.asarray([0.3]), greedy)
  assert int(token[0]) == 2 and float(logq[0]) == 0.0  # the first of the tied maxima, a point mass
