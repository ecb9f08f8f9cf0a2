"""Loss functions for `make_train_step`: thin adapters from batches of tokens to the `rljax.losses`
kernels. Each returns `loss_fn(model, batch, rng, extra) -> (loss, metrics)`, where `extra` is the
train state's `extra` dict (reference parameters, controller states).

Batches are dicts of arrays. A sequence is `tokens i32[B, T]` with `mask [B, T]` (1 on real tokens)
and `loss_mask [B, T]` (1 on the tokens that are scored, e.g. a completion but not its prompt); the
log-probability of token t is read from the model's output at t − 1, so position 0 is never scored.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from rljax import losses
from rljax.models.heads import model_token_logps


def token_logps(model, tokens: jax.Array, mask: jax.Array) -> jax.Array:
  """`f32[B, T]` log π(tokens[t] | tokens[<t]) with the fused head; 0 at t = 0."""
  logps = model_token_logps(model, tokens[:, :-1], tokens[:, 1:], attention_mask=mask[:, :-1])
  return jnp.pad(logps, ((0, 0), (1, 0)))


def sequence_logps(model, tokens: jax.Array, mask: jax.Array, loss_mask: jax.Array) -> jax.Array:
  """`f32[B]` Σ_t loss_mask[t] · log π(tokens[t] | tokens[<t])."""
  return jnp.sum(token_logps(model, tokens, mask) * loss_mask, axis=-1)


def sft_loss():
  """Token-level negative log-likelihood over `loss_mask` (mean over scored tokens); reports
  `loss_numerator`/`loss_denominator` so gradient accumulation is token-weighted."""

  def loss_fn(model, batch, rng, extra):
    del rng, extra
    logps = token_logps(model, batch["tokens"], batch["mask"])
    w = batch["loss_mask"].astype(jnp.float32).at[:, 0].set(0.0)  # token 0 has no prediction
    num, den = -jnp.sum(logps * w), jnp.maximum(jnp.sum(w), 1.0)
    return num / den, {"loss_numerator": jax.lax.stop_gradient(num), "loss_denominator": den}

  return loss_fn


def pair_token_logps(model, batch) -> tuple[jax.Array, jax.Array]:
  """Token log-probs `f32[2B, T]` of `chosen_*` then `rejected_*` in one forward pass, and their
  scored-token mask (`loss_mask`, position 0 never scored)."""
  cat = lambda k: jnp.concatenate([batch[f"chosen_{k}"], batch[f"rejected_{k}"]], axis=0)
  logps = token_logps(model, cat("tokens"), cat("mask"))
  return logps, cat("loss_mask").astype(bool).at[:, 0].set(False)


def pair_logps(model, batch, *, average: bool = False) -> tuple[jax.Array, jax.Array]:
  """Sequence log-probs of `chosen_*` and `rejected_*` (masked sums, or means when `average`)."""
  logps, mask = pair_token_logps(model, batch)
  seq = losses.sequence_logps(logps, mask, average=average)
  b = batch["chosen_tokens"].shape[0]
  return seq[:b], seq[b:]


def _pair_fields(model, batch, prefix: str, wanted) -> dict[str, jax.Array]:
  """The `{prefix}chosen_logps` / `{prefix}chosen_mean_logps` (and rejected) fields in `wanted`."""
  logps, mask = pair_token_logps(model, batch)
  b = batch["chosen_tokens"].shape[0]
  out = {}
  for suffix, average in (("logps", False), ("mean_logps", True)):
    if {f"{prefix}chosen_{suffix}", f"{prefix}rejected_{suffix}"} & wanted:
      seq = losses.sequence_logps(logps, mask, average=average)
      out[f"{prefix}chosen_{suffix}"], out[f"{prefix}rejected_{suffix}"] = seq[:b], seq[b:]
  return out


def preference_loss(name: str, *, ref_graphdef=None, **loss_kwargs):
  """Any registered pairwise (DPO-family) loss: `dpo`, `cdpo`, `rdpo`, `ipo`, `hinge`, `simpo`, `inpo`.

  The loss's registration (`rljax.losses.spec(name).reads`) says which sequence log-probs it
  takes: the policy's summed (`chosen_logps`) or length-averaged (`chosen_mean_logps`, SimPO)
  log-probs, the reference's (`ref_chosen_logps`) and the previous iterate's (`prev_chosen_logps`,
  INPO). The policy's come from one forward pass over [2B, T]. The reference's and the previous
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
    fields = _pair_fields(model, batch, "", wanted)
    for prefix, params in (("ref_", "ref_params"), ("prev_", "prev_params")):
      missing = {k for k in wanted if k.startswith(prefix) and k not in batch}
      fields |= {k: batch[k] for k in wanted if k.startswith(prefix) and k in batch}
      if missing:
        if ref_graphdef is None:
          raise KeyError(f"loss {name!r} reads {sorted(missing)}: put them in the batch or pass `ref_graphdef` "
                         f"with extra[{params!r}].")
        frozen = nnx.merge(ref_graphdef, jax.lax.stop_gradient(extra[params]))
        fields |= _pair_fields(frozen, batch, prefix, missing)
    return spec(kernel, fields)

  return loss_fn


def listwise_loss(name: str = "lipo", *, ref_graphdef=None, **loss_kwargs):
  """A listwise loss (LiPO) over K responses per prompt: batch `tokens`, `mask`, `loss_mask` of shape
  [B, K, T], `labels` f[B, K], optional `list_mask` bool[B, K], and `ref_logps` f[B, K] unless
  `ref_graphdef` is given (then from `extra["ref_params"]`). The B·K sequences run as one forward."""
  spec = losses.spec(name)
  if spec.kind != "listwise":
    raise ValueError(f"loss {name!r} is a {spec.kind} loss, not a listwise one: {', '.join(losses.names('listwise'))}.")
  kernel = functools.partial(spec.fn, **loss_kwargs)

  def list_logps(model, batch):
    b, k, t = batch["tokens"].shape
    flat = lambda x: x.reshape(b * k, t)
    return sequence_logps(model, flat(batch["tokens"]), flat(batch["mask"]), flat(batch["loss_mask"])).reshape(b, k)

  def loss_fn(model, batch, rng, extra):
    del rng
    if ref_graphdef is None:
      ref = batch["ref_logps"]
    else:
      ref = list_logps(nnx.merge(ref_graphdef, jax.lax.stop_gradient(extra["ref_params"])), batch)
    fields = {"logps": list_logps(model, batch), "ref_logps": ref, "labels": batch["labels"],
              "list_mask": batch.get("list_mask")}
    return spec(kernel, fields)

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
