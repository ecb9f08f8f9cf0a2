"""One jit-compiled, sharded training update: `make_train_step(graphdef, loss_fn, optimizer)`.

The model is split once (`nnx.split`) into a static graph definition and its parameters; the update
is a pure function of a `TrainState`, so it jit-compiles with buffer donation and resumes exactly
from a checkpoint of that state.

Gradient accumulation over k micro-batches is exact for token-weighted losses. A loss whose metrics
carry `loss_numerator` N_i and `loss_denominator` D_i (the masked sum and mask count of
`rljax.losses.aggregation`) has value L_i = N_i / D_i, and the full-batch loss is ΣN_i / ΣD_i, whose
gradient is Σ_i D_i ∇L_i / Σ_i D_i (D_i does not depend on the parameters). Without those metrics the
micro-batches are weighted equally, which is exact for equal-size micro-batches of per-example means.

Non-finite guard: the optimizer is wrapped in `optax.apply_if_finite`, so an update whose gradient
has a NaN/Inf leaves parameters and moments unchanged; `TrainState.skipped` counts such steps.

Frozen weights (LoRA, `rljax.models.lora`): the parameters split into a trainable part θ and the frozen
`FrozenParam`s W0 (empty without LoRA). The step takes ∇_θ L(θ, W0) only, so no gradient of the base
weights is ever formed, and the optimizer state is built on θ alone. Adapter dropout is active in the loss
(`lora.dropout_rng` with the step's key) and nowhere else.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from rljax import schedules
from rljax.models import lora

LossFn = Callable[[nnx.Module, Any, jax.Array, dict], tuple[jax.Array, dict]]


class TrainState(NamedTuple):
  """Everything an update reads and writes; a pytree, saved whole by the checkpointer.

  params: the model's `nnx.Param` state, frozen base included (so `nnx.merge(graphdef, params)` is the
  model); opt_state: optax state of the trainable part (wrapped by apply_if_finite);
  step: updates applied or skipped so far; rng: key split once per step; data_pos: index of the next
  batch (batches are a pure function of it, so a resumed run sees the same data); extra: controller
  states (e.g. an adaptive KL coefficient), a dict of arrays.
  """

  params: Any
  opt_state: Any
  step: jax.Array
  rng: jax.Array
  data_pos: jax.Array
  extra: dict

  @property
  def skipped(self) -> jax.Array:
    """Updates skipped by the non-finite guard."""
    return self.opt_state.total_notfinite


def make_optimizer(learning_rate, *, name: str = "adamw", clip_norm: float | None = 1.0,
                   weight_decay: float = 0.0, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                   max_consecutive_nonfinite: int = 100, schedule: str = "constant",
                   total_steps: int | None = None, warmup_steps: int = 0,
                   schedule_kwargs: dict | None = None) -> optax.GradientTransformation:
  """optax chain: global-norm clipping, then AdamW / Adam / SGD, inside `optax.apply_if_finite`.

  The learning rate follows `rljax.schedules.make(schedule, learning_rate, total_steps,
  warmup_steps=..., **schedule_kwargs)`: `constant` (default), `linear`, `cosine`, `rex` or
  `refined` (its `gnorms` in `schedule_kwargs`). A config picks one by name. `learning_rate` may
  also be an `optax.Schedule` already, with `schedule="constant"`.
  """
  if callable(learning_rate):
    if schedule != "constant" or warmup_steps:
      raise ValueError("`learning_rate` is already a schedule; leave `schedule` and `warmup_steps` at their defaults.")
  else:
    learning_rate = schedules.make(schedule, learning_rate, total_steps, warmup_steps=warmup_steps,
                                   **(schedule_kwargs or {}))
  if name == "adamw":
    opt = optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
  elif name == "adam":
    opt = optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)
  elif name == "sgd":
    opt = optax.sgd(learning_rate)
  else:
    raise ValueError(f"`name` must be 'adamw', 'adam' or 'sgd', got {name!r}.")
  if clip_norm is not None:
    if clip_norm <= 0:
      raise ValueError(f"`clip_norm` must be > 0 or None, got {clip_norm}.")
    opt = optax.chain(optax.clip_by_global_norm(clip_norm), opt)
  return optax.apply_if_finite(opt, max_consecutive_nonfinite)


def init_train_state(model: nnx.Module, optimizer: optax.GradientTransformation, *, rng: jax.Array,
                     extra: dict | None = None) -> tuple[Any, TrainState]:
  """Splits `model` and returns (graphdef, TrainState at step 0) holding a copy of its parameters
  (the model itself is left untouched by training). Parameters keep their placement
  (shard the model first with `rljax.sharding.shard_model`); the optimizer state is created under
  jit so it inherits the parameters' shardings."""
  graphdef, params = nnx.split(model, nnx.Param)
  # The step donates the state; a copy keeps `model` (and anything sharing its arrays) usable.
  params = jax.tree.map(jnp.copy, params)
  if not isinstance(optimizer, optax.GradientTransformation):
    raise ValueError(f"`optimizer` must be an optax.GradientTransformation, got {type(optimizer).__name__}.")
  opt_state = jax.jit(optimizer.init)(lora.split_frozen(params)[0])
  if not isinstance(opt_state, optax.ApplyIfFiniteState):
    raise ValueError("`optimizer` must be wrapped in optax.apply_if_finite (use `make_optimizer`).")
  # Distinct buffers: a donated state must not hold the same array twice.
  zero = lambda: jnp.zeros((), jnp.int32)
  return graphdef, TrainState(params, opt_state, zero(), jnp.array(rng), zero(), dict(extra or {}))


def _split_micro(batch, k: int):
  def split(x):
    if x.shape[0] % k:
      raise ValueError(f"A batch leaf of leading size {x.shape[0]} does not split into grad_accum={k} micro-batches.")
    return x.reshape((k, x.shape[0] // k) + x.shape[1:])
  return jax.tree.map(split, batch)


def make_train_step(graphdef, loss_fn: LossFn, optimizer: optax.GradientTransformation, *, grad_accum: int = 1,
                    donate: bool = True) -> Callable[[TrainState, Any], tuple[TrainState, dict]]:
  """Returns `step(state, batch) -> (state, metrics)`, one jit-compiled update.

  loss_fn(model, batch, rng, extra) -> (loss, metrics) with `model = nnx.merge(graphdef, params)`
  and `extra = state.extra` (read-only here); metrics are float scalars. With `grad_accum = k` every batch leaf's leading axis is split into k
  micro-batches, scanned with `lax.scan` (memory of one micro-batch) and combined exactly (module
  docstring). Shardings follow the inputs: place parameters with `shard_model` and batches with
  `rljax.sharding.batch_sharding` under `jax.set_mesh(mesh)`; outputs keep the state's shardings.
  The input state is donated (`donate=True`), so its buffers are reused for the new state.
  """
  if not isinstance(grad_accum, int) or grad_accum < 1:
    raise ValueError(f"`grad_accum` must be a positive int, got {grad_accum!r}.")

  def micro_grad(trainable, frozen, batch, rng, extra):
    def f(p):
      with lora.dropout_rng(rng):
        loss, metrics = loss_fn(nnx.merge(graphdef, p, frozen), batch, rng, extra)
      return loss.astype(jnp.float32), metrics
    (loss, metrics), grads = jax.value_and_grad(f, has_aux=True)(trainable)
    weight = metrics.get("loss_denominator", jnp.ones((), jnp.float32)).astype(jnp.float32)
    return loss, metrics, grads, weight

  def step(state: TrainState, batch):
    rng, step_rng = jax.random.split(state.rng)
    trainable, frozen = lora.split_frozen(state.params)
    if grad_accum == 1:
      loss, metrics, grads, _ = micro_grad(trainable, frozen, batch, step_rng, state.extra)
    else:
      micro = _split_micro(batch, grad_accum)
      keys = jax.random.split(step_rng, grad_accum)

      def body(acc, xs):
        mb, key = xs
        loss, metrics, grads, w = micro_grad(trainable, frozen, mb, key, state.extra)
        acc = jax.tree.map(lambda a, x: a + w * x.astype(jnp.float32), acc, (loss, metrics, grads))
        return acc, w

      shapes = jax.eval_shape(lambda: micro_grad(trainable, frozen, jax.tree.map(lambda x: x[0], micro), keys[0],
                                                  state.extra)[:3])
      zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.float32), shapes)
      (loss, metrics, grads), ws = jax.lax.scan(body, zeros, (micro, keys))
      total = jnp.sum(ws)
      loss, metrics, grads = jax.tree.map(lambda x: x / total, (loss, metrics, grads))
      if "loss_denominator" in metrics:
        metrics = {**metrics, "loss_numerator": loss * total, "loss_denominator": total}
    grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, trainable)
    updates, opt_state = optimizer.update(grads, state.opt_state, trainable)
    params = nnx.merge_state(optax.apply_updates(trainable, updates), frozen)
    metrics = {**metrics, "loss": loss, "grad_norm": optax.global_norm(grads),
               "skipped": opt_state.total_notfinite}
    new = TrainState(params, opt_state, state.step + 1, rng, state.data_pos + 1, state.extra)
    return new, metrics

  return jax.jit(step, donate_argnums=(0,) if donate else ())
