"""Loss functions for `make_train_step`: thin adapters from batches of tokens to the `rljax.losses`
kernels. Each returns `loss_fn(model, batch, rng, extra) -> (loss, metrics)`, where `extra` is the
train state's `extra` dict (reference parameters, controller states).

Batches are dicts of arrays. A sequence is `tokens i32[B, T]` with `mask [B, T]` (1 on real tokens)
and `loss_mask [B, T]` (1 on the tokens that are scored, e.g. a completion but not its prompt); the
log-probability of token t is read from the model's output at t − 1, so position 0 is never scored.

Packed rows (`rljax.data.packing`) add `segment_ids` and `positions [B, T]`: the model attends within
segments, and the first token of each segment is not scored either (its output at t − 1 belongs to the
previous segment), so a packed loss sums over exactly the tokens of the padded one. Sequence sums of a
packed batch are segment sums over its `sequence_ids`, N = len(`sequence_lengths`) of them; every
objective below takes padded and packed batches alike, and reports `tokens_per_row` and
`padding_fraction` (`rljax.data.packing.packing_stats`; per micro-batch under gradient accumulation).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from rljax import losses
from rljax.data.packing import packing_stats
from rljax.models.heads import model_token_logps


def token_logps(model, tokens: jax.Array, mask: jax.Array, segment_ids: jax.Array | None = None,
                positions: jax.Array | None = None) -> jax.Array:
  """`f32[B, T]` log π(tokens[t] | tokens[<t]) with the fused head; 0 at t = 0. With `segment_ids` (and
  `positions`) of packed rows the prefix is t − 1's segment; `scored_tokens` drops the segment starts."""
  head = lambda x: None if x is None else x[:, :-1]
  logps = model_token_logps(model, tokens[:, :-1], tokens[:, 1:], attention_mask=mask[:, :-1],
                            positions=head(positions), segment_ids=head(segment_ids))
  return jnp.pad(logps, ((0, 0), (1, 0)))


def scored_tokens(loss_mask: jax.Array, segment_ids: jax.Array | None = None) -> jax.Array:
  """`loss_mask` (its dtype) zeroed where a token has no prediction of its own: t = 0, and with
  `segment_ids` every t whose segment differs from t − 1's (a packed example's first token)."""
  keep = jnp.arange(loss_mask.shape[-1]) > 0
  if segment_ids is not None:
    keep = keep & (segment_ids == jnp.pad(segment_ids, ((0, 0), (1, 0)))[:, :-1])
  return jnp.where(keep, loss_mask, jnp.zeros((), loss_mask.dtype))


def _rows(batch, prefixes=("",)) -> dict[str, jax.Array]:
  """The token rows of a batch: a packed batch's own, else the `{prefix}` sequences stacked along B
  (`[B, K, T]` lists flattened to `[B·K, T]`)."""
  if "segment_ids" in batch:
    return batch
  stack = lambda k: jnp.concatenate([batch[f"{p}{k}"].reshape(-1, batch[f"{p}{k}"].shape[-1]) for p in prefixes])
  return {k: stack(k) for k in ("tokens", "mask", "loss_mask")}


def row_sequence_logps(model, rows, *, averages=(False,)) -> tuple[jax.Array, ...]:
  """`f32[N]` sequence log-probs, one array per entry of `averages`: the scored-token sum Σ_t log π, or its
  mean when True (SimPO), from one forward pass over `rows` (`tokens`, `mask`, `loss_mask` `[R, T]`). A
  padded row is one sequence (N = R); packed rows (with `segment_ids`, `positions`, `sequence_ids` and
  `sequence_lengths`) hold N = len(sequence_lengths) of them, summed by segment sums over `sequence_ids`."""
  seg = rows.get("segment_ids")
  logps = token_logps(model, rows["tokens"], rows["mask"], seg, rows.get("positions"))
  mask = scored_tokens(rows["loss_mask"], seg).astype(bool)
  if seg is None:
    return tuple(losses.sequence_logps(logps, mask, average=a) for a in averages)
  n, ids = rows["sequence_lengths"].shape[0], rows["sequence_ids"].reshape(-1)
  total = jax.ops.segment_sum(jnp.where(mask, logps, 0).reshape(-1), ids, num_segments=n)
  count = jax.ops.segment_sum(mask.reshape(-1).astype(total.dtype), ids, num_segments=n)
  return tuple(total / jnp.maximum(count, 1) if a else total for a in averages)


def sequence_logps(model, tokens: jax.Array, mask: jax.Array, loss_mask: jax.Array) -> jax.Array:
  """`f32[B]` Σ_t loss_mask[t] · log π(tokens[t] | tokens[<t])."""
  return jnp.sum(token_logps(model, tokens, mask) * loss_mask, axis=-1)


def sft_loss():
  """Token-level negative log-likelihood over the scored tokens (`scored_tokens` of `loss_mask`: the
  mean over them), padded or packed rows; reports `loss_numerator`/`loss_denominator` so gradient
  accumulation is token-weighted."""

  def loss_fn(model, batch, rng, extra):
    del rng, extra
    seg = batch.get("segment_ids")
    logps = token_logps(model, batch["tokens"], batch["mask"], seg, batch.get("positions"))
    w = scored_tokens(batch["loss_mask"].astype(jnp.float32), seg)
    num, den = -jnp.sum(logps * w), jnp.maximum(jnp.sum(w), 1.0)
    return num / den, {"loss_numerator": jax.lax.stop_gradient(num), "loss_denominator": den,
                       **packing_stats(batch["mask"])}

  return loss_fn


_PAIR = ("chosen_", "rejected_")


def pair_logps(model, batch, *, average: bool = False) -> tuple[jax.Array, jax.Array]:
  """Sequence log-probs `f32[B]` of the chosen and the rejected responses (masked sums, or means when
  `average`) of a padded (`chosen_*`, `rejected_*`) or packed (`rljax.data.packing.pack_pairs`) batch."""
  (seq,) = row_sequence_logps(model, _rows(batch, _PAIR), averages=(average,))
  return jnp.split(seq, 2)


def _pair_fields(model, rows, prefix: str, wanted) -> dict[str, jax.Array]:
  """The `{prefix}chosen_logps` / `{prefix}chosen_mean_logps` (and rejected) fields in `wanted`, from one
  forward pass over `rows` (chosen sequences first)."""
  suffixes = [(s, a) for s, a in (("logps", False), ("mean_logps", True))
              if {f"{prefix}chosen_{s}", f"{prefix}rejected_{s}"} & wanted]
  out = {}
  for (suffix, _), seq in zip(suffixes, row_sequence_logps(model, rows, averages=[a for _, a in suffixes])):
    out[f"{prefix}chosen_{suffix}"], out[f"{prefix}rejected_{suffix}"] = jnp.split(seq, 2)
  return out


def preference_loss(name: str, *, ref_graphdef=None, **loss_kwargs):
  """Any registered pairwise (DPO-family) loss: `dpo`, `cdpo`, `rdpo`, `ipo`, `hinge`, `simpo`, `inpo`.

  The loss's registration (`rljax.losses.spec(name).reads`) says which sequence log-probs it
  takes: the policy's summed (`chosen_logps`) or length-averaged (`chosen_mean_logps`, SimPO)
  log-probs, the reference's (`ref_chosen_logps`) and the previous iterate's (`prev_chosen_logps`,
  INPO). The policy's come from one forward pass over [2B, T] (or the rows of a `pack_pairs` batch,
  the sums then segment sums). The reference's and the previous
  iterate's come from the batch when present (precomputed with `pair_logps`) or, when `ref_graphdef`
  is given, are computed without gradient from `extra["ref_params"]` / `extra["prev_params"]` (part of
  the train state, so checkpoints carry them). A weight-averaged reference (SALSA) is
  `extra["ref_params"] = average_params([...])`.
  """
  spec = losses.spec(name)
  if spec.kind != "pairwise":
    raise ValueError(f"loss {name!r} is a {spec.kind} loss, not a pairwise one: "
                     f"{', '.join(losses.names('pairwise'))}.")
  kernel = functools.partial(spec.fn, **loss_kwargs)
  wanted = set(spec.reads)

  def loss_fn(model, batch, rng, extra):
    del rng
    rows = _rows(batch, _PAIR)
    fields = _pair_fields(model, rows, "", wanted)
    for prefix, params in (("ref_", "ref_params"), ("prev_", "prev_params")):
      missing = {k for k in wanted if k.startswith(prefix) and k not in batch}
      fields |= {k: batch[k] for k in wanted if k.startswith(prefix) and k in batch}
      if missing:
        if ref_graphdef is None:
          raise KeyError(f"loss {name!r} reads {sorted(missing)}: put them in the batch or pass `ref_graphdef` "
                         f"with extra[{params!r}].")
        frozen = nnx.merge(ref_graphdef, jax.lax.stop_gradient(extra[params]))
        fields |= _pair_fields(frozen, rows, prefix, missing)
    loss, metrics = spec(kernel, fields)
    return loss, {**metrics, **packing_stats(rows["mask"])}

  return loss_fn


def listwise_loss(name: str = "lipo", *, ref_graphdef=None, **loss_kwargs):
  """A listwise loss (LiPO) over K responses per prompt: batch `tokens`, `mask`, `loss_mask` of shape
  [B, K, T], `labels` f[B, K], optional `list_mask` bool[B, K], and `ref_logps` f[B, K] unless
  `ref_graphdef` is given (then from `extra["ref_params"]`). The B·K sequences run as one forward, or
  as the rows of a `rljax.data.packing.pack_lists` batch."""
  spec = losses.spec(name)
  if spec.kind != "listwise":
    raise ValueError(f"loss {name!r} is a {spec.kind} loss, not a listwise one: {', '.join(losses.names('listwise'))}.")
  kernel = functools.partial(spec.fn, **loss_kwargs)

  def list_logps(model, rows, shape):
    return row_sequence_logps(model, rows)[0].reshape(shape)

  def loss_fn(model, batch, rng, extra):
    del rng
    rows, shape = _rows(batch), batch["labels"].shape
    if ref_graphdef is None:
      ref = batch["ref_logps"]
    else:
      ref = list_logps(nnx.merge(ref_graphdef, jax.lax.stop_gradient(extra["ref_params"])), rows, shape)
    fields = {"logps": list_logps(model, rows, shape), "ref_logps": ref, "labels": batch["labels"],
              "list_mask": batch.get("list_mask")}
    loss, metrics = spec(kernel, fields)
    return loss, {**metrics, **packing_stats(rows["mask"])}

  return loss_fn


def average_params(params_list, weights=None):
  """Weighted average Σ_i w_i θ_i of parameter pytrees (uniform by default): SALSA's model soup."""
  n = len(params_list)
  if n == 0:
    raise ValueError("`params_list` is empty.")
  w = jnp.full((n,), 1.0 / n) if weights is None else jnp.asarray(weights, jnp.float32)
  if w.shape != (n,) or not jnp.isclose(jnp.sum(w), 1.0):
    raise ValueError(f"`weights` must be {n} numbers summing to 1, got {weights}.")
  return jax.tree.map(lambda *xs: sum(wi * x.astype(jnp.float32) for wi, x in zip(w, xs)).astype(xs[0].dtype),
                      *params_list)


def reward_model_loss(*, margin_key: str | None = None):
  """Bradley–Terry reward-model loss softplus(−(r_c − r_r − m)) on a `rljax.models.RewardModel`."""

  def loss_fn(model, batch, rng, extra):
    del rng, extra
    cat = lambda k: jnp.concatenate([batch[f"chosen_{k}"], batch[f"rejected_{k}"]], axis=0)
    r = model(cat("tokens"), cat("mask"))
    b = batch["chosen_tokens"].shape[0]
    margin = None if margin_key is None else batch[margin_key]
    return losses.bt_reward_loss(r[:b], r[b:], margin=margin)

  return loss_fn
