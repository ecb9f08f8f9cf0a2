"""Sequence packing: the packer's layout invariants and errors, and packed SFT, DPO, SimPO and LiPO losses
(values and gradients) equal to the padded ones in float32."""

import jax
import numpy as np
import pytest
from flax import nnx

from rljax import training as T
from rljax.data import packing
from rljax.models.config import DecoderConfig
from rljax.models.decoder import Decoder

VOCAB = 31


def _model(seed=0, family="llama"):
  gpt2 = family == "gpt2"
  cfg = DecoderConfig(family=family, vocab_size=VOCAB, d_model=16, n_layers=2, n_heads=2, n_kv_heads=2 if gpt2 else 1,
                      head_dim=8, d_ff=32, max_positions=32, norm_eps=1e-5, activation="gelu_new" if gpt2 else "silu",
                      tie_word_embeddings=gpt2, qkv_bias=gpt2)
  model = Decoder(cfg, rngs=nnx.Rngs(seed))
  # Larger weights spread the per-token log-probs, so a misplaced or missing token shows in the loss.
  nnx.update(model, jax.tree.map(lambda x: 4.0 * x, nnx.state(model, nnx.Param)))
  return model


def _padded(rng, lengths, length, *, left=False, prompt=2):
  """A padded batch with `lengths` real tokens per row (left- or right-padded), prompt tokens unscored."""
  lengths = np.asarray(lengths)
  tokens = rng.integers(1, VOCAB, (len(lengths), length)).astype(np.int32)
  cols = np.arange(length)[None]
  start = (length - lengths)[:, None] if left else np.zeros_like(lengths)[:, None]
  mask = (cols >= start) & (cols < start + lengths[:, None])
  return {"tokens": tokens, "mask": mask, "loss_mask": mask & (cols >= start + prompt)}


def _value_and_grad(loss_fn, model, extra=None):
  graphdef = nnx.graphdef(model)
  f = lambda p, b: loss_fn(nnx.merge(graphdef, p), b, None, extra or {})
  return jax.jit(jax.value_and_grad(f, has_aux=True)), nnx.state(model, nnx.Param)


def _assert_same(a, b):
  """Equal losses and gradients up to float32 rounding: packing changes the shapes, hence the summation
  order, so gradients are compared relative to their largest entry."""
  (loss_a, _), grads_a = a
  (loss_b, _), grads_b = b
  np.testing.assert_allclose(loss_a, loss_b, rtol=1e-6)
  scale = max(float(np.max(np.abs(y))) for y in jax.tree.leaves(grads_b))
  for x, y in zip(jax.tree.leaves(grads_a), jax.tree.leaves(grads_b)):
    np.testing.assert_allclose(x, y, rtol=0, atol=1e-5 * scale)


def test_packer_places_every_example_once_in_one_contiguous_segment():
  rng = np.random.default_rng(0)
  lengths = rng.integers(1, 17, 200)
  examples = [rng.integers(1, VOCAB, n) for n in lengths]
  masks = [rng.random(n) < 0.7 for n in lengths]
  rows, stats = packing.pack(examples, masks, row_len=24, pad_id=-5)
  r, length = rows["tokens"].shape
  assert length == 24 and set(rows) == {"tokens", "mask", "loss_mask", "segment_ids", "positions", "sequence_ids"}
  np.testing.assert_array_equal(np.bincount(rows["sequence_ids"][rows["mask"]], minlength=200), lengths)
  np.testing.assert_array_equal(rows["mask"], rows["segment_ids"] > 0)
  np.testing.assert_array_equal(rows["mask"], rows["sequence_ids"] >= 0)
  assert np.all(rows["tokens"][~rows["mask"]] == -5) and not rows["loss_mask"][~rows["mask"]].any()
  for row in range(r):
    seg, seq = rows["segment_ids"][row], rows["sequence_ids"][row]
    real = np.flatnonzero(seg)
    # Segments fill a prefix of the row, numbered 1, 2, ... in order, padding only after them.
    np.testing.assert_array_equal(real, np.arange(real.size))
    np.testing.assert_array_equal(np.unique(seg[real]), np.arange(1, seg.max() + 1))
    assert np.all(np.diff(seg[real]) >= 0)
    for k in range(1, seg.max() + 1):
      cols = np.flatnonzero(seg == k)
      (i,) = np.unique(seq[cols])
      np.testing.assert_array_equal(rows["tokens"][row, cols], examples[i])
      np.testing.assert_array_equal(rows["loss_mask"][row, cols], masks[i])
      np.testing.assert_array_equal(rows["positions"][row, cols], np.arange(lengths[i]))
  assert stats["rows"] == r and stats["sequences"] == 200 and stats["tokens"] == lengths.sum()
  assert stats["padding_fraction"] == pytest.approx(1 - lengths.sum() / (r * 24))
  assert stats["tokens_per_row"] == pytest.approx(lengths.sum() / r)
  assert r <= np.ceil(11 / 9 * np.ceil(lengths.sum() / 24)) + 1  # near the fewest possible rows


def test_packer_options():
  rows, stats = packing.pack([[1, 2, 3], [4, 5]], row_len=4, min_rows=3)
  assert rows["tokens"].shape == (3, 4) and not rows["mask"][2].any() and rows["loss_mask"][:2].sum() == 5
  assert stats["padding_fraction"] == pytest.approx(1 - 5 / 12)
  # 64 examples per step at 2.5 examples per row: 25.6 rows, a multiple of 8 -> 24.
  assert packing.rows_per_step(64, {"rows": 400, "sequences": 1000}) == 26
  assert packing.rows_per_step(64, {"rows": 400, "sequences": 1000}, multiple=8) == 24
  assert packing.rows_per_step(1, {"rows": 400, "sequences": 1000}, multiple=8) == 8
  rows, _ = packing.pack([[1, 2, 3, 4, 5, 6], [7]], [[0, 1, 1, 1, 1, 1], [1]], row_len=4, overlong="truncate")
  np.testing.assert_array_equal(rows["tokens"], [[1, 2, 3, 4], [7, 0, 0, 0]])
  np.testing.assert_array_equal(rows["loss_mask"][0], [0, 1, 1, 1])
  # An empty example is allowed (no segment); pack_padded takes each row's real tokens wherever the padding is.
  batch = {"tokens": np.array([[9, 1, 2, 9], [3, 4, 5, 6], [9, 9, 9, 9]]),
           "mask": np.array([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)}
  rows, _ = packing.pack_padded(batch, row_len=6)
  np.testing.assert_array_equal(rows["tokens"], [[3, 4, 5, 6, 1, 2]])
  np.testing.assert_array_equal(rows["sequence_ids"], [[1, 1, 1, 1, 0, 0]])


@pytest.mark.parametrize("args, kwargs, match", [
    (([],), {"row_len": 8}, "no examples"),
    (([[1, 2, 3]],), {"row_len": 2}, "more than `row_len`=2"),
    (([[1, 2]],), {"row_len": 0}, "positive int"),
    (([[1, 2]],), {"row_len": 4, "overlong": "drop"}, "overlong"),
    (([[1, 2]], [[1, 1, 1]]), {"row_len": 4}, "example 0"),
    (([[1, 2]], [[1, 1], [1]]), {"row_len": 4}, "2 examples"),
    (([[], []],), {"row_len": 4}, "every example is empty"),
])
def test_packer_rejects_bad_input(args, kwargs, match):
  with pytest.raises(ValueError, match=match):
    packing.pack(*args, **kwargs)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_packed_sft_loss_and_gradients_equal_the_padded_ones(family):
  """Over the same scored tokens (each example's completion, its first token excluded): one padded
  row per example against packed rows holding several examples each."""
  rng = np.random.default_rng(1)
  batch = _padded(rng, [7, 2, 5, 3, 8, 4, 6, 1], 8, prompt=2)
  batch["loss_mask"][1] = batch["mask"][1]  # a fully scored row: its first token is still not scored
  packed, stats = packing.pack_padded(batch, row_len=12)
  assert stats["rows"] < 8
  step, params = _value_and_grad(T.objectives.sft_loss(), _model(0, family))
  padded_out, packed_out = step(params, batch), step(params, packed)
  _assert_same(padded_out, packed_out)
  metrics = packed_out[0][1]
  scored = sum(m[1:].sum() for m in batch["loss_mask"])
  assert float(metrics["loss_denominator"]) == float(padded_out[0][1]["loss_denominator"]) == scored
  assert float(metrics["padding_fraction"]) == pytest.approx(stats["padding_fraction"], abs=1e-6)
  padding = 1 - batch["mask"].sum() / batch["mask"].size
  assert float(padded_out[0][1]["padding_fraction"]) == pytest.approx(padding, abs=1e-6)
  # Without segments the examples of a row would see each other: a visibly different loss.
  unsegmented = {k: v for k, v in packed.items() if k not in ("segment_ids", "positions")}
  assert abs(float(step(params, unsegmented)[0][0]) - float(padded_out[0][0])) > 1e-3


def _pairs(rng, n=5, prompt_len=4, response_len=6):
  """Pairs sharing a prompt in the sampler's layout: LEFT-padded prompt, then RIGHT-padded response."""
  prompt = _padded(rng, rng.integers(1, prompt_len + 1, n), prompt_len, left=True)
  batch = {}
  for side in ("chosen", "rejected"):
    response = _padded(rng, rng.integers(1, response_len + 1, n), response_len, prompt=0)
    batch |= {f"{side}_tokens": np.concatenate([prompt["tokens"], response["tokens"]], 1),
              f"{side}_mask": np.concatenate([prompt["mask"], response["mask"]], 1),
              f"{side}_loss_mask": np.concatenate([np.zeros_like(prompt["mask"]), response["loss_mask"]], 1)}
  return batch


@pytest.mark.parametrize("name, kwargs", [("dpo", {"beta": 0.5}), ("simpo", {"beta": 2.0, "gamma": 0.3})])
def test_packed_preference_loss_and_gradients_equal_the_padded_ones(name, kwargs):
  """DPO with the reference computed from `extra["ref_params"]` and precomputed (carried through by
  `pack_pairs`); SimPO on length-averaged log-probs."""
  rng = np.random.default_rng(2)
  batch = _pairs(rng)
  policy, ref = _model(0), _model(1)
  extra = {"ref_params": nnx.state(ref, nnx.Param)}
  loss = T.objectives.preference_loss(name, ref_graphdef=nnx.graphdef(ref), **kwargs)
  packed, stats = packing.pack_pairs(batch, row_len=16)
  np.testing.assert_array_equal(packed["sequence_lengths"],
                                np.concatenate([batch["chosen_mask"].sum(1), batch["rejected_mask"].sum(1)]))
  step, params = _value_and_grad(loss, policy, extra)
  padded_out, packed_out = step(params, batch), step(params, packed)
  _assert_same(padded_out, packed_out)
  for k in ("margin_mean", "reward_acc", "chosen_reward", "rejected_reward"):
    np.testing.assert_allclose(padded_out[0][1][k], packed_out[0][1][k], rtol=1e-5, atol=1e-6)
  assert float(packed_out[0][1]["padding_fraction"]) == pytest.approx(stats["padding_fraction"], abs=1e-6)
  if name == "dpo":
    ref_c, ref_r = T.objectives.pair_logps(ref, batch)
    np.testing.assert_allclose(T.objectives.pair_logps(ref, packed), (ref_c, ref_r), rtol=1e-5, atol=1e-5)
    pre, _ = packing.pack_pairs({**batch, "ref_chosen_logps": ref_c, "ref_rejected_logps": ref_r}, row_len=16)
    step, _ = _value_and_grad(T.objectives.preference_loss(name, **kwargs), policy)
    _assert_same(padded_out, step(params, pre))


def test_packed_listwise_loss_equals_the_padded_one():
  rng = np.random.default_rng(3)
  b, k = 2, 3
  flat = _padded(rng, rng.integers(3, 9, b * k), 9)
  flat["mask"][4] = flat["loss_mask"][4] = False  # an absent response
  batch = {key: v.reshape(b, k, 9) for key, v in flat.items()}
  batch |= {"labels": rng.random((b, k)).astype(np.float32), "list_mask": flat["mask"].any(-1).reshape(b, k)}
  ref = _model(1)
  loss = T.objectives.listwise_loss("lipo", ref_graphdef=nnx.graphdef(ref), beta=0.5)
  packed, _ = packing.pack_lists(batch, row_len=20)
  assert packed["sequence_lengths"][4] == 0 and packed["labels"] is batch["labels"]
  step, params = _value_and_grad(loss, _model(0), {"ref_params": nnx.state(ref, nnx.Param)})
  _assert_same(step(params, batch), step(params, packed))
