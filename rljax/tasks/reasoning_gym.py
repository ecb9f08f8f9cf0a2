"""Reasoning-gym families as short verifiable prompts for small models: data, worked solutions, reward.

Usage:

    from rljax.tasks import reasoning_gym_task, task_reward
    train = reasoning_gym_task(["chain_sum", "leg_counting"], size=4000, seed=0, difficulties=(0, 1))
    test = reasoning_gym_task(["chain_sum", "leg_counting"], size=400, seed=1, difficulties=(0, 1),
                              exclude=train["prompt"])          # held out: no training prompt in it
    pool = RewardPool({"correct": task_reward})    # or "reasoning_gym"; rows carry `family` and `entry`

Each row is one reasoning-gym entry, `reasoning_gym.create_dataset(family, seed=s, **DIFFICULTY[family][d])[i]`,
rendered as

    prompt    "<question> Answer in <answer></answer>."   (reasoning-gym's question, long instructions cut)
    answer    a canonical answer that the family's scorer gives 1.0 (reasoning-gym's answer, or the same
              value written shorter: number_sorting "[-5, 3, 7]" for "['-5.0', '3.0', '7.0']")
    solution  "<think>5-3=2, 2-6=-4</think> <answer>-4</answer>": the steps are true equations computed
              from the entry (expression evaluation order, legs per animal, isolating the variable);
              sorting families have no steps and the solution is "<answer>X</answer>" alone
    family, difficulty, entry   the family, the level d, and the full entry as JSON (question, answer,
              metadata): what reasoning-gym's scorer reads

Difficulty levels (`DIFFICULTY[family][d]`, d = 0 easiest) are reasoning-gym configs sized for a 2-4
layer model with a ~1000-token BPE trained on CPU in minutes: at levels 0-1 a prompt is at most 35 such
tokens with the chat template, and an answer a few tokens. Each level still has thousands of distinct
prompts, so that disjoint train and held-out splits fit; the smallest, measured, are countdown level 0
(about 2.5k), basic_arithmetic level 0 (about 3k) and chain_sum level 0 (4,000 = 10^3 operands x 4 sign
patterns).

Splits. A split's prompts are distinct, and `exclude` removes given prompts (a training split's), so a
held-out split shares no prompt with training. Each (family, level) cell draws from its own
reasoning-gym seed, a hash of (seed, family, level): reasoning-gym item i of seed s is `Random(s + i)`,
so plain seeds s and s + 1 would give the same items shifted by one. `size` rows are split evenly over
the cells and interleaved cell by cell, so any prefix of the split is balanced.

Scoring. `task_reward` extracts the last `<answer>` block and calls the family's own scorer
(`reasoning_gym.get_score_answer_fn`), which may give partial credit (countdown 0.05 for a wrong
expression over the right numbers, word_sorting the fraction of words in place, exact-match families
len(oracle)/len(answer) when the answer contains the oracle). Countdown's scorer runs sympy's
`parse_expr`, which evaluates Python: answers that are not arithmetic over digits get the scorer's
unparseable score (0.01) without being parsed.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import reasoning_gym

if TYPE_CHECKING:
  import datasets
from reasoning_gym.algorithmic.word_sorting import TextTransformation
from reasoning_gym.arithmetic.leg_counting import ANIMALS

from rljax.rewards import extract_answer, register

ANSWER_INSTRUCTION = "Answer in <answer></answer>."

_LOWER = TextTransformation.LOWERCASE
# Level 0 is the easiest. Ranges are inclusive; reasoning-gym's 1-digit operands are 0-9 (chain_sum)
# or -9..9 (basic_arithmetic). basic_arithmetic uses the generator with parentheses
# (allow_parentheses=True) even where none appear: its answer is Python's evaluation of the expression,
# whereas the parenthesis-free generator evaluates left to right ("2 + 3 * 4" = 20) and misprints
# divisions.
DIFFICULTY: dict[str, tuple[dict[str, Any], ...]] = {
    "basic_arithmetic": (
        {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1, "operators": ("+", "-", "*"),
         "allow_negation": False},
        {"min_terms": 3, "max_terms": 3, "min_digits": 1, "max_digits": 1, "operators": ("+", "-", "*"),
         "allow_negation": False},
        {"min_terms": 3, "max_terms": 3, "min_digits": 1, "max_digits": 1, "operators": ("+", "-", "*", "/")},
        {"min_terms": 3, "max_terms": 4, "min_digits": 1, "max_digits": 2, "operators": ("+", "-", "*", "/")},
    ),
    "chain_sum": (
        {"min_terms": 3, "max_terms": 3, "min_digits": 1, "max_digits": 1},
        {"min_terms": 4, "max_terms": 4, "min_digits": 1, "max_digits": 1},
        {"min_terms": 2, "max_terms": 2, "min_digits": 2, "max_digits": 2},
        {"min_terms": 3, "max_terms": 3, "min_digits": 2, "max_digits": 2},
    ),
    "countdown": (
        {"min_numbers": 3, "max_numbers": 3, "min_value": 1, "max_value": 9, "min_target": 1, "max_target": 30,
         "operators": ("+", "-")},
        {"min_numbers": 3, "max_numbers": 3, "min_value": 1, "max_value": 9, "min_target": 1, "max_target": 99,
         "operators": ("+", "-", "*")},
        {"min_numbers": 4, "max_numbers": 4, "min_value": 1, "max_value": 20, "min_target": 1, "max_target": 200},
        {"min_numbers": 4, "max_numbers": 5, "min_value": 1, "max_value": 50, "min_target": 10, "max_target": 500},
    ),
    "leg_counting": (
        {"min_animals": 2, "max_animals": 2, "min_instances": 1, "max_instances": 3},
        {"min_animals": 3, "max_animals": 3, "min_instances": 1, "max_instances": 5},
        {"min_animals": 4, "max_animals": 4, "min_instances": 1, "max_instances": 10},
        {"min_animals": 5, "max_animals": 6, "min_instances": 1, "max_instances": 15},
    ),
    "word_sorting": (
        {"min_words": 3, "max_words": 3, "min_word_length": 3, "max_word_length": 5, "transformation": _LOWER},
        {"min_words": 4, "max_words": 4, "min_word_length": 3, "max_word_length": 6, "transformation": _LOWER},
        {"min_words": 5, "max_words": 5, "min_word_length": 3, "max_word_length": 8, "transformation": _LOWER},
        {"min_words": 5, "max_words": 6, "min_word_length": 3, "max_word_length": 10},
    ),
    "number_sorting": (
        {"min_numbers": 3, "max_numbers": 3, "min_decimals": 0, "max_decimals": 0, "min_value": -9, "max_value": 9},
        {"min_numbers": 4, "max_numbers": 4, "min_decimals": 0, "max_decimals": 0, "min_value": -9, "max_value": 9},
        {"min_numbers": 4, "max_numbers": 4, "min_decimals": 0, "max_decimals": 0, "min_value": -99,
         "max_value": 99},
        {"min_numbers": 5, "max_numbers": 6, "min_decimals": 0, "max_decimals": 1, "min_value": -99,
         "max_value": 99},
    ),
    "simple_equations": (
        {"min_terms": 2, "max_terms": 2, "min_value": 1, "max_value": 20, "operators": ("+", "-"),
         "operators_weights": [0.5, 0.5]},
        {"min_terms": 2, "max_terms": 2, "min_value": 1, "max_value": 9},
        {"min_terms": 3, "max_terms": 3, "min_value": 1, "max_value": 9},
        {"min_terms": 2, "max_terms": 3, "min_value": 1, "max_value": 50},
    ),
}
FAMILIES = tuple(DIFFICULTY)

# A countdown answer that the scorer may parse: integers, + - * /, parentheses, spaces (no "**").
_ARITHMETIC = re.compile(r"[0-9+\-*/() ]*")
_UNPARSEABLE_COUNTDOWN = 0.01  # what reasoning-gym's countdown scorer gives an answer it cannot parse


# --- worked steps ---------------------------------------------------------------------------------------

class _Untraceable(Exception):
  """An expression outside integer + - * / with exact divisions: its solution gets no steps."""


_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def _evaluate(expression: str) -> tuple[int, list[str]]:
  """The value of an integer + - * / expression and its binary operations in Python's evaluation order,
  as "l<op>r=v" strings; raises _Untraceable for anything else or for an inexact division."""
  steps = []

  def evaluate(node: ast.AST) -> int:
    if isinstance(node, ast.Constant) and type(node.value) is int:
      return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
      operand = evaluate(node.operand)
      return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
      left, right = evaluate(node.left), evaluate(node.right)
      symbol = _OPS[type(node.op)]
      if symbol == "/":
        # Exact divisions only: reasoning-gym floors (basic_arithmetic) or divides (countdown).
        if right == 0 or left % right:
          raise _Untraceable(expression)
        result = left // right
      else:
        result = {"+": left + right, "-": left - right, "*": left * right}[symbol]
      steps.append(f"{left}{symbol}{right}={result}")
      return result
    raise _Untraceable(expression)

  try:
    return evaluate(ast.parse(expression, mode="eval").body), steps
  except SyntaxError as e:
    raise _Untraceable(expression) from e


def _expression_steps(expression: str, value: int) -> list[str] | None:
  """The steps of `expression` (see `_evaluate`), or None when it has none or does not equal `value`."""
  try:
    result, steps = _evaluate(expression)
  except _Untraceable:
    return None
  return steps if steps and result == value else None


def _equation_steps(equation: str, variable: str, solution: int) -> list[str] | None:
  """Isolating the variable of a linear `a*x + b = r`: "a*x=r-b=c", "x=c/a=solution"."""
  lhs, rhs = equation.split(" = ")
  # The left side at x = 0, 1, 2 gives b, a + b and (linear check) 2a + b.
  try:
    at = [_evaluate(re.sub(rf"\b{variable}\b", f"({x})", lhs))[0] for x in (0, 1, 2)]
  except _Untraceable:
    return None
  a, b, r = at[1] - at[0], at[0], int(rhs)
  if at[2] != 2 * a + b or a == 0 or (r - b) % a or (r - b) // a != solution:
    return None
  c = r - b
  term = variable if a == 1 else f"-{variable}" if a == -1 else f"{a}*{variable}"
  steps = [f"{term}={r}{'-' if b > 0 else '+'}{abs(b)}={c}"] if b else []
  if a != 1:
    steps.append(f"{variable}={c}/{a}={solution}")
  return steps or None


def _short_number(text: str) -> str:
  """Drops a float's ".0" ("3.0" -> "3", "-0.0" -> "0"): reasoning-gym prints rounded integers as floats."""
  text = text.removesuffix(".0")
  return "0" if text == "-0" else text


# --- renderers: entry -> (question, answer, steps) -------------------------------------------------------

def _render_basic_arithmetic(entry: dict) -> tuple[str, str, list[str] | None]:
  return entry["question"], entry["answer"], _expression_steps(entry["metadata"]["expression"], int(entry["answer"]))


def _render_chain_sum(entry: dict) -> tuple[str, str, list[str] | None]:
  expression = entry["metadata"]["expression"]
  return f"Calculate {expression}.", entry["answer"], _expression_steps(expression, int(entry["answer"]))


def _render_countdown(entry: dict) -> tuple[str, str, list[str] | None]:
  meta = entry["metadata"]
  numbers = ", ".join(map(str, meta["numbers"]))
  question = f"Using all the numbers {numbers}, create an expression that equals {meta['target']}."
  return question, entry["answer"], _expression_steps(entry["answer"], meta["target"])


def _render_leg_counting(entry: dict) -> tuple[str, str, list[str] | None]:
  # The question's last sentence, verbatim: "Now, how many legs are there in total if you have 2 cats, 1 ant?"
  question = entry["question"].rsplit("Now, ", 1)[1].strip()
  products = [(count, ANIMALS[animal]) for animal, count in entry["metadata"]["animals"].items()]
  steps = [f"{count}*{legs}={count * legs}" for count, legs in products]
  total = sum(count * legs for count, legs in products)
  if len(products) > 1:
    steps.append("+".join(str(count * legs) for count, legs in products) + f"={total}")
  return question[0].upper() + question[1:], entry["answer"], steps if str(total) == entry["answer"] else None


def _render_word_sorting(entry: dict) -> tuple[str, str, list[str] | None]:
  meta = entry["metadata"]
  return (f"Sort these words in {meta['direction']} ASCII order: {', '.join(meta['transformed_words'])}.",
          entry["answer"], None)


def _render_number_sorting(entry: dict) -> tuple[str, str, list[str] | None]:
  meta = entry["metadata"]
  numbers = ", ".join(map(_short_number, meta["original_numbers"]))
  answer = "[" + ", ".join(map(_short_number, meta["sorted_numbers"])) + "]"
  return f"Sort these numbers in {meta['direction']} order: {numbers}.", answer, None


def _render_simple_equations(entry: dict) -> tuple[str, str, list[str] | None] | None:
  meta = entry["metadata"]
  if meta["variable"] not in meta["equation"].split(" = ")[0]:
    return None  # the variable cancelled ("0 = 0"): any value solves it, yet the scorer wants one
  question = f"Solve for {meta['variable']}: {meta['equation']}."
  return question, entry["answer"], _equation_steps(meta["equation"], meta["variable"], int(entry["answer"]))


# Each maps an entry to (question, answer, steps or None), or to None for an ill-posed entry (skipped).
_RENDER: dict[str, Callable[[dict], tuple[str, str, list[str] | None] | None]] = {
    "basic_arithmetic": _render_basic_arithmetic,
    "chain_sum": _render_chain_sum,
    "countdown": _render_countdown,
    "leg_counting": _render_leg_counting,
    "word_sorting": _render_word_sorting,
    "number_sorting": _render_number_sorting,
    "simple_equations": _render_simple_equations,
}
assert set(_RENDER) == set(DIFFICULTY)


def solution_text(answer: str, steps: Sequence[str] | None) -> str:
  """The completion `<think>s1, s2</think> <answer>X</answer>`, or `<answer>X</answer>` without steps."""
  think = f"<think>{', '.join(steps)}</think> " if steps else ""
  return f"{think}<answer>{answer}</answer>"


def render_entry(family: str, entry: dict, difficulty: int) -> dict[str, Any] | None:
  """One task row (prompt, answer, solution, family, difficulty, entry) from a reasoning-gym entry, or
  None when the entry is ill-posed."""
  if family not in _RENDER:
    raise ValueError(f"`family` {family!r} is not supported; known: {', '.join(FAMILIES)}.")
  rendered = _RENDER[family](entry)
  if rendered is None:
    return None
  question, answer, steps = rendered
  return {"prompt": f"{question} {ANSWER_INSTRUCTION}", "answer": answer, "solution": solution_text(answer, steps),
          "family": family, "difficulty": difficulty, "entry": json.dumps(entry)}


# --- splits ---------------------------------------------------------------------------------------------

def _cell_seed(seed: int, family: str, difficulty: int) -> int:
  """A reasoning-gym seed per (seed, family, level), far from the others (see the module docstring)."""
  return int(np.random.SeedSequence([seed, zlib.crc32(family.encode()), difficulty]).generate_state(1)[0])


def _cell_rows(family: str, difficulty: int, count: int, seed: int, taken: set[str]) -> list[dict]:
  """`count` rows of one cell whose prompts are not in `taken` (which gains them)."""
  # Enough draws for any level whose question space is a few times `count`; a smaller space raises.
  draws = 20 * count + 1000
  data = reasoning_gym.create_dataset(family, seed=_cell_seed(seed, family, difficulty), size=draws,
                                      **DIFFICULTY[family][difficulty])
  rows = []
  for index in range(draws):
    row = render_entry(family, data[index], difficulty)
    if row is None or row["prompt"] in taken:
      continue
    taken.add(row["prompt"])
    rows.append(row)
    if len(rows) == count:
      return rows
  raise ValueError(f"{family} level {difficulty}: only {len(rows)} new distinct prompts in {draws} draws, "
                   f"{count} wanted; lower `size` or use a harder level (its question space is too small).")


def reasoning_gym_task(families: Sequence[str], *, size: int, seed: int, difficulties: Sequence[int] = (0,),
                       exclude: Iterable[str] = ()) -> datasets.Dataset:
  """A task split: `size` rows with distinct prompts over every (family, difficulty) cell.

  Columns prompt, answer, solution, family, difficulty, entry (see the module docstring). Cells get
  `size // n_cells` rows (the first `size % n_cells` one more) and are interleaved. Ill-posed entries
  (a simple_equations whose variable cancels, "0 = 0") are skipped. Prompts in `exclude`
  (e.g. the training split's `prompt` column) are skipped, so passing them makes a held-out split.
  Deterministic in (families, size, seed, difficulties, exclude).
  """
  if isinstance(families, str) or not families:
    raise ValueError(f"`families` must be a non-empty sequence of family names, got {families!r}.")
  unknown = [f for f in families if f not in DIFFICULTY]
  if unknown or len(set(families)) != len(families):
    raise ValueError(f"`families` must be distinct names from {', '.join(FAMILIES)}; got {list(families)}.")
  if not difficulties or len(set(difficulties)) != len(difficulties):
    raise ValueError(f"`difficulties` must be a non-empty sequence of distinct levels, got {difficulties!r}.")
  for family in families:
    for d in difficulties:
      if not isinstance(d, (int, np.integer)) or not 0 <= d < len(DIFFICULTY[family]):
        raise ValueError(f"`difficulties`: level {d!r} does not exist for {family} "
                         f"(levels 0..{len(DIFFICULTY[family]) - 1}).")
  if not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f"`seed` must be a non-negative int, got {seed!r}.")
  cells = [(family, int(d)) for family in families for d in difficulties]
  if not isinstance(size, (int, np.integer)) or size < len(cells):
    raise ValueError(f"`size` must be an int >= the number of (family, difficulty) cells ({len(cells)}), "
                     f"got {size!r}.")
  taken = set(exclude)
  per_cell = [_cell_rows(f, d, size // len(cells) + (i < size % len(cells)), int(seed), taken)
              for i, (f, d) in enumerate(cells)]
  rows = [cell[j] for j in range(len(per_cell[0])) for cell in per_cell if j < len(cell)]
  import datasets  # here, not at the top: reward workers import this module for `task_reward` only

  return datasets.Dataset.from_list(rows)


def noisy_solutions(solutions: Sequence[str], answers: Sequence[str], *, rate: float, seed: int) -> list[str]:
  """The worked solutions with a `rate` fraction replaced by a wrong answer given without working.

  The SFT mixture of the RLVR testbed (spec rlvr_losses §0.3: "pre-trained by SFT on a noisy mixture
  (≈ 30–60 % correct) so that RL starts with non-trivial pass@1"): a corrupted row becomes
  "<answer>X'</answer>", no think steps, with X' the true value plus a non-zero offset in ±1..5 for
  integer answers or another row's answer otherwise. A model trained on it starts a `rate` fraction
  of its answers by guessing; the first completion token decides between working and guessing, and
  the reward tells the two apart.
  """
  if not 0.0 <= rate <= 1.0:
    raise ValueError(f"`rate` must lie in [0, 1], got {rate!r}.")
  if len(solutions) != len(answers):
    raise ValueError(f"`solutions` has {len(solutions)} entries but `answers` has {len(answers)}.")
  rng = np.random.default_rng([seed, 7])
  flip = rng.random(len(solutions)) < rate
  offsets = rng.integers(1, 6, len(solutions)) * rng.choice([-1, 1], len(solutions))
  others = rng.permutation(len(solutions))
  out = []
  for i, (solution, answer) in enumerate(zip(solutions, answers)):
    if flip[i]:
      wrong = str(int(answer) + int(offsets[i])) if re.fullmatch(r"-?\d+", answer) else answers[others[i]]
      if wrong != answer:
        solution = f"<answer>{wrong}</answer>"
    out.append(solution)
  return out


# --- reward ---------------------------------------------------------------------------------------------

@functools.cache
def _scorer(family: str) -> Callable[[str, dict], float]:
  return reasoning_gym.get_score_answer_fn(family)


@register("reasoning_gym")
def task_reward(prompt: str, completion: str, *, family: str, entry: str, **_) -> float:
  """The family's reasoning-gym score of the completion's last `<answer>` block; 0 when there is none.

  `entry` is the row's JSON entry. Scores lie in [0, 1]; 1 is a correct answer, smaller values are the
  scorer's partial credit.
  """
  del prompt
  answer = extract_answer(completion)
  if answer is None:
    return 0.0
  if family == "countdown" and (not _ARITHMETIC.fullmatch(answer) or "**" in answer):
    return _UNPARSEABLE_COUNTDOWN
  return float(_scorer(family)(answer, json.loads(entry)))


def _warmup() -> None:
  """Builds every family's scorer (and imports sympy) once per reward worker, outside the item timeout."""
  for family in FAMILIES:
    _scorer(family)


task_reward.warmup = _warmup
