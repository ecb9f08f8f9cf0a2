"""Sequence packing: variable-length examples into fixed-length rows, for SFT and offline preference data.

Padding N examples of lengths n_1 … n_N to a common T spends N·T token slots (and the attention and MLP
work on them) on Σ n_i real tokens. Packing places examples one after another in rows of length L, so the
same tokens fill about Σ n_i / L rows. A row holding examples 4, 0 and 7:

    tokens        a0 a1 a2 b0 b1 c0 c1 c2 ·  ·
    segment_ids   1  1  1  2  2  3  3  3  0  0     k = the k-th example of the row, 0 = padding
    positions     0  1  2  0  1  0  1  2  0  0     restart at 0 in every segment
    mask          1  1  1  1  1  1  1  1  0  0     segment_ids > 0
    sequence_ids  4  4  4  0  0  7  7  7  -1 -1    the example's index in the input, -1 = padding

`loss_mask` is each example's own. Given `segment_ids` and `positions`, the decoder
(`rljax.models.decoder.Decoder`) lets a token attend only within its segment, at the positions it has
unpacked, so each example's hidden states are those of its own forward pass. An objective reads the
log-prob of token t from the output at t − 1; at the first token of a segment that output belongs to the
previous example, so that token is never scored (`rljax.training.objectives.scored_tokens`), just as
token 0 of a padded row is not: the packed and the padded losses sum over the same tokens.

Per-sequence sums (a preference loss's log π(y|x)) are segment sums over `sequence_ids`. `pack_pairs`
numbers chosen response i as sequence i and rejected response i as P + i (the order in which a padded
pair batch is stacked); `pack_lists` numbers response k of list b as b·K + k. Both add
`sequence_lengths i32[N]`, whose static length tells the loss how many sequences there are.

Placement is best-fit decreasing: examples by decreasing length (ties by input index), each into the row
whose free space fits it most tightly, else into a new row. It is deterministic and asymptotically uses
at most 11/9 of the fewest possible rows (Johnson 1973). Every packing call reports

    tokens_per_row = Σ n_i / R,   padding_fraction = 1 − Σ n_i / (R·L)

over its R rows; the objectives report the same two numbers for each training batch.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rljax import checks

_OVERLONG = ("error", "truncate")
_ROW_FIELDS = ("tokens", "mask", "loss_mask")


def packing_stats(mask) -> dict[str, Any]:
  """`tokens_per_row` and `padding_fraction` (module docstring) of a `[R, L]` real-token mask, a NumPy or
  a JAX array (the objectives report them for every batch, inside the jitted step)."""
  tokens = mask.sum()  # an integer count: NumPy divides it in float64, JAX in float32
  return {"tokens_per_row": tokens / mask.shape[0], "padding_fraction": 1 - tokens / mask.size}


def rows_per_step(examples_per_step: int, stats: Mapping[str, float], *, multiple: int = 1) -> int:
  """Packed rows per training step that hold `examples_per_step` examples on average, from the `stats` of
  packing the whole data set: examples_per_step · rows / sequences, rounded to a positive multiple of
  `multiple` (e.g. the device count of a data-parallel mesh)."""
  rows = examples_per_step * stats["rows"] / stats["sequences"]
  return multiple * max(1, round(rows / multiple))


def _best_fit_decreasing(lengths: np.ndarray, row_len: int) -> list[list[int]]:
  """Rows as lists of example indices, in placement order; empty examples are placed nowhere."""
  rows: list[list[int]] = []
  free: list[tuple[int, int]] = []  # (free slots, row), sorted: bisect finds the tightest fit
  for i in sorted(np.flatnonzero(lengths), key=lambda i: (-lengths[i], i)):
    n = int(lengths[i])
    j = bisect.bisect_left(free, (n, -1))
    if j == len(free):
      row, left = len(rows), row_len - n
      rows.append([int(i)])
    else:
      left, row = free.pop(j)
      left -= n
      rows[row].append(int(i))
    if left:
      bisect.insort(free, (left, row))
  return rows


def pack(tokens: Sequence[Sequence[int]], loss_mask: Sequence[Sequence[Any]] | None = None, *, row_len: int,
         min_rows: int = 0, overlong: str = "error", pad_id: int = 0) -> tuple[dict[str, np.ndarray], dict[str, float]]:
  """Packs examples (unpadded token id lists) into rows of `row_len` (module docstring).

  Args:
    tokens: N ≥ 1 token id sequences; an empty one is allowed (it gets no segment) but not all of them.
    loss_mask: per-example masks of the same lengths (default: every token).
    row_len: L, the row length.
    min_rows: pad with empty rows up to this many (a stable shape across calls); more rows are used
      when the examples need them.
    overlong: an example longer than L raises ("error") or keeps its first L tokens ("truncate").
    pad_id: the token id in padding slots (never attended or scored).

  Returns:
    `(rows, stats)`: `rows` holds `tokens i32`, `mask bool`, `loss_mask bool`, `segment_ids i32`,
    `positions i32`, `sequence_ids i32`, all `[R, L]`; `stats` holds `rows`, `sequences`, `tokens`,
    `tokens_per_row` and `padding_fraction`.
  """
  if not isinstance(row_len, (int, np.integer)) or row_len < 1:
    raise ValueError(f"`row_len` must be a positive int, got {row_len!r}.")
  checks.check_nonnegative("min_rows", min_rows)
  if overlong not in _OVERLONG:
    raise ValueError(f"`overlong` must be one of {_OVERLONG}, got {overlong!r}.")
  if len(tokens) == 0:
    raise ValueError("`tokens` holds no examples to pack.")
  if loss_mask is not None and len(loss_mask) != len(tokens):
    raise ValueError(f"`loss_mask` has {len(loss_mask)} examples, `tokens` has {len(tokens)}.")
  seqs = [np.asarray(t, np.int64).reshape(-1) for t in tokens]
  masks = ([np.ones(s.shape, bool) for s in seqs] if loss_mask is None
           else [np.asarray(m, bool).reshape(-1) for m in loss_mask])
  for i, (s, m) in enumerate(zip(seqs, masks)):
    if m.shape != s.shape:
      raise ValueError(f"example {i}: `loss_mask` has {m.size} entries for {s.size} tokens.")
    if s.size > row_len and overlong == "error":
      raise ValueError(f"example {i} has {s.size} tokens, more than `row_len`={row_len} (pass overlong='truncate' "
                       "to keep its first `row_len` tokens).")
  lengths = np.array([min(s.size, row_len) for s in seqs], np.int64)
  if not lengths.any():
    raise ValueError("every example is empty; there is nothing to pack.")
  placement = _best_fit_decreasing(lengths, row_len)
  shape = (max(len(placement), min_rows), row_len)
  out = {"tokens": np.full(shape, pad_id, np.int32), "loss_mask": np.zeros(shape, bool),
         "segment_ids": np.zeros(shape, np.int32), "positions": np.zeros(shape, np.int32),
         "sequence_ids": np.full(shape, -1, np.int32)}
  for r, members in enumerate(placement):
    start = 0
    for k, i in enumerate(members):
      n = int(lengths[i])
      cols = slice(start, start + n)
      out["tokens"][r, cols] = seqs[i][:n]
      out["loss_mask"][r, cols] = masks[i][:n]
      out["segment_ids"][r, cols] = k + 1
      out["positions"][r, cols] = np.arange(n)
      out["sequence_ids"][r, cols] = i
      start += n
  out["mask"] = out["segment_ids"] > 0
  stats = {"rows": shape[0], "sequences": len(seqs), "tokens": int(lengths.sum()),
           **{k: float(v) for k, v in packing_stats(out["mask"]).items()}}
  return out, stats


def _unpad(batch: Mapping[str, Any], prefix: str = "") -> tuple[list[np.ndarray], list[np.ndarray]]:
  """The real tokens of each padded row of `{prefix}tokens` (where `{prefix}mask` is set, in order) and
  their loss mask (`{prefix}loss_mask`, default every real token)."""
  tokens = np.asarray(batch[f"{prefix}tokens"])
  mask = np.asarray(batch[f"{prefix}mask"], bool)
  loss_mask = np.asarray(batch.get(f"{prefix}loss_mask", mask), bool)
  checks.check_same_shape(tokens=tokens, mask=mask, loss_mask=loss_mask)
  tokens, mask, loss_mask = (x.reshape(-1, x.shape[-1]) for x in (tokens, mask, loss_mask))
  return [t[m] for t, m in zip(tokens, mask)], [lm[m] for lm, m in zip(loss_mask, mask)]


def pack_padded(batch: Mapping[str, Any], *, row_len: int, **kwargs) -> tuple[dict[str, np.ndarray], dict[str, float]]:
  """`pack` of a padded batch `tokens`, `mask` (and `loss_mask`) `[N, T]`, e.g. `rljax.text.encode_sft`'s.

  Each example is its row's real tokens in order, wherever the padding sits (left, right or both), so
  its positions are the padded model's `cumsum(mask) − 1`. `kwargs` go to `pack`.
  """
  return pack(*_unpad(batch), row_len=row_len, **kwargs)


def _with_lengths(rows: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
  lengths = np.bincount(rows["sequence_ids"][rows["mask"]], minlength=n).astype(np.int32)
  return {**rows, "sequence_lengths": lengths}


def pack_pairs(batch: Mapping[str, Any], *, row_len: int, **kwargs) -> tuple[dict[str, Any], dict[str, float]]:
  """Packs a padded pair batch (`chosen_*` and `rejected_*` `tokens`, `mask`, `loss_mask` `[P, T]`).

  Returns the packed rows (chosen i is sequence i, rejected i is P + i), `sequence_lengths i32[2P]`, and
  every other field of `batch` unchanged (e.g. precomputed `ref_chosen_logps f[P]`), for
  `rljax.training.objectives.preference_loss`. `kwargs` go to `pack`.
  """
  chosen, rejected = _unpad(batch, "chosen_"), _unpad(batch, "rejected_")
  if len(chosen[0]) != len(rejected[0]):
    raise ValueError(f"{len(chosen[0])} chosen but {len(rejected[0])} rejected responses.")
  rows, stats = pack(chosen[0] + rejected[0], chosen[1] + rejected[1], row_len=row_len, **kwargs)
  packed = {f"{side}_{k}" for side in ("chosen", "rejected") for k in _ROW_FIELDS}
  rest = {k: v for k, v in batch.items() if k not in packed}
  return {**rest, **_with_lengths(rows, 2 * len(chosen[0]))}, stats


def pack_lists(batch: Mapping[str, Any], *, row_len: int, **kwargs) -> tuple[dict[str, Any], dict[str, float]]:
  """Packs a padded listwise batch (`tokens`, `mask`, `loss_mask` `[B, K, T]`); response k of list b is
  sequence b·K + k, and an absent response (no real token) is simply left out. Returns the packed rows,
  `sequence_lengths i32[B·K]` and the other fields (`labels`, `list_mask`, `ref_logps`) unchanged, for
  `rljax.training.objectives.listwise_loss`. `kwargs` go to `pack`.
  """
  if np.ndim(batch["tokens"]) != 3:
    raise ValueError(f"`tokens` must be [B, K, T], got shape {np.shape(batch['tokens'])}.")
  rows, stats = pack(*_unpad(batch), row_len=row_len, **kwargs)
  rest = {k: v for k, v in batch.items() if k not in _ROW_FIELDS}
  b, k = np.shape(batch["tokens"])[:2]
  return {**rest, **_with_lengths(rows, b * k)}, stats
