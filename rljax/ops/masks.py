"""Token masks over the vocabulary and the sequence.

* `top_p_mask`: the nucleus (smallest most-likely set with mass ≥ p) of a distribution over the
  vocabulary, shared by the sampler's top-p filter and NLPO's masking policy.
* `last_token` / `at_last_token`: the last valid position of each right-padded row, where a
  sequence-level score becomes a token reward (EOS rewards of PPO, REINFORCE++, ReMax).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks


def check_top_p(p_name: str, p: float, keep_name: str, min_keep: int) -> None:
  """A top-p threshold p ∈ (0, 1] (or traced) and a static minimum number of kept tokens ≥ 1."""
  if not isinstance(min_keep, int) or isinstance(min_keep, bool) or min_keep < 1:
    raise ValueError(f"`{keep_name}` must be an int >= 1, got {min_keep!r}.")
  v = checks.concrete_value(p)
  if v is not None and not 0.0 < v <= 1.0:
    raise ValueError(f"`{p_name}` must be in (0, 1], got {v}.")


def top_p_mask(logits: jax.Array, p: float, *, min_tokens_to_keep: int = 1) -> jax.Array:
  """`bool[..., V]`: the smallest set of most likely tokens with probability mass ≥ p.

  Token j (in descending order of probability, ties by lowest index) is kept iff the mass of the
  tokens ranked before it is < p, or its rank is < `min_tokens_to_keep`. p ≥ 1 keeps every token.
  RL4LMs' `learned_top_p` (HF's top-p rule) differs only at exact equality: it also keeps a token
  whose preceding mass equals p.

  Args:
    logits: `f[..., V]` logits of the distribution defining the set (gradients are not needed).
    p: mass threshold p ∈ (0, 1]; may be traced.
    min_tokens_to_keep: static int ≥ 1.
  """
  check_top_p("p", p, "min_tokens_to_keep", min_tokens_to_keep)
  if jnp.ndim(logits) < 1:
    raise ValueError(f"`logits` must have a vocabulary axis, got shape {jnp.shape(logits)}.")
  (x,) = checks.as_compute(logits)
  x = jax.lax.stop_gradient(x)
  order = jnp.argsort(-x, axis=-1, stable=True)
  probs = jnp.take_along_axis(jax.nn.softmax(x, axis=-1), order, axis=-1)
  # An explicit shift, not cumsum − probs, so that the top token has exactly 0 mass before it.
  cum = jnp.cumsum(probs, axis=-1)
  mass_before = jnp.concatenate([jnp.zeros_like(cum[..., :1]), cum[..., :-1]], axis=-1)
  rank = jnp.arange(x.shape[-1])
  keep_sorted = (mass_before < p) | (rank < min_tokens_to_keep) | (p >= 1)
  inverse = jnp.argsort(order, axis=-1)
  return jnp.take_along_axis(keep_sorted, inverse, axis=-1)


def last_token(mask: jax.Array) -> jax.Array:
  """`bool[B, T]`, True at the last True of each row of `mask` (nowhere for an empty row)."""
  length = mask.shape[-1]
  last = length - 1 - jnp.argmax(mask[:, ::-1], axis=-1)
  return (jnp.arange(length) == last[:, None]) & mask


def at_last_token(scores: jax.Array, mask: jax.Array) -> jax.Array:
  """Token rewards `f[B, T]`: each row's score at its last valid token (EOS), 0 elsewhere."""
  return jnp.where(last_token(mask), scores[:, None], 0)
