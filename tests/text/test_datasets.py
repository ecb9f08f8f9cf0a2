"""Prompt dataset loading and the (seed, pos) -> batch stream: permutations, resume, process shards."""

from __future__ import annotations

import json

import datasets
import jax
import numpy as np
import pytest

from rljax import text

N = 10


def _rows(n=N):
  return [{"prompt": f"What is {i} + {i}?", "answer": str(2 * i), "family": "add", "difficulty": i % 3}
          for i in range(n)]


@pytest.fixture(scope="module")
def dataset():
  return datasets.Dataset.from_list(_rows())


def _data(dataset, tok, **kwargs):
  kwargs = {"batch_size": 4, "max_prompt_len": 24, "seed": 0} | kwargs
  return text.PromptDataset(dataset, tok, **kwargs)


def test_every_row_once_per_epoch(dataset, tok):
  data = _data(dataset, tok, batch_size=4)  # 4 does not divide 10: batches 2 and 4 straddle epochs
  stream = np.concatenate([data.global_rows(pos) for pos in range(10)])  # 40 positions = 4 epochs
  epochs = stream.reshape(4, N)
  for e, perm in enumerate(epochs):
    assert sorted(perm) == list(range(N))
    np.testing.assert_array_equal(perm, np.random.default_rng([0, e]).permutation(N))
  assert len({tuple(p) for p in epochs}) == 4  # a new order each epoch
  assert [data.epoch_of(pos) for pos in range(6)] == [0, 0, 0, 1, 1, 2] and len(data) == N
  other = _data(dataset, tok, seed=1)
  assert not np.array_equal(other.global_rows(0), data.global_rows(0))


def test_batch_larger_than_dataset(dataset, tok):
  data = _data(dataset, tok, batch_size=25)  # one batch spans three epochs
  rows = data.global_rows(1)  # positions 25..49: end of epoch 2, all of epochs 3 and 4
  perms = [np.random.default_rng([0, e]).permutation(N) for e in (2, 3, 4)]
  np.testing.assert_array_equal(rows, np.concatenate([perms[0][5:], perms[1], perms[2]]))


def test_batch_contents_and_resume(dataset, tok):
  data = _data(dataset, tok)
  batch = data.batch(3)
  ref = [_rows()[i] for i in data.global_rows(3)]
  assert batch.prompts == [r["prompt"] for r in ref]
  assert batch.rows == [{k: v for k, v in r.items() if k != "prompt"} for r in ref]
  ids, mask = text.encode_prompts(tok, batch.prompts, max_len=24)
  np.testing.assert_array_equal(batch.ids, ids)
  np.testing.assert_array_equal(batch.mask, mask)
  # Resume: a fresh stream asked for the same positions, in another order, gives the same batches.
  fresh = _data(dataset, tok)
  for pos in (7, 3, 0, 7):
    a, b = fresh.batch(pos), data.batch(pos)
    np.testing.assert_array_equal(a.ids, b.ids)
    assert a.rows == b.rows and a.prompts == b.prompts


def test_process_shards_partition_the_global_batch(dataset, tok, monkeypatch):
  full = _data(dataset, tok, batch_size=6)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  shards = []
  for index in (0, 1):
    monkeypatch.setattr(jax, "process_index", lambda index=index: index)
    shards.append(_data(dataset, tok, batch_size=6))
  for pos in range(4):
    parts = [shard.batch(pos) for shard in shards]
    assert all(p.ids.shape == (3, 24) for p in parts)
    np.testing.assert_array_equal(np.concatenate([p.ids for p in parts]), full.batch(pos).ids)
    assert parts[0].prompts + parts[1].prompts == full.batch(pos).prompts
  with pytest.raises(ValueError, match="batch_size"):
    _data(dataset, tok, batch_size=5)


def test_long_prompt_names_its_row(tok):
  rows = [{"prompt": "short"}] * 1500  # more than one `map` batch, so the row offset matters
  rows[1203] = {"prompt": "a much longer prompt " * 10}
  with pytest.raises(ValueError, match=r"row 1203 has \d+ tokens, more than `max_prompt_len`=16"):
    text.PromptDataset(datasets.Dataset.from_list(rows), tok, batch_size=2, max_prompt_len=16)


def test_bad_arguments(dataset, tok):
  with pytest.raises(ValueError, match="prompt_column"):
    _data(dataset, tok, prompt_column="question")
  with pytest.raises(ValueError, match="empty"):
    _data(dataset.select([]), tok)
  with pytest.raises(ValueError, match="batch_size"):
    _data(dataset, tok, batch_size=0)
  with pytest.raises(ValueError, match="seed"):
    _data(dataset, tok, seed=-1)
  with pytest.raises(ValueError, match="dataset"):
    _data(_rows(), tok)
  with pytest.raises(ValueError, match="pos"):
    _data(dataset, tok).batch(-1)


def test_load_files_and_generator(tmp_path):
  rows = _rows(5)
  jsonl = tmp_path / "train.jsonl"
  jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
  as_json = tmp_path / "train.json"
  as_json.write_text(json.dumps(rows))
  parquet = tmp_path / "train.parquet"
  datasets.Dataset.from_list(rows).to_parquet(str(parquet))
  for path in (jsonl, as_json, parquet):
    assert text.load_prompt_dataset(str(path)).to_list() == rows
  generated = text.load_prompt_dataset(lambda: iter(_rows(5)))
  assert generated.to_list() == rows


def test_load_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="missing.jsonl"):
    text.load_prompt_dataset(str(tmp_path / "missing.jsonl"))
  (tmp_path / "train.csv").write_text("prompt\nx\n")
  with pytest.raises(ValueError, match="unknown extension"):
    text.load_prompt_dataset(str(tmp_path / "train.csv"))
  with pytest.raises(ValueError, match="source"):
    text.load_prompt_dataset(3)
