"""RL with verifiable rewards (RLVR) on reasoning-gym tasks: does RL raise held-out accuracy over SFT?

The workload of DeepSeekMath's GRPO (Shao et al. 2024, arXiv 2402.03300) and its successors, at a
size that runs on a laptop:

  1. Tasks: reasoning-gym families (`rljax.tasks.reasoning_gym_task`) with train and held-out splits
     that share no prompt; each row carries a worked solution "<think>steps</think> <answer>X</answer>".
  2. Tokenizer: a byte-level BPE trained on the training split in about a second and saved in Hugging
     Face format (`rljax.text.train_bpe_tokenizer`); prompts go through its chat template.
  3. SFT: a small Llama-style decoder learns the worked solutions (NLL on the completion tokens), a
     fraction `sft.noise` of them replaced by a wrong answer without working
     (`rljax.tasks.noisy_solutions`): the spec's testbed starts RL from a policy that guesses part of
     the time.
  4. RL from that start, per algorithm preset and seed: G prompts × n samples per step from the
     training split (`rljax.text.PromptDataset`), rewards from reasoning-gym's own scorers in a
     process pool (`rljax.rewards.RewardPool` through `TextReward`), the preset's advantages and loss
     (`rljax.training.online`). Held-out accuracy is measured every `eval_every` steps.
  5. Report: held-out accuracy of the SFT start and after RL (sampled mean@k at temperature 1, pass@k
     and greedy), per family; curves of accuracy, reward, entropy and length against step.

    python -m rljax.run --config configs/rlvr.py:quickstart --workdir results/quickstart
    python -m rljax.run --config configs/rlvr.py:cpu --workdir results/rlvr
    python -m rljax.run --config configs/rlvr.py:quickstart --config.lora.enabled=True --workdir results/lora
                                                          # RL trains LoRA adapters on the frozen SFT model
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments import cli
from rljax import algorithms, sharding
from rljax import training as T
from rljax.data import packing
from rljax.models.config import DecoderConfig
from rljax.models import lora
from rljax.models.decoder import Decoder
from rljax.rewards import RewardPool, TextReward
from rljax.tasks import noisy_solutions, reasoning_gym_task, solution_text, task_reward
from rljax.text import PromptDataset, encode_prompts, encode_sft, load_tokenizer, train_bpe_tokenizer
from rljax.training import distributed, online
from rljax.training.evaluate import make_evaluator

TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def build_data(cfg, workdir):
  """Train and held-out splits and the tokenizer (trained once, then loaded from the work directory)."""
  t = cfg.task
  train = reasoning_gym_task(list(t.families), size=t.train_size, seed=cfg.seed, difficulties=tuple(t.difficulties))
  heldout = reasoning_gym_task(list(t.rl_families), size=t.heldout_size, seed=cfg.seed + 1,
                               difficulties=tuple(t.difficulties), exclude=train["prompt"])
  if not t.think:  # answers without worked steps: "<answer>X</answer>"
    train = train.map(lambda r: {"solution": solution_text(r["answer"], None)})
  tok_dir = os.path.join(workdir, "tokenizer")
  tokenizer = None
  if distributed.is_primary() and not os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
    tokenizer = train_bpe_tokenizer(list(train["prompt"]) + list(train["solution"]),
                                    vocab_size=cfg.tokenizer.vocab_size, out_dir=tok_dir, added_tokens=TAGS)
  distributed.barrier("tokenizer")  # other processes load what process 0 trained (the work directory is shared)
  return train, heldout, load_tokenizer(tok_dir) if tokenizer is None else tokenizer


def make_model(cfg, tokenizer, seed: int = 0) -> Decoder:
  m = cfg.model
  dtype = jnp.dtype(m.dtype)
  dc = DecoderConfig(family="llama", vocab_size=len(tokenizer), d_model=m.d_model, n_layers=m.n_layers,
                     n_heads=m.n_heads, n_kv_heads=m.n_kv_heads, head_dim=m.d_model // m.n_heads, d_ff=m.d_ff,
                     max_positions=m.max_positions, norm_eps=1e-6, activation="silu", tie_word_embeddings=True,
                     qkv_bias=False, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id, param_dtype=jnp.float32, compute_dtype=dtype)
  model = Decoder(dc, rngs=nnx.Rngs(seed))
  if (mesh := _mesh(cfg)) is not None:
    sharding.shard_model(model, mesh)
  return model


def _mesh(cfg):
  """The mesh of shape `model.mesh_shape` (default (-1, 1, 1): data-parallel) over every device of every
  process when `model.mesh` is set, and always under jax.distributed (parameters and batches must then be
  global arrays); None otherwise."""
  return sharding.make_mesh(tuple(cfg.model.mesh_shape)) if cfg.model.mesh or jax.process_count() > 1 else None


def _global(mesh, local):
  """This process's batch rows as the global batch on `mesh` (unchanged without a mesh)."""
  return local if mesh is None else distributed.global_batch(local, sharding.batch_sharding(mesh))


def sft(cfg, workdir, writer, train, tokenizer):
  """NLL of the worked solutions, a `cfg.sft.noise` fraction replaced by wrong guesses; returns the
  trained parameters."""
  solutions = noisy_solutions(train["solution"], train["answer"], rate=cfg.sft.noise, seed=cfg.seed)
  data = encode_sft(tokenizer, list(train["prompt"]), solutions, max_len=cfg.sft.max_len)
  n, b = len(train), cfg.sft.batch
  if cfg.sft.pack:
    # Rows of `max_len` holding several examples each (rljax.data.packing); per step as many rows as hold
    # `batch` examples on average, a multiple of the device count for the data-parallel mesh.
    data, stats = packing.pack_padded(data, row_len=cfg.sft.max_len)
    n, b = stats["rows"], packing.rows_per_step(b, stats, multiple=jax.device_count())
  data = {k: jnp.asarray(v) for k, v in data.items()}
  mesh, rows = _mesh(cfg), distributed.process_rows(b)

  def batch_fn(pos):  # each process reads its rows of the global batch
    idx = np.random.default_rng([cfg.seed, pos]).choice(n, b, replace=False)[rows]
    return _global(mesh, {k: v[idx] for k, v in data.items()})

  s = cfg.sft
  opt = T.make_optimizer(s.lr, schedule=s.schedule, total_steps=s.steps, warmup_steps=s.warmup_steps)
  graphdef, state = T.init_train_state(make_model(cfg, tokenizer, cfg.seed), opt, rng=jax.random.PRNGKey(cfg.seed))
  state = distributed.replicate_host_local(state, mesh)  # the counters and key, as the step returns them
  state = T.train(state, T.make_train_step(graphdef, T.objectives.sft_loss(), opt), batch_fn, num_steps=s.steps,
                  writer=writer, phase="sft", checkpointer=T.Checkpointer(os.path.join(workdir, "ckpt", "sft")),
                  log_every=cfg.log_every, ckpt_every=cfg.ckpt_every, tokens_fn=lambda bt: bt["mask"].sum())
  return state.params


def _rows(batch_prompts, rows):
  return [{"prompt": p, **r} for p, r in zip(batch_prompts, rows)]


def _evaluator(cfg, graphdef, heldout, tokenizer, reward):
  rows = [dict(r) for r in heldout.select(range(min(cfg.eval.n_prompts, len(heldout))))]
  ids, mask = encode_prompts(tokenizer, [r["prompt"] for r in rows], max_len=cfg.rl.max_prompt_len)
  mesh = _mesh(cfg)
  return make_evaluator(graphdef, ids, mask, rows, reward, k=cfg.eval.k, max_new_tokens=cfg.rl.max_new_tokens,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, seed=cfg.seed,
                        sharding=None if mesh is None else sharding.batch_sharding(mesh))


def _policy_model(cfg, tokenizer, sft_params, critic: bool):
  """The SFT policy, with fresh LoRA adapters on its frozen weights when `lora.enabled` (the adapted policy
  starts equal to the SFT one), and a value head for critic presets."""
  model = make_model(cfg, tokenizer, cfg.seed)
  nnx.update(model, sft_params)
  if cfg.lora.enabled:
    c = cfg.lora
    lora.apply_lora(model, lora.LoRAConfig(rank=c.rank, alpha=c.alpha, dropout=c.dropout, targets=tuple(c.targets),
                                           use_rslora=c.use_rslora), rngs=nnx.Rngs(cfg.seed + 2))
    if (mesh := _mesh(cfg)) is not None:
      sharding.shard_model(model, mesh)  # places the new adapters
  return online.ActorCritic(model, rngs=nnx.Rngs(cfg.seed + 1)) if critic else model


def rl_phase(cfg, workdir, writer, name, seed, algo, stream, eval_fn, sft_params, tokenizer):
  """One RL run of preset `name` from the SFT parameters; returns the final state."""
  model = _policy_model(cfg, tokenizer, sft_params, bool(algo.config.critic.enabled))
  opt = T.make_optimizer(cfg.rl.lr, name=cfg.rl.optimizer)
  mesh = _mesh(cfg)
  _, state = algo.init_state(model, opt, rng=jax.random.PRNGKey(seed))
  state = distributed.replicate_host_local(state, mesh)  # counters, key and a critic's fresh head

  def prompt_fn(pos):  # this process's prompts, as rows of the global batch; `rows` stay per process
    b = stream.batch(pos)
    return *_global(mesh, (b.ids, b.mask)), _rows(b.prompts, b.rows), None

  phase = f"{name}/seed{seed}"
  step_fn = online.online_step(algo, algo.make_step(opt), prompt_fn, seed=seed)
  k = cfg.eval.k
  return T.train(state, step_fn, prompt_fn, num_steps=cfg.rl.steps, writer=writer, phase=phase,
                 checkpointer=T.Checkpointer(os.path.join(workdir, "ckpt", name, f"seed{seed}")),
                 log_every=cfg.log_every, ckpt_every=cfg.ckpt_every, eval_fn=eval_fn, eval_every=cfg.rl.eval_every,
                 data_from_state=True, bar_keys=("reward_mean", f"eval/acc/all/mean@{k}"),
                 step_of=lambda s: int(s.step) // algo.updates_per_iteration)


def _accuracy(metrics: dict, k: int, scope: str = "all") -> dict:
  get = lambda m: metrics.get(f"eval/acc/{scope}/{m}", float("nan"))
  return {"mean": get(f"mean@{k}"), "pass": get(f"pass@{k}"), "greedy": get("greedy"), "length": get("length")}


def run(cfg) -> dict:
  """SFT once, then every (algorithm, seed) RL run from that start (each resumed from its checkpoint)."""
  workdir = cfg.out_dir
  t0 = time.perf_counter()
  writer = T.MetricsWriter(workdir)
  train, heldout, tokenizer = build_data(cfg, workdir)
  rl_train = train.filter(lambda r: r["family"] in tuple(cfg.task.rl_families))
  sft_params = sft(cfg, workdir, writer, train, tokenizer)
  t_sft = time.perf_counter() - t0
  k, fams = cfg.eval.k, list(cfg.task.rl_families)
  with RewardPool({"correct": task_reward}, workers=cfg.reward.workers, timeout=cfg.reward.timeout) as pool:
    reward = TextReward(tokenizer, pool)
    stream = PromptDataset(rl_train, tokenizer, batch_size=cfg.rl.prompts, max_prompt_len=cfg.rl.max_prompt_len,
                           seed=cfg.seed)
    graphdef, sft_policy = nnx.split(_policy_model(cfg, tokenizer, sft_params, critic=False), nnx.Param)
    eval_fn = _evaluator(cfg, graphdef, heldout, tokenizer, reward)
    sft_eval = eval_fn(sft_policy)  # with LoRA: the SFT weights plus adapters that change nothing yet
    rows, times = [], {}
    for name in cfg.rl.algorithms:
      preset = algorithms.get(name)
      critic = bool(preset.critic.enabled)
      policy_def = nnx.graphdef(_policy_model(cfg, tokenizer, sft_params, critic))
      algo = online.make_online_rl(preset, graphdef=policy_def, reward_fn=reward, group_size=cfg.rl.group_size,
                                   max_new_tokens=cfg.rl.max_new_tokens, eos_token_id=tokenizer.eos_token_id,
                                   pad_token_id=tokenizer.pad_token_id, temperature=cfg.rl.temperature,
                                   overlap=cfg.rl.overlap)
      run_eval = eval_fn if not critic else (lambda st: eval_fn(st.params["policy"]))
      for seed in cfg.rl.seeds:
        t1 = time.perf_counter()
        state = rl_phase(cfg, workdir, writer, name, seed, algo, stream, run_eval, sft_params, tokenizer)
        final = run_eval(state)
        times[f"{name}/seed{seed}"] = time.perf_counter() - t1
        for fam in ["all"] + fams:
          before, after = _accuracy(sft_eval, k, fam), _accuracy(final, k, fam)
          rows.append({"algorithm": name, "seed": seed, "family": fam, **{f"sft_{m}": v for m, v in before.items()},
                       **{f"rl_{m}": v for m, v in after.items()}})
  writer.close()
  distributed.barrier("metrics")  # process 0 has written every line of metrics.jsonl
  curves = {}
  for name in cfg.rl.algorithms:
    for seed in cfg.rl.seeds:
      m = T.read_metrics(workdir, phase=f"{name}/seed{seed}")
      pick = lambda key: [(x["step"], x[key]) for x in m if key in x]
      start = [(0, sft_eval[f"eval/acc/all/mean@{k}"])]  # every run starts from the SFT policy
      curves[f"{name}/seed{seed}"] = {"accuracy": start + pick(f"eval/acc/all/mean@{k}"), "reward": pick("reward_mean"),
                                     "entropy": pick("entropy"), "length": pick("response_length")}
  wall = time.perf_counter() - t0
  print(f"wall time {wall:.0f} s (tokenizer + SFT {t_sft:.0f} s, RL " +
        ", ".join(f"{k_} {v:.0f} s" for k_, v in times.items()) + ")")
  return {"rows": rows, "curves": curves, "k": k, "families": fams, "algorithms": list(cfg.rl.algorithms),
          "seeds": list(cfg.rl.seeds), "sft_eval": sft_eval, "wall_s": wall, "sft_s": t_sft, "times": times}


def summary_rows(results) -> list[dict]:
  """Mean ± std over seeds of accuracy before and after RL, per algorithm and family."""
  out = []
  for name in results["algorithms"]:
    for fam in ["all"] + results["families"]:
      rs = [r for r in results["rows"] if r["algorithm"] == name and r["family"] == fam]
      agg = lambda key: (float(np.mean([r[key] for r in rs])), float(np.std([r[key] for r in rs])))
      (rl, rl_sd), (g, g_sd) = agg("rl_mean"), agg("rl_greedy")
      out.append({"algorithm": name, "family": fam, "seeds": len(rs), "sft": rs[0]["sft_mean"], "rl": rl,
                  "rl_sd": rl_sd, "gain": rl - rs[0]["sft_mean"], "sft_greedy": rs[0]["sft_greedy"], "rl_greedy": g,
                  "rl_greedy_sd": g_sd, "sft_length": rs[0]["sft_length"], "rl_length": agg("rl_length")[0]})
  return out


def tables(results) -> list:
  k = results["k"]
  return [cli.Table(summary_rows(results), {
      "algorithm": "{algorithm}", "family": "{family}", "seeds": "{seeds}",
      f"SFT mean@{k}": "{sft:.3f}", f"RL mean@{k}": "{rl:.3f} ± {rl_sd:.3f}", "gain": "{gain:+.3f}",
      "SFT greedy": "{sft_greedy:.3f}", "RL greedy": "{rl_greedy:.3f} ± {rl_greedy_sd:.3f}",
      "length SFT → RL": "{sft_length:.1f} → {rl_length:.1f}"},
      title=f"held-out accuracy (sampled mean@{k} at temperature 1, and greedy) before and after RL")]


def headline(results) -> dict:
  """Accuracy gains (RL − SFT, sampled mean@k) of the first algorithm, overall and per family."""
  rows = [r for r in summary_rows(results) if r["algorithm"] == results["algorithms"][0]]
  return {f"gain_{r['family']}": r["gain"] for r in rows}


def plot(results, path: str | None = None):
  """Held-out accuracy, rollout reward, entropy and response length against RL step, per algorithm
  (median over seeds)."""
  plt = cli.pyplot(path)
  fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
  labels = {"accuracy": f"held-out mean@{results['k']}", "reward": "rollout reward",
            "entropy": "token entropy (−mean log π)", "length": "response length"}
  for i, name in enumerate(results["algorithms"]):
    for ax, (metric, label) in zip(axes, labels.items()):
      series = [results["curves"][f"{name}/seed{s}"][metric] for s in results["seeds"]]
      series = [s for s in series if s]
      if not series:
        continue
      n = min(len(s) for s in series)
      x = [p[0] for p in series[0][:n]]
      y = np.array([[p[1] for p in s[:n]] for s in series])
      ax.plot(x, np.median(y, 0), color=f"C{i}", label=name)
      ax.set(xlabel="RL step", ylabel=label)
  sft = results["sft_eval"].get(f"eval/acc/all/mean@{results['k']}")
  if sft is not None:
    axes[0].axhline(sft, color="k", ls=":", label="SFT")
  axes[0].legend(fontsize=7)
  return cli.finish_figure(fig, path, title="RLVR on reasoning-gym: SFT start, then RL")
