"""The same training as two CPU processes (jax.distributed on localhost, gloo collectives, one CPU device per
process, a data-parallel mesh over the two) and as one process: equal losses.

An SFT loop; online RL with a host reward (each process scores its own prompts' responses) and a
checkpoint resume (slow); the RLVR `smoke` preset through `python -m rljax.run` (slow).
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The scripts below run after this one, as one process and as two.
_PREAMBLE = textwrap.dedent("""
    import json, sys
    from rljax.training import distributed
    multi = distributed.maybe_initialize()
    import jax, numpy as np
    from flax import nnx
    from rljax import sharding
    from rljax import training as T
    from rljax.models.config import DecoderConfig
    from rljax.models.decoder import Decoder
    from rljax.training import online
    cfg = DecoderConfig(family="llama", vocab_size=29, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=8,
                        d_ff=32, max_positions=32, norm_eps=1e-6, activation="silu", tie_word_embeddings=False,
                        qkv_bias=False)
    mesh = sharding.make_mesh((-1, 1, 1))
    bs = sharding.batch_sharding(mesh)
    fresh_model = lambda: sharding.shard_model(Decoder(cfg, rngs=nnx.Rngs(0)), mesh)
    graphdef = nnx.graphdef(fresh_model())
    report = lambda **kw: print(json.dumps({"multi": multi, "processes": jax.process_count(),
                                            "devices": len(jax.devices()), **kw}))
""")

# Five SFT steps on global batches of 8 rows.
_SFT = _PREAMBLE + textwrap.dedent("""
    opt = T.make_optimizer(3e-2)
    graphdef, state = T.init_train_state(fresh_model(), opt, rng=jax.random.PRNGKey(0))
    step = T.make_train_step(graphdef, T.objectives.sft_loss(), opt)
    rows = distributed.process_rows(8)
    losses = []
    with jax.set_mesh(mesh):
      for pos in range(5):
        rng = np.random.default_rng(pos)  # the global batch; each process keeps only its rows
        tokens = rng.integers(1, 29, (8, 8)).astype(np.int32)
        mask = np.arange(8)[None] < rng.integers(2, 9, (8, 1))
        local = {"tokens": tokens[rows], "mask": mask[rows], "loss_mask": mask[rows]}
        state, metrics = step(state, distributed.global_batch(local, bs))
        losses.append(float(metrics["loss"]))
    report(losses=losses)
""")

# GRPO with a host reward that needs each prompt's dataset row (the fraction of response tokens equal to
# the row's target): three iterations, and the third once more, resumed from a checkpoint of the second.
_RL = _PREAMBLE + textwrap.dedent("""
    class TargetFraction:
      on_host = True

      def __call__(self, prompt_ids, prompt_mask, completion_ids, completion_mask, rows):
        targets = np.array([r["target"] for r in rows])
        assert np.array_equal(targets, prompt_ids[:, -1])  # this process's rows, paired with their prompts
        m = completion_mask.astype(np.float32)
        r = ((completion_ids == targets[:, None]) * m).sum(-1) / np.maximum(m.sum(-1), 1.0)
        return r.astype(np.float32), {"reward/host": float(r.mean())}

    G = 4
    prompt_rows = distributed.process_rows(G)

    def prompt_fn(pos):  # global prompts [G, 5], left-padded; each process supplies (and keeps the rows of) its share
      rng = np.random.default_rng(pos)
      mask = np.arange(5)[None] >= rng.integers(0, 3, (G, 1))
      ids = np.where(mask, rng.integers(1, 29, (G, 5)), 0).astype(np.int32)
      rows = [{"target": int(t)} for t in ids[:, -1]]
      return *distributed.global_batch((ids[prompt_rows], mask[prompt_rows]), bs), rows[prompt_rows], None

    algo = online.make_online_rl("grpo", graphdef=graphdef, reward_fn=TargetFraction(), group_size=4,
                                 max_new_tokens=6, eos_token_id=None, pad_token_id=0)
    # SGD: Adam's first steps are sign(g), which float noise in cancelling gradient entries would flip.
    opt = T.make_optimizer(1.0, name="sgd")
    step_fn = online.online_step(algo, algo.make_step(opt), prompt_fn)
    # Counters and key placed on the mesh as the step returns them (else the step compiles twice).
    fresh = lambda: distributed.replicate_host_local(algo.init_state(fresh_model(), opt, rng=jax.random.PRNGKey(0))[1],
                                                     mesh)
    keys = ("loss", "grad_norm", "reward_mean", "reward_std", "reward/host", "entropy", "kl_k1", "response_length")
    state, rl = fresh(), []
    ckpt = T.Checkpointer(sys.argv[1])
    for it in range(3):
      state, m = step_fn(state, prompt_fn(int(state.data_pos)))
      rl.append({k: m[k] for k in keys})
      if it == 1:
        ckpt.save(2, state)
    _, state = ckpt.restore_latest(fresh())
    _, m = step_fn(state, prompt_fn(int(state.data_pos)))
    report(rl=rl, resumed={k: m[k] for k in keys})
""")


def _free_ports(k: int) -> list[int]:
  with contextlib.ExitStack() as stack:  # all bound at once: k distinct ports
    socks = [stack.enter_context(socket.socket()) for _ in range(k)]
    for s in socks:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in socks]


def _env(**extra):
  env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_") and k != "XLA_FLAGS"}
  return {**env, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu", **extra}


def _launch(runs, logs, *, timeout: float = 600) -> list[list[str]]:
  """Starts every run at once, each `(python arguments, number of processes)`: one process plainly, several
  as jax.distributed processes on localhost; returns each run's stdouts, by process. Output goes to files
  in `logs`: a process blocked on a full pipe would stall the collectives of its peers."""
  os.makedirs(logs, exist_ok=True)
  procs = []  # (run, process, log path without its suffix)
  deadline = time.monotonic() + timeout
  with contextlib.ExitStack() as files:
    try:
      for r, ((args, processes), port) in enumerate(zip(runs, _free_ports(len(runs)))):
        for i in range(processes):
          coordinator = {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": str(processes),
                         "JAX_PROCESS_ID": str(i)} if processes > 1 else {}
          path = os.path.join(logs, f"{r}.{i}")
          out, err = (files.enter_context(open(f"{path}.{name}", "w")) for name in ("out", "err"))
          procs.append((r, subprocess.Popen([sys.executable, *args], stdout=out, stderr=err, text=True, cwd=ROOT,
                                            env=_env(**coordinator)), path))
      for _, p, _ in procs:
        p.wait(timeout=max(deadline - time.monotonic(), 1.0))
    finally:
      for _, p, _ in procs:
        if p.poll() is None:  # a peer failed and this one waits on its collectives
          p.kill()
          p.wait()
  outputs = [[] for _ in runs]
  for r, p, path in procs:
    with open(f"{path}.err") as err, open(f"{path}.out") as out:
      assert p.returncode == 0, err.read()[-3000:]
      outputs[r].append(out.read())
  return outputs


def _last_json(text: str) -> dict:
  return json.loads(text.strip().splitlines()[-1])


def _close(a: float, b: float, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
  """Equal up to float32 reductions summed in another order over two devices (atol: quantities that
  cancel to about 0, e.g. a policy-gradient loss with zero-mean advantages)."""
  return abs(a - b) <= atol + rtol * max(abs(a), abs(b))


def _one_and_two(args, tmp_path) -> tuple[dict, dict]:
  """The reports of `python args` run as one process and as two (which must agree exactly)."""
  (one,), two = _launch([(args + [str(tmp_path / "one")], 1), (args + [str(tmp_path / "two")], 2)], tmp_path / "logs",
                        timeout=300)
  one, two = _last_json(one), [_last_json(out) for out in two]
  assert one["processes"] == one["devices"] == 1 and not one["multi"]
  assert two[0] == two[1]  # every reported value is global: the processes agree exactly
  assert two[0]["multi"] and two[0]["processes"] == two[0]["devices"] == 2
  return one, two[0]


def test_sft_two_processes_match_one_process(tmp_path):
  one, two = _one_and_two(["-c", _SFT], tmp_path)
  assert max(abs(a - b) for a, b in zip(two["losses"], one["losses"])) < 1e-5, (two["losses"], one["losses"])
  assert len(set(one["losses"])) == len(one["losses"])  # five distinct batches and updates


@pytest.mark.slow
def test_online_rl_with_a_host_reward_two_processes_match_one_process(tmp_path):
  one, two = _one_and_two(["-c", _RL], tmp_path)
  for got, want in zip(two["rl"] + [two["resumed"]], one["rl"] + [one["resumed"]]):
    assert all(_close(got[k], want[k]) for k in want), (got, want)
  assert all(m["grad_norm"] > 0 and m["reward_std"] > 0 for m in one["rl"])  # informative updates
  assert one["resumed"] == pytest.approx(one["rl"][2], rel=1e-6, abs=1e-7)  # the checkpoint resumes exactly


def _metrics(workdir) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


@pytest.mark.slow
def test_rlvr_smoke_two_processes_match_one_process(tmp_path):
  """`python -m rljax.run --config configs/rlvr.py:smoke` as two processes and as one: the SFT and RL losses,
  rollout statistics and held-out evaluation of every step agree. PPO instead of the preset's DAPO: a policy
  trained for 8 SFT steps never answers correctly, so group-relative losses are all 0, while PPO's value loss
  and its KL to the reference after the first update are not. About 2 minutes of CPU time."""
  args = ["-m", "rljax.run", "--config", "configs/rlvr.py:smoke", "--config.rl.algorithms=('ppo',)"]
  _, two = _launch([(args + ["--workdir", str(tmp_path / "one")], 1), (args + ["--workdir", str(tmp_path / "two")], 2)],
                   tmp_path / "logs")
  assert "wrote" in two[0] and "wrote" not in two[1]  # process 0 alone writes the outputs
  rows1, rows2 = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
  assert [(r["phase"], r["step"]) for r in rows2] == [(r["phase"], r["step"]) for r in rows1]
  assert {r["phase"] for r in rows1} == {"sft", "ppo/seed0"}
  timing = ("tokens_per_s", "reward/seconds")
  # A loss numerator is a token sum: compared per token (over its denominator), as the loss itself is.
  per_token = lambda r, k: r[k] / max(r[k.replace("numerator", "denominator")], 1.0) if "numerator" in k else r[k]
  for a, b in zip(rows1, rows2):
    compared = [k for k, v in a.items() if isinstance(v, (int, float)) and k not in timing and k != "step"]
    bad = {k: (a[k], b[k]) for k in compared if not _close(per_token(a, k), per_token(b, k))}
    assert not bad, (a["phase"], a["step"], bad)
  assert all(r["loss"] > 0 for r in rows1)
  summary = json.loads((tmp_path / "two" / "summary.json").read_text())
  assert summary["metrics"] == json.loads((tmp_path / "one" / "summary.json").read_text())["metrics"]
