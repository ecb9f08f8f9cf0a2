"""The toy-suite RLVR testbed: SFT a small decoder on reference traces, then online-RL arms × seeds from it.

The RLVR paper experiments (the survey's estimator table, Lite PPO, the entropy mechanism, KDRL, NFT,
OREAL, GRPO-D, APO, PF-PPO, HPT) compare algorithm presets from one start on the jittable toy suite
(`rljax.tasks.toy_suite`: arithmetic and list tasks with exact verifiers, difficulty arms and reference
traces). A run is

  1. SFT: a small Llama-style decoder learns "<think> trace </think> <answer> answer </answer> <eos>" for
     prompts drawn uniformly over the training arms; a fraction `sft.noise` of the rows carries a wrong
     answer (random digits of the right length), so RL starts from a policy that is right only part of
     the time (the spec's noisy SFT start). `sft.steps` sets how far the start is trained.
  2. RL: per arm (a preset of `rljax.algorithms` plus overrides) and seed, `rl.steps` online iterations of
     `rl.prompts` prompts × `group_size` samples from the same start, prompts drawn fresh each step (arm
     ids uniform over the training arms, problems from `Suite.sample`; position `pos` of seed s draws
     with key (s, pos), so every arm of one seed sees the same prompts), rewards from `Suite.reward_fn`
     inside the jit-compiled rollout. Held-out accuracy every `rl.eval_every` steps.
  3. Evaluation (`evaluator`): `eval.per_arm` fixed problems per evaluated arm, `eval.k` samples each at
     temperature 1 plus the greedy response: mean@k, pass@k, greedy accuracy and response length, overall,
     per family and per (family, level) (`rljax.tasks.evaluation.accuracy_table` keys under `eval/acc/`).
     The held-out problems are drawn with a key no training step uses; at the easiest levels the problem
     space is small and some held-out problems also occur in training.

Everything is checkpointed per phase (`<workdir>/ckpt/<phase>`): an interrupted run resumes each SFT or RL
phase where it stopped, and a finished phase is read back instead of recomputed.

    tb = Testbed(cfg)                                     # cfg = testbed_config("cpu") plus the paper's fields
    start = tb.sft(writer)                                # SFT parameters (nnx.State of nnx.Param)
    state = tb.run_arm(writer, "grpo", algorithms.get("grpo"), seed=0, params=start)
    curves = tb.curves("grpo/seed0")                      # eval accuracy, reward, entropy, length per step
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from rljax import algorithms, sampling
from rljax.models.config import DecoderConfig
from rljax.models.decoder import Decoder
from rljax.tasks import toy_suite
from rljax.training import online
from rljax.training.checkpoint import Checkpointer
from rljax.training.evaluate import make_evaluator
from rljax.training.loop import train
from rljax.training.metrics import MetricsWriter, read_metrics
from rljax.training.objectives import sft_loss
from rljax.training.step import init_train_state, make_optimizer, make_train_step

_HELDOUT_KEY = 2**31 - 1  # the held-out problems' key: no training draw uses it


def testbed_config(preset: str) -> ml_collections.ConfigDict:
  """The testbed's fields at `preset` (`smoke`: the tests; `cpu`: minutes per arm on 2 cores; `gpu`: a larger
  decoder, more prompts and steps). Paper configs start from this and add their own fields."""
  if preset not in ("smoke", "cpu", "gpu"):
    raise ValueError(f"unknown preset {preset!r}; use smoke, cpu or gpu")
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.out_dir = "results/testbed"
  # Training arms: families × levels 0..difficulties-1 of rljax.tasks.toy_suite.
  c.task = ml_collections.ConfigDict(dict(families=("add", "modchain"), difficulties=3))
  c.model = ml_collections.ConfigDict(dict(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=192,
                                           dtype="float32"))
  # cpu: 1500 SFT steps (about a minute on 2 cores) start RL at ~43% sampled / ~77% greedy held-out accuracy.
  c.sft = ml_collections.ConfigDict(dict(steps=1500, batch=64, lr=3e-3, warmup_steps=20, noise=0.3))
  # cpu: about 0.3 s per RL step on 2 cores (16 prompts × 8 samples, ≤ 16 new tokens).
  c.rl = ml_collections.ConfigDict(dict(steps=100, prompts=16, group_size=8, lr=3e-4, optimizer="adamw",
                                        temperature=1.0, eval_every=10, seeds=(0, 1, 2)))
  c.eval = ml_collections.ConfigDict(dict(k=4, per_arm=32))
  c.log_every = 5
  c.ckpt_every = 20
  if preset == "smoke":
    c.model.update(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64)
    c.task.difficulties = 2
    c.sft.update(steps=30, batch=32, warmup_steps=0)
    c.rl.update(steps=3, prompts=4, group_size=4, eval_every=3, seeds=(0,))
    c.eval.update(k=2, per_arm=4)
    c.log_every = c.ckpt_every = 1
  elif preset == "gpu":
    c.task.difficulties = 5
    c.model.update(d_model=256, n_layers=6, n_heads=8, n_kv_heads=4, d_ff=768)
    c.sft.update(steps=2000, batch=256, lr=1e-3, warmup_steps=100)
    c.rl.update(steps=300, prompts=64, group_size=16, lr=1e-4, eval_every=25)
    c.eval.update(k=8, per_arm=128)
  return c


def decoder(model_cfg, max_positions: int, *, seed: int) -> Decoder:
  """A Llama-style decoder over the toy suite's vocabulary of the sizes in `model_cfg`."""
  m = model_cfg
  dc = DecoderConfig(family="llama", vocab_size=toy_suite.VOCAB_SIZE, d_model=m.d_model, n_layers=m.n_layers,
                     n_heads=m.n_heads, n_kv_heads=m.n_kv_heads, head_dim=m.d_model // m.n_heads, d_ff=m.d_ff,
                     max_positions=max_positions, norm_eps=1e-6, activation="silu", tie_word_embeddings=True,
                     qkv_bias=False, bos_token_id=toy_suite.BOS_ID, eos_token_id=toy_suite.EOS_ID,
                     pad_token_id=toy_suite.PAD_ID, param_dtype=jnp.float32, compute_dtype=jnp.dtype(m.dtype))
  return Decoder(dc, rngs=nnx.Rngs(seed))


def _noisy_answers(batch: toy_suite.PromptBatch, key: jax.Array, rate: float) -> toy_suite.PromptBatch:
  """A `rate` fraction of the rows with their answer digits replaced by random digits (same length)."""
  k_row, k_digit = jax.random.split(key)
  noisy = jax.random.uniform(k_row, batch.answer_len.shape) < rate
  digits = toy_suite.DIGIT0 + jax.random.randint(k_digit, batch.answer.shape, 0, 10)
  is_digit = (batch.answer >= toy_suite.DIGIT0) & (batch.answer < toy_suite.DIGIT0 + 10)
  return batch._replace(answer=jnp.where(noisy[:, None] & is_digit, digits, batch.answer))


class Testbed:
  """The suite, the decoder's graph and the held-out evaluation of one config (see the module docstring).

  `arms` (training arm ids, default all of the suite's) and `eval_arms` (default `arms`) may be narrowed by
  the paper's experiment, e.g. a task-A / task-B split."""

  def __init__(self, cfg: ml_collections.ConfigDict, *, arms: Sequence[int] | None = None,
               eval_arms: Sequence[int] | None = None, hint: bool = False):
    self.cfg = cfg
    self.workdir = cfg.out_dir
    self.suite = toy_suite.make_suite(tuple(cfg.task.families), int(cfg.task.difficulties))
    all_arms = tuple(range(self.suite.num_arms))
    self.arms = tuple(all_arms if arms is None else arms)
    self.eval_arms = tuple(self.arms if eval_arms is None else eval_arms)
    for name, ids in (("arms", self.arms), ("eval_arms", self.eval_arms)):
      if not ids or any(not 0 <= a < self.suite.num_arms for a in ids):
        raise ValueError(f"`{name}` must be non-empty arm ids in [0, {self.suite.num_arms}), got {ids}.")
    s = self.suite
    self.max_new_tokens = s.completion_width
    # Prompts (hinted ones are P + 1 + S wide), then the completion: every sequence fits.
    self.max_positions = s.max_prompt + (1 + s.max_trace if hint else 0) + s.completion_width
    self.hint = hint
    self._eval_fn = None

  # ------------------------------------------------------------------------------------------ models

  def model(self, seed: int = 0, model_cfg=None) -> Decoder:
    return decoder(model_cfg or self.cfg.model, self.max_positions, seed=seed)

  def graphdef(self, model_cfg=None):
    return nnx.graphdef(self.model(0, model_cfg))

  # ---------------------------------------------------------------------------------------- problems

  def problems(self, key: jax.Array, n: int, arms: Sequence[int] | None = None) -> toy_suite.PromptBatch:
    """`n` problems with arm ids drawn uniformly from `arms` (default the training arms) by `key`."""
    pool = jnp.asarray(self.arms if arms is None else arms, jnp.int32)
    k_arm, k_problem = jax.random.split(key)
    return self.suite.sample(k_problem, pool[jax.random.randint(k_arm, (n,), 0, pool.shape[0])])

  def prompt_fn(self, seed: int, *, arms: Sequence[int] | None = None, demos: bool = False,
                transform: Callable | None = None) -> Callable[[int], tuple]:
    """`prompt_fn(pos) -> (ids, mask, rows, demos)` for `online.online_step`: `rl.prompts` problems of
    position `pos` of seed `seed`; `rows` None (the reward is jittable); with `demos`, the reference
    completions `(tokens [G, C], mask [G, C])` (HPT's demonstrations). `transform(batch, pos)` may rewrite
    the problems first (e.g. hinted prompts)."""
    base = jax.random.PRNGKey(seed)

    def fn(pos: int):
      batch = self.problems(jax.random.fold_in(base, pos), int(self.cfg.rl.prompts), arms)
      return self._stream_entry(transform(batch, pos) if transform is not None else batch, demos)

    return fn

  def arm_prompt_fn(self, seed: int, *, demos: bool = False) -> Callable[..., tuple]:
    """`prompt_fn(pos, arm_ids, omega=0.0) -> (ids, mask, rows, demos)` for a curriculum (`rljax.training.streams`):
    one problem per curriculum arm id in `arm_ids` (an index into the training `arms`) with key (seed, pos). On a
    testbed made with `hint=True` the prompts are `Suite.hinted(batch, omega)` (width P + 1 + S for every
    omega: GHPO's stages stack their groups); otherwise `omega` must be 0."""
    base = jax.random.PRNGKey(seed)
    pool = jnp.asarray(self.arms, jnp.int32)

    def fn(pos: int, arm_ids, omega: float = 0.0):
      batch = self.suite.sample(jax.random.fold_in(base, pos), pool[jnp.asarray(arm_ids, jnp.int32)])
      if self.hint:
        batch = self.suite.hinted(batch, omega)
      elif omega:
        raise ValueError("hinted prompts need a testbed made with `hint=True`.")
      return self._stream_entry(batch, demos)

    return fn

  def _stream_entry(self, batch: toy_suite.PromptBatch, demos: bool) -> tuple:
    """`(ids, mask, rows, demos)` of a prompt batch for the online loop: `rows` None (the reward is jittable), the
    reference completions as demonstrations when asked (HPT)."""
    demo = None
    if demos:
      t = self.suite.sft_targets(batch)
      demo = (t["completion"], t["completion_mask"])
    return batch.ids, batch.mask, None, demo

  def heldout(self, arms: Sequence[int] | None = None) -> tuple[toy_suite.PromptBatch, list[dict]]:
    """`eval.per_arm` fixed problems per arm of `arms` (default `eval_arms`) and their rows (family name,
    level) for the accuracy table."""
    arms = self.eval_arms if arms is None else tuple(arms)
    ids = np.repeat(np.asarray(arms, np.int32), int(self.cfg.eval.per_arm))
    batch = self.suite.sample(jax.random.PRNGKey(_HELDOUT_KEY), ids)
    d = self.suite.difficulties
    rows = [{"family": self.suite.families[a // d], "difficulty": int(a % d), "arm": int(a)} for a in ids]
    return batch, rows

  def evaluator(self, graphdef=None, arms: Sequence[int] | None = None, *, seed: int = 0) -> Callable:
    """`eval_fn(state or params) -> {"eval/acc/<scope>/<metric>": ...}` on `heldout(arms)`."""
    batch, rows = self.heldout(arms)
    return make_evaluator(graphdef or self.graphdef(), batch.ids, batch.mask, rows, self.suite.reward_fn,
                          k=int(self.cfg.eval.k), max_new_tokens=self.max_new_tokens,
                          eos_token_id=toy_suite.EOS_ID, pad_token_id=toy_suite.PAD_ID, seed=seed)

  @property
  def eval_fn(self) -> Callable:
    if self._eval_fn is None:
      self._eval_fn = self.evaluator()
    return self._eval_fn

  # --------------------------------------------------------------------------------------------- SFT

  def sft(self, writer: MetricsWriter | None, *, phase: str = "sft", model_cfg=None, steps: int | None = None,
          noise: float | None = None, arms: Sequence[int] | None = None, lr: float | None = None,
          seed: int | None = None, init=None):
    """NLL of the reference completions (`Suite.sft_targets`), a `noise` fraction with wrong answers;
    returns the trained parameters. `model_cfg` (default `model`) sizes the decoder (a larger teacher);
    `init` (parameters) continues from a given model instead of a fresh one."""
    s = self.cfg.sft
    steps = int(s.steps if steps is None else steps)
    noise = float(s.noise if noise is None else noise)
    seed = int(self.cfg.seed if seed is None else seed)
    if not 0.0 <= noise <= 1.0:
      raise ValueError(f"`noise` must be in [0, 1], got {noise}.")
    model = self.model(seed, model_cfg)
    if init is not None:
      nnx.update(model, init)
    opt = make_optimizer(float(s.lr if lr is None else lr), schedule="cosine", total_steps=max(steps, 1),
                         warmup_steps=min(int(s.warmup_steps), max(steps - 1, 0)))
    graphdef, state = init_train_state(model, opt, rng=jax.random.PRNGKey(seed))
    base = jax.random.fold_in(jax.random.PRNGKey(seed), 7)

    def batch_fn(pos):
      k_problem, k_noise = jax.random.split(jax.random.fold_in(base, pos))
      batch = self.problems(k_problem, int(s.batch), arms)
      t = self.suite.sft_targets(_noisy_answers(batch, k_noise, noise))
      return {"tokens": t["tokens"], "mask": t["mask"], "loss_mask": t["loss_mask"]}

    state = train(state, make_train_step(graphdef, sft_loss(), opt), batch_fn, num_steps=steps, writer=writer,
                  phase=phase, checkpointer=Checkpointer(os.path.join(self.workdir, "ckpt", phase)),
                  log_every=int(self.cfg.log_every), ckpt_every=int(self.cfg.ckpt_every), progress=False)
    return state.params

  def sampler(self, n: int, *, temperature: float | None = None) -> Callable:
    """`draw(params, key, batch) -> dict`: n responses per problem of `batch` (a `PromptBatch`) from the policy
    `params` at `temperature` (default `rl.temperature`), compiled once per sampler. Rows b·n + i: `batch`
    (repeated), `completion`, `completion_mask`, `logprobs` (log π of the sampled tokens at temperature 1), the
    full rows `tokens` [B·n, P+C] with their `response_mask`, and the suite's 0/1 `reward`."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
      raise ValueError(f"`n` must be a positive int, got {n!r}.")
    graphdef = self.graphdef()
    temperature = float(self.cfg.rl.temperature if temperature is None else temperature)

    @jax.jit
    def draw(params, key, batch):
      rep = jax.tree.map(lambda x: jnp.repeat(x, n, axis=0), batch)
      r = sampling.generate(nnx.merge(graphdef, params), rep.ids, rep.mask, key=key, temperature=temperature,
                            max_new_tokens=self.max_new_tokens, eos_token_id=toy_suite.EOS_ID,
                            pad_token_id=toy_suite.PAD_ID)
      tokens = jnp.concatenate([rep.ids, r.tokens], axis=1)
      response = jnp.concatenate([jnp.zeros_like(rep.mask), r.mask], axis=1)
      return {"batch": rep, "completion": r.tokens, "completion_mask": r.mask, "logprobs": r.model_logprobs,
              "tokens": tokens, "response_mask": response, "reward": self.suite.reward_fn(tokens, response)}

    return draw

  # ---------------------------------------------------------------------------------------------- RL

  def online(self, preset, *, teacher: nnx.Module | None = None, graphdef=None, reward_fn: Callable | None = None,
             **kwargs) -> online.OnlineRL:
    """`online.make_online_rl` of a preset (name or config) on this testbed's sampling sizes; the reward is the
    suite's 0/1 verifier unless `reward_fn(tokens, response_mask) -> f32[B]` replaces it (e.g. rescaled, or a
    learned reward model)."""
    r = self.cfg.rl
    reward_fn = self.suite.reward_fn if reward_fn is None else reward_fn
    if graphdef is None:
      graphdef = nnx.graphdef(self._policy(0, _critic(preset)))
    return online.make_online_rl(preset, graphdef=graphdef, reward_fn=reward_fn,
                                 group_size=int(r.group_size), max_new_tokens=self.max_new_tokens,
                                 eos_token_id=toy_suite.EOS_ID, pad_token_id=toy_suite.PAD_ID,
                                 temperature=float(r.temperature), teacher=teacher, **kwargs)

  def run_arm(self, writer: MetricsWriter | None, name: str, preset, *, seed: int, params,
              algo: online.OnlineRL | None = None, teacher: nnx.Module | None = None, steps: int | None = None,
              lr: float | None = None, prompt_fn: Callable | None = None, demos: bool = False,
              eval_fn: Callable | None = None, eval_every: int | None = None, curriculum=None):
    """`steps` online iterations of `preset` from `params` (phase `<name>/seed<seed>`, resumed from its
    checkpoint); returns the final `TrainState`. `algo` overrides the `OnlineRL` built from `preset`,
    `prompt_fn` the prompt stream (default `prompt_fn(seed, demos=demos)`; with a `curriculum`
    (`rljax.curricula.Curriculum` over the training `arms`) `arm_prompt_fn(seed, demos=demos)`). Critic
    presets (ppo, pf_ppo) train an `online.ActorCritic` (the state's `params["policy"]` is the decoder;
    `eval_fn` gets those)."""
    r = self.cfg.rl
    algo = algo or self.online(preset, teacher=teacher, curriculum=curriculum)
    if algo.curriculum is not None and algo.curriculum.num_arms != len(self.arms):
      raise ValueError(f"the curriculum has {algo.curriculum.num_arms} arms, the testbed {len(self.arms)}.")
    critic = bool(algo.config.critic.enabled)
    model = self._policy(seed, critic, params)
    opt = make_optimizer(float(r.lr if lr is None else lr), name=r.optimizer)
    _, state = algo.init_state(model, opt, rng=jax.random.PRNGKey(seed))
    arms_drawn = algo.curriculum is not None
    prompt_fn = prompt_fn or (self.arm_prompt_fn if arms_drawn else self.prompt_fn)(seed, demos=demos)
    phase = f"{name}/seed{seed}"
    step_fn = online.online_step(algo, algo.make_step(opt), prompt_fn, seed=seed, num_prompts=int(r.prompts))
    data_fn = (lambda pos: None) if arms_drawn else prompt_fn  # with a curriculum the step draws its prompts
    k = int(self.cfg.eval.k)
    return train(state, step_fn, data_fn, num_steps=int(r.steps if steps is None else steps), writer=writer,
                 phase=phase, checkpointer=Checkpointer(os.path.join(self.workdir, "ckpt", name, f"seed{seed}")),
                 log_every=int(self.cfg.log_every), ckpt_every=int(self.cfg.ckpt_every),
                 eval_fn=_on_policy(self.eval_fn if eval_fn is None else eval_fn, critic),
                 eval_every=int(r.eval_every if eval_every is None else eval_every), data_from_state=True,
                 bar_keys=("reward_mean", f"eval/acc/all/mean@{k}"), progress=False,
                 step_of=lambda st: int(st.step) // algo.updates_per_iteration)

  def _policy(self, seed: int, critic: bool, params=None) -> nnx.Module:
    """The decoder (from `params` when given), inside an `online.ActorCritic` with a fresh value head for
    critic presets (PPO with GAE)."""
    model = self.model(seed)
    if params is not None:
      nnx.update(model, params)
    return online.ActorCritic(model, rngs=nnx.Rngs(seed + 1)) if critic else model

  def curves(self, phase: str, keys: Sequence[str] = ("reward_mean", "entropy", "response_length")) -> dict:
    """`{key: [(step, value), ...]}` of a phase's logged metrics (metrics.jsonl of the work directory),
    plus `accuracy` (held-out mean@k); one point per step, the last one logged (a phase resumed after its last
    log, or run twice into one work directory, logs a step again)."""
    m = read_metrics(self.workdir, phase=phase)
    k = int(self.cfg.eval.k)
    keys = dict({key: key for key in keys}, accuracy=f"eval/acc/all/mean@{k}")
    return {name: sorted({x["step"]: x[key] for x in m if key in x}.items()) for name, key in keys.items()}

  def last_eval(self, phase: str) -> dict[str, float]:
    """The metrics of the last held-out evaluation logged in `phase` (`eval/acc/...`); `accuracy(...)` of it
    gives one scope's numbers."""
    key = f"eval/acc/all/mean@{int(self.cfg.eval.k)}"
    evals = [x for x in read_metrics(self.workdir, phase=phase) if key in x]
    if not evals:
      raise ValueError(f"phase {phase!r} logged no evaluation in {self.workdir}.")
    return {name: v for name, v in evals[-1].items() if name.startswith("eval/")}


def _critic(preset) -> bool:
  cfg = algorithms.get(preset) if isinstance(preset, str) else preset
  return bool(cfg["critic"]["enabled"])


def _on_policy(eval_fn: Callable, critic: bool) -> Callable:
  """An evaluation of the policy's parameters: for an actor-critic state, `params["policy"]`."""
  if not critic:
    return eval_fn
  return lambda st: eval_fn(getattr(st, "params", st)["policy"])


def accuracy(metrics: dict, k: int, scope: str = "all") -> dict[str, float]:
  """mean@k, pass@k, greedy accuracy and length of one scope of an evaluation."""
  get = lambda m: float(metrics.get(f"eval/acc/{scope}/{m}", float("nan")))
  return {"mean": get(f"mean@{k}"), "pass": get(f"pass@{k}"), "greedy": get("greedy"), "length": get("length")}


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
  """Mean and (population) standard deviation over seeds."""
  v = np.asarray(values, np.float64)
  return float(v.mean()), float(v.std())


__all__ = ["Testbed", "accuracy", "decoder", "mean_sd", "testbed_config"]
