"""Reasoning-gym task splits: entries are reasoning-gym's own, solutions are true and score 1 with the
family's own scorer, held-out splits share no prompt with training, and the reward is poolable."""

from __future__ import annotations

import collections
import json
import pickle
import re

import numpy as np
import pytest
import reasoning_gym

from rljax.rewards import RewardPool
from rljax.tasks import DIFFICULTY, FAMILIES, reasoning_gym_task, task_reward
from rljax.tasks import reasoning_gym as rg_task

COLUMNS = {"prompt", "answer", "solution", "family", "difficulty", "entry"}
_ARITHMETIC = re.compile(r"[0-9+\-*/]+")


def _reward(row: dict, completion: str) -> float:
  columns = {k: v for k, v in row.items() if k != "prompt"}
  return task_reward(row["prompt"], completion, **columns)


@pytest.fixture(scope="module")
def every_level() -> list[dict]:
  """Three rows of every (family, level) cell."""
  rows = []
  for family in FAMILIES:
    levels = tuple(range(len(DIFFICULTY[family])))
    rows += reasoning_gym_task([family], size=3 * len(levels), seed=7, difficulties=levels).to_list()
  return rows


def test_at_least_five_families_with_levels():
  assert {"basic_arithmetic", "chain_sum", "countdown", "leg_counting", "word_sorting"} <= set(FAMILIES)
  assert all(len(levels) >= 3 for levels in DIFFICULTY.values())


def test_split_columns_balance_and_determinism():
  families = ["chain_sum", "leg_counting", "word_sorting"]
  ds = reasoning_gym_task(families, size=20, seed=0, difficulties=(0, 1))
  assert set(ds.column_names) == COLUMNS and len(ds) == 20
  cells = [(r["family"], r["difficulty"]) for r in ds]
  assert sorted(collections.Counter(cells).values()) == [3, 3, 3, 3, 4, 4]   # 20 rows over 6 cells
  assert len(set(cells[:6])) == 6                                            # interleaved: a prefix is balanced
  assert ds.to_list() == reasoning_gym_task(families, size=20, seed=0, difficulties=(0, 1)).to_list()
  assert all(r["prompt"].endswith(" Answer in <answer></answer>.") for r in ds)


def test_entries_are_reasoning_gyms_own(every_level):
  """The stored entry is item `source_index` of reasoning-gym's dataset for the cell's config and seed."""
  for row in every_level:
    entry = json.loads(row["entry"])
    family, level = row["family"], row["difficulty"]
    assert set(entry) >= {"question", "answer", "metadata"} and entry["metadata"]["source_dataset"] == family
    data = reasoning_gym.create_dataset(family, seed=rg_task._cell_seed(7, family, level), **DIFFICULTY[family][level])
    assert json.loads(json.dumps(data[entry["metadata"]["source_index"]])) == entry


def test_reference_solutions_score_one(every_level):
  seen = collections.Counter()
  for row in every_level:
    entry = json.loads(row["entry"])
    assert _reward(row, row["solution"]) == 1.0, row
    assert _reward(row, f"<answer>{row['answer']}</answer>") == 1.0, row
    assert reasoning_gym.get_score_answer_fn(row["family"])(row["answer"], entry) == 1.0
    assert re.fullmatch(r"(<think>[^<>]+</think> )?<answer>[^<>]+</answer>", row["solution"]), row["solution"]
    seen[row["family"]] += 1
  assert set(seen) == set(FAMILIES)


def test_solution_steps_are_true_equations(every_level):
  """Every step "e1=e2=..." of a think block: its arithmetic parts all have one value, and the last
  step's value is the answer (countdown: the target)."""
  traced = collections.Counter()
  for row in every_level:
    think = re.match(r"<think>(.*)</think>", row["solution"])
    if think is None:
      continue
    traced[row["family"]] += 1
    values = []
    for step in think.group(1).split(", "):
      parts = [p for p in step.split("=") if _ARITHMETIC.fullmatch(p)]   # "-6*u" holds the variable: skipped
      values = [eval(p.replace("/", "//")) for p in parts]                # divisions in steps are exact
      assert len(set(values)) == 1, step
      assert all("/" not in p or eval(p.replace("/", "%")) == 0 for p in parts), step
    metadata = json.loads(row["entry"])["metadata"]
    target = metadata["target"] if row["family"] == "countdown" else int(row["answer"])
    assert values[0] == target, row["solution"]
  for family in ("basic_arithmetic", "chain_sum", "countdown", "leg_counting", "simple_equations"):
    assert traced[family] >= len(DIFFICULTY[family]) * 3 - 2, family   # (almost) every row has steps


def test_wrong_answers_score_below_one(every_level):
  for row in every_level:
    assert _reward(row, "no answer here") == 0.0
    assert _reward(row, f"<answer>{row['answer']}") == 0.0                    # unclosed block
    assert _reward(row, "<answer>0 0</answer>") < 1.0
    if row["family"] in ("basic_arithmetic", "chain_sum", "leg_counting", "simple_equations"):
      assert _reward(row, f"<answer>{int(row['answer']) + 1}</answer>") < 1.0
    if row["family"] == "word_sorting":
      words = row["answer"].split(", ")
      assert _reward(row, f"<answer>{', '.join(words[1:] + words[:1])}</answer>") < 1.0


def test_countdown_scores_any_valid_expression_and_never_evaluates_code():
  row = reasoning_gym_task(["countdown"], size=1, seed=3).to_list()[0]
  metadata = json.loads(row["entry"])["metadata"]
  a, b, c = metadata["numbers"]
  target = metadata["target"]
  alternatives = [f"({a} + {b}) + {c}", f"{a} + {b} - {c}", f"{a} - {b} - {c}", f"{a} * {b} - {c}"]
  for expression in alternatives:
    assert _reward(row, f"<answer>{expression}</answer>") == (1.0 if eval(expression) == target else 0.05)
  for hostile in ("__import__('os').getpid()", "9**9**9**9", "lambda: 1"):
    assert _reward(row, f"<answer>{hostile}</answer>") == 0.01


def test_heldout_split_excludes_training_prompts():
  families = ["chain_sum", "number_sorting"]
  train = reasoning_gym_task(families, size=600, seed=0)
  test = reasoning_gym_task(families, size=200, seed=1, exclude=train["prompt"])
  assert len(set(train["prompt"])) == 600 and len(set(test["prompt"])) == 200
  assert not set(train["prompt"]) & set(test["prompt"])
  # Seeds are hashed per cell: seed 1 is not seed 0 shifted by one item, so the splits overlap only by chance.
  unfiltered = reasoning_gym_task(families, size=200, seed=1)
  assert len(set(unfiltered["prompt"]) & set(train["prompt"])) < 60


def test_small_question_space_raises(monkeypatch):
  # Two 1-digit terms: 200 distinct prompts, fewer than asked.
  monkeypatch.setitem(DIFFICULTY, "chain_sum", ({"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1},))
  assert len(reasoning_gym_task(["chain_sum"], size=150, seed=0)) == 150
  with pytest.raises(ValueError, match="distinct prompts"):
    reasoning_gym_task(["chain_sum"], size=250, seed=0)


@pytest.mark.parametrize("kwargs", [
    {"families": "chain_sum"}, {"families": []}, {"families": ["chain_sum", "chain_sum"]},
    {"families": ["no_such_family"]}, {"difficulties": (9,)}, {"difficulties": ()}, {"difficulties": (0, 0)},
    {"size": 1, "difficulties": (0, 1)}, {"seed": -1}])
def test_bad_arguments_raise(kwargs):
  arguments = {"families": ["chain_sum"], "size": 4, "seed": 0, **kwargs}
  with pytest.raises(ValueError):
    reasoning_gym_task(**arguments)


def test_reward_is_poolable_by_name():
  assert pickle.loads(pickle.dumps(task_reward)) is task_reward
  rows = reasoning_gym_task(["leg_counting", "word_sorting"], size=4, seed=0).to_list()
  completions = [rows[0]["solution"], "<answer>nope</answer>", rows[2]["solution"], "no answer"]
  with RewardPool({"correct": "reasoning_gym"}, workers=0) as pool:
    total, metrics = pool([r["prompt"] for r in rows], completions, [{k: r[k] for k in COLUMNS - {"prompt"}}
                                                                   for r in rows])
  np.testing.assert_allclose(total, [1.0, 0.0, 1.0, 0.0])
  assert metrics["reward/errors"] == 0


def test_noisy_solutions_replace_a_fraction_by_wrong_unworked_answers():
  from rljax.tasks import noisy_solutions

  ds = reasoning_gym_task(["chain_sum", "number_sorting"], size=400, seed=5)
  rows = [dict(r) for r in ds]
  assert noisy_solutions(ds["solution"], ds["answer"], rate=0.0, seed=0) == list(ds["solution"])
  noisy = noisy_solutions(ds["solution"], ds["answer"], rate=0.5, seed=0)
  changed = [i for i, (a, b) in enumerate(zip(noisy, ds["solution"])) if a != b]
  assert 0.4 < len(changed) / len(rows) < 0.6
  for i in changed:
    assert noisy[i].startswith("<answer>") and "<think>" not in noisy[i]  # no working
    row = rows[i]
    assert task_reward(row["prompt"], noisy[i], family=row["family"], entry=row["entry"]) < 1.0  # wrong
  assert noisy == noisy_solutions(ds["solution"], ds["answer"], rate=0.5, seed=0)
  with pytest.raises(ValueError, match="rate"):
    noisy_solutions(ds["solution"], ds["answer"], rate=1.5, seed=0)
