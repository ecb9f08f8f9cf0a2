"""Logical-axis sharding: rules that map named array dimensions onto a ("data", "fsdp", "tensor") mesh.

Every `nnx.Param` of `rljax.models.decoder.Decoder` carries the logical names of its dimensions in the
metadata key `out_sharding`, e.g. ("embed", "heads", "head_dim") for a query kernel. A rules table maps
each logical name to a mesh axis, a tuple of mesh axes, or None (replicated), MaxText style:

  batch            -> ("data", "fsdp")   data parallel over both data and fsdp devices
  embed            -> "fsdp"             weights are ZeRO-3 sharded along d_model
  vocab, heads,
  kv_heads, mlp    -> "tensor"           Megatron-style tensor parallelism
  head_dim, length,
  positions, layers -> None              never sharded

`logical_to_spec` turns a tuple of logical names into a `PartitionSpec`; `model_shardings` /
`shard_model` do it for every parameter of a model; `constrain` pins an activation's sharding inside a
jitted function; `batch_sharding` places [B, T] token batches.

Indivisible dimensions: a dimension whose size is not a multiple of the product of its mesh axis sizes
is an error naming the parameter (XLA would otherwise pad it silently or fail later with an opaque
message). Pass `on_indivisible="replicate"` to replicate such a dimension instead, with a warning.

The mesh uses `AxisType.Auto` axes (GSPMD propagation), so model code needs no `out_sharding` arguments
on its matmuls; `jax.make_mesh`'s default Explicit axes would require them.
"""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

# A rule's target: one mesh axis, several mesh axes (sharded over their product), or None (replicated).
MeshAxes = Union[str, tuple[str, ...], None]
Rules = Union[Mapping[str, MeshAxes], Iterable[tuple[str, MeshAxes]]]

DEFAULT_RULES: Mapping[str, MeshAxes] = types.MappingProxyType({
    # Activations.
    "batch": ("data", "fsdp"),
    "length": None,
    "act_embed": None,  # the residual stream is replicated over fsdp: batch already uses it
    "act_heads": "tensor",
    "act_kv_heads": "tensor",
    "act_mlp": "tensor",
    "act_vocab": "tensor",
    # Parameters (and activation dims that share their names).
    "embed": "fsdp",
    "vocab": "tensor",
    "heads": "tensor",
    "kv_heads": "tensor",
    "mlp": "tensor",
    "head_dim": None,
    "positions": None,
    "layers": None,
})

ON_INDIVISIBLE = ("error", "replicate")


def as_rules(rules: Rules) -> dict[str, MeshAxes]:
  """Normalises a rules mapping or a sequence of (logical name, mesh axes) pairs to a dict.

  Targets are validated: None, a non-empty string, or a tuple of distinct strings (an empty tuple means
  None). A logical name listed twice in a sequence of pairs is an error.
  """
  items = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
  out: dict[str, MeshAxes] = {}
  for item in items:
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
      raise ValueError(f"A sharding rule must be a (logical_name, mesh_axes) pair, got {item!r}.")
    name, target = item
    if not isinstance(name, str):
      raise ValueError(f"Logical axis names must be strings, got {name!r}.")
    if name in out:
      raise ValueError(f"Logical axis {name!r} has more than one sharding rule.")
    if isinstance(target, list):
      target = tuple(target)
    if isinstance(target, tuple):
      if not all(isinstance(a, str) and a for a in target):
        raise ValueError(f"Rule for logical axis {name!r} must name mesh axes as strings, got {target!r}.")
      if len(set(target)) != len(target):
        raise ValueError(f"Rule for logical axis {name!r} repeats a mesh axis: {target!r}.")
      target = None if not target else (target[0] if len(target) == 1 else target)
    elif target is not None and not (isinstance(target, str) and target):
      raise ValueError(f"Rule for logical axis {name!r} must map to a mesh axis name, a tuple of them, "
                       f"or None; got {target!r}.")
    out[name] = target
  return out


def _mesh_axes_of(entry: MeshAxes) -> tuple[str, ...]:
  if entry is None:
    return ()
  return (entry,) if isinstance(entry, str) else tuple(entry)


def _where(path: str | None) -> str:
  return f" of parameter `{path}`" if path else ""


def logical_to_spec(axes: Sequence[str | None], rules: Rules = DEFAULT_RULES, *,
                    path: str | None = None) -> PartitionSpec:
  """The `PartitionSpec` for an array whose dimensions have logical names `axes` (None = replicated).

  Raises ValueError (naming `path` when given) if a logical name has no rule, or if two dimensions
  would be sharded over the same mesh axis.
  """
  if isinstance(axes, str) or not isinstance(axes, Sequence):
    raise ValueError(f"Logical axes{_where(path)} must be a tuple of names (or None), got {axes!r}.")
  table = as_rules(rules)
  entries: list[MeshAxes] = []
  used: dict[str, str] = {}
  for name in axes:
    if name is None:
      entries.append(None)
      continue
    if not isinstance(name, str):
      raise ValueError(f"Logical axis names{_where(path)} must be strings or None, got {name!r} in "
                       f"{tuple(axes)!r}.")
    if name not in table:
      raise ValueError(f"Logical axis {name!r}{_where(path)} (axes {tuple(axes)!r}) has no sharding rule; "
                       f"known logical axes: {sorted(table)}.")
    entry = table[name]
    for mesh_axis in _mesh_axes_of(entry):
      if mesh_axis in used:
        raise ValueError(f"Mesh axis {mesh_axis!r} is used twice in one PartitionSpec{_where(path)}: by "
                         f"logical axes {used[mesh_axis]!r} and {name!r} (axes {tuple(axes)!r}).")
      used[mesh_axis] = name
    entries.append(entry)
  return PartitionSpec(*entries)


def make_mesh(shape: Sequence[int] = (1, 1, 1), axis_names: Sequence[str] = MESH_AXES,
              devices: Sequence[Any] | None = None) -> Mesh:
  """A mesh with `AxisType.Auto` axes (GSPMD sharding propagation) over `devices` (default: all).

  One entry of `shape` may be -1, inferred from the device count. The product of `shape` must equal
  the number of devices.
  """
  shape = tuple(int(s) for s in shape)
  axis_names = tuple(axis_names)
  if len(shape) != len(axis_names):
    raise ValueError(f"Mesh `shape` {shape} and `axis_names` {axis_names} have different lengths.")
  if len(set(axis_names)) != len(axis_names):
    raise ValueError(f"Mesh `axis_names` {axis_names} contain a duplicate.")
  devices = list(jax.devices() if devices is None else devices)
  n = len(devices)
  if shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
    raise ValueError(f"Mesh `shape` {shape} must hold positive sizes and at most one -1.")
  if -1 in shape:
    known = math.prod(s for s in shape if s != -1)
    if n % known:
      raise ValueError(f"Mesh `shape` {shape}: {n} devices are not divisible by {known}.")
    shape = tuple(n // known if s == -1 else s for s in shape)
  if math.prod(shape) != n:
    raise ValueError(
        f"Mesh `shape` {shape} needs {math.prod(shape)} devices, but {n} are available "
        f"({jax.default_backend()} backend). On CPU, set XLA_FLAGS="
        f"--xla_force_host_platform_device_count=N before jax is imported.")
  return Mesh(np.array(devices, dtype=object).reshape(shape), axis_names,
              axis_types=(AxisType.Auto,) * len(shape))


def _mesh_axis_sizes(mesh: Any) -> dict[str, int]:
  return dict(zip(mesh.axis_names, mesh.axis_sizes))


def _fit_spec(spec: PartitionSpec, shape: tuple[int, ...], mesh: Any, *, path: str | None,
              on_indivisible: str, notes: list[str]) -> PartitionSpec:
  """Checks mesh axes exist and dimensions divide; replicates indivisible dims if asked.

  Replication messages are appended to `notes`, for the public caller to warn with its own stacklevel.
  """
  if on_indivisible not in ON_INDIVISIBLE:
    raise ValueError(f"`on_indivisible` must be one of {ON_INDIVISIBLE}, got {on_indivisible!r}.")
  sizes = _mesh_axis_sizes(mesh)
  entries = list(spec) + [None] * (len(shape) - len(spec))
  for dim, entry in enumerate(entries):
    mesh_axes = _mesh_axes_of(entry)
    for a in mesh_axes:
      if a not in sizes:
        raise ValueError(f"Sharding rule maps dimension {dim}{_where(path)} to mesh axis {a!r}, which "
                         f"is not in the mesh (axes {tuple(mesh.axis_names)}).")
    factor = math.prod(sizes[a] for a in mesh_axes)
    if factor > 1 and shape[dim] % factor:
      msg = (f"Dimension {dim} (size {shape[dim]}){_where(path)} is not divisible by mesh axes "
             f"{mesh_axes} of total size {factor} (shape {shape}, spec {spec}).")
      if on_indivisible == "error":
        raise ValueError(msg + " Change the mesh or the rules, or pass on_indivisible='replicate'.")
      notes.append(msg + " Replicating this dimension.")
      entries[dim] = None
  return PartitionSpec(*entries)


def _path_str(path: tuple[Any, ...]) -> str:
  parts = []
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
    else:
      parts.append(str(key))
  return "/".join(parts)


def _logical_axes(variable: nnx.Variable) -> Any:
  meta = variable.get_metadata()
  for key in ("out_sharding", "sharding_names", "sharding"):
    if meta.get(key) is not None:
      return meta[key]
  return None


def model_shardings(model: Any, mesh: Mesh, rules: Rules = DEFAULT_RULES, *,
                    on_indivisible: str = "error") -> nnx.State:
  """An `nnx.State`-shaped pytree of `NamedSharding`s for the state of `model` (a module or a State).

  Each leaf is the Variable with its value replaced by a NamedSharding, so the result lines up with
  `nnx.state(model)` for `jax.device_put` / `jax.jit(out_shardings=...)`. A Param without logical axis
  names in its metadata is an error naming its path; other Variables (e.g. RNG counters) without names
  are replicated.
  """
  state = model if isinstance(model, nnx.State) else nnx.state(model)
  table = as_rules(rules)
  notes: list[str] = []

  def one(path, leaf):
    name = _path_str(path)
    if not isinstance(leaf, nnx.Variable):
      return NamedSharding(mesh, PartitionSpec())
    axes = _logical_axes(leaf)
    shape = tuple(np.shape(leaf.get_value()))
    if axes is None:
      if isinstance(leaf, nnx.Param):
        raise ValueError(f"Parameter `{name}` (shape {shape}) has no logical axis names; set "
                         f"`out_sharding=(...)` in its nnx.Param metadata.")
      return leaf.replace(NamedSharding(mesh, PartitionSpec()))
    axes = tuple(axes) if isinstance(axes, (tuple, list)) else axes
    if isinstance(axes, tuple) and len(axes) != len(shape):
      raise ValueError(f"Parameter `{name}` has shape {shape} but {len(axes)} logical axis names "
                       f"{axes!r}.")
    spec = logical_to_spec(axes, table, path=name)
    spec = _fit_spec(spec, shape, mesh, path=name, on_indivisible=on_indivisible, notes=notes)
    return leaf.replace(NamedSharding(mesh, spec))

  out = jax.tree_util.tree_map_with_path(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))
  for note in notes:
    warnings.warn(note, stacklevel=2)
  return out


def shard_model(model: nnx.Module, mesh: Mesh, rules: Rules = DEFAULT_RULES, *,
                on_indivisible: str = "error") -> nnx.Module:
  """Moves every array of `model` onto `mesh` per `rules`, in place, and returns the same model.

  Updating in place (rather than returning an `nnx.merge`d copy) keeps objects that reference the
  model, such as an `nnx.Optimizer`, pointing at the sharded weights.
  """
  _, state = nnx.split(model)
  shardings = model_shardings(state, mesh, rules, on_indivisible=on_indivisible)
  nnx.update(model, jax.device_put(state, shardings))
  return model


def _current_mesh() -> Any | None:
  mesh = jax.sharding.get_abstract_mesh()
  return None if mesh is None or mesh.empty else mesh


def constrain(x: jax.Array, axes: Sequence[str | None], rules: Rules = DEFAULT_RULES, *,
              mesh: Mesh | None = None, on_indivisible: str = "error") -> jax.Array:
  """`jax.lax.with_sharding_constraint(x, logical_to_spec(axes))` on `mesh` or the `jax.set_mesh` mesh.

  Without a mesh (none passed and none set) this is a no-op, so model code can call it unconditionally.
  Note that activation axes must not reuse a mesh axis: with the default rules ("batch", "length",
  "embed") shards fsdp twice, so use ("batch", "length", None) for hidden states.
  """
  if len(axes) != np.ndim(x):
    raise ValueError(f"`axes` {tuple(axes)!r} has {len(axes)} names for an array of shape {np.shape(x)}.")
  target = mesh if mesh is not None else _current_mesh()
  if target is None:
    return x
  spec = logical_to_spec(axes, rules, path=None)
  notes: list[str] = []
  spec = _fit_spec(spec, tuple(np.shape(x)), target, path=None, on_indivisible=on_indivisible,
                   notes=notes)
  for note in notes:
    warnings.warn(f"constrain(axes={tuple(axes)!r}): {note}", stacklevel=2)
  if mesh is not None:
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))
  return jax.lax.with_sharding_constraint(x, spec)


def batch_sharding(mesh: Mesh, rules: Rules = DEFAULT_RULES,
                   axes: Sequence[str | None] = ("batch", "length")) -> NamedSharding:
  """The sharding for [B, T] token / mask / position batches: B over ("data", "fsdp") by default."""
  return NamedSharding(mesh, logical_to_spec(axes, rules))
