"""rljax.sharding: logical-axis rules -> PartitionSpecs, their errors, and a sharded Decoder that
matches the single-device one (8 forced CPU devices, in a subprocess so XLA_FLAGS applies)."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import AbstractMesh, AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from rljax import sharding
from rljax.models.config import DecoderConfig
from rljax.models.decoder import Decoder


def _cfg(**overrides):
  kw = dict(family="llama", vocab_size=128, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2,
            head_dim=16, d_ff=128, max_positions=64, norm_eps=1e-6, activation="silu",
            tie_word_embeddings=False, qkv_bias=False)
  kw.update(overrides)
  return DecoderConfig(**kw)


def _abstract_mesh(shape=(2, 2, 2)):
  return AbstractMesh(shape, sharding.MESH_AXES, axis_types=(AxisType.Auto,) * 3)


@pytest.mark.parametrize("axes, expected", [
    (("embed", "heads", "head_dim"), P("fsdp", "tensor", None)),
    (("embed", "kv_heads", "head_dim"), P("fsdp", "tensor", None)),
    (("heads", "head_dim", "embed"), P("tensor", None, "fsdp")),
    (("embed", "mlp"), P("fsdp", "tensor")),
    (("mlp", "embed"), P("tensor", "fsdp")),
    (("vocab", "embed"), P("tensor", "fsdp")),
    (("embed",), P("fsdp")),
    ((None, "embed"), P(None, "fsdp")),
    (("positions", "embed"), P(None, "fsdp")),
    (("batch", "length"), P(("data", "fsdp"), None)),
    ((), P()),
])
def test_default_rules(axes, expected):
  assert sharding.logical_to_spec(axes) == expected


def test_rules_as_pairs_and_custom():
  rules = [("batch", "data"), ("embed", ["tensor"]), ("mlp", ("fsdp", "tensor")), ("x", ())]
  assert sharding.logical_to_spec(("batch", "embed", "x"), rules) == P("data", "tensor", None)
  assert sharding.logical_to_spec(("batch", "mlp"), rules) == P("data", ("fsdp", "tensor"))


def test_unknown_logical_axis_names_axis_and_path():
  with pytest.raises(ValueError, match=r"'experts'.*`layers/0/moe/w`"):
    sharding.logical_to_spec(("embed", "experts"), path="layers/0/moe/w")
  with pytest.raises(ValueError, match="'experts'"):
    sharding.logical_to_spec(("experts",))


def test_mesh_axis_used_twice_is_an_error():
  # embed -> fsdp and batch -> (data, fsdp) collide.
  with pytest.raises(ValueError, match=r"Mesh axis 'fsdp' is used twice.*'batch'.*'embed'"):
    sharding.logical_to_spec(("batch", "length", "embed"))
  with pytest.raises(ValueError, match="'tensor' is used twice"):
    sharding.logical_to_spec(("heads", "mlp"), path="w")


@pytest.mark.parametrize("rules, match", [
    ({"embed": 3}, "'embed'"),
    ({"embed": ("fsdp", "fsdp")}, "repeats a mesh axis"),
    ([("embed", "fsdp"), ("embed", None)], "more than one sharding rule"),
    ([("embed",)], "pair"),
])
def test_bad_rules(rules, match):
  with pytest.raises(ValueError, match=match):
    sharding.logical_to_spec(("embed",), rules)


def test_bad_axes_argument():
  with pytest.raises(ValueError, match="tuple of names"):
    sharding.logical_to_spec("embed")
  with pytest.raises(ValueError, match="strings or None"):
    sharding.logical_to_spec(("embed", 3))


def test_make_mesh_single_device():
  mesh = sharding.make_mesh()
  assert mesh.axis_names == ("data", "fsdp", "tensor")
  assert mesh.axis_sizes == (1, 1, 1)
  assert mesh.axis_types == (AxisType.Auto,) * 3
  assert sharding.make_mesh((1, -1, 1)).axis_sizes == (1, len(jax.devices()), 1)
  with pytest.raises(ValueError, match=r"needs 8 devices.*xla_force_host_platform_device_count"):
    sharding.make_mesh((2, 2, 2), devices=jax.devices()[:1])
  with pytest.raises(ValueError, match="different lengths"):
    sharding.make_mesh((1, 1), ("data", "fsdp", "tensor"))
  with pytest.raises(ValueError, match="duplicate"):
    sharding.make_mesh((1, 1), ("data", "data"))


def test_model_shardings_specs_on_abstract_mesh():
  model = Decoder(_cfg(), rngs=nnx.Rngs(0))
  shardings = sharding.model_shardings(model, _abstract_mesh())
  flat = {"/".join(map(str, k)): v.get_value() for k, v in nnx.to_flat_state(shardings)}
  assert set(flat) == {"/".join(map(str, k)) for k, _ in nnx.to_flat_state(nnx.state(model))}
  assert all(isinstance(s, NamedSharding) for s in flat.values())
  assert flat["embed_vd"].spec == P("tensor", "fsdp")
  assert flat["lm_head_dv"].spec == P("fsdp", "tensor")
  assert flat["layers/0/attn/q_proj_dnh"].spec == P("fsdp", "tensor", None)
  assert flat["layers/1/attn/o_proj_nhd"].spec == P("tensor", None, "fsdp")
  assert flat["layers/1/mlp/down_proj_fd"].spec == P("tensor", "fsdp")
  assert flat["final_norm/scale_d"].spec == P("fsdp")


def test_indivisible_dimension_error_or_replicate():
  model = Decoder(_cfg(vocab_size=129), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"size 129.*`embed_vd`.*\('tensor',\)"):
    sharding.model_shardings(model, _abstract_mesh())
  with pytest.warns(UserWarning) as record:
    shardings = sharding.model_shardings(model, _abstract_mesh(), on_indivisible="replicate")
  messages = sorted(str(r.message) for r in record)
  assert len(messages) == 2 and "`embed_vd`" in messages[0] and "`lm_head_dv`" in messages[1]
  assert all("Replicating" in m for m in messages)
  assert record[0].filename == __file__
  assert shardings["embed_vd"].get_value().spec == P(None, "fsdp")
  assert shardings["lm_head_dv"].get_value().spec == P("fsdp", None)
  assert shardings["layers"][0]["attn"]["q_proj_dnh"].get_value().spec == P("fsdp", "tensor", None)
  with pytest.raises(ValueError, match="on_indivisible"):
    sharding.model_shardings(model, _abstract_mesh(), on_indivisible="pad")


def test_rule_to_missing_mesh_axis():
  model = Decoder(_cfg(), rngs=nnx.Rngs(0))
  mesh = AbstractMesh((1,), ("data",), axis_types=(AxisType.Auto,))
  with pytest.raises(ValueError, match=r"mesh axis '(fsdp|tensor)', which is not in the mesh"):
    sharding.model_shardings(model, mesh)


class _Bare(nnx.Module):

  def __init__(self):
    self.inner = nnx.Dict(w=nnx.Param(jnp.ones((4, 2))))
    self.good = nnx.Param(jnp.ones((4,)), out_sharding=("embed",), eager_sharding=False)


class _BadRank(nnx.Module):

  def __init__(self):
    self.w = nnx.Param(jnp.ones((4, 2)), out_sharding=("embed",), eager_sharding=False)


def test_param_without_axis_names_or_wrong_rank():
  with pytest.raises(ValueError, match=r"`inner/w`.*no logical axis names"):
    sharding.model_shardings(_Bare(), sharding.make_mesh())
  with pytest.raises(ValueError, match=r"`w` has shape \(4, 2\) but 1 logical axis names"):
    sharding.model_shardings(_BadRank(), sharding.make_mesh())


def test_shard_model_single_device_in_place():
  model = Decoder(_cfg(), rngs=nnx.Rngs(0))
  tokens = jnp.arange(12).reshape(2, 6) % 128
  ref = model(tokens)
  mesh = sharding.make_mesh()
  out = sharding.shard_model(model, mesh)
  assert out is model
  w = model.layers[0].attn.q_proj_dnh[...]
  assert isinstance(w.sharding, NamedSharding) and w.sharding.spec == P("fsdp", "tensor", None)
  np.testing.assert_array_equal(model(tokens), ref)
  assert sharding.batch_sharding(mesh).spec == P(("data", "fsdp"), None)


def test_constrain_without_mesh_is_a_noop():
  x = jnp.ones((4, 3, 8))
  assert sharding.constrain(x, ("batch", "length", None)) is x
  # Errors are still reported only when a mesh is present; the rank check is always on.
  with pytest.raises(ValueError, match="has 2 names"):
    sharding.constrain(x, ("batch", "length"))


def test_constrain_with_mesh_single_device():
  mesh = sharding.make_mesh()
  x = jnp.ones((4, 3, 8))
  with jax.set_mesh(mesh):
    y = jax.jit(lambda a: sharding.constrain(a, ("batch", "length", None)) * 2)(x)
  np.testing.assert_array_equal(y, 2 * x)
  y = jax.jit(lambda a: sharding.constrain(a, ("batch", None, "mlp"), mesh=mesh))(x)
  np.testing.assert_array_equal(y, x)
  with pytest.raises(ValueError, match="'fsdp' is used twice"):
    sharding.constrain(x, ("batch", "length", "embed"), mesh=mesh)


def test_constrain_indivisible_on_abstract_mesh():
  x = jnp.ones((6, 3, 5))
  with pytest.raises(ValueError, match=r"Dimension 0 \(size 6\) is not divisible.*\('data', 'fsdp'\)"):
    sharding.constrain(x, ("batch", "length", None), mesh=_abstract_mesh())


_MULTI_DEVICE_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from flax import nnx
    from jax.sharding import PartitionSpec as P
    from rljax import sharding
    from rljax.models.config import DecoderConfig
    from rljax.models.decoder import Decoder

    assert len(jax.devices()) == 8, jax.devices()
    cfg = DecoderConfig(family="llama", vocab_size=128, d_model=64, n_layers=2, n_heads=4,
                        n_kv_heads=2, head_dim=16, d_ff=128, max_positions=64, norm_eps=1e-6,
                        activation="silu", tie_word_embeddings=False, qkv_bias=False)
    model = Decoder(cfg, rngs=nnx.Rngs(0))
    graphdef, _ = nnx.split(model)
    rng = np.random.default_rng(0)
    tokens = jnp.asarray(rng.integers(0, 128, (8, 16)), jnp.int32)
    targets = jnp.asarray(rng.integers(0, 128, (8, 16)), jnp.int32)

    def loss_fn(state, tokens, targets):
      logits = nnx.merge(graphdef, state)(tokens)
      logp = jax.nn.log_softmax(logits, axis=-1)
      loss = -jnp.mean(jnp.take_along_axis(logp, targets[..., None], axis=-1))
      return loss, logits

    step = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
    (loss1, logits1), grads1 = step(nnx.state(model), tokens, targets)
    assert len(logits1.sharding.device_set) == 1

    mesh = sharding.make_mesh((2, 2, 2))
    sharding.shard_model(model, mesh)
    state = nnx.state(model)
    bs = sharding.batch_sharding(mesh)
    tok_s, tgt_s = jax.device_put(tokens, bs), jax.device_put(targets, bs)
    assert tok_s.sharding.spec == P(("data", "fsdp"), None)
    with jax.set_mesh(mesh):
      (loss8, logits8), grads8 = step(state, tok_s, tgt_s)
    assert len(logits8.sharding.device_set) == 8
    # The decoder's activation constraints: logits keep batch over (data, fsdp) and vocab over tensor.
    assert logits8.sharding.spec == P(("data", "fsdp"), None, "tensor"), logits8.sharding
    with jax.set_mesh(mesh):
      hidden = jax.jit(lambda s, t: nnx.merge(graphdef, s).hidden_states(t))(state, tok_s)
    assert hidden.sharding.spec[0] == ("data", "fsdp") and hidden.sharding.spec[1:] in ((), (None,), (None, None))

    np.testing.assert_allclose(float(loss8), float(loss1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(logits8), np.asarray(logits1), rtol=1e-5, atol=1e-5)
    g1 = dict(nnx.to_flat_state(grads1)); g8 = dict(nnx.to_flat_state(grads8))
    assert g1.keys() == g8.keys()
    for k in g1:
      np.testing.assert_allclose(np.asarray(g8[k].get_value()), np.asarray(g1[k].get_value()),
                                 rtol=1e-5, atol=1e-5, err_msg=str(k))

    n_sharded = 0
    for k, v in nnx.to_flat_state(state):
      arr = v.get_value()
      assert len(arr.sharding.device_set) == 8
      if not arr.sharding.is_fully_replicated:
        n_sharded += 1
    q = model.layers[0].attn.q_proj_dnh[...]
    assert q.sharding.spec == P("fsdp", "tensor", None), q.sharding
    assert q.addressable_shards[0].data.shape == (32, 2, 16), q.addressable_shards[0].data.shape
    assert n_sharded > 0

    # constrain under jax.set_mesh inside jit.
    with jax.set_mesh(mesh):
      h = jax.jit(lambda x: sharding.constrain(x * 2, ("batch", "length", "mlp")))(jnp.ones((8, 4, 6)))
    assert h.sharding.spec == P(("data", "fsdp"), None, "tensor"), h.sharding
    print("OK", n_sharded, float(loss1), float(loss8))
""")


def test_sharded_decoder_matches_single_device():
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
         "JAX_PLATFORMS": "cpu"}
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
  proc = subprocess.run([sys.executable, "-c", _MULTI_DEVICE_SCRIPT], env=env, cwd=root,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-5000:]}"
  assert proc.stdout.strip().startswith("OK"), proc.stdout
