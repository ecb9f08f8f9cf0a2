"""Prompt datasets: loading (Hugging Face `datasets`) and a resumable, process-sharded batch stream.

Usage:

    ds = load_prompt_dataset("train.jsonl")          # or .json / .parquet, or a generator of dicts
    data = PromptDataset(ds, tok, batch_size=64, max_prompt_len=256, seed=0)
    batch = data.batch(state.data_pos)                # PromptBatch(ids, mask, rows, prompts)
    rewards = pool(batch.prompts, completions, batch.rows)

The stream. Let N = len(dataset) and B = batch_size. Stream position k (k = 0, 1, ...) reads

    row(k) = perm_e[k mod N],  e = k // N,  perm_e = np.random.default_rng([seed, e]).permutation(N)

and batch `pos` is positions pos·B ... pos·B + B − 1, so every row appears exactly once per epoch,
a batch that crosses an epoch boundary takes the end of one permutation and the start of the next,
and `batch(pos)` is a pure function of (seed, pos): storing `pos` in the checkpoint (TrainState.data_pos)
makes resume exact. Under `jax.distributed` with P processes, process p reads rows p·b ... p·b + b − 1
of the global batch (b = B / P), so the processes' shards partition the global batch.

Prompts are tokenized once at construction (`dataset.map(batched=True)`, LEFT-padded to
`max_prompt_len`, kept as NumPy arrays); a prompt longer than `max_prompt_len` raises, naming its row.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from typing import Any

import datasets
import jax
import numpy as np

from rljax import checks
from rljax.text.batching import pad_rows, padding_id, prompt_token_ids

_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def load_prompt_dataset(source: str | Callable[[], Iterator[dict]]) -> datasets.Dataset:
  """A local `.jsonl`/`.json`/`.parquet` file (`datasets.load_dataset`, split "train"), or the rows of a
  generator function (`Dataset.from_generator`)."""
  if callable(source):
    return datasets.Dataset.from_generator(source)
  if not isinstance(source, (str, os.PathLike)):
    raise ValueError(f"`source` must be a file path or a generator function, got {type(source)}.")
  path = os.fspath(source)
  builder = _BUILDERS.get(os.path.splitext(path)[1].lower())
  if builder is None:
    raise ValueError(f"`source` {path!r}: unknown extension, expected one of {sorted(_BUILDERS)}.")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"`source` {path!r} does not exist.")
  return datasets.load_dataset(builder, data_files=path, split="train")


@dataclasses.dataclass(frozen=True)
class PromptBatch:
  """This process's rows of one batch: LEFT-padded prompt `ids`/`mask` `[b, P]`, the dataset's other
  columns as one dict per row (`rows`, passed to rewards as keyword arguments), and the raw `prompts`
  (the prompt column's values, what a reward sees as its `prompt`)."""
  ids: np.ndarray
  mask: np.ndarray
  rows: list[dict[str, Any]]
  prompts: list[Any]


class PromptDataset:
  """A deterministic, epoch-permuted, process-sharded stream of prompt batches (see the module docstring).

  `len(data)` is the number of rows N of the dataset; `epoch_of(pos)` is the epoch in which batch `pos`
  starts, pos·B // N.
  """

  def __init__(self, dataset: datasets.Dataset, tokenizer, *, batch_size: int, max_prompt_len: int, seed: int = 0,
               prompt_column: str = "prompt", chat: bool = True):
    if not isinstance(dataset, datasets.Dataset):
      raise ValueError(f"`dataset` must be a datasets.Dataset, got {type(dataset)}.")
    if prompt_column not in dataset.column_names:
      raise ValueError(f"`prompt_column` {prompt_column!r} is not a column of the dataset {dataset.column_names}.")
    if len(dataset) == 0:
      raise ValueError("`dataset` is empty.")
    checks.check_positive("batch_size", batch_size)
    checks.check_positive("max_prompt_len", max_prompt_len)
    checks.check_nonnegative("seed", seed)  # np.random.default_rng rejects negative entropy
    self.process_index, self.process_count = jax.process_index(), jax.process_count()
    if batch_size % self.process_count:
      raise ValueError(f"`batch_size`={batch_size} is not divisible by the process count {self.process_count}.")
    self.batch_size, self.max_prompt_len, self.seed = int(batch_size), int(max_prompt_len), int(seed)
    self.local_batch_size = self.batch_size // self.process_count
    self.prompt_column = prompt_column
    pad_id = padding_id(tokenizer)

    def tokenize(batch, indices):
      ids = prompt_token_ids(tokenizer, batch[prompt_column], chat=chat)
      tokens, mask = pad_rows(ids, max_len=max_prompt_len, pad_id=pad_id, left=True, name="max_prompt_len",
                              offset=indices[0])
      return {"ids": tokens, "mask": mask}

    # Only the two new columns are kept, in memory: the token arrays are read once into NumPy, and
    # nothing is written to the datasets cache.
    tokenized = dataset.map(tokenize, batched=True, with_indices=True, remove_columns=dataset.column_names,
                            keep_in_memory=True, load_from_cache_file=False, desc="tokenizing prompts")
    arrays = tokenized.with_format("numpy")[:]  # one columnar read (iterating a column goes row by row)
    self.ids = arrays["ids"].astype(np.int32).reshape(len(dataset), max_prompt_len)
    self.mask = arrays["mask"].astype(bool).reshape(len(dataset), max_prompt_len)
    self.dataset = dataset
    self._perms: dict[int, np.ndarray] = {}

  def __len__(self) -> int:
    return len(self.dataset)

  def epoch_of(self, pos: int) -> int:
    return pos * self.batch_size // len(self)

  def _perm(self, epoch: int) -> np.ndarray:
    if epoch not in self._perms:
      if len(self._perms) >= 2:  # consecutive batches touch one or two epochs
        self._perms.pop(min(self._perms))
      self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(len(self))
    return self._perms[epoch]

  def global_rows(self, pos: int) -> np.ndarray:
    """Dataset row indices `int64[B]` of the global batch `pos` (all processes)."""
    if not isinstance(pos, (int, np.integer)) or pos < 0:
      raise ValueError(f"`pos` must be a non-negative int, got {pos!r}.")
    k = int(pos) * self.batch_size + np.arange(self.batch_size)
    epochs, within = np.divmod(k, len(self))
    return np.concatenate([self._perm(int(e))[within[epochs == e]] for e in np.unique(epochs)])

  def batch(self, pos: int) -> PromptBatch:
    """This process's share of global batch `pos`."""
    b = self.local_batch_size
    rows = self.global_rows(pos)[self.process_index * b:(self.process_index + 1) * b]
    columns = self.dataset[rows]  # one columnar read: dict of lists in `rows` order
    prompts = columns.pop(self.prompt_column)
    records = [dict(zip(columns, values)) for values in zip(*columns.values())] if columns else [{} for _ in rows]
    return PromptBatch(ids=self.ids[rows], mask=self.mask[rows], rows=records, prompts=prompts)
