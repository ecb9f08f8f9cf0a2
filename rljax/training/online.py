"""Online RL for language models: sample, score, estimate advantages, then PPO-style updates.

A thin loop over the shared kernels, in the functional style of PureJaxRL: `make_online_rl` returns
an `OnlineRL` NamedTuple of pure callables for one algorithm preset of `rljax.algorithms` (PPO,
Schulman et al. 2017, arXiv 1707.06347; GRPO, Shao et al. 2024, arXiv 2402.03300; Dr. GRPO, DAPO,
RLOO, REINFORCE++, GSPO, ...: each preset's `paper` field cites its source). One iteration is

    rollout  y_i ~ π_θold(· | x_g),  i = 1..n per prompt g        (`rljax.sampling.generate`)
    R_i      = reward_fn(x_g ⊕ y_i)                                (scalar per response)
    old_logp = log π_θold(y_it | x, y_<it),  ref_logp = log π_ref(y_it | ...)   (training forward)
    A        = advantage_fn(batch)                                 (the preset's estimator)
    θ       ← θ − lr·∇_θ L(log π_θ(y), batch)  for `epochs` passes of `minibatches` minibatches

where L is the preset's `loss_fn` (PPO-clip, GSPO, REINFORCE, ... plus its KL / critic terms).
`old_logp` is recomputed by the training forward pass (not copied from the sampler), so the
importance ratio π_θ/π_θold is exactly 1 at the first minibatch. Rows are grouped contiguously
(row g·n + i is response i to prompt g), and minibatches shuffle whole groups, so the group
structure the loss adapters rely on (NFT, APO, ...) is kept.

A critic (presets with `critic.enabled`, i.e. GAE: ppo, pf_ppo) lives in an `ActorCritic` module:
a `rljax.models.ValueHead` on the policy's backbone (shared) or on a separate backbone. The value of
response token t is read where its log-probability is, at the hidden state of position t − 1.

The reference policy is `state.extra["ref_params"]` (same graph definition as the trained model;
`init_online_state` copies the initial parameters there), so checkpoints carry it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from rljax import algorithms, models, sampling
from rljax.losses.kl import kl_penalty
from rljax.losses.value import entropy_from_logits
from rljax.models.heads import lm_head_token_logps, lm_head_weights
from rljax.training import objectives
from rljax.training.step import TrainState, init_train_state, make_train_step

# Batch keys a preset may need that online sampling does not produce (a teacher, demonstrations,
# greedy baselines): such presets are refused by `make_online_rl`.
_UNSUPPORTED_INPUTS = ("teacher_logp", "demo_logp", "demo_mask", "greedy_rewards")


class ActorCritic(nnx.Module):
  """A policy `Decoder` plus a per-token `ValueHead`, on the policy's backbone (`critic_backbone`
  None: shared) or on a separate backbone `critic_backbone` (any module with `hidden_states`)."""

  def __init__(self, policy: nnx.Module, *, rngs: nnx.Rngs, critic_backbone: nnx.Module | None = None):
    self.policy = policy
    self.critic = critic_backbone
    backbone = policy if critic_backbone is None else critic_backbone
    self.value_head = models.ValueHead(backbone.cfg.d_model, rngs=rngs)


class OnlineRL(NamedTuple):
  """The callables of one online-RL algorithm (see `make_online_rl`)."""

  config: ml_collections.ConfigDict
  collect: Callable[..., dict]
  rollout_stats: Callable[[dict], dict]
  loss_fn: Callable[..., tuple[jax.Array, dict]]
  make_step: Callable[..., Callable]
  rl_iteration: Callable[..., tuple[TrainState, dict]]


def init_online_state(model: nnx.Module, optimizer, *, rng: jax.Array, extra: dict | None = None):
  """`init_train_state` with `extra["ref_params"]` = a copy of the initial parameters (π_ref = π_θ0)."""
  graphdef, state = init_train_state(model, optimizer, rng=rng, extra=extra)
  # A copy, not an alias: the train step donates the state, and a donated pytree must not hold
  # one buffer twice.
  ref = jax.tree.map(jnp.copy, state.params)
  return graphdef, state._replace(extra={**state.extra, "ref_params": ref})


def _policy(model: nnx.Module) -> nnx.Module:
  return model.policy if isinstance(model, ActorCritic) else model


def response_forward(model: nnx.Module, tokens: jax.Array, token_mask: jax.Array, n_new: int, *,
                     values: bool = False, entropy: bool = False):
  """`(logp, values, entropy)` on the last `n_new` columns of `tokens` (the response), each `f32[B, N]`
  or None when not asked for.

      logp[b, t]    = log π(y_t | x, y_<t)          (t = response position, read at position t − 1)
      values[b, t]  = V(x, y_<t)                    (ValueHead on the critic's or shared hidden state)
      entropy[b, t] = H(π(· | x, y_<t))

  Without `entropy` the log-probs use the fused LM head (`objectives.token_logps`, or the same head
  on hidden states shared with the value head), so `[B, T, V]` logits never exist.
  """
  policy = _policy(model)
  if values and not isinstance(model, ActorCritic):
    raise ValueError("the preset uses a critic (critic.enabled): the trained model must be an ActorCritic.")
  shared = values and model.critic is None
  inputs, attn, targets = tokens[:, :-1], token_mask[:, :-1], tokens[:, -n_new:]
  hidden = ent = val = None
  if entropy or shared:
    hidden = policy.hidden_states(inputs, attention_mask=attn)
    h_resp = hidden[:, -n_new:]
    if entropy:
      logits = policy.logits_from_hidden(h_resp)
      logp = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), targets[..., None], -1)[..., 0]
      ent = entropy_from_logits(logits)
    else:
      logp = lm_head_token_logps(h_resp, lm_head_weights(policy), targets)
  else:
    logp = objectives.token_logps(policy, tokens, token_mask)[:, -n_new:]
  if values:
    if not shared:
      hidden = model.critic.hidden_states(inputs, attention_mask=attn)
    val = model.value_head(hidden[:, -n_new:])
  return logp, val, ent


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


def make_online_rl(cfg_name_or_config, *, graphdef, reward_fn: Callable[[jax.Array, jax.Array], jax.Array],
                   max_new_tokens: int, eos_token_id: int | tuple[int, ...] | None, pad_token_id: int = 0,
                   group_size: int | None = None, temperature: float = 1.0, epochs: int = 1,
                   minibatches: int = 1) -> OnlineRL:
  """Online RL with an algorithm preset: `OnlineRL(config, collect, rollout_stats, loss_fn, make_step,
  rl_iteration)`.

  Args:
    cfg_name_or_config: a preset name (`rljax.algorithms.names()`) or a preset config.
    graphdef: graph definition of the trained model (a `Decoder`, or an `ActorCritic` for critic
      presets), as returned by `init_online_state`.
    reward_fn: `reward_fn(tokens i32[B, P+N], response_mask bool[B, P+N]) -> f[B]`, the scalar reward
      of each prompt ⊕ response; `response_mask` is 1 on the response tokens only (EOS included).
      Traced inside the jit-compiled `collect` (e.g. `rljax.data.sentiment.sentiment_reward`).
    max_new_tokens, eos_token_id, pad_token_id, temperature: sampling (`rljax.sampling.generate`).
      `old_logp` is the raw policy (temperature 1) whatever `temperature`.
    group_size: responses per prompt n (overrides the preset's `group_size`; None keeps it).
    epochs, minibatches: passes over each rollout batch and group-aligned minibatches per pass.

  Returned callables:
    collect(state, prompts, prompt_mask, key) -> batch: left-padded prompts `[G, P]`; the batch holds
      `tokens, token_mask [B, P+N]`, `mask, old_logp, ref_logp, sampler_logp [B, N]`, `rewards [B]`
      (B = G·n), `old_values` with a critic, and the preset's `advantages` (+ `returns`, `keep`).
    rollout_stats(batch) -> {reward_mean, reward_std, kl_k1, kl_k3, response_length, keep_frac}:
      kl_k1 = mean_b Σ_t m·(old_logp − ref_logp) (a sample estimate of KL(π‖π_ref) per response),
      kl_k3 = token mean of exp(ref − old) − 1 − (ref − old) ≥ 0.
    loss_fn(model, batch, rng, extra): the preset's loss on log π_θ of the batch's responses (for
      `make_train_step`).
    make_step(optimizer, *, donate=True): `make_train_step(graphdef, loss_fn, optimizer)`.
    rl_iteration(state, step_fn, prompts, prompt_mask, key) -> (state, metrics): collect once, then
      `epochs × minibatches` updates; metrics = rollout_stats of the rollout, the mean of each update
      metric over the updates, and the first update's metrics prefixed `first_`.
  """
  cfg = _resolve_config(cfg_name_or_config, group_size)
  n = int(cfg.group_size)
  for name, value in (("epochs", epochs), ("minibatches", minibatches), ("max_new_tokens", max_new_tokens)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
  inputs = cfg.inputs.to_dict()
  needed = set(inputs["advantage"]) | set(inputs["loss"])
  missing = sorted(needed & set(_UNSUPPORTED_INPUTS))
  if missing:
    raise ValueError(f"`cfg_name_or_config`: preset {cfg.get('name')!r} needs batch keys {missing}, which online "
                     "sampling does not produce.")
  advantage_fn, preset_loss = algorithms.resolve(cfg)
  critic = bool(cfg.critic.enabled)
  want_entropy = "entropy" in inputs["loss"]
  loss_key = "key" in inputs["loss"]
  step_key = "step" in inputs["loss"]

  def _collect(params, ref_params, prompts, prompt_mask, key, step):
    model = nnx.merge(graphdef, params)
    gen_key, adv_key = jax.random.split(key)
    prompts, prompt_mask = jnp.repeat(prompts, n, axis=0), jnp.repeat(prompt_mask, n, axis=0)
    r = sampling.generate(_policy(model), prompts, prompt_mask, key=gen_key, max_new_tokens=max_new_tokens,
                          temperature=temperature, eos_token_id=eos_token_id, pad_token_id=pad_token_id)
    tokens = jnp.concatenate([prompts, r.tokens], axis=1)
    token_mask = jnp.concatenate([prompt_mask, r.mask], axis=1)
    old_logp, old_values, _ = response_forward(model, tokens, token_mask, max_new_tokens, values=critic)
    ref_logp, _, _ = response_forward(nnx.merge(graphdef, ref_params), tokens, token_mask, max_new_tokens)
    response_mask = jnp.concatenate([jnp.zeros_like(prompt_mask), r.mask], axis=1)
    rewards = jnp.asarray(reward_fn(tokens, response_mask), jnp.float32)
    batch = dict(tokens=tokens, token_mask=token_mask, mask=r.mask, rewards=rewards, old_logp=old_logp,
                 ref_logp=ref_logp, sampler_logp=r.model_logprobs)
    if critic:
      batch["old_values"] = old_values
    batch |= advantage_fn({**batch, "key": adv_key, "step": step})
    return batch

  collect_jit = jax.jit(_collect)

  def collect(state: TrainState, prompts, prompt_mask, key) -> dict:
    if jnp.ndim(prompts) != 2 or jnp.shape(prompt_mask) != jnp.shape(prompts):
      raise ValueError(f"`prompts` must be [G, P] with `prompt_mask` of the same shape, got "
                       f"{jnp.shape(prompts)} and {jnp.shape(prompt_mask)}.")
    if not np.asarray(prompt_mask)[:, -1].all():
      raise ValueError("`prompt_mask`: prompts must be left-padded (last column 1 in every row).")
    return collect_jit(state.params, state.extra["ref_params"], jnp.asarray(prompts, jnp.int32),
                       jnp.asarray(prompt_mask, bool), key, state.step)

  @jax.jit
  def rollout_stats(batch: dict) -> dict:
    mask = batch["mask"]
    d = jnp.where(mask, batch["old_logp"] - batch["ref_logp"], 0.0)
    k3 = jnp.where(mask, kl_penalty(batch["old_logp"], batch["ref_logp"], kind="k3"), 0.0)
    lengths = jnp.sum(mask, axis=-1)
    return {"reward_mean": jnp.mean(batch["rewards"]), "reward_std": jnp.std(batch["rewards"]),
            "kl_k1": jnp.mean(jnp.sum(d, -1)), "kl_k3": jnp.sum(k3) / jnp.maximum(jnp.sum(mask), 1),
            "response_length": jnp.mean(lengths),
            "keep_frac": jnp.mean(batch["keep"]) if "keep" in batch else jnp.ones(())}

  def loss_fn(model, batch, rng, extra):
    del extra
    logp, values, entropy = response_forward(model, batch["tokens"], batch["token_mask"], batch["mask"].shape[1],
                                             values=critic, entropy=want_entropy)
    b = dict(batch)
    if critic:
      b["values"] = values
    if want_entropy:
      b["entropy"] = entropy
    if loss_key:
      b["key"] = rng
    return preset_loss(logp, b)

  def make_step(optimizer, *, donate: bool = True):
    return make_train_step(graphdef, loss_fn, optimizer, donate=donate)

  @jax.jit
  def _minibatch(batch, rows):
    return jax.tree.map(lambda x: x[rows], batch)

  def rl_iteration(state: TrainState, step_fn, prompts, prompt_mask, key) -> tuple[TrainState, dict]:
    groups = jnp.shape(prompts)[0]
    if groups % minibatches:
      raise ValueError(f"`prompts`: {groups} prompts do not split into minibatches={minibatches}.")
    collect_key, shuffle_key = jax.random.split(key)
    batch = collect(state, prompts, prompt_mask, collect_key)
    metrics = {k: float(v) for k, v in rollout_stats(batch).items()}
    per = groups // minibatches
    updates = []
    for epoch in range(epochs):
      order = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), groups)
      for m in range(minibatches):
        rows = (order[m * per:(m + 1) * per, None] * n + jnp.arange(n)).reshape(-1)
        mb = _minibatch(batch, rows)
        if step_key:
          mb["step"] = jnp.copy(state.step)  # a separate buffer: step_fn donates state
        state, out = step_fn(state, mb)
        updates.append(out)
    updates = jax.device_get(updates)
    for k in updates[0]:
      metrics[k] = float(np.mean([u[k] for u in updates]))
      metrics[f"first_{k}"] = float(updates[0][k])
    return state, metrics

  return OnlineRL(cfg, collect, rollout_stats, loss_fn, make_step, rl_iteration)


__all__ = ["ActorCritic", "OnlineRL", "init_online_state", "make_online_rl", "response_forward"]
