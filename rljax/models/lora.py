"""LoRA adapters on the decoder's projections (Hu et al. 2021, arXiv 2106.09685).

A projection y = x·W with an einsum kernel W [in..., out...] (q_proj_dnh [d, n, h], o_proj_nhd [n, h, d],
gate_proj_df [d, f], ...) gets a rank-r update:

  y = x·W + s · drop(x)·A·B,   A [in..., r],  B [r, out...],  s = alpha / r   (alpha / sqrt(r) with rsLoRA,
                                                                               Kalajdzievski 2023, 2312.03732)

A is initialised as PEFT does (kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
fan_in = prod(in...)) and B = 0, so at initialisation the adapted model computes exactly the base model. The
adapters are `nnx.LoRAParam`s (float32, whatever the base dtype: they are what the optimizer updates) with the
kernel's logical axis names on their in/out axes and the rank axis replicated, so `rljax.sharding.shard_model`
places them next to their kernel. `apply_lora` turns every other weight of the adapted `Decoder` into a
`FrozenParam`: the training step (`rljax.training.step`) differentiates and updates only the rest, the optimizer
state covers only the rest, and checkpoints leave the frozen base out (it is the pretrained model the run
starts from).

Why Flax NNX's own LoRA variable rather than qwix: our projections are multi-axis einsum kernels inside our own
modules, so the adapter is two small contractions next to the base one (`decoder._project`); qwix would add an
interception layer that rewrites matching ops by module path, and a dependency, for the same two matmuls.
`nnx.LoRAParam` is the variable type NNX's own filters (`nnx.split`, `nnx.Optimizer(wrt=...)`) use for
adapters, the adapters are ordinary state (split, merge, shard, checkpoint need nothing new), and the code is
the same on CPU, GPU and TPU and under the logical-axis sharding.

Dropout on the adapter input is active only inside `dropout_rng(key)`, which the training step enters around
its loss; the sampler, the evaluator and the rollout scoring (old and reference log-probs) never do, so they see
the deterministic adapted model. Every adapted forward traced inside the loss is dropped out, a frozen copy
evaluated there too (e.g. NLPO's masking policy). dropout = 0 adds no op.

    model = apply_lora(from_pretrained(path), LoRAConfig(rank=16, alpha=32), rngs=nnx.Rngs(0))
    graphdef, state = init_train_state(model, optimizer, rng=key)   # trains the adapters only
    save_pretrained(merge_lora(model), out)                         # merged HF checkpoint
    rljax.models.peft_io.save_adapter(model, out)                   # the adapter alone, PEFT format

`rljax.models.save_pretrained` on an adapted model writes its base weights (the adapters are not part of a
transformers checkpoint): the base for a PEFT adapter.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from rljax.models.decoder import MLP, Attention, Decoder

# target -> (kernel attribute, number of leading input axes of the kernel).
KERNELS = {
    "q_proj": ("q_proj_dnh", 1), "k_proj": ("k_proj_dkh", 1), "v_proj": ("v_proj_dkh", 1),
    "o_proj": ("o_proj_nhd", 2), "gate_proj": ("gate_proj_df", 1), "up_proj": ("up_proj_df", 1),
    "down_proj": ("down_proj_fd", 1),
}
ALL_TARGETS = tuple(KERNELS)
# Salt of the dropout key stream, so adapter masks are independent of the draws a loss makes from its own key.
_DROPOUT_STREAM = 0x4C6F5241


@dataclasses.dataclass(frozen=True)
class LoRAConfig:
  """Rank r ≥ 1, scale numerator alpha > 0, input dropout in [0, 1), target projections (HF names), rsLoRA.

  Hashable: each adapter keeps it in the graph definition.
  """

  rank: int
  alpha: float
  dropout: float = 0.0
  targets: tuple[str, ...] = ALL_TARGETS
  use_rslora: bool = False

  def __post_init__(self):
    object.__setattr__(self, "targets", tuple(self.targets))
    if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
      raise ValueError(f"`rank` must be a positive int, got {self.rank!r}.")
    if not self.alpha > 0:
      raise ValueError(f"`alpha` must be > 0, got {self.alpha!r}.")
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f"`dropout` must lie in [0, 1), got {self.dropout!r}.")
    unknown = [t for t in self.targets if t not in KERNELS]
    if unknown or not self.targets or len(set(self.targets)) != len(self.targets):
      raise ValueError(f"`targets` must be distinct names among {ALL_TARGETS}, got {self.targets!r}.")

  @property
  def scale(self) -> float:
    """s = alpha / r, or alpha / sqrt(r) with rsLoRA."""
    return self.alpha / (math.sqrt(self.rank) if self.use_rslora else self.rank)


class FrozenParam(nnx.Param):
  """A weight training keeps fixed: the base of a LoRA-adapted model."""


class _DropoutScope:
  """The key of one traced loss; each adapter call takes the next key of its stream."""

  def __init__(self, key: jax.Array):
    self.key = jax.random.fold_in(key, _DROPOUT_STREAM)
    self.calls = 0

  def next_key(self) -> jax.Array:
    self.calls += 1
    return jax.random.fold_in(self.key, self.calls)


_SCOPE: contextvars.ContextVar[_DropoutScope | None] = contextvars.ContextVar("lora_dropout", default=None)


@contextlib.contextmanager
def dropout_rng(key: jax.Array):
  """Turns on adapter dropout for the forward passes traced inside the block.

  The i-th adapter application traced in the block draws its mask from fold_in(fold_in(key, salt), i): every
  projection and every forward pass of a loss gets its own mask, a rematerialised block recomputes the same
  one, and the masks are a pure function of `key` (a resumed run replays them). Outside any block adapters
  apply no dropout.
  """
  token = _SCOPE.set(_DropoutScope(key))
  try:
    yield
  finally:
    _SCOPE.reset(token)


class LoRAAdapter(nnx.Module):
  """The update s · drop(x)·A·B of one kernel W [in..., out...]; A [in..., r], B [r, out...]."""

  def __init__(self, a: jax.Array, b: jax.Array, axes_in: tuple, axes_out: tuple, config: LoRAConfig):
    self.config = config
    self.a = nnx.LoRAParam(a, out_sharding=tuple(axes_in) + (None,), eager_sharding=False)
    self.b = nnx.LoRAParam(b, out_sharding=(None,) + tuple(axes_out), eager_sharding=False)

  def __call__(self, x: jax.Array) -> jax.Array:
    """x [..., in...] -> [..., out...] in x's dtype (the trailing axes of x are contracted with A's leading)."""
    a, b = self.a[...].astype(x.dtype), self.b[...].astype(x.dtype)
    scope, rate = _SCOPE.get(), self.config.dropout
    if rate > 0.0 and scope is not None:
      keep = jax.random.bernoulli(scope.next_key(), 1.0 - rate, x.shape)
      x = jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype))
    return self.config.scale * jnp.tensordot(jnp.tensordot(x, a, a.ndim - 1), b, 1)

  def delta(self) -> jax.Array:
    """s · A·B [in..., out...] in float32: what `merge_lora` adds to W."""
    return self.config.scale * jnp.tensordot(self.a[...].astype(jnp.float32), self.b[...].astype(jnp.float32), 1)


def _at(root: nnx.Module, path: tuple):
  node = root
  for key in path:
    node = node[key] if isinstance(key, int) else getattr(node, key)
  return node


def _set(root: nnx.Module, path: tuple, value) -> None:
  parent, key = _at(root, path[:-1]), path[-1]
  if isinstance(key, int):
    parent[key] = value
  else:
    setattr(parent, key, value)


def adapters(model: nnx.Module) -> list[tuple[tuple, str, LoRAAdapter]]:
  """(path of the Attention/MLP module, target, adapter) for every adapter of `model`, in graph order."""
  return [(path[:-1], path[-1][:-len("_lora")], node) for path, node in nnx.iter_graph(model)
          if isinstance(node, LoRAAdapter)]


def is_lora(model: nnx.Module) -> bool:
  return any(isinstance(node, nnx.LoRAParam) for _, node in nnx.iter_graph(model))


def lora_params(model: nnx.Module) -> nnx.State:
  """The adapters' state (A and B of every adapter)."""
  return nnx.state(model, nnx.LoRAParam)


def lora_config(model: nnx.Module) -> LoRAConfig | None:
  """The `LoRAConfig` the adapters of `model` were built with (None without adapters)."""
  found = adapters(model)
  return found[0][2].config if found else None


def _new_adapter(w: nnx.Param, n_in: int, cfg: LoRAConfig, rngs: nnx.Rngs) -> LoRAAdapter:
  shape = tuple(w.get_value().shape)
  axes = w.get_metadata().get("out_sharding") or (None,) * len(shape)
  bound = 1.0 / math.sqrt(math.prod(shape[:n_in]))
  a = jax.random.uniform(rngs.params(), shape[:n_in] + (cfg.rank,), jnp.float32, -bound, bound)
  b = jnp.zeros((cfg.rank,) + shape[n_in:], jnp.float32)
  return LoRAAdapter(a, b, axes[:n_in], axes[n_in:], cfg)


def apply_lora(model: nnx.Module, cfg: LoRAConfig, *, rngs: nnx.Rngs) -> nnx.Module:
  """Attaches adapters to `cfg.targets` of every `Decoder` in `model` and freezes those decoders' weights.

  In place (returns `model`). `model` is a `Decoder` or a module holding some (an `ActorCritic`: a value head
  outside the decoder stays trainable). A target the decoder lacks (gate_proj on gpt2) is an error, and so is
  a decoder that already has adapters. With a mesh, call `rljax.sharding.shard_model` afterwards to place
  the new adapters.
  """
  decoders = [node for _, node in nnx.iter_graph(model) if isinstance(node, Decoder)]
  if not decoders:
    raise ValueError(f"`model` ({type(model).__name__}) holds no Decoder to adapt.")
  for decoder in decoders:
    if is_lora(decoder):
      raise ValueError("The decoder already carries LoRA adapters (merge them with `merge_lora` first).")
    found = set()
    for _, module in list(nnx.iter_graph(decoder)):
      if not isinstance(module, (Attention, MLP)):
        continue
      for target in cfg.targets:
        kernel, n_in = KERNELS[target]
        w = getattr(module, kernel, None)
        if w is not None:
          setattr(module, f"{target}_lora", _new_adapter(w, n_in, cfg, rngs))
          found.add(target)
    missing = [t for t in cfg.targets if t not in found]
    if missing:
      raise ValueError(f"LoRA targets {missing} do not exist in a {decoder.cfg.family} decoder.")
    for path, node in list(nnx.iter_graph(decoder)):
      if type(node) is nnx.Param:
        _set(decoder, path, FrozenParam(node.get_value(), **node.get_metadata()))
  return model


def merge_lora(model: Decoder) -> Decoder:
  """A plain `Decoder` (no adapters, nothing frozen) whose kernels are W + s·A·B: the adapted model as one
  set of weights, e.g. for `save_pretrained`. `model` is left unchanged."""
  merged = nnx.eval_shape(lambda: Decoder(model.cfg, rngs=nnx.Rngs(0)))
  for path, var in list(nnx.iter_graph(merged)):
    if isinstance(var, nnx.Variable):
      var.set_value(_at(model, path).get_value())
  for path, target, adapter in adapters(model):
    w = _at(merged, path + (KERNELS[target][0],))
    w.set_value((w.get_value().astype(jnp.float32) + adapter.delta()).astype(w.get_value().dtype))
  return merged


def split_frozen(params: nnx.State) -> tuple[nnx.State, nnx.State]:
  """(trainable, frozen) parts of a parameter state; frozen = its `FrozenParam`s (empty without LoRA)."""
  return nnx.split_state(params, nnx.Not(FrozenParam), FrozenParam)


def with_frozen(partial: nnx.State, params: nnx.State) -> nnx.State:
  """`partial` (e.g. the trainable part) completed by the frozen weights of `params`."""
  return nnx.merge_state(partial, split_frozen(params)[1])


__all__ = ["ALL_TARGETS", "FrozenParam", "KERNELS", "LoRAAdapter", "LoRAConfig", "adapters", "apply_lora",
           "dropout_rng", "is_lora", "lora_config", "lora_params", "merge_lora", "split_frozen", "with_frozen"]
