"""Answer extraction, format and length rewards, math equivalence (math-verify) and the registry."""

from __future__ import annotations

import threading

import pytest

from rljax import rewards
from rljax.rewards import answer_format, extract_answer, length_limit, math_equivalence


@pytest.mark.parametrize("completion, expected", [
    ("<think>2+3</think> <answer> 5 </answer>", "5"),
    ("<answer>1</answer> then <answer>2</answer>", "2"),           # the last block
    ("<answer>draft <answer>3</answer>", "3"),                       # a stray opening tag does not leak in
    ("<answer>\\frac{1}{2}</answer>", "\\frac{1}{2}"),
    ("<answer></answer>", ""),
    ("the answer is 5", None),
    ("<answer>5", None),
    ("5</answer>", None),
    ("</answer><answer>5", None),
])
def test_extract_answer(completion, expected):
  assert extract_answer(completion) == expected


@pytest.mark.parametrize("completion, expected", [
    ("<think>hm</think><answer>5</answer>", 1.0),
    ("<answer>5</answer>", 1.0),
    ("<answer>5</answer><answer>6</answer>", 0.0),   # hedging
    ("<answer> </answer>", 0.0),                     # empty
    ("</answer>5<answer>", 0.0),                     # out of order
    ("<answer>5", 0.0),
    ("5", 0.0),
])
def test_answer_format(completion, expected):
  assert answer_format("q", completion) == expected


def test_length_limit():
  assert length_limit("q", "x" * 10, max_chars=10) == 1.0
  assert length_limit("q", "x" * 11, max_chars=10) == 0.0
  with pytest.raises(ValueError, match="max_chars"):
    length_limit("q", "x", max_chars=0)


EQUIVALENT = [("0.5", "\\frac{1}{2}"), ("\\frac{1}{2}", "0.5"), ("1/2", "0.5"), ("2x+1", "1+2x"), ("3", "x = 3"),
              ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}"), ("-7", "\\boxed{-7}"), ("1000", "1,000")]
DIFFERENT = [("0.5", "\\frac{1}{3}"), ("2x+1", "2x-1"), ("3", "4"), ("2x+1", "2"), ("3", "")]


@pytest.mark.parametrize("gold, prediction", EQUIVALENT)
def test_math_equivalence_true(gold, prediction):
  assert math_equivalence("q", f"<think>..</think><answer>{prediction}</answer>", answer=gold) == 1.0


@pytest.mark.parametrize("gold, prediction", DIFFERENT)
def test_math_equivalence_false(gold, prediction):
  assert math_equivalence("q", f"<answer>{prediction}</answer>", answer=gold) == 0.0


def test_math_equivalence_needs_the_answer_block():
  assert math_equivalence("q", "the answer is 0.5", answer="0.5") == 0.0
  assert math_equivalence("q", "0.5 <answer>", answer="0.5") == 0.0
  with pytest.raises(ValueError, match="timeout_seconds"):
    math_equivalence("q", "<answer>1</answer>", answer="1", timeout_seconds=0.5)


def test_math_equivalence_off_the_main_thread():
  """math-verify's signal.alarm timeouts raise off the main thread; the reward switches them off there."""
  results = {}

  def run():
    results["same"] = math_equivalence("q", "<answer>\\frac{1}{2}</answer>", answer="0.5")
    results["other"] = math_equivalence("q", "<answer>2x-1</answer>", answer="2x+1")

  thread = threading.Thread(target=run)
  thread.start()
  thread.join()
  assert results == {"same": 1.0, "other": 0.0}


def test_registry():
  assert {"answer_format", "length_limit", "math_equivalence"} <= set(rewards.names())
  assert rewards.get("math_equivalence") is math_equivalence
  with pytest.raises(KeyError, match="unknown reward 'nope'; known: .*answer_format"):
    rewards.get("nope")
  with pytest.raises(ValueError, match="already registered"):
    rewards.register("answer_format")(answer_format)
