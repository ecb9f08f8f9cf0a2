"""Online RL for language models: sample, score, estimate advantages, then PPO-style updates.

A thin loop over the shared kernels, in the functional style of PureJaxRL: `make_online_rl` returns
an `OnlineRL` NamedTuple of pure callables for one algorithm preset of `rljax.algorithms` (PPO,
Schulman et al. 2017, arXiv 1707.06347; GRPO, Shao et al. 2024, arXiv 2402.03300; Dr. GRPO, DAPO,
RLOO, REINFORCE++, GSPO, ...: each preset's `paper` field cites its source). One iteration is

    rollout  y_i ~ π_θold(· | x_g),  i = 1..n per prompt g        (a `rljax.sampling.RolloutBackend`)
    R_i      = reward_fn(x_g ⊕ y_i)                                (scalar per response)
    old_logp = log π_θold(y_it | x, y_<it),  ref_logp = log π_ref(y_it | ...)   (training forward)
    A        = advantage_fn(batch)                                 (the preset's estimator)
    θ       ← θ − lr·∇_θ L(log π_θ(y), batch)  for `epochs` passes of `minibatches` minibatches

where L is the preset's `loss_fn` (PPO-clip, GSPO, REINFORCE, ... plus its KL / critic terms).
`old_logp` is recomputed by the training forward pass (not copied from the sampler), so the
importance ratio π_θ/π_θold is exactly 1 at the first minibatch. Rows are grouped contiguously
(row g·n + i is response i to prompt g), and minibatches shuffle whole groups, so the group
structure the loss adapters rely on (NFT, APO, ...) is kept.

Sampling goes through a rollout backend (`rljax.sampling.backend`): rljax's own sampler on the trained
module by default, or another engine, whose tokens the same training forward scores (the gap between its
log-probs and the forward's is reported as `backend_logp_gap_*`).

Overlapped rollouts (`overlap=True`) sample the batch of iteration k+1 while iteration k trains, one
step off-policy. The batch of iteration k is drawn from the behaviour parameters θ_b = θ_{k−1} (the
policy at the start of iteration k−1, `state.extra["behaviour_params"]`), and iteration k

  1. copies θ_k into the behaviour parameters and dispatches the rollout of iteration k+1 on them
     (with DAPO's refill, after step 2's refills, whose count decides the next prompts);
  2. scores its batch: old_logp = log π_θb(y) by the training forward on θ_b, so the importance ratio
     π_θ/π_θb is taken against the policy that sampled (not 1 at the first minibatch);
  3. dispatches its updates θ_k → θ_{k+1}. JAX dispatch is asynchronous, so the device samples, scores
     and trains in that order while the host
  4. fetches the new tokens and runs their host reward (verifiers): during the scoring and the updates.

`staleness` (iterations between the behaviour and the current policy) is 1 after the first iteration,
which samples from θ_0. old_logp is recomputed on θ_b, not read from the sampler (whose KV-cache decode,
precision or engine would otherwise enter the ratio); the copy of the trainable parameters this costs is
what exact resumption needs anyway: the pending rollout is a pure function of θ_b, the prompts and the
key, so a restored run resamples the same tokens.

A critic (`critic.enabled`: ppo, pf_ppo) lives in an `ActorCritic` (`rljax.training.actor_critic`).

The reference policy is `state.extra["ref_params"]` (same graph definition as the trained model;
`init_online_state` copies the initial parameters there), so checkpoints carry it. With LoRA
(`rljax.models.lora`) it holds the initial trainable part only (the adapters): the reference shares the
frozen base weights of `state.params`, which are never copied.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from rljax import algorithms, curricula, sampling
from rljax.losses.kl import KLControllerState, adaptive_kl_update, kl_penalty
from rljax.losses.ppo_max import RunningMeanStd
from rljax.models import lora
from rljax.training import distributed, streams
from rljax.training.streams import online_step
from rljax.training.actor_critic import ActorCritic, nlpo_response_forward, policy_of, response_forward
from rljax.training.step import TrainState, init_train_state, make_train_step


class OnlineRL(NamedTuple):
  """The callables of one online-RL algorithm (see `make_online_rl`)."""

  config: ml_collections.ConfigDict
  collect: Callable[..., dict]
  rollout_stats: Callable[[dict], dict]
  loss_fn: Callable[..., tuple[jax.Array, dict]]
  make_step: Callable[..., Callable]
  rl_iteration: Callable[..., tuple[TrainState, dict]]
  init_state: Callable[..., tuple]
  updates_per_iteration: int
  curriculum: curricula.Curriculum | None = None


def init_online_state(model: nnx.Module, optimizer, *, rng: jax.Array, extra: dict | None = None):
  """`init_train_state` with `extra["ref_params"]` = a copy of the initial trainable parameters (π_ref = π_θ0;
  the frozen base of a LoRA model is shared, see `lora.with_frozen`)."""
  graphdef, state = init_train_state(model, optimizer, rng=rng, extra=extra)
  # A copy, not an alias: the train step donates the state, and a donated pytree must not hold
  # one buffer twice.
  ref = jax.tree.map(jnp.copy, lora.split_frozen(state.params)[0])
  return graphdef, state._replace(extra={**state.extra, "ref_params": ref})


def _resolve_config(cfg_name_or_config, group_size: int | None) -> ml_collections.ConfigDict:
  if isinstance(cfg_name_or_config, str):
    if cfg_name_or_config not in algorithms.names():
      raise ValueError(f"`cfg_name_or_config`: unknown algorithm preset {cfg_name_or_config!r}; known: "
                       f"{', '.join(algorithms.names())}.")
    cfg = algorithms.get(cfg_name_or_config)
  elif isinstance(cfg_name_or_config, (ml_collections.ConfigDict, dict)):
    cfg = ml_collections.ConfigDict(dict(cfg_name_or_config) if isinstance(cfg_name_or_config, dict)
                                    else cfg_name_or_config.to_dict())
  else:
    raise ValueError(f"`cfg_name_or_config` must be a preset name or a config, got {cfg_name_or_config!r}.")
  if group_size is not None:
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
      raise ValueError(f"`group_size` must be a positive int, got {group_size!r}.")
    cfg.group_size = group_size
  cfg.inputs = algorithms.required_inputs(cfg)
  return cfg


# [G, ...]: one row per prompt, not per response
_GROUP_KEYS = ("demo_tokens", "demo_token_mask", "demo_mask", "arm_ids")
_STATE_KEYS = ("reward_stats",)  # advantage outputs that are controller states, not batch rows
_BEHAVIOUR_KEYS = ("behaviour_params", "behaviour_step")  # overlap: the policy that sampled the next batch


def _host_reward(fn) -> bool:
  return bool(getattr(fn, "on_host", False))


def make_online_rl(cfg_name_or_config, *, graphdef, reward_fn, max_new_tokens: int,
                   eos_token_id: int | tuple[int, ...] | None, pad_token_id: int = 0, group_size: int | None = None,
                   temperature: float = 1.0, epochs: int = 1, minibatches: int = 1,
                   teacher: nnx.Module | None = None, backend: sampling.RolloutBackend | None = None,
                   overlap: bool = False, curriculum: curricula.Curriculum | None = None) -> OnlineRL:
  """Online RL with an algorithm preset: `OnlineRL(config, collect, rollout_stats, loss_fn, make_step,
  rl_iteration, init_state)`.

  Args:
    cfg_name_or_config: a preset name (`rljax.algorithms.names()`) or a preset config.
    graphdef: graph definition of the trained model (a `Decoder`, or an `ActorCritic` for critic
      presets), as returned by `init_online_state`.
    reward_fn: the scalar reward of each prompt ⊕ response, either
      * jittable: `reward_fn(tokens i32[B, P+N], response_mask bool[B, P+N]) -> f[B]`, traced inside
        the jit-compiled scoring (e.g. `rljax.data.sentiment.sentiment_reward`); or
      * on the host: an object with `on_host = True` called as `reward_fn(prompt_ids, prompt_mask,
        completion_ids, completion_mask, rows) -> (rewards f32[B], metrics)` on NumPy arrays, `rows` the
        prompts' dataset rows repeated per response (`rljax.rewards.TextReward`: decode, then verifiers in
        a process pool). One device→host transfer of the sampled tokens, one host→device of the rewards.
        Under jax.distributed the prompts are global arrays (`distributed.global_batch`) and `rows` holds
        this process's rows of them: each process scores the responses to its own prompts.
    max_new_tokens, eos_token_id, pad_token_id, temperature: sampling (`rljax.sampling.generate`).
      `old_logp` is the raw policy (temperature 1) whatever `temperature`.
    group_size: responses per prompt n (overrides the preset's `group_size`; None keeps it).
    epochs, minibatches: passes over each rollout batch and group-aligned minibatches per pass.
    teacher: a model sharing the tokenizer (any architecture) whose log-probs of the sampled tokens are
      `teacher_logp` (KDRL); required exactly when the preset reads `teacher_logp`.
    backend: the `rljax.sampling.RolloutBackend` that samples (None: `NativeBackend`, rljax's sampler,
      under one jit with the rollout's bookkeeping). Another backend gets `update_weights(params)` before
      each rollout from new parameters and `generate(..., temperature, eos_token_id, pad_token_id)` (plus
      `greedy=True` for ReMax); NLPO's masked sampling is native only.
    overlap: sample the next iteration's batch while this one trains, one step off-policy (module
      docstring); `rl_iteration` then trains on a batch drawn from `state.extra["behaviour_params"]`.
      Not with NLPO (its masking policy is refreshed between rollouts).
    curriculum: a `rljax.curricula.Curriculum` choosing the arm of every prompt, its state in
      `state.extra["curriculum"]`; what the loop does with it is in `rljax.training.streams`. Not with `overlap`.

  What each preset needs beyond sampling is produced here: `teacher_logp` (the teacher's forward),
  `greedy_rewards` (ReMax: one greedy response per prompt, scored by the same reward), `demo_logp`
  (HPT: the demonstrations passed to `collect`/`rl_iteration`, scored by the trained model inside the
  loss), the adaptive KL coefficient (`kl.adaptive`: `state.extra["kl_coef"]`, updated after every
  rollout by `adaptive_kl_update` on the token-mean k1 of the batch), running reward statistics
  (`reward_norm`: `state.extra["reward_stats"]`), and NLPO's masking policy (`nlpo`: a frozen copy of
  the parameters in `state.extra["mask_params"]`, refreshed every `nlpo.update_every` rollouts).
  `init_state` creates those entries.

  Returned callables:
    init_state(model, optimizer, *, rng) -> (graphdef, state): `init_online_state` plus the preset's
      controller states in `state.extra`.
    collect(state, prompts, prompt_mask, key, *, rows=None, demos=None) -> batch: left-padded prompts
      `[G, P]`; the batch holds `tokens, token_mask [B, P+N]`, `mask, old_logp, ref_logp, sampler_logp
      [B, N]`, `rewards [B]` (B = G·n), `old_values` with a critic, and the preset's `advantages`
      (+ `returns`, `keep`). `rows` (G dicts) go to a host reward; `demos = (tokens i32[G, Td], mask
      bool[G, Td])` are the prompts' demonstrations (HPT).
    rollout_stats(batch) -> {reward_mean, reward_std, kl_k1, kl_k1_token, kl_k3, entropy, response_length,
      keep_frac}:
      kl_k1 = mean_b Σ_t m·(old_logp − ref_logp) (a sample estimate of KL(π‖π_ref) per response),
      kl_k3 = token mean of exp(ref − old) − 1 − (ref − old) ≥ 0.
    loss_fn(model, batch, rng, extra): the preset's loss on log π_θ of the batch's responses (for
      `make_train_step`).
    make_step(optimizer, *, donate=True): `make_train_step(graphdef, loss_fn, optimizer)`.
    rl_iteration(state, step_fn, prompts, prompt_mask, key, *, rows=None, demos=None, refill=None,
      upcoming=None) -> (state, metrics): collect, then `epochs × minibatches` updates. With dynamic
      sampling (DAPO) and `refill(j) -> (prompts, prompt_mask, rows, demos)` for j = 1, 2, ..., further
      prompt batches are sampled until the batch holds G informative groups (rewards not all equal) or
      `dynamic_sampling.max_num_gen_batches` batches were drawn; the batch is the first G informative
      groups, topped up with masked-out groups. Metrics: rollout_stats of the first batch drawn, the
      host reward's metrics, `gen_batches` (batches drawn), `informative_groups`, the mean of each update
      metric over the updates and the first update's metrics prefixed `first_`; with another backend
      `backend_logp_gap_max`/`_mean` (|sampler_logp − old_logp| over the first batch's tokens).
      With `overlap`, the batch (refills included) is drawn from the behaviour parameters, `staleness` is
      in the metrics, and `upcoming(draws) -> (prompts, prompt_mask, key, rows)` names the next
      iteration's rollout (after `draws` batches were drawn here), which is sampled on the current
      parameters before this iteration's updates are dispatched; the next call reuses it when its
      arguments match (otherwise, e.g. after a restore, it resamples it: the same tokens).
  """
  cfg = _resolve_config(cfg_name_or_config, group_size)
  n = int(cfg.group_size)
  for name, value in (("epochs", epochs), ("minibatches", minibatches), ("max_new_tokens", max_new_tokens)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
  inputs = cfg.inputs.to_dict()
  needed = set(inputs["advantage"]) | set(inputs["loss"])
  if ("teacher_logp" in needed) != (teacher is not None):
    raise ValueError(f"`teacher`: preset {cfg.get('name')!r} " + ("reads teacher_logp: pass the teacher model."
                     if teacher is not None or "teacher_logp" in needed else "reads no teacher_logp: drop it."))
  advantage_fn, preset_loss = algorithms.resolve(cfg)
  critic = bool(cfg.critic.enabled)
  want_entropy = "entropy" in inputs["loss"]
  loss_key = "key" in inputs["loss"]
  step_key = "step" in inputs["loss"]
  wants_greedy = "greedy_rewards" in needed
  wants_demos = "demo_logp" in needed
  host = _host_reward(reward_fn)
  kl = cfg.kl.to_dict()
  adaptive = kl.get("adaptive")
  reward_norm = cfg.get("reward_norm", {}).get("enabled", False)
  nlpo = cfg.get("nlpo", {}).to_dict() if cfg.get("nlpo") else {}
  nlpo_on = bool(nlpo.get("enabled"))
  eos_ids = jnp.asarray([-1] if eos_token_id is None else np.atleast_1d(eos_token_id), jnp.int32)
  teacher_def, teacher_params = nnx.split(teacher, nnx.Param) if teacher is not None else (None, None)
  dynamic = bool(cfg.dynamic_sampling.enabled)
  max_draws = int(cfg.dynamic_sampling.get("max_num_gen_batches") or 1)
  backend = sampling.NativeBackend(graphdef, policy=policy_of) if backend is None else backend
  native = isinstance(backend, sampling.NativeBackend)
  if not isinstance(backend, sampling.RolloutBackend):
    raise ValueError(f"`backend` must have `generate` and `update_weights` (a RolloutBackend), got {backend!r}.")
  if nlpo_on and not native:
    raise ValueError("`backend`: NLPO samples from its masked policy, which only the native sampler implements.")
  if not isinstance(overlap, bool):
    raise ValueError(f"`overlap` must be a bool, got {overlap!r}.")
  if overlap and nlpo_on:
    raise ValueError("`overlap`: NLPO refreshes its masking policy between rollouts; run it without overlap.")
  ckeep, cshape, chints, max_draws = streams.curriculum_plan(curriculum, overlap, max_draws)
  pending = {}  # overlap: the rollout dispatched for the next iteration (`_take_pending`)
  pushed = [None]  # the parameters another backend holds (pushed once per new parameters)

  def _masking(mask_params):
    return nnx.merge(graphdef, mask_params) if nlpo_on else None

  def _forward(model, tokens, token_mask, n_new, mask_params, **kw):
    """Log-probs of the response under the policy, or under NLPO's masked policy."""
    if not nlpo_on:
      return response_forward(model, tokens, token_mask, n_new, **kw)
    return nlpo_response_forward(model, _masking(mask_params), tokens, token_mask, n_new, top_p=nlpo["top_p"],
                                 min_keep=nlpo["min_keep"], always_keep=eos_ids, **kw)

  def _draw(generate, prompts, prompt_mask, key, **kw):
    """n responses per prompt from a backend's `generate` (and a greedy one per prompt for ReMax)."""
    kw |= dict(max_new_tokens=max_new_tokens, eos_token_id=eos_token_id, pad_token_id=pad_token_id)
    r = generate(jnp.repeat(prompts, n, axis=0), jnp.repeat(prompt_mask, n, axis=0), key, temperature=temperature,
                 **kw)
    out = {"completion": r.tokens, "completion_mask": r.mask, "sampler_logp": r.model_logprobs}
    if wants_greedy:
      g = generate(prompts, prompt_mask, key, greedy=True, **kw)
      out |= {"greedy": g.tokens, "greedy_mask": g.mask}
    return out

  @jax.jit
  def _native_sample(params, prompts, prompt_mask, key, mask_params):
    kw = {}
    if nlpo_on:
      kw = dict(mask_model=policy_of(_masking(mask_params)), mask_top_p=nlpo["top_p"], mask_min_keep=nlpo["min_keep"],
                mask_always_keep=eos_token_id)
    return _draw(functools.partial(backend.sample, params), prompts, prompt_mask, key, **kw)

  def _sample(params, prompts, prompt_mask, key, mask_params):
    """The rollout of `prompts` from `params`; the native sampler's is dispatched asynchronously."""
    if native:
      return _native_sample(params, prompts, prompt_mask, key, mask_params)
    if params is not pushed[0]:
      backend.update_weights(params)
      pushed[0] = params
    return _draw(backend.generate, prompts, prompt_mask, key)

  def _token_reward(prompts, prompt_mask, completion, completion_mask):
    tokens = jnp.concatenate([prompts, completion], axis=1)
    response_mask = jnp.concatenate([jnp.zeros_like(prompt_mask), completion_mask], axis=1)
    return jnp.asarray(reward_fn(tokens, response_mask), jnp.float32)

  @jax.jit
  def _score(params, ref_params, teacher_params, prompts, prompt_mask, sample, rewards, greedy_rewards, extras,
             key, step):
    model = nnx.merge(graphdef, params)
    prompts, prompt_mask = jnp.repeat(prompts, n, axis=0), jnp.repeat(prompt_mask, n, axis=0)
    tokens = jnp.concatenate([prompts, sample["completion"]], axis=1)
    token_mask = jnp.concatenate([prompt_mask, sample["completion_mask"]], axis=1)
    mask_params = extras.get("mask_params")
    old_logp, old_values, _ = _forward(model, tokens, token_mask, max_new_tokens, mask_params, values=critic)
    # The reference is the unmasked π_ref even under NLPO (RL4LMs' KL is to the initial policy).
    ref_logp, _, _ = response_forward(nnx.merge(graphdef, lora.with_frozen(ref_params, params)), tokens, token_mask,
                                      max_new_tokens)
    if rewards is None:
      rewards = _token_reward(prompts, prompt_mask, sample["completion"], sample["completion_mask"])
    verifier = rewards
    if cshape:
      lengths = jnp.sum(sample["completion_mask"], -1).astype(jnp.float32)
      rewards = jnp.asarray(curriculum.shape_rewards(extras["curriculum"], rewards, lengths, None), jnp.float32)
    batch = dict(tokens=tokens, token_mask=token_mask, mask=sample["completion_mask"], rewards=rewards,
                 old_logp=old_logp, ref_logp=ref_logp, sampler_logp=sample["sampler_logp"])
    if critic:
      batch["old_values"] = old_values
    if teacher_params is not None:
      batch["teacher_logp"] = response_forward(nnx.merge(teacher_def, teacher_params), tokens, token_mask,
                                               max_new_tokens)[0]
    if wants_greedy:
      if greedy_rewards is None:
        greedy_rewards = _token_reward(prompts[::n], prompt_mask[::n], sample["greedy"], sample["greedy_mask"])
      batch["greedy_rewards"] = jnp.repeat(greedy_rewards, n)
    if "demo_tokens" in extras:
      batch |= {k: extras[k] for k in _GROUP_KEYS if k in extras}
    for k in ("kl_coef", "reward_stats"):
      if k in extras:
        batch[k] = extras[k]
    batch |= advantage_fn({**batch, "key": key, "step": step})
    if ckeep:  # the curriculum's filter: dropped groups leave the loss (and are refilled)
      keep = jnp.repeat(jnp.asarray(curriculum.keep(verifier.reshape(-1, n)), bool), n)
      batch["keep"] = batch["keep"] & keep if "keep" in batch else keep
      batch["mask"] = batch["mask"] & keep[:, None]
    return batch, {k: batch.pop(k) for k in _STATE_KEYS if k in batch}

  def _extras(state, prompts, prompt_mask, demos):
    ex = {k: state.extra[k] for k in ("kl_coef", "reward_stats", "mask_params") if k in state.extra}
    if cshape:
      ex["curriculum"] = state.extra["curriculum"]
    if wants_demos:
      if demos is None:
        raise ValueError(f"preset {cfg.get('name')!r} trains on demonstrations: pass `demos=(tokens, mask)`.")
      d_tokens, d_mask = (np.asarray(a) for a in demos)
      if d_tokens.ndim != 2 or d_tokens.shape[0] != np.shape(prompts)[0] or d_mask.shape != d_tokens.shape:
        raise ValueError(f"`demos` must be (tokens [G, Td], mask [G, Td]) for G = {np.shape(prompts)[0]} prompts, "
                         f"got {d_tokens.shape} and {d_mask.shape}.")
      ex |= {"demo_tokens": jnp.concatenate([jnp.asarray(prompts, jnp.int32), jnp.asarray(d_tokens, jnp.int32)], 1),
             "demo_token_mask": jnp.concatenate([jnp.asarray(prompt_mask, bool), jnp.asarray(d_mask, bool)], 1),
             "demo_mask": jnp.asarray(d_mask, bool)}
    return ex

  def _host_rewards(prompts, prompt_mask, sample, rows) -> tuple:
    """`(rewards, greedy_rewards, metrics)` of a host reward on a rollout (None, None, {} for a jittable
    reward, which `_score` computes); waits for the rollout's tokens, nothing else."""
    rewards = greedy_rewards = None
    info = {}
    if host:
      # Under jax.distributed `prompts` is global and `rows` holds this process's rows of it
      # (`distributed.process_rows`): each process scores the responses to its own prompts (the verifiers
      # run on every host at once and no row leaves its process), and the rewards are gathered into the
      # global rows. Only token ids and rewards cross processes; in one process these are host transfers.
      p, pm = distributed.host_rows((prompts, prompt_mask))
      if rows is None:
        rows = [{} for _ in range(len(p))]
      elif len(rows) != len(p):
        raise ValueError(f"`rows`: {len(rows)} rows for {len(p)} prompts" +
                         (" (this process's share)." if jax.process_count() > 1 else "."))
      got = distributed.host_rows({k: v for k, v in sample.items() if k != "sampler_logp"})
      rewards, info = reward_fn(np.repeat(p, n, 0), np.repeat(pm, n, 0), got["completion"], got["completion_mask"],
                                [r for r in rows for _ in range(n)])
      rewards = jnp.asarray(distributed.gather_rows(np.asarray(rewards, np.float32)))
      # Each process scored an equal share, so the mean of the processes' batch means is the global mean
      # (a count, e.g. reward/errors, reads per process).
      info = {k: float(np.mean(v)) for k, v in distributed.gather_rows(dict(info)).items()}
      if wants_greedy:
        greedy_rewards, _ = reward_fn(p, pm, got["greedy"], got["greedy_mask"], list(rows))
        greedy_rewards = jnp.asarray(distributed.gather_rows(np.asarray(greedy_rewards, np.float32)))
    return rewards, greedy_rewards, dict(info)

  def _collect(state, prompts, prompt_mask, key, rows=None, demos=None, *, params=None,
               drawn=None) -> tuple[dict, dict, dict]:
    """`(batch, host reward metrics, controller states)` of one rollout from `params` (default
    `state.params`), which also score it; `drawn = (sample, _host_rewards(...))` when it was sampled ahead."""
    if jnp.ndim(prompts) != 2 or jnp.shape(prompt_mask) != jnp.shape(prompts):
      raise ValueError(f"`prompts` must be [G, P] with `prompt_mask` of the same shape, got "
                       f"{jnp.shape(prompts)} and {jnp.shape(prompt_mask)}.")
    if not bool(jnp.all(jnp.asarray(prompt_mask)[:, -1])):  # a device reduction: global prompts are not on the host
      raise ValueError("`prompt_mask`: prompts must be left-padded (last column 1 in every row).")
    prompts, prompt_mask = jnp.asarray(prompts, jnp.int32), jnp.asarray(prompt_mask, bool)
    extras = _extras(state, prompts, prompt_mask, demos)
    gen_key, adv_key = jax.random.split(key)
    params = state.params if params is None else params
    if drawn is None:
      sample = _sample(params, prompts, prompt_mask, gen_key, extras.get("mask_params"))
      drawn = sample, _host_rewards(prompts, prompt_mask, sample, rows)
    sample, (rewards, greedy_rewards, info) = drawn
    batch, ctrl = _score(params, state.extra["ref_params"], teacher_params, prompts, prompt_mask, sample,
                         rewards, greedy_rewards, extras, adv_key, state.step)
    return batch, info, ctrl

  def collect(state: TrainState, prompts, prompt_mask, key, *, rows=None, demos=None) -> dict:
    return _collect(state, prompts, prompt_mask, key, rows, demos)[0]

  @jax.jit
  def rollout_stats(batch: dict) -> dict:
    mask = batch["mask"]
    d = jnp.where(mask, batch["old_logp"] - batch["ref_logp"], 0.0)
    k3 = jnp.where(mask, kl_penalty(batch["old_logp"], batch["ref_logp"], kind="k3"), 0.0)
    lengths = jnp.sum(mask, axis=-1)
    return {"reward_mean": jnp.mean(batch["rewards"]), "reward_std": jnp.std(batch["rewards"]),
            "kl_k1": jnp.mean(jnp.sum(d, -1)), "kl_k3": jnp.sum(k3) / jnp.maximum(jnp.sum(mask), 1),
            "kl_k1_token": jnp.mean(jnp.sum(d, -1) / jnp.maximum(lengths, 1)),
            # −log π(y_t) of the sampled tokens: an unbiased estimate of the per-token entropy at T = 1.
            "entropy": -jnp.sum(jnp.where(mask, batch["old_logp"], 0.0)) / jnp.maximum(jnp.sum(mask), 1),
            "response_length": jnp.mean(lengths),
            "keep_frac": jnp.mean(batch["keep"]) if "keep" in batch else jnp.ones(())}

  def loss_fn(model, batch, rng, extra):
    n_new = batch["mask"].shape[1]
    logp, values, entropy = _forward(model, batch["tokens"], batch["token_mask"], n_new, extra.get("mask_params"),
                                     values=critic, entropy=want_entropy)
    b = dict(batch)
    if critic:
      b["values"] = values
    if want_entropy:
      b["entropy"] = entropy
    if loss_key:
      b["key"] = rng
    if wants_demos:
      b["demo_logp"] = response_forward(model, batch["demo_tokens"], batch["demo_token_mask"],
                                        batch["demo_mask"].shape[1])[0]
    return preset_loss(logp, b)

  def make_step(optimizer, *, donate: bool = True):
    return make_train_step(graphdef, loss_fn, optimizer, donate=donate)

  def init_state(model: nnx.Module, optimizer, *, rng: jax.Array):
    graphdef_, state = init_online_state(model, optimizer, rng=rng)
    extra = dict(state.extra)
    if adaptive:
      extra["kl_coef"] = jnp.asarray(kl["coef"], jnp.float32)
    if reward_norm:
      extra["reward_stats"] = RunningMeanStd.create()._asdict()
    if nlpo_on:
      extra["mask_params"] = jax.tree.map(jnp.copy, state.params)
    if overlap:  # in the state from the start, so a checkpoint restores into it
      extra |= _behaviour(state)
    if curriculum is not None:  # copied: the step donates the state, whose leaves must not share buffers
      extra["curriculum"] = jax.tree.map(jnp.copy, curriculum.init())
    return graphdef_, state._replace(extra=extra)

  @jax.jit
  def _minibatch(batch, rows, groups):
    return {k: (x[groups] if k in _GROUP_KEYS else x if jnp.ndim(x) == 0 else x[rows]) for k, x in batch.items()}

  def _refill(state, first: dict, groups: int, key, refill, params) -> tuple[dict, int, int]:
    """DAPO's dynamic sampling with refill: draw prompt batches from `params` until `groups` informative groups."""
    batches, informative = [first], []
    draws = 1
    while True:
      # A group is informative when it keeps any response (a filter, e.g. OREAL's, may keep only some).
      keep = distributed.host_all(batches[-1]["keep"]).reshape(-1, n).any(axis=1)
      informative += [(len(batches) - 1, g) for g in np.flatnonzero(keep)]
      if len(informative) >= groups or draws >= max_draws:
        break
      p, pm, rows, demos, *arms = refill(draws)
      batches.append(_with_arms(_collect(state, p, pm, jax.random.fold_in(key, draws), rows, demos,
                                         params=params)[0], arms[0] if arms else None))
      draws += 1
    picks = informative[:groups]
    if len(picks) < groups:  # the cap was hit: top up with (masked-out) uninformative groups
      taken = set(picks)
      rest = [(i, g) for i in range(len(batches)) for g in range(groups) if (i, g) not in taken]
      picks += rest[:groups - len(picks)]
    if picks == [(0, g) for g in range(groups)]:
      return first, draws, len(informative)
    return streams.gather_groups(batches, picks, n, _GROUP_KEYS), draws, min(len(informative), groups)

  def _with_arms(batch: dict, arms) -> dict:
    return batch if arms is None else {**batch, "arm_ids": jnp.asarray(arms, jnp.int32)}

  def _hint_stages(state, batch: dict, key, hint_fn, params) -> tuple[dict, np.ndarray]:
    """GHPO: the groups of `batch` whose rollouts all fail are resampled from `hint_fn(ω_k)` (the same
    problems with a solution prefix), stage by stage; each group keeps its first stage with a success (the
    last stage otherwise). Returns the merged batch and the fraction of groups ending at each stage."""
    collect = lambda p, pm, rows, demos, k: _with_arms(
        _collect(state, p, pm, jax.random.fold_in(key, 1000 + k), rows, demos, params=params)[0], batch.get("arm_ids"))
    return streams.hint_stages(batch, collect, hint_fn, chints, n, _GROUP_KEYS)

  if curriculum is not None:
    keys = ("arm_ids", "rewards", "advantages", "mask", "keep")
    _curriculum_update = jax.jit(lambda cstate, b: curriculum.update(cstate, streams.curriculum_feedback(b, n)))
    _curriculum_probs = jax.jit(curriculum.probs)

  def _update_controllers(state: TrainState, batch: dict, ctrl: dict, stats: dict) -> TrainState:
    extra = dict(state.extra)
    if adaptive:
      n_steps = batch["mask"].shape[0] if adaptive.get("per", "samples") == "samples" else 1
      new = adaptive_kl_update(KLControllerState(extra["kl_coef"]), jnp.asarray(stats["kl_k1_token"]), n_steps,
                               target=adaptive["target"], horizon=adaptive["horizon"])
      extra["kl_coef"] = new.coef
    if reward_norm:
      extra["reward_stats"] = ctrl["reward_stats"]
    if nlpo_on and (int(state.step) // (epochs * minibatches)) % int(nlpo["update_every"]) == 0:
      extra["mask_params"] = jax.tree.map(jnp.copy, state.params)
    if curriculum is not None:
      if "arm_ids" not in batch:
        raise ValueError(f"curriculum {curriculum.name!r}: pass the prompts' `arms` to rl_iteration "
                         "(rljax.training.streams.online_step does).")
      extra["curriculum"] = _curriculum_update(extra["curriculum"], {k: batch[k] for k in keys if k in batch})
    return state._replace(extra=extra)

  def _behaviour(state: TrainState) -> dict:
    """Overlap: the behaviour entries of `state.extra` for the policy of `state`: a copy of its trainable
    parameters (the step donates `state.params`; a LoRA base is shared, not copied) and its step."""
    return {"behaviour_params": jax.tree.map(jnp.copy, lora.split_frozen(state.params)[0]),
            "behaviour_step": jnp.copy(state.step)}

  def _prefetch(state: TrainState, upcoming, draws: int):
    """Overlap, before the updates: `(state without its behaviour entries, which the updates need not carry,
    the next behaviour entries (this policy), the next iteration's rollout dispatched on them or None)`."""
    behaviour = _behaviour(state)
    state = state._replace(extra={k: v for k, v in state.extra.items() if k not in _BEHAVIOUR_KEYS})
    if upcoming is None:
      return state, behaviour, None
    prompts, prompt_mask, key, rows = upcoming(draws)
    prompts, prompt_mask = jnp.asarray(prompts, jnp.int32), jnp.asarray(prompt_mask, bool)
    gen_key = jax.random.split(jax.random.split(key)[0])[0]  # what `_collect` derives when it trains on it
    sample = _sample(lora.with_frozen(behaviour["behaviour_params"], state.params), prompts, prompt_mask, gen_key,
                     state.extra.get("mask_params"))
    return state, behaviour, dict(behaviour=behaviour["behaviour_params"], key=key, prompts=prompts,
                                  prompt_mask=prompt_mask, rows=rows, sample=sample)

  def _take_pending(behaviour, key, prompts, prompt_mask):
    """`(sample, host rewards)` of the rollout the previous iteration dispatched, if it is this one: drawn
    from these very behaviour arrays (a restored state, or another run's, has others and resamples), with
    this key, from these prompts; None otherwise."""
    p = pending.pop("next", None)
    if p is None or p["behaviour"] is not behaviour:
      return None
    same = lambda a, b: bool(jnp.array_equal(a, b))
    if (same(jax.random.key_data(p["key"]), jax.random.key_data(key)) and same(p["prompts"], prompts)
        and same(p["prompt_mask"], prompt_mask)):
      return p["drawn"]
    return None

  def rl_iteration(state: TrainState, step_fn, prompts, prompt_mask, key, *, rows=None, demos=None,
                   refill=None, upcoming=None, arms=None, hint_fn=None) -> tuple[TrainState, dict]:
    groups = jnp.shape(prompts)[0]
    if groups % minibatches:
      raise ValueError(f"`prompts`: {groups} prompts do not split into minibatches={minibatches}.")
    collect_key, shuffle_key = jax.random.split(key)
    params, drawn, staleness = state.params, None, 0
    behaviour = state.extra.get("behaviour_params") if overlap else None
    if behaviour is not None:  # (a state from `init_online_state` has none: its first batch is on-policy)
      params = lora.with_frozen(behaviour, state.params)
      staleness = (int(state.step) - int(state.extra["behaviour_step"])) // (epochs * minibatches)
      drawn = _take_pending(behaviour, key, prompts, prompt_mask)
    refilling = (dynamic or ckeep) and refill is not None
    next_behaviour = upcoming_rollout = None
    if overlap and not refilling:
      # The next prompts are known: sample them first, so that their host reward overlaps the scoring too.
      state, next_behaviour, upcoming_rollout = _prefetch(state, upcoming, 1)
    batch, info, ctrl = _collect(state, prompts, prompt_mask, collect_key, rows, demos, params=params, drawn=drawn)
    batch = _with_arms(batch, arms)
    # Dispatched now, read after the updates are dispatched: no host synchronisation before them.
    stats = rollout_stats(batch)
    gap = None if native else sampling.logprob_agreement(batch["sampler_logp"], batch["old_logp"], batch["mask"])
    draws, informative = 1, None
    if refilling:
      batch, draws, informative = _refill(state, batch, groups, collect_key, refill, params)
      if overlap:  # the next prompts follow the batches drawn
        state, next_behaviour, upcoming_rollout = _prefetch(state, upcoming, draws)
    stages = None
    if chints and hint_fn is not None:
      batch, stages = _hint_stages(state, batch, collect_key, hint_fn, params)
    per = groups // minibatches
    updates = []
    for epoch in range(epochs):
      order = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), groups)
      for m in range(minibatches):
        group_rows = order[m * per:(m + 1) * per]
        mb = _minibatch(batch, (group_rows[:, None] * n + jnp.arange(n)).reshape(-1), group_rows)
        if step_key:
          mb["step"] = jnp.copy(state.step)  # a separate buffer: step_fn donates state
        state, out = step_fn(state, mb)
        updates.append(out)
    if upcoming_rollout is not None:  # the next rollout's host work, while the device trains
      r = upcoming_rollout
      pending["next"] = {**r, "drawn": (r["sample"], _host_rewards(r["prompts"], r["prompt_mask"], r["sample"],
                                                                   r["rows"]))}
    metrics = {k: float(v) for k, v in stats.items()}
    metrics |= {k: float(v) for k, v in info.items()}
    if gap is not None:
      metrics |= {"backend_logp_gap_max": float(gap["max_abs"]), "backend_logp_gap_mean": float(gap["mean_abs"])}
    if informative is None:
      informative = (int(distributed.host_all(batch["keep"]).reshape(-1, n).any(axis=1).sum()) if "keep" in batch
                     else groups)
    metrics |= {"gen_batches": float(draws), "informative_groups": float(informative)}
    if "kl_coef" in batch:
      metrics["kl_coef"] = float(batch["kl_coef"])
    if stages is not None:
      metrics |= {f"ghpo/stage{k}": float(f) for k, f in enumerate(stages)}
    if curriculum is not None:
      metrics |= {f"curriculum/p{a}": float(p) for a, p in enumerate(_curriculum_probs(state.extra["curriculum"]))}
    updates = jax.device_get(updates)
    for k in updates[0]:
      metrics[k] = float(np.mean([u[k] for u in updates]))
      metrics[f"first_{k}"] = float(updates[0][k])
    state = _update_controllers(state, batch, ctrl, metrics)
    if overlap:
      state = state._replace(extra={**state.extra, **next_behaviour})
      metrics["staleness"] = float(staleness)
    return state, metrics

  return OnlineRL(cfg, collect, rollout_stats, loss_fn, make_step, rl_iteration, init_state, epochs * minibatches,
                  curriculum)


__all__ = ["ActorCritic", "OnlineRL", "init_online_state", "make_online_rl", "nlpo_response_forward", "online_step",
           "response_forward"]
