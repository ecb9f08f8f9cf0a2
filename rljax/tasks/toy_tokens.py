"""The toy suite's tokens: the 30-token vocabulary, `encode`/`decode`, and the fixed-shape token helpers its
problem generators and verifier are written with (`rljax.tasks.toy_suite`).

Generators fill "slots" (tokens with a validity mask) and `compact` them into fixed-width rows; every helper is
jittable and vmappable with static widths.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np

SPECIALS = ("<pad>", "<bos>", "<eos>", "<think>", "</think>", "<answer>", "</answer>")
SYMBOLS = ("+", "-", "*", "=", ",", "(", ")")
TAGS = ("<add>", "<modchain>", "<sort>", "<reverse>", "<parity>", "<countdown>")
VOCAB: tuple[str, ...] = SPECIALS + tuple(str(d) for d in range(10)) + SYMBOLS + TAGS
VOCAB_SIZE = len(VOCAB)
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}
PAD_ID, BOS_ID, EOS_ID, THINK_ID, THINK_END_ID, ANSWER_ID, ANSWER_END_ID = range(len(SPECIALS))
DIGIT0 = TOKEN_ID["0"]
PLUS, MINUS, TIMES, EQ, COMMA, LPAR, RPAR = (TOKEN_ID[s] for s in SYMBOLS)
_POW10 = np.array([10**i for i in range(10)], np.int32)
_TOKEN_RE = re.compile(r"<[^<>\s]+>|\S")


def encode(text: str) -> list[int]:
  """Ids of `text`: tags like `<bos>` are one token, every other non-space character is one token."""
  pieces = _TOKEN_RE.findall(text)
  unknown = [p for p in pieces if p not in TOKEN_ID]
  if unknown:
    raise ValueError(f"`text` has tokens outside VOCAB: {unknown}.")
  return [TOKEN_ID[p] for p in pieces]


def decode(ids, *, skip_pad: bool = True) -> str:
  """Tokens of `ids` joined by spaces (padding dropped unless `skip_pad=False`)."""
  return " ".join(VOCAB[i] for i in np.asarray(ids).reshape(-1).tolist() if not (skip_pad and i == PAD_ID))


# ---------------------------------------------------------------------------------------------------------
# Fixed-shape token helpers. Generators fill "slots" (tokens with a validity mask) and compact them.


def compact(tokens: jax.Array, valid: jax.Array, width: int, *, right: bool = False) -> tuple[jax.Array, jax.Array]:
  """The valid tokens, in order, packed at the start (or, `right=True`, the end) of `i32[width]`, and
  their count (`tokens`, `valid`: broadcastable arrays of any shape, read in row-major order). Callers
  size `width` to hold them all."""
  tokens, valid = slots((tokens, valid))
  n = jnp.sum(valid, dtype=jnp.int32)
  pos = jnp.cumsum(valid, dtype=jnp.int32) - 1 + (width - n if right else 0)
  hit = valid[:, None] & (pos[:, None] == jnp.arange(width)[None, :])  # a gather-free scatter: PAD_ID is 0
  return jnp.sum(jnp.where(hit, tokens[:, None], 0), axis=0), n


def fit(x: jax.Array, width: int, *, left: bool = False) -> jax.Array:
  """Pads (with <pad>) or truncates the last axis to `width`, keeping its start (its end if `left`)."""
  n = x.shape[-1]
  if n >= width:
    return x[..., n - width:] if left else x[..., :width]
  pad = [(0, 0)] * (x.ndim - 1) + [(width - n, 0) if left else (0, width - n)]
  return jnp.pad(x, pad, constant_values=PAD_ID)


def first(cond: jax.Array) -> jax.Array:
  """Index of the first True of a 1-D mask, its length when there is none."""
  return jnp.argmax(jnp.append(cond, True)).astype(jnp.int32)


def last(cond: jax.Array) -> jax.Array:
  """Index of the last True of a 1-D mask, −1 when there is none."""
  n = cond.shape[0]
  return jnp.where(jnp.any(cond), n - 1 - jnp.argmax(cond[::-1]), -1).astype(jnp.int32)


def is_digit(t: jax.Array) -> jax.Array:
  return (t >= DIGIT0) & (t <= DIGIT0 + 9)


def parse_int(window: jax.Array, start: jax.Array, end: jax.Array) -> jax.Array:
  """Value of the decimal digits window[start:end] (at most 9 of them)."""
  i = jnp.arange(window.shape[0])
  weight = jnp.asarray(_POW10)[jnp.clip(end - 1 - i, 0, 9)]
  return jnp.sum(jnp.where((i >= start) & (i < end), (window - DIGIT0) * weight, 0))


def int_tokens(value: jax.Array, width: int) -> tuple[jax.Array, jax.Array]:
  """Decimal digit tokens of a non-negative `value` < 10^width, left-aligned in `i32[width]`, and their count."""
  n = 1 + jnp.sum(value >= jnp.asarray(_POW10[1:width]), dtype=jnp.int32)
  i = jnp.arange(width)
  digits = value // jnp.asarray(_POW10)[jnp.clip(n - 1 - i, 0, 9)] % 10
  return jnp.where(i < n, DIGIT0 + digits, PAD_ID).astype(jnp.int32), n


RANDOM_WORDS = 32  # uniform uint32 words a problem consumes (parity's 32 bits is the most)


def draw(words: jax.Array, *moduli: tuple[int, int]) -> list[jax.Array]:
  """For each (n, m), the next n `words` reduced mod m: `i32[n]` uniform on 0..m−1 (bias below 2^−29).
  Families share one `jax.random.bits` draw per problem: every distinct random call (threefry) adds
  compile time, and `randint` compiles ~10× slower than `bits` on CPU."""
  out, start = [], 0
  for n, m in moduli:
    out.append((words[start:start + n] % m).astype(jnp.int32))
    start += n
  assert start <= RANDOM_WORDS
  return out


def slots(*parts) -> tuple[jax.Array, jax.Array]:
  """Concatenates (tokens, valid) parts; a part that is not a tuple is always valid."""
  parts = [p if isinstance(p, tuple) else (p, True) for p in parts]
  return (jnp.concatenate([jnp.asarray(t, jnp.int32).reshape(-1) for t, _ in parts]),
          jnp.concatenate([jnp.broadcast_to(v, jnp.shape(t)).reshape(-1) for t, v in parts]))
