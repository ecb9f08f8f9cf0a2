"""The same tiny training as two CPU processes (jax.distributed on localhost) and as one process."""

import json
import os
import socket
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_SCRIPT = textwrap.dedent("""
    import json, sys
    from rljax.training import distributed
    multi = distributed.maybe_initialize()
    import jax, jax.numpy as jnp, numpy as np
    from flax import nnx
    from rljax import sharding
    from rljax import training as T
    from rljax.models.config import DecoderConfig
    from rljax.models.decoder import Decoder
    cfg = DecoderConfig(family="llama", vocab_size=29, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=8,
                        d_ff=32, max_positions=32, norm_eps=1e-6, activation="silu", tie_word_embeddings=False,
                        qkv_bias=False)
    mesh = sharding.make_mesh((-1, 1, 1))
    model = sharding.shard_model(Decoder(cfg, rngs=nnx.Rngs(0)), mesh)
    opt = T.make_optimizer(3e-2)
    graphdef, state = T.init_train_state(model, opt, rng=jax.random.PRNGKey(0))
    step = T.make_train_step(graphdef, T.objectives.sft_loss(), opt)
    rows = distributed.process_rows(8)
    bs = sharding.batch_sharding(mesh)
    losses = []
    with jax.set_mesh(mesh):
      for pos in range(5):
        rng = np.random.default_rng(pos)  # the global batch; each process keeps only its rows
        tokens = rng.integers(1, 29, (8, 8)).astype(np.int32)
        mask = np.arange(8)[None] < rng.integers(2, 9, (8, 1))
        local = {"tokens": tokens[rows], "mask": mask[rows], "loss_mask": mask[rows]}
        state, metrics = step(state, distributed.global_batch(local, bs))
        losses.append(float(metrics["loss"]))
    print(json.dumps({"multi": multi, "processes": jax.process_count(), "devices": len(jax.devices()),
                      "losses": losses}))
""")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(**extra):
  env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_") and k != "XLA_FLAGS"}
  return {**env, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu", **extra}


def test_two_processes_match_one_process():
  single = subprocess.run([sys.executable, "-c", _SCRIPT], env=_env(), capture_output=True, text=True, timeout=300)
  assert single.returncode == 0, single.stderr[-3000:]
  one = json.loads(single.stdout.strip().splitlines()[-1])
  address = f"127.0.0.1:{_free_port()}"
  procs = [subprocess.Popen([sys.executable, "-c", _SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)))
           for i in range(2)]
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  two = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
  assert one["processes"] == 1 and not one["multi"]
  for r in two:
    assert r["multi"] and r["processes"] == 2 and r["devices"] == 2
    assert max(abs(a - b) for a, b in zip(r["losses"], one["losses"])) < 1e-5, (r["losses"], one["losses"])
  assert len(set(one["losses"])) == len(one["losses"])  # five distinct batches and updates
