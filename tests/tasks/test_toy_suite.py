"""The toy token suite: generators against plain-Python references, exact verifiers, hints, arms.

Compilation dominates the cost, so every test shares one suite (all six families, 6 levels), one
batch shape and one token width: `sample`, `sft_targets`, `hinted` and the scorer behind `verify`,
`score` and `reward_fn` compile once each, plus one program running every family's generator.
"""

from __future__ import annotations

import collections
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.tasks import toy_suite as T

D = 6
COPIES = 2  # problems per arm


@pytest.fixture(scope="module")
def suite():
  return T.make_suite(tuple(T.FAMILIES), D)


@pytest.fixture(scope="module")
def arms(suite):
  return jnp.tile(jnp.arange(suite.num_arms, dtype=jnp.int32), COPIES)


@pytest.fixture(scope="module")
def batch(suite, arms):
  return suite.sample(jax.random.key(0), arms)


@pytest.fixture(scope="module")
def host(batch):
  """The batch as NumPy arrays: indexing device arrays in Python loops would compile a gather per shape."""
  return jax.tree.map(np.asarray, batch)


@pytest.fixture(scope="module")
def sft(suite, batch):
  return jax.tree.map(np.asarray, suite.sft_targets(batch))


def _rows(batch):
  """(family name, level, prompt payload tokens, answer tokens, trace tokens) of each row, as strings."""
  out = []
  for i in range(batch.ids.shape[0]):
    prompt = T.decode(batch.ids[i]).split()
    assert prompt[0] == "<bos>" and prompt[-1] == "="
    out.append((prompt[1][1:-1], int(batch.difficulty[i]), prompt[2:-1],
                T.decode(batch.answer[i, : int(batch.answer_len[i])]).split(),
                T.decode(batch.trace[i, : int(batch.trace_len[i])]).split()))
  return out


def _reference(family, payload):
  """Plain-Python (knob, answer, trace) of a problem; countdown returns its (numbers, target) instead."""
  if family == "add":
    plus = payload.index("+")
    a, b = payload[:plus], payload[plus + 1:]
    assert len(a) == len(b) and (len(a) == 1 or a[0] != "0" and b[0] != "0")
    trace, carry = [], 0
    for x, y in zip(reversed(a), reversed(b)):
      s = int(x) + int(y) + carry
      trace += [str(s // 10), str(s % 10)]
      carry = s // 10
    return len(a), list(str(int("".join(a)) + int("".join(b)))), trace
  if family == "modchain":
    x, values = int(payload[0]), []
    for op, arg in zip(payload[1::2], payload[2::2]):
      assert op == "+" and arg != "0" or op == "*" and arg in "379"
      x = (x * int(arg) if op == "*" else x + int(arg)) % 10
      values.append(str(x))
    return len(values), [str(x)], values
  if family in ("sort", "reverse"):
    f = sorted if family == "sort" else lambda xs: xs[::-1]
    trace = ",".join(" ".join(f(payload[:m])) for m in range(2, len(payload) + 1)).replace(",", " , ").split()
    return len(payload), f(payload), trace
  if family == "parity":
    running = np.cumsum([int(b) for b in payload]) % 2
    return len(payload), [str(running[-1])], [str(p) for p in running]
  comma = payload.index(",")
  return comma, [int(n) for n in payload[:comma]], int("".join(payload[comma + 1:]))


def _countdown_valid(numbers, target, expr):
  used = [int(t) for t in " ".join(expr).replace("(", " ").replace(")", " ").replace("+", " ").replace(
      "-", " ").replace("*", " ").split()]
  return eval("".join(expr)) == target and not collections.Counter(used) - collections.Counter(numbers)


def test_vocabulary_and_codec():
  assert T.VOCAB_SIZE <= 40 and len(set(T.VOCAB)) == T.VOCAB_SIZE and T.VOCAB[T.PAD_ID] == "<pad>" and T.PAD_ID == 0
  text = "<bos> <add> 1 2 + 3 4 = <think> 0 6 </think> <answer> 4 6 </answer> <eos>"
  assert T.decode(T.encode(text)) == text
  assert T.encode("12+34=") == T.encode("1 2 + 3 4 =")
  with pytest.raises(ValueError, match="text"):
    T.encode("1 / 2")


def test_samples_match_python_reference(host, arms):
  """Every row: the arm's family and knob, and the answer and trace a plain-Python solver derives."""
  for (family, level, payload, answer, trace), arm in zip(_rows(host), np.asarray(arms)):
    assert T.TAGS.index(f"<{family}>") == arm // D and level == arm % D
    knob, ref_answer, ref_trace = _reference(family, payload)
    assert knob == T.FAMILIES[family].knob_min + level, (family, payload)
    if family == "countdown":
      numbers, target = ref_answer, ref_trace
      assert _countdown_valid(numbers, target, answer), (payload, answer)
      tape = "".join(trace)  # a1 o a2 = v2 o a3 = v3 ...
      steps = re.findall(r"([-+*])(\d)=(\d+)", tape)
      assert tape == trace[0] + "".join(f"{o}{a}={v}" for o, a, v in steps)
      value = int(trace[0])
      for op, arg, result in steps:
        value = eval(f"{value}{op}{arg}")
        assert value == int(result) >= 0
      assert value == target and [int(trace[0])] + [int(a) for _, a, _ in steps] == numbers
    else:
      assert (answer, trace) == (ref_answer, ref_trace), (family, payload)


@pytest.fixture(scope="module")
def family_gens():
  """Every family's generator, jitted and vmapped over (key, level): one program for all of them (drawing
  the random words once, as `Suite.sample` does)."""
  def gens(keys, levels):
    words = jax.vmap(lambda k: jax.random.bits(k, (T.RANDOM_WORDS,), jnp.uint32))(keys)
    return {name: jax.vmap(f.generate)(words, jnp.minimum(levels, f.levels - 1)) for name, f in T.FAMILIES.items()}
  return jax.jit(gens)


def test_family_generators_are_pure_and_fit_their_sizes(family_gens):
  """gen(key, level) is deterministic, vmaps to the per-problem result, and at the hardest level stays
  within `Family.sizes` (tight where the lengths are exact)."""
  keys = jax.random.split(jax.random.key(3), 16)
  levels = jnp.array([0, 1, 2, 3] + [99] * 12)  # 99: each family's hardest level
  out = jax.tree.map(np.asarray, family_gens(keys, levels))
  jax.tree.map(np.testing.assert_array_equal, out, family_gens(keys, levels))
  parity = T.FAMILIES["parity"]
  single = jax.jit(parity.gen)  # the key-based entry point, one problem
  for j in (0, 3, 9):
    for vmapped, one in zip(out["parity"], single(keys[j], min(int(levels[j]), parity.levels - 1))):
      np.testing.assert_array_equal(vmapped[j], one)
  for name, f in T.FAMILIES.items():
    prompt, answer, trace, lens = out[name]
    assert (prompt.shape[1], answer.shape[1], trace.shape[1]) == f.sizes(f.knob_max)
    hardest = lens[4:]
    bound = np.array(f.sizes(f.knob_max))
    assert np.all(hardest <= bound), (name, hardest.max(0), bound)
    exact = [0, 2] + ([1] if name not in ("add", "countdown") else [])  # an add answer has d or d + 1 digits
    if name != "countdown":
      np.testing.assert_array_equal(hardest[:, exact], np.broadcast_to(bound[exact], (12, len(exact))))
    np.testing.assert_array_equal(lens[:, 0], (prompt != T.PAD_ID).sum(1))


def test_sample_is_deterministic_and_row_wise(suite, host, arms, family_gens):
  jax.tree.map(np.testing.assert_array_equal, host, suite.sample(jax.random.key(0), arms))
  other = suite.sample(jax.random.key(1), arms)
  assert np.mean(np.any(np.asarray(other.ids) != host.ids, axis=1)) > 0.5
  # Row i is the family's generator at (fold_in(key, i), level): independent of the rest of the batch.
  rows = np.arange(16)
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(rows)
  gens = jax.tree.map(np.asarray, family_gens(keys, jnp.asarray(host.difficulty[:16])))
  for i in rows:
    prompt, answer, trace, _ = (x[i] for x in gens[suite.families[host.family[i]]])
    np.testing.assert_array_equal(prompt[prompt != T.PAD_ID], host.ids[i][host.mask[i]])
    n = min(answer.shape[0], suite.max_answer)
    np.testing.assert_array_equal(answer[:n], host.answer[i, :n])
    np.testing.assert_array_equal(trace[: host.trace_len[i]], host.trace[i, : host.trace_len[i]])


def test_arm_of_inverts_sample(suite, host, arms):
  np.testing.assert_array_equal(suite.arm_of(host), arms)
  assert suite.arm("countdown", 5) == suite.num_arms - 1 == 35
  assert np.all(host.mask[:, -1]) and np.array_equal(host.mask, host.ids != T.PAD_ID)  # left-padded


def _corrupt(completion, family):
  """(reference, last answer token dropped, answer changed) completions of one row."""
  c = list(completion)
  o, e = c.index(T.ANSWER_ID), c.index(T.ANSWER_END_ID)
  dropped = c[: e - 1] + c[e:] + [T.PAD_ID]
  if family == "countdown":  # "0" is never a given number
    changed = c[: o + 1] + [T.DIGIT0] + c[e:]
  else:
    changed = c[: o + 1] + [T.DIGIT0 + (c[o + 1] - T.DIGIT0 + 1) % 10] + c[o + 2:]
  return [np.pad(x, (0, len(c) - len(x)))[: len(c)] for x in (c, dropped, changed)]


@pytest.fixture(scope="module")
def scored(suite, batch, host, sft):
  """verify and score on (reference, dropped, changed) completions of every row."""
  families = [suite.families[f] for f in host.family]
  completions = np.stack([_corrupt(c, f) for c, f in zip(sft["completion"], families)])  # [B, 3, C]
  mask = completions != T.PAD_ID
  # Prompts left-padded to the hint width (hinted with ω = 0), so that every `score` call in this module
  # has one row shape and compiles once.
  unhinted = suite.hinted(batch, jnp.zeros(batch.ids.shape[0]))
  verified = jax.tree.map(np.asarray, suite.verify(unhinted, completions, mask))
  # The online-loop view, built independently: prompt ⊕ response rows.
  prompts = np.asarray(unhinted.ids)
  B, G, C = completions.shape
  tokens = np.concatenate([np.repeat(prompts, G, axis=0), completions.reshape(B * G, C)], axis=1)
  response = np.concatenate([np.zeros((B * G, prompts.shape[1]), bool), mask.reshape(B * G, C)], axis=1)
  return verified, tokens, response


def test_reference_completions_verify_and_corruptions_fail(host, scored):
  (reward, think_len, think_ok, answer_ok), _, _ = scored
  np.testing.assert_array_equal(reward, np.tile([1.0, 0.0, 0.0], (reward.shape[0], 1)))
  np.testing.assert_array_equal(answer_ok, reward == 1)
  assert think_ok.all() and reward.dtype == np.float32
  np.testing.assert_array_equal(think_len, np.repeat(host.trace_len[:, None], 3, axis=1))


def test_reward_fn_recovers_answers_from_prompts(suite, scored):
  """The token-only reward (answers recomputed from the prompts) agrees with `verify` on every row."""
  verified, tokens, response = scored
  for got, want in zip(suite.score(tokens, response), verified):
    np.testing.assert_array_equal(np.asarray(got).reshape(want.shape), want)
  np.testing.assert_array_equal(np.asarray(suite.reward_fn(tokens, response)), verified[0].reshape(-1))


def test_hints(suite, batch, host, sft, scored):
  """ω = 0 leaves the prompt, ω = 1 appends "<think>" and the whole trace; a hinted prompt plus the rest
  of the reference completion scores 1 with a well-formed think block of the remaining length."""
  _, tokens, _ = scored
  B, S = host.ids.shape[0], host.trace.shape[1]
  ids, trace, trace_len = host.ids, host.trace, host.trace_len
  rows, masks, hints = [], [], []
  for omega in (0.0, 0.5, 1.0):
    hinted = suite.hinted(batch, jnp.full(B, omega))
    h_ids = np.asarray(hinted.ids)
    np.testing.assert_array_equal(hinted.mask, h_ids != T.PAD_ID)
    h = np.floor(omega * trace_len).astype(int)
    for i in range(B):
      extra = [T.THINK_ID] + list(trace[i, : h[i]]) if h[i] else []
      want = np.concatenate([np.zeros(S + 1 - len(extra), int), ids[i], extra])
      np.testing.assert_array_equal(h_ids[i], want)
      rest = list(sft["completion"][i][1 + h[i]:] if h[i] else sft["completion"][i])
      rows.append(np.concatenate([h_ids[i], rest + [T.PAD_ID] * (len(sft["completion"][i]) - len(rest))]))
      masks.append(np.arange(len(rows[-1])) >= h_ids.shape[1])
      hints.append(h[i])
    if omega == 0.0:
      np.testing.assert_array_equal(h_ids[:, S + 1:], ids)
  # Same shape as the scored rows (3 per problem), so `score` does not recompile.
  rows, masks = np.stack(rows), np.stack(masks) & (np.stack(rows) != T.PAD_ID)
  assert rows.shape == tokens.shape
  reward, think_len, think_ok, _ = map(np.asarray, suite.score(rows, masks))
  assert reward.min() == 1.0 and think_ok.all()
  np.testing.assert_array_equal(think_len, np.tile(trace_len, 3) - np.array(hints))
  with pytest.raises(ValueError, match="omega"):
    suite.hinted(batch, 1.5)


def _row(prompt: str, completion: str, width: int):
  p, c = T.encode(prompt), T.encode(completion)
  tokens = np.zeros(width, np.int32)
  tokens[width // 2 - len(p): width // 2], tokens[width // 2: width // 2 + len(c)] = p, c
  return tokens, (np.arange(width) >= width // 2) & (np.arange(width) < width // 2 + len(c))


COUNTDOWN_CASES = [  # (numbers, target, expression, valid)
    ("2 3 4", 14, "2+3*4", True), ("2 3 4", 14, "3*4+2", True), ("2 3 4", 14, "((2+3*4))", True),
    ("2 3 4", 20, "(2+3)*4", True), ("2 3 4", 14, "(2+3)*4", False), ("2 3 4", 7, "3+4", True),
    ("9 3 2", 4, "9-3-2", True), ("9 3 2", 4, "9-(3-2)", False), ("9 3 2", 8, "9-(3-2)", True),
    ("2 3 4", 7, "2*2+3", False), ("2 2 3", 7, "2*2+3", True), ("3 4", 7, "7", False), ("1 2", 12, "12", False),
    ("2 3 4", 14, "2+3*4)", False), ("2 3 4", 14, "(2+3*4", False), ("2 3 4", 14, "2++3*4", False),
    ("2 3 4", 14, "2+3*4+", False), ("2 3 4", 14, "", False), ("2 3 4", 6, "(2)3", False),
    ("2 3 4", 14, "2+3*4+0", False), ("1 2", 3, "4294967297+2", False),  # 2^32 + 1 must not wrap to 1
]

ADD_CASES = [  # <bos> <add> 1 2 + 3 4 =: (completion, reward, think_ok, think_len)
    ("<think></think><answer>46</answer><eos>", 1, True, 0),
    ("<answer>46</answer>", 1, False, 4),
    ("<think>1<answer>46</answer></think>", 1, False, 5),
    ("<think>06</think><answer>46</answer><eos><answer>1</answer>", 1, True, 2),
    ("<think></think><answer>1</answer><answer>46</answer>", 1, True, 0),
    ("<think></think><answer>46</answer><answer>1", 1, True, 0),
    ("<think></think><answer>46", 0, True, 0),
    ("<think></think><answer>046</answer>", 0, True, 0),
    ("<think><think></think><answer>46</answer>", 1, False, 1),
    ("<think></think></think><answer>46</answer>", 1, False, 0),
]


def test_exact_verifier_cases(suite, scored):
  """Hand-written rows: countdown's expression rules, answer-block and think-block rules, foreign rows."""
  _, tokens, _ = scored
  width = tokens.shape[1]
  cases = [_row(f"<bos><countdown>{n.replace(' ', '')},{t}=", f"<think></think><answer>{e}</answer><eos>", width)
           for n, t, e, _ in COUNTDOWN_CASES]
  cases += [_row("<bos><add>12+34=", c, width) for c, *_ in ADD_CASES]
  cases += [_row("", "<think></think><answer>1</answer>", width)]  # no suite prompt
  rows = np.zeros_like(tokens)
  masks = np.zeros(tokens.shape, bool)
  for i, (t, m) in enumerate(cases):
    rows[i], masks[i] = t, m
  reward, think_len, think_ok, _ = map(np.asarray, suite.score(rows, masks))
  n = len(COUNTDOWN_CASES)
  np.testing.assert_array_equal(reward[:n], [float(v) for *_, v in COUNTDOWN_CASES])
  np.testing.assert_array_equal(reward[n: n + len(ADD_CASES)], [r for _, r, _, _ in ADD_CASES])
  np.testing.assert_array_equal(think_ok[n: n + len(ADD_CASES)], [k for _, _, k, _ in ADD_CASES])
  np.testing.assert_array_equal(think_len[n: n + len(ADD_CASES)], [k for *_, k in ADD_CASES])
  assert reward[len(cases) - 1] == 0.0


def test_required_sizes_are_enforced():
  need = T.required_sizes(["sort", "parity"], 11)
  assert need == (15, 12, 87)  # sort of 12 digits: 2 + 3 + … + 12 pass digits and 10 commas
  assert T.make_suite(["sort", "parity"], 11).max_trace == 87
  for i, name in enumerate(("max_prompt", "max_answer", "max_trace")):
    with pytest.raises(ValueError, match=name):
      T.make_suite(["sort", "parity"], 11, *[n - (j == i) for j, n in enumerate(need)])


def test_make_suite_and_sample_validate(suite, batch):
  with pytest.raises(ValueError, match="families"):
    T.make_suite(["add", "nope"], 2)
  with pytest.raises(ValueError, match="families"):
    T.make_suite("add", 2)
  with pytest.raises(ValueError, match="families"):
    T.make_suite(["add", "add"], 2)
  with pytest.raises(ValueError, match="difficulties"):
    T.make_suite(["add", "countdown"], 7)
  with pytest.raises(ValueError, match="arm_ids"):
    suite.sample(jax.random.key(0), jnp.array([0, suite.num_arms]))
  with pytest.raises(ValueError, match="completions"):
    suite.verify(batch, np.zeros((3, 1, 4), np.int32), np.zeros((3, 1, 4), bool))
  assert hash(suite) == hash(T.make_suite(tuple(T.FAMILIES), D))
