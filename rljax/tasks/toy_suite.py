"""The shared toy verifiable-reasoning token suite (T.2 of the curricula spec), in pure jittable JAX.

Small arithmetic and list tasks over a 30-token vocabulary, with exact verifiers, integer difficulty arms
and reference solution traces (for GHPO hints and SFT warm starts), sized for a ~0.5M-parameter
transformer that learns on CPU.

    suite = make_suite(("add", "modchain", "countdown"), difficulties=6)   # 3 × 6 arms
    batch = suite.sample(key, arm_ids)                 # PromptBatch: left-padded prompts, answers, traces
    reward, think_len, think_ok, answer_ok = suite.verify(batch, completions, mask)   # each [B, G]
    rl = online.make_online_rl(..., reward_fn=suite.reward_fn, eos_token_id=EOS_ID)  # tokens -> f32[B]

Token layout (one token per digit, symbol or tag; `encode`/`decode` read and write it):

    prompt      <bos> <family> payload =              e.g. <bos> <add> 4 7 + 5 8 =
    completion  <think> trace </think> <answer> answer </answer> <eos>

Families (k = knob_min + level; "payload" is the prompt between the tag and "="):

    add        k = 1..8 digits per operand    a + b, no leading zeros          answer: the digits of a + b
               trace: each column, units first, as its two-digit sum (carry digit, units digit)
    modchain   k = 1..10 ops                  x0, then k ops "+ a" (a in 1..9) or "* b" (b in 3, 7, 9)
               answer: x_k mod 10; trace: x_1 … x_k
    sort       k = 2..12 digits               answer: the sorted digits
               trace: insertion-sort passes, the sorted prefixes of length 2..k, comma-separated
    reverse    k = 2..12 digits               answer: the reversed digits; trace: reversed prefixes, likewise
    parity     k = 2..32 bits                 answer: the parity bit; trace: the running parity
    countdown  k = 2..7 numbers in 1..9 , the target
               answer: any + - * ( ) expression with the target's value, each given number used at most once
               trace: the calculator tape of one solution, "a1 o a2 = v2 o a3 = v3 …"

Multiplications in `modchain` are by units of Z_10 only, so every op is a bijection and the answer
depends on every step (no ×0/×5 shortcut). `countdown` covers 2–7 numbers (the spec lists 2–5) so
that the spec's 3 × 6 arm grid exists; its generated solution is left-deep with minimal parentheses
and never goes negative, so the target is a non-negative integer ≤ 9^k.

Arms: arm = family_index · D + level, with D = `difficulties` levels per family and knob = knob_min + level.
Row i of `Suite.sample(key, arms)` is `FAMILIES[f].gen(fold_in(key, i), level)`: a pure function of
(key, i, arm_i), independent of the batch size.

Verification (`Suite.verify`, `Suite.reward_fn`): the completion is read up to its first <eos>. The
answer is the content of its last complete <answer> … </answer> block; `answer_ok` is token equality
with the reference (for `countdown`: a syntactically valid expression, with standard precedence, whose
value is the target and whose numbers are a sub-multiset of the given ones); reward = 1[answer_ok].
`think_ok`: exactly one </think>, before the answer block, and a single leading <think> (none when a
hinted prompt already opened it); `think_len`: generated tokens before the first </think> (all of them
if it never closes), the leading <think> excluded. Every family's answer is a function of its prompt,
so `reward_fn` recomputes it from the prompt tokens and needs no side information: it is the online
loop's `reward_fn(tokens, response_mask) -> f32[B]` for any batch of these prompts, hinted or not.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax import checks
from rljax.tasks import toy_tokens as tt
# The vocabulary is part of this module's public API (`toy_suite.PAD_ID`, `toy_suite.encode`, ...).
from rljax.tasks.toy_tokens import (  # noqa: F401
    ANSWER_END_ID,
    ANSWER_ID,
    BOS_ID,
    COMMA,
    DIGIT0,
    EOS_ID,
    EQ,
    LPAR,
    MINUS,
    PAD_ID,
    PLUS,
    RANDOM_WORDS,
    RPAR,
    SPECIALS,
    SYMBOLS,
    TAGS,
    THINK_END_ID,
    THINK_ID,
    TIMES,
    TOKEN_ID,
    VOCAB,
    VOCAB_SIZE,
    decode,
    encode,
)

# ---------------------------------------------------------------------------------------------------------
# Families. `build(words, knob) -> (payload slots, trace slots, answer slots or None)`; `solve(payload, width)`
# recomputes the answer of equality-verified families from the payload (the prompt after its tag).


def _build_add(words, d):
  digits, lead = tt.draw(words, (16, 10), (2, 9))
  digits = digits.reshape(2, 8)
  digits = digits.at[:, 0].set(jnp.where(d > 1, 1 + lead, digits[:, 0]))
  valid = jnp.arange(8) < d
  column = jnp.clip(d - 1 - jnp.arange(8), 0, 7)  # column j (units first) holds digit d − 1 − j

  def add_column(carry, ab):
    s = ab[0] + ab[1] + carry
    return s // 10, s

  _, sums = jax.lax.scan(add_column, jnp.int32(0), (digits[0, column], digits[1, column]))
  trace = jnp.stack([DIGIT0 + sums // 10, DIGIT0 + sums % 10], axis=1)
  payload = tt.slots((DIGIT0 + digits[0], valid), PLUS, (DIGIT0 + digits[1], valid), EQ)
  return payload, (trace, jnp.repeat(valid[:, None], 2, axis=1)), None


def _solve_add(payload, width):
  payload = tt.fit(payload, 18)
  plus, eq = tt.first(payload == PLUS), tt.first(payload == EQ)
  return tt.int_tokens(tt.parse_int(payload, 0, plus) + tt.parse_int(payload, plus + 1, eq), width)


def _build_modchain(words, k):
  x0, is_mul, b, a = tt.draw(words, (1, 10), (10, 2), (10, 3), (10, 9))
  x0, is_mul = x0[0], is_mul.astype(bool)
  arg = jnp.where(is_mul, jnp.array([3, 7, 9])[b], 1 + a)
  _, values = jax.lax.scan(lambda x, op: ((jnp.where(op[0], x * op[1], x + op[1]) % 10,) * 2), x0, (is_mul, arg))
  valid = jnp.arange(10) < k
  ops = jnp.stack([jnp.where(is_mul, TIMES, PLUS), DIGIT0 + arg], axis=1)
  return tt.slots(DIGIT0 + x0, (ops, valid[:, None]), EQ), (DIGIT0 + values, valid), None


def _solve_modchain(payload, width):
  payload = tt.fit(payload, 22)
  ops, args = payload[1:21:2], payload[2:22:2] - DIGIT0
  alive = jnp.cumprod((ops == PLUS) | (ops == TIMES)).astype(bool)  # the chain stops at "="

  def step(x, inp):
    op, a, live = inp
    return jnp.where(live, jnp.where(op == TIMES, x * a, x + a) % 10, x), None

  x, _ = jax.lax.scan(step, payload[0] - DIGIT0, (ops, args, alive))
  return tt.fit((DIGIT0 + x)[None], width), jnp.int32(1)


def _build_list(words, n, *, sort: bool):
  (x,) = tt.draw(words, (12, 10))
  m = jnp.arange(2, 13)[:, None]  # prefix length of each pass
  j = jnp.arange(12)[None, :]
  rows = jnp.sort(jnp.where(j < m, x, 10), axis=1) if sort else x[jnp.clip(m - 1 - j, 0, 11)]
  trace = jnp.concatenate([DIGIT0 + rows, jnp.full((11, 1), COMMA)], axis=1)
  trace_valid = jnp.concatenate([j < m, m < n], axis=1) & (m <= n)
  return tt.slots((DIGIT0 + x, jnp.arange(12) < n), EQ), (trace, trace_valid), None


def _solve_list(payload, width, *, sort: bool):
  payload = tt.fit(payload, 13)
  eq, i = tt.first(payload == EQ), jnp.arange(13)
  out = jnp.sort(jnp.where(i < eq, payload, DIGIT0 + 10)) if sort else payload[jnp.clip(eq - 1 - i, 0, 12)]
  return tt.fit(jnp.where(i < eq, out, PAD_ID), width), eq


def _build_parity(words, n):
  (bits,) = tt.draw(words, (32, 2))
  valid = jnp.arange(32) < n
  return tt.slots((DIGIT0 + bits, valid), EQ), (DIGIT0 + jnp.cumsum(bits) % 2, valid), None


def _solve_parity(payload, width):
  payload = tt.fit(payload, 33)
  i = jnp.arange(33)
  ones = jnp.sum(jnp.where(i < tt.first(payload == EQ), payload - DIGIT0, 0))
  return tt.fit((DIGIT0 + ones % 2)[None], width), jnp.int32(1)


def _build_countdown(words, k):
  nums, ops = tt.draw(words, (7, 9), (6, 3))
  nums, ops = 1 + nums, jnp.array([PLUS, MINUS, TIMES])[ops]

  def step(carry, inp):  # E_{i+1} = E_i o a: carry (value of E_i, last operator of E_i)
    v, last = carry
    a, o = inp
    o = jnp.where((o == MINUS) & (v < a), PLUS, o)  # never negative: the target stays a plain integer
    wrap = (o == TIMES) & ((last == PLUS) | (last == MINUS))  # (E_i) * a needs the parentheses
    v = jnp.where(o == PLUS, v + a, jnp.where(o == MINUS, v - a, v * a))
    return (v, o), (o, wrap, v)

  _, (ops, wrap, values) = jax.lax.scan(step, (nums[0], jnp.int32(PAD_ID)), (nums[1:], ops))
  live = jnp.arange(6) < k - 1
  value_digits, value_len = jax.vmap(lambda v: tt.int_tokens(v, 7))(values)
  target, target_len = tt.int_tokens(values[k - 2], 7)
  n_open = jnp.sum(wrap & live)
  answer = tt.slots((jnp.full((5,), LPAR), jnp.arange(5) < n_open), DIGIT0 + nums[0],
                  (jnp.stack([jnp.full((6,), RPAR), ops, DIGIT0 + nums[1:]], 1),
                   jnp.stack([wrap & live, live, live], 1)))
  tape = jnp.concatenate([jnp.stack([ops, DIGIT0 + nums[1:], jnp.full((6,), EQ)], 1), value_digits], axis=1)
  tape_valid = jnp.concatenate([jnp.broadcast_to(live[:, None], (6, 3)),
                                live[:, None] & (jnp.arange(7)[None] < value_len[:, None])], axis=1)
  payload = tt.slots((DIGIT0 + nums, jnp.arange(7) < k), COMMA, (target, jnp.arange(7) < target_len), EQ)
  return payload, tt.slots(DIGIT0 + nums[0], (tape, tape_valid)), answer


_OPEN_TAG = 4  # operator-stack code of "(" (the operators use their token ids, all larger)


def _countdown_ok(payload: jax.Array, expr: jax.Array, length: jax.Array) -> jax.Array:
  """Whether expr[:length] is a valid `+ - * ( )` expression over numbers (standard precedence, left
  associative, no unary minus) whose value is the payload's target and whose numbers form a
  sub-multiset of the payload's numbers.

  Shunting-yard in one `lax.scan` with fixed-size stacks, straight-line (no branches: under vmap every
  branch would run anyway). With two precedence levels the operators above the innermost "(" always
  have strictly increasing precedence, so an operator or ")" pops at most two of them: the reduction
  is unrolled twice. Numbers longer than 7 digits are invalid (no int32 overflow can forge a given
  number)."""
  payload = tt.fit(payload, 17)
  comma, eq = tt.first(payload == COMMA), tt.first(payload == EQ)
  given = jnp.where(jnp.arange(7) < comma, payload[:7] - DIGIT0, -1)
  target = tt.parse_int(payload, comma + 1, eq)
  L = expr.shape[0]
  slot = jnp.arange(L + 1)
  at = lambda stack, j: jnp.sum(jnp.where(slot == j, stack, 0))  # one-hot reads and writes: under vmap
  put = lambda stack, j, x, when: jnp.where(when & (slot == j), x, stack)  # they compile far faster than
  # batched gathers and scatters

  def reduce(s, min_prec):  # applies stacked operators of precedence >= min_prec (3: none)
    vals, nv, ops, no, err = s
    for _ in range(2):
      top = at(ops, no - 1)
      go = (no > 0) & (top != _OPEN_TAG) & (jnp.where(top == TIMES, 2, 1) >= min_prec)
      a, b = at(vals, nv - 2), at(vals, nv - 1)
      vals = put(vals, nv - 2, jnp.where(top == PLUS, a + b, jnp.where(top == MINUS, a - b, a * b)), go)
      err, nv, no = err | (go & (nv < 2)), nv - go, no - go
    return vals, nv, ops, no, err

  def step(s, inp):
    t, live = inp
    vals, nv, ops, no, err, used, nu, cur, ndig, depth, want = s
    digit = live & tt.is_digit(t)
    op = live & ((t == PLUS) | (t == MINUS) | (t == TIMES))
    lpar, rpar = live & (t == LPAR), live & (t == RPAR)
    flush = live & ~digit & (ndig > 0)  # a non-digit ends the number being read
    vals, used = put(vals, nv, cur, flush), put(used, nu, cur, flush)
    nv, nu, cur, ndig = nv + flush, nu + flush, jnp.where(flush, 0, cur), jnp.where(flush, 0, ndig)
    err = (err | (live & ~(digit | op | lpar | rpar)) | (digit & ~want & (ndig == 0)) | (lpar & ~want)
           | ((op | rpar) & want) | (rpar & (depth == 0)))
    min_prec = jnp.where(op, jnp.where(t == TIMES, 2, 1), jnp.where(rpar, 1, 3))
    vals, nv, ops, no, err = reduce((vals, nv, ops, no, err), min_prec)
    err |= rpar & ((no == 0) | (at(ops, no - 1) != _OPEN_TAG))
    ops = put(ops, no, jnp.where(op, t, _OPEN_TAG), op | lpar)
    no, depth = no + (op | lpar) - rpar, depth + lpar - rpar
    cur, ndig = jnp.where(digit, cur * 10 + t - DIGIT0, cur), ndig + digit
    want = jnp.where(digit | rpar, False, want | op)
    return (vals, nv, ops, no, err | (ndig > 7), used, nu, cur, ndig, depth, want), None

  zeros, z = jnp.zeros((L + 1,), jnp.int32), jnp.int32(0)
  init = (zeros, z, zeros, z, jnp.bool_(False), zeros, z, z, z, z, jnp.bool_(True))
  (vals, nv, ops, no, err, used, nu, cur, ndig, depth, want), _ = jax.lax.scan(step, init,
                                                                               (expr, jnp.arange(L) < length))
  flush = ndig > 0  # the last number
  vals, used = put(vals, nv, cur, flush), put(used, nu, cur, flush)
  vals, nv, ops, no, err = reduce((vals, nv + flush, ops, no, err), 1)
  nu += flush
  ok = ~err & ~want & (depth == 0) & (nv == 1) & (no == 0) & (vals[0] == target)
  used = jnp.where(slot < nu, used, -2)
  times_used = jnp.sum(used[:, None] == used[None, :], axis=1)
  times_given = jnp.sum(used[:, None] == given[None, :], axis=1)
  return ok & jnp.all((slot >= nu) | (times_used <= times_given))


def _countdown_sizes(k: int) -> tuple[int, int, int]:
  ndig = lambda i: len(str(9**i))  # the value of i numbers in 1..9 is at most 9^i
  return k + ndig(k) + 4, 4 * k - 5, 1 + sum(3 + ndig(i) for i in range(2, k + 1))


class Family(NamedTuple):
  """One task family: `gen(key, difficulty)` draws a problem at level `difficulty` (knob = knob_min + level)."""
  name: str
  knob_min: int
  knob_max: int
  sizes: Callable[[int], tuple[int, int, int]]  # upper bounds (prompt, answer, trace) at a knob value
  build: Callable
  solve: Callable | None  # None: verified by `_countdown_ok`, not by equality

  @property
  def levels(self) -> int:
    return self.knob_max - self.knob_min + 1

  @property
  def tag(self) -> int:
    return TOKEN_ID[f"<{self.name}>"]

  def gen(self, key: jax.Array, difficulty) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """`(prompt i32[P], answer i32[A], trace i32[S], lens i32[3])` at the family's widths for knob_max:
    the prompt left-padded, answer and trace right-padded, lens = (prompt, answer, trace) lengths.
    Jittable and vmappable; `difficulty` may be traced."""
    return self.generate(jax.random.bits(key, (RANDOM_WORDS,), jnp.uint32), difficulty)

  def generate(self, words: jax.Array, difficulty) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """`gen` from its random words `u32[RANDOM_WORDS]` (`jax.random.bits(key, (RANDOM_WORDS,))`)."""
    P, A, S = self.sizes(self.knob_max)
    payload, trace, answer = self.build(words, self.knob_min + jnp.asarray(difficulty, jnp.int32))
    prompt, n_prompt = tt.compact(*tt.slots(BOS_ID, self.tag, payload), P, right=True)
    trace, n_trace = tt.compact(*trace, S)
    if answer is None:
      answer, n_answer = self.solve(tt.compact(*payload, P - 2)[0], A)
    else:
      answer, n_answer = tt.compact(*answer, A)
    return prompt, answer, trace, jnp.stack([n_prompt, n_answer, n_trace]).astype(jnp.int32)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("add", 1, 8, lambda d: (2 * d + 4, d + 1, 2 * d), _build_add, _solve_add),
    Family("modchain", 1, 10, lambda k: (2 * k + 4, 1, k), _build_modchain, _solve_modchain),
    Family("sort", 2, 12, lambda n: (n + 3, n, n * (n + 1) // 2 + n - 3),
           functools.partial(_build_list, sort=True), functools.partial(_solve_list, sort=True)),
    Family("reverse", 2, 12, lambda n: (n + 3, n, n * (n + 1) // 2 + n - 3),
           functools.partial(_build_list, sort=False), functools.partial(_solve_list, sort=False)),
    Family("parity", 2, 32, lambda n: (n + 3, 1, n), _build_parity, _solve_parity),
    Family("countdown", 2, 7, _countdown_sizes, _build_countdown, None),
)}


def required_sizes(families: Sequence[str], difficulties: int) -> tuple[int, int, int]:
  """The smallest `(max_prompt, max_answer, max_trace)` that hold every problem of the given families at
  levels 0..difficulties−1."""
  if isinstance(families, str) or not families:
    raise ValueError(f"`families` must be a non-empty sequence of names, got {families!r}.")
  if any(f not in FAMILIES for f in families) or len(set(families)) != len(families):
    raise ValueError(f"`families` must be distinct names from {tuple(FAMILIES)}, got {tuple(families)}.")
  max_levels = min(FAMILIES[f].levels for f in families)
  if isinstance(difficulties, bool) or not isinstance(difficulties, int) or not 1 <= difficulties <= max_levels:
    raise ValueError(f"`difficulties` must be an int in [1, {max_levels}] for families {tuple(families)}, got "
                     f"{difficulties!r}.")
  sizes = [FAMILIES[f].sizes(FAMILIES[f].knob_min + difficulties - 1) for f in families]
  return tuple(max(s[i] for s in sizes) for i in range(3))


# ---------------------------------------------------------------------------------------------------------
# The suite.


class PromptBatch(NamedTuple):
  """A batch of problems (a pytree). `ids`/`mask` are left-padded prompts, as `rljax.sampling.generate`
  and `OnlineRL.collect` take them; answer and trace are right-padded."""
  ids: jax.Array          # i32[B, P]
  mask: jax.Array         # bool[B, P]
  answer: jax.Array       # i32[B, A] reference answer (for countdown: one valid expression)
  answer_len: jax.Array   # i32[B]
  trace: jax.Array        # i32[B, S] reference reasoning trace
  trace_len: jax.Array    # i32[B]
  family: jax.Array       # i32[B] index into Suite.families
  difficulty: jax.Array   # i32[B] level, 0 = easiest


@dataclasses.dataclass(frozen=True)
class Suite:
  """Families × `difficulties` levels as integer arms (build with `make_suite`). Hashable: the jitted
  methods take it as a static argument."""
  families: tuple[str, ...]
  difficulties: int
  max_prompt: int
  max_answer: int
  max_trace: int

  @property
  def num_arms(self) -> int:
    return len(self.families) * self.difficulties

  @property
  def completion_width(self) -> int:
    """Width of `sft_targets` completions: <think> trace </think> <answer> answer </answer> <eos>."""
    return self.max_trace + self.max_answer + 5

  def arm(self, family: str, difficulty: int) -> int:
    """The arm id of (family name, level)."""
    if family not in self.families:
      raise ValueError(f"`family` must be one of {self.families}, got {family!r}.")
    if not 0 <= difficulty < self.difficulties:
      raise ValueError(f"`difficulty` must be in [0, {self.difficulties}), got {difficulty}.")
    return self.families.index(family) * self.difficulties + difficulty

  def arm_of(self, batch: PromptBatch) -> jax.Array:
    """`i32[B]` arm id of each row: family · D + difficulty (the inverse of `sample`)."""
    return batch.family * self.difficulties + batch.difficulty

  def sample(self, key: jax.Array, arm_ids) -> PromptBatch:
    """Problems of the given arms `i32[B]`; row i is a pure function of (key, i, arm_ids[i]). Jitted;
    arm ids are range-checked when concrete (a traced id out of range is clipped to a valid family)."""
    arms = checks.concrete_array(arm_ids)
    if arms is not None and (arms.ndim != 1 or not np.issubdtype(arms.dtype, np.integer)
                             or np.any((arms < 0) | (arms >= self.num_arms))):
      raise ValueError(f"`arm_ids` must be a 1-D integer array in [0, {self.num_arms}), got {arms}.")
    return self._sample(key, jnp.asarray(arm_ids, jnp.int32))

  @functools.partial(jax.jit, static_argnums=0)
  def _sample(self, key, arm_ids):
    family, level = arm_ids // self.difficulties, arm_ids % self.difficulties

    def gen(fam):
      def run(words, d):
        prompt, answer, trace, lens = FAMILIES[fam].generate(words, d)
        return tt.fit(prompt, self.max_prompt, left=True), tt.fit(answer, self.max_answer), \
            tt.fit(trace, self.max_trace), lens
      return run

    def row(i, f, d):  # = FAMILIES[f].gen(fold_in(key, i), d), with one random draw for all the branches
      words = jax.random.bits(jax.random.fold_in(key, i), (RANDOM_WORDS,), jnp.uint32)
      return jax.lax.switch(f, [gen(fam) for fam in self.families], words, d)

    prompt, answer, trace, lens = jax.vmap(row)(jnp.arange(arm_ids.shape[0]), family, level)
    return PromptBatch(prompt, prompt != PAD_ID, answer, lens[:, 1], trace, lens[:, 2], family, level)

  def hinted(self, batch: PromptBatch, omega) -> PromptBatch:
    """The prompts with the first h = ⌊ω · trace_len⌋ trace tokens appended after "<think>" (nothing when
    h = 0), left-padded to width P + 1 + S. `omega`: scalar or `f[B]` in [0, 1]. The completion then
    continues the open think block (`verify` accepts it without a second <think>). Jitted."""
    value = checks.concrete_array(omega)
    if value is not None and (value.ndim > 1 or np.any(~((value >= 0) & (value <= 1)))):
      raise ValueError(f"`omega` must be a scalar or a 1-D array in [0, 1], got {value}.")
    return self._hinted(batch, jnp.asarray(omega, jnp.float32))

  @functools.partial(jax.jit, static_argnums=0)
  def _hinted(self, batch, omega):
    h = jnp.clip(jnp.floor(omega * batch.trace_len).astype(jnp.int32), 0, batch.trace_len)
    h = jnp.broadcast_to(h, batch.trace_len.shape)
    width = batch.ids.shape[1] + 1 + batch.trace.shape[1]

    def row(ids, mask, trace, h):
      slots = tt.slots((ids, mask), (jnp.full((1,), THINK_ID), h > 0), (trace, jnp.arange(trace.shape[0]) < h))
      return tt.compact(*slots, width, right=True)[0]

    ids = jax.vmap(row)(batch.ids, batch.mask, batch.trace, h)
    return batch._replace(ids=ids, mask=ids != PAD_ID)

  @functools.partial(jax.jit, static_argnums=0)
  def sft_targets(self, batch: PromptBatch) -> dict[str, jax.Array]:
    """Reference completions "<think> trace </think> <answer> answer </answer> <eos>" of an un-hinted batch.

    Returns `completion, completion_mask [B, C]` (right-padded, C = `completion_width`) and the full
    sequences `tokens, mask, loss_mask [B, P + C]` (left-padded prompt ⊕ completion; loss on the
    completion, EOS included), the batch layout of `rljax.training.objectives.sft_loss`."""
    def row(trace, n_trace, answer, n_answer):
      slots = tt.slots(THINK_ID, (trace, jnp.arange(trace.shape[0]) < n_trace), THINK_END_ID, ANSWER_ID,
                     (answer, jnp.arange(answer.shape[0]) < n_answer), ANSWER_END_ID, EOS_ID)
      return tt.compact(*slots, self.completion_width)[0]

    completion = jax.vmap(row)(batch.trace, batch.trace_len, batch.answer, batch.answer_len)
    completion_mask = completion != PAD_ID
    return {"completion": completion, "completion_mask": completion_mask,
            "tokens": jnp.concatenate([batch.ids, completion], axis=1),
            "mask": jnp.concatenate([batch.mask, completion_mask], axis=1),
            "loss_mask": jnp.concatenate([jnp.zeros_like(batch.mask), completion_mask], axis=1)}

  def verify(self, batch: PromptBatch, completions, mask):
    """Scores G completions per problem: `(reward f32[B, G], think_len i32[B, G], think_ok bool[B, G],
    answer_ok bool[B, G])` for `completions i32[B, G, L]` with `mask [B, G, L]` (True on generated
    tokens, left-aligned). Rules in the module docstring.

    `score` of the rows prompt ⊕ completion: one verifier for both entry points, and a program that
    `score`/`reward_fn` calls of the same row shape reuse. Jittable."""
    B, G, L = checks.check_same_shape(3, completions=completions, mask=mask)
    if B != batch.ids.shape[0]:
      raise ValueError(f"`completions` has {B} rows, `batch` has {batch.ids.shape[0]}.")
    tokens = jnp.concatenate([jnp.repeat(batch.ids, G, axis=0), jnp.reshape(completions, (B * G, L))], axis=1)
    response = jnp.concatenate([jnp.zeros((B * G, batch.ids.shape[1]), bool),
                                jnp.reshape(jnp.asarray(mask, bool), (B * G, L))], axis=1)
    return tuple(x.reshape(B, G) for x in self.score(tokens, response))

  def score(self, tokens, response_mask):
    """`verify` on prompt ⊕ response rows `tokens i32[N, T]`, `response_mask [N, T]` (1 on the response):
    the family and the reference answer are recomputed from each row's prompt. Returns `(reward f32[N],
    think_len i32[N], think_ok bool[N], answer_ok bool[N])`; rows without a suite prompt (no <bos>, an
    unknown tag) score 0. Jitted."""
    checks.check_same_shape(2, tokens=tokens, response_mask=response_mask)
    return self._score_tokens(jnp.asarray(tokens, jnp.int32), jnp.asarray(response_mask, bool))

  def reward_fn(self, tokens, response_mask) -> jax.Array:
    """The online loop's `reward_fn(tokens i32[B, P+N], response_mask bool[B, P+N]) -> f32[B]`:
    1 where the response's answer is right (`score(...)[0]`)."""
    return self.score(tokens, response_mask)[0]

  @functools.partial(jax.jit, static_argnums=0)
  def _score_tokens(self, tokens, response_mask):
    tag_to_family = np.full(VOCAB_SIZE, -1, np.int32)
    for f, name in enumerate(self.families):
      tag_to_family[FAMILIES[name].tag] = f
    countdown = self.families.index("countdown") if "countdown" in self.families else None
    A = self.max_answer

    def row(tokens, response):
      T = tokens.shape[0]
      i = jnp.arange(T)
      start = tt.first(response)
      bos = tt.first(tokens == BOS_ID)
      family = jnp.asarray(tag_to_family)[jnp.take(tokens, bos + 1, mode="fill", fill_value=PAD_ID)]
      # The problem: the prompt after its tag (the response masked out), up to and past its "=".
      payload = jnp.take(jnp.where(i < start, tokens, PAD_ID), bos + 2 + jnp.arange(self.max_prompt - 2),
                         mode="fill", fill_value=PAD_ID)
      none = (jnp.zeros(A, jnp.int32), jnp.int32(0))  # countdown is checked by evaluation instead
      refs = [none if name == "countdown" else FAMILIES[name].solve(payload, A) for name in self.families]
      pick = jnp.maximum(family, 0)
      ref, ref_len = jnp.stack([r[0] for r in refs])[pick], jnp.stack([r[1] for r in refs])[pick]

      completion = jnp.take(tokens, i + start, mode="fill", fill_value=PAD_ID)
      valid = jnp.take(response, i + start, mode="fill", fill_value=False)
      valid &= jnp.cumsum(completion == EOS_ID) == 0  # up to the first <eos>
      has = lambda t: valid & (completion == t)
      close = tt.last(has(ANSWER_END_ID))
      open_ = tt.last(has(ANSWER_ID) & (i < close))
      found = (close >= 0) & (open_ >= 0)
      span_len = close - open_ - 1
      span = jnp.take(completion, jnp.arange(A) + open_ + 1, mode="fill", fill_value=PAD_ID)
      answer_ok = found & (span_len == ref_len) & jnp.all((jnp.arange(A) >= ref_len) | (span == ref))
      if countdown is not None:
        expr = jnp.take(completion, i + open_ + 1, mode="fill", fill_value=PAD_ID)
        answer_ok = jnp.where(family == countdown, found & _countdown_ok(payload, expr, span_len), answer_ok)
      answer_ok &= family >= 0

      opened = jnp.any((tokens == THINK_ID) & (i < start))  # a hinted prompt opened the think block
      think_end = tt.first(has(THINK_END_ID))
      n_end, n_open = jnp.sum(has(THINK_END_ID)), jnp.sum(has(THINK_ID))
      lead = valid[0] & (completion[0] == THINK_ID)
      think_ok = ((n_end == 1) & jnp.where(opened, n_open == 0, lead & (n_open == 1))
                  & (~found | (think_end < open_)))
      think_len = jnp.where(n_end > 0, think_end, jnp.sum(valid)) - lead
      return answer_ok.astype(jnp.float32), think_len.astype(jnp.int32), think_ok, answer_ok

    return jax.vmap(row)(tokens, response_mask)


def make_suite(families: Sequence[str], difficulties: int, max_prompt: int | None = None,
               max_answer: int | None = None, max_trace: int | None = None) -> Suite:
  """A suite of `families` (names of `FAMILIES`, in arm order) at levels 0..difficulties−1 each.

  `max_prompt`, `max_answer`, `max_trace` are the padded widths of prompts, answers and traces; None
  takes `required_sizes(families, difficulties)`, and smaller values raise (nothing is ever truncated).
  """
  need = required_sizes(families, difficulties)  # validates both
  given = []
  for name, value, n in zip(("max_prompt", "max_answer", "max_trace"), (max_prompt, max_answer, max_trace), need):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < n):
      raise ValueError(f"`{name}` must be an int >= {n} for these families and difficulties, got {value!r}.")
    given.append(n if value is None else value)
  return Suite(tuple(families), difficulties, *given)
