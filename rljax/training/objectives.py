"""Loss functions for `make_train_step`: thin adapters from batches of tokens to the `rljax.losses`
kernels. Each returns `loss_fn(model, batch, rng, extra) -> (loss, metrics)`, where `extra` is the
train state's `extra` dict (reference parameters, controller states).

Batches are dicts of arrays. A sequence is `tokens i32[B, T]` with `mask [B, T]` (1 on real tokens)
and `loss_mask [B, T]` (1 on the tokens that are scored, e.g. a completion but not its prompt); the
log-probability of token t is read from the model's output at t − 1, so position 0 is never scored.
"""

from __future__ import annotations

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


def pair_logps(model, batch) -> tuple[jax.Array, jax.Array]:
  """Sequence log-probs of `chosen_*` and `rejected_*` in one forward pass over [2B, T]."""
  cat = lambda k: jnp.concatenate([batch[f"chosen_{k}"], batch[f"rejected_{k}"]], axis=0)
  logps = sequence_logps(model, cat("tokens"), cat("mask"), cat("loss_mask"))
  b = batch["chosen_tokens"].shape[0]
  return logps[:b], logps[b:]


def preference_loss(name: str, *, ref_graphdef=None, **loss_kwargs):
  """A pairwise preference loss from the `rljax.losses` registry (dpo, cdpo, rdpo, ipo, ...).

  Reference log-probs come from the batch (`ref_chosen_logps`, `ref_rejected_logps`, precomputed in
  one pass with `pair_logps`) or, when `ref_graphdef` is given, are computed on the fly without
  gradient from `extra["ref_params"]` (part of the train state, so checkpoints carry them). A
  weight-averaged reference (SALSA) is `extra["ref_params"] = average_params([...])`.
  """
  kernel = losses.registry.get(name)

  def loss_fn(model, batch, rng, extra):
    del rng
    chosen, rejected = pair_logps(model, batch)
    if ref_graphdef is None:
      ref_c, ref_r = batch["ref_chosen_logps"], batch["ref_rejected_logps"]
    else:
      ref_model = nnx.merge(ref_graphdef, jax.lax.stop_gradient(extra["ref_params"]))
      ref_c, ref_r = pair_logps(ref_model, batch)
    return kernel(chosen, rejected, ref_c, ref_r, **loss_kwargs)

  return loss_fn


def listwise_loss(name: str = "lipo", *, ref_graphdef=None, **loss_kwargs):
  """A listwise loss (LiPO) over K responses per prompt: batch `tokens`, `mask`, `loss_mask` of shape
  [B, K, T], `labels` f[B, K], optional `list_mask` bool[B, K], and `ref_logps` f[B, K] unless
  `ref_graphdef` is given (then from `extra["ref_params"]`). The B·K sequences run as one forward."""
  kernel = losses.registry.get(name)

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
    return kernel(list_logps(model, batch), ref, batch["labels"], batch.get("list_mask"), **loss_kwargs)

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
