"""k-means clustering in JAX (k-means++ seeding, Lloyd iterations), vmappable over seeds.

LSPO (Xu et al., "Learning Strategic Language Agents in the Werewolf Game", ICML 2025) clusters the
embeddings of candidate utterances with k-means into a discrete latent strategy space. Points carry
optional non-negative weights, so a fixed-shape buffer with zero-weight padding clusters like the
subset of its weighted points.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class KMeansResult(NamedTuple):
  centroids: jax.Array  # f[K, D]
  assignments: jax.Array  # i[N]
  inertia: jax.Array  # f[], final objective
  inertia_curve: jax.Array  # f[iters + 1]: objective after seeding and after each Lloyd step


def _check(x, k, weights):
  if jnp.ndim(x) != 2:
    raise ValueError(f"`x` must be [N, D], got shape {jnp.shape(x)}.")
  if not 1 <= k <= x.shape[0]:
    raise ValueError(f"`k` must be in [1, N={x.shape[0]}], got {k}.")
  if weights is not None and jnp.shape(weights) != (x.shape[0],):
    raise ValueError(f"`weights` must have shape ({x.shape[0]},), got {jnp.shape(weights)}.")
  return jnp.ones(x.shape[0], x.dtype) if weights is None else jnp.asarray(weights, x.dtype)


def squared_distances(x: jax.Array, centroids: jax.Array) -> jax.Array:
  """d²(n, k) = ‖x_n − c_k‖², clipped at 0 against cancellation: `f[N, K]`."""
  d2 = jnp.sum(x**2, -1)[:, None] - 2 * x @ centroids.T + jnp.sum(centroids**2, -1)[None, :]
  return jnp.maximum(d2, 0.0)


def assign(x: jax.Array, centroids: jax.Array) -> jax.Array:
  """a(n) = argmin_k ‖x_n − c_k‖²."""
  return jnp.argmin(squared_distances(x, centroids), axis=-1)


def inertia(x: jax.Array, centroids: jax.Array, weights: jax.Array | None = None) -> jax.Array:
  """J = Σ_n w_n min_k ‖x_n − c_k‖²."""
  w = _check(x, centroids.shape[0], weights) if weights is not None else 1.0
  return jnp.sum(w * jnp.min(squared_distances(x, centroids), -1))


def kmeans_plusplus(key: jax.Array, x: jax.Array, k: int, weights: jax.Array | None = None) -> jax.Array:
  """k-means++ seeding (Arthur & Vassilvitskii 2007): c_1 ~ w, then c_j ~ w_n·min_{l<j} ‖x_n − c_l‖²."""
  w = _check(x, k, weights)
  keys = jax.random.split(key, k)
  first = x[jax.random.choice(keys[0], x.shape[0], p=w / jnp.sum(w))]
  cents = jnp.tile(first, (k, 1))

  def body(j, cents):
    d2 = jnp.min(jnp.where(jnp.arange(k) < j, squared_distances(x, cents), jnp.inf), -1)
    p = w * d2
    # All weighted points coincide with centroids (fewer distinct points than k): fall back to w.
    p = jnp.where(jnp.sum(p) > 0, p, w)
    return cents.at[j].set(x[jax.random.choice(keys[j], x.shape[0], p=p / jnp.sum(p))])

  return jax.lax.fori_loop(1, k, body, cents)


def lloyd_step(x: jax.Array, centroids: jax.Array, weights: jax.Array) -> jax.Array:
  """c_k ← Σ_{a(n)=k} w_n x_n / Σ_{a(n)=k} w_n; an empty cluster keeps its centroid."""
  onehot = jax.nn.one_hot(assign(x, centroids), centroids.shape[0], dtype=x.dtype) * weights[:, None]
  mass = jnp.sum(onehot, 0)
  means = (onehot.T @ x) / jnp.where(mass > 0, mass, 1.0)[:, None]
  return jnp.where((mass > 0)[:, None], means, centroids)


def kmeans(key: jax.Array, x: jax.Array, k: int, *, iters: int = 50,
           weights: jax.Array | None = None) -> KMeansResult:
  """Lloyd's algorithm from a k-means++ seeding, `iters` steps in a `fori_loop`.

  Minimises J(c) = Σ_n w_n min_k ‖x_n − c_k‖²; each step (assign, then re-centre) does not increase J.
  """
  w = _check(x, k, weights)
  if iters < 0:
    raise ValueError(f"`iters` must be >= 0, got {iters}.")
  cents = kmeans_plusplus(key, x, k, w)
  curve = jnp.zeros(iters + 1, x.dtype).at[0].set(inertia(x, cents, w))

  def body(t, carry):
    cents, curve = carry
    cents = lloyd_step(x, cents, w)
    return cents, curve.at[t + 1].set(inertia(x, cents, w))

  cents, curve = jax.lax.fori_loop(0, iters, body, (cents, curve))
  return KMeansResult(cents, assign(x, cents), curve[-1], curve)
