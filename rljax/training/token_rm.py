"""OREAL's token-level reward model in the online loop, and how well it finds the first wrong step.

Lyu et al., "Exploring the Limit of Outcome Reward for Learning Mathematical Reasoning", 2025 (arXiv
2502.06781); the released trainer `train_oreal.py` (InternLM). The token RM is a copy of the policy at the
start of RL whose LM head is replaced by a scalar head (`token_level_rm = actor`, `lm_head =
Linear(d, 1)`). Here it is an `ActorCritic` (`attach`): the trained policy plus a critic backbone (that
copy) and a `ValueHead`. For the response tokens y_1..y_T it gives one logit per token,

    w_t = head(h_t),   h_t = the RM's hidden state at y_t (it has read y_t)

(the released trainer reads the RM logit at the position that predicts y_t, so its w_t has not seen y_t:
a wrong token can only lower the score of the tokens after it; ours can flag the token itself). Each
update, in one train step with one forward of each model:

    L_RM = BCE(σ(mean_t w_t), 1[R > 0])      over the kept responses      (`oreal.token_rm_loss`)
                                             (`rm_data="all"`: over every sampled response)
    ω    = token_rm_weights(w)  (prefix mean, threshold τ; stop-gradient) → batch["token_weights"]
    L    = 1[update ≥ freeze_steps]·L_policy(ω) + L_RM

L_policy is the preset's loss (OREAL's kernel reads `token_weights`). The RM parameters (critic backbone
and head) get their own AdamW (`lr`, the released token_level_rm_lr = 4 × the actor's) inside one
`optax.multi_transform`; the policy keeps the run's optimizer. The policy term is switched off for the
first `freeze_steps` updates (the released actor_freeze_steps = 10 of 90) while the RM warms up: an
untrained RM gives ω ≈ 0 everywhere, and Adam would rescale that noise to full-size steps.

Localisation (`first_deviation`, `localisation`, `localisation_eval`): on a task with a unique reference
completion (the toy suite's `modchain`, whose trace tokens x_1..x_k are the verifiable intermediate values),
the first wrong step of a wrong response is the first position where it leaves the reference. The RM
localises it when its most negative token score w_t sits there (precision), against a uniformly drawn
token (mean 1/L) and against always naming the most common error position (an oracle of that histogram).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from rljax import checks, sampling
from rljax.losses import oreal
from rljax.training.actor_critic import ActorCritic
from rljax.training.online import OnlineRL
from rljax.training.step import make_optimizer, make_train_step

RM_KEYS = ("critic", "value_head")  # the RM's entries in an ActorCritic's parameters


def attach(policy: nnx.Module, *, seed: int = 0) -> ActorCritic:
  """The policy plus a token RM: a copy of `policy` (its current weights) with a fresh scalar head."""
  return ActorCritic(policy, rngs=nnx.Rngs(seed), critic_backbone=nnx.clone(policy))


def token_scores(model: ActorCritic, tokens: jax.Array, token_mask: jax.Array, n_new: int) -> jax.Array:
  """`f32[B, n_new]`: the RM logit w_t of each of the last `n_new` tokens (the response), read at that token."""
  if not isinstance(model, ActorCritic) or model.critic is None:
    raise ValueError("`model` must carry a token RM: build it with `token_rm.attach(policy)`.")
  hidden = model.critic.hidden_states(tokens, attention_mask=token_mask)
  return model.value_head(hidden[:, -n_new:])


def joint_optimizer(policy_opt: optax.GradientTransformation, rm_opt: optax.GradientTransformation):
  """`policy_opt` on the policy's parameters, `rm_opt` on the RM's (`RM_KEYS`), under one apply_if_finite
  (what `init_train_state` and `TrainState.skipped` expect)."""
  def labels(params):
    return jax.tree_util.tree_map_with_path(lambda path, _: "rm" if path[0].key in RM_KEYS else "policy", params)
  return optax.apply_if_finite(optax.multi_transform({"policy": policy_opt, "rm": rm_opt}, labels), 100)


RM_DATA = ("kept", "all")


def make_token_rm_rl(base: OnlineRL, graphdef, *, lr: float, threshold: float = 0.5, freeze_steps: int = 0,
                     rm_data: str = "kept", weight_decay: float = 0.01, clip_norm: float | None = 1.0) -> OnlineRL:
  """`base` with the token RM trained alongside and its weights in the policy loss (module docstring).

  Args:
    base: an OREAL `OnlineRL` built on `graphdef`, e.g. `online.make_online_rl("oreal", graphdef=graphdef, ...)`.
    graphdef: the graph of `attach(policy)`.
    lr, weight_decay, clip_norm: the RM's AdamW (the released trainer: 2e-6, 0.01, 1.0).
    threshold: τ of `oreal.token_rm_weights` (released correct/incorrect_threshold = 0.5).
    freeze_steps: updates during which only the RM trains (released actor_freeze_steps = 10).
    rm_data: the responses the RM trains on: "kept" (the released trainer: the filtered pair per prompt)
      or "all" (every sampled response; more outcome labels per step at a small batch).

  `init_state(model, optimizer, rng=)` takes the policy (a `Decoder`; the RM is attached to a copy of it)
  or an `attach`ed model; `make_step(optimizer)` pairs `optimizer` (the policy's) with the RM's AdamW.
  Update metrics add `rm_loss`, `rm_acc` (sign of the mean score vs the outcome), `token_weight_mean`
  (mean ω over the trained tokens) and `policy_on` (0 while frozen).
  """
  if not lr > 0:
    raise ValueError(f"`lr` must be > 0, got {lr!r}.")
  if not 0.0 <= threshold < 1.0:
    raise ValueError(f"`threshold` must be in [0, 1), got {threshold!r}.")
  if isinstance(freeze_steps, bool) or not isinstance(freeze_steps, int) or freeze_steps < 0:
    raise ValueError(f"`freeze_steps` must be a non-negative int, got {freeze_steps!r}.")
  checks.check_choice("rm_data", rm_data, RM_DATA)
  if base.config.loss != "oreal":
    raise ValueError(f"the token RM weights OREAL's loss; preset {base.config.get('name')!r} uses "
                     f"{base.config.loss!r}.")
  rm_opt = make_optimizer(lr, weight_decay=weight_decay, clip_norm=clip_norm)

  def loss_fn(model, batch, rng, extra):
    mask = jnp.asarray(batch["mask"], bool)
    trained = mask & jnp.asarray(batch["keep"], bool)[:, None] if "keep" in batch else mask  # by the policy loss
    scores = token_scores(model, batch["tokens"], batch["token_mask"], mask.shape[1])
    rm_loss, rm_metrics = oreal.token_rm_loss(scores, trained if rm_data == "kept" else mask, batch["rewards"])
    weights = oreal.token_rm_weights(scores, mask, batch["rewards"], threshold=threshold)
    policy_loss, metrics = base.loss_fn(model, {**batch, "token_weights": weights}, rng, extra)
    on = (batch["update"] >= freeze_steps) if "update" in batch else jnp.asarray(True)
    loss = jnp.where(on, policy_loss, 0.0) + rm_loss
    n = jnp.maximum(jnp.sum(trained), 1)
    metrics = {**metrics, "policy_loss": policy_loss, "rm_loss": rm_loss, "rm_acc": rm_metrics["rm_acc"],
               "token_weight_mean": jnp.sum(jnp.where(trained, weights, 0)) / n,
               "policy_on": on.astype(jnp.float32)}
    return loss, jax.lax.stop_gradient(metrics)

  def init_state(model: nnx.Module, optimizer, *, rng: jax.Array):
    model = model if isinstance(model, ActorCritic) else attach(model)
    return base.init_state(model, joint_optimizer(optimizer, rm_opt), rng=rng)

  def make_step(optimizer, *, donate: bool = True):
    inner = make_train_step(graphdef, loss_fn, joint_optimizer(optimizer, rm_opt), donate=donate)

    def step(state, batch):  # the update index decides the freeze (a copy: the step donates `state`)
      return inner(state, {**batch, "update": jnp.copy(state.step)})

    return step

  return base._replace(loss_fn=loss_fn, make_step=make_step, init_state=init_state)


# ---------------------------------------------------------------------------------------------- localisation


def first_deviation(completion: jax.Array, completion_mask: jax.Array, reference: jax.Array) -> jax.Array:
  """`i32[B]`: the first response position where `completion` (`[B, C]`, valid where `completion_mask`)
  differs from `reference` (`[B, C]`, the reference completion, padded); −1 where it never does."""
  diff = jnp.asarray(completion_mask, bool) & (jnp.asarray(completion) != jnp.asarray(reference))
  return jnp.where(jnp.any(diff, axis=-1), jnp.argmax(diff, axis=-1), -1).astype(jnp.int32)


def localisation(scores: jax.Array, mask: jax.Array, first_error: jax.Array, rows: jax.Array) -> dict:
  """How often the most negative of `scores` (`f[B, T]`, over the tokens of `mask`) is the first error.

  Over the rows with `rows` and `first_error ≥ 0`: `precision` = mean 1[argmin_t score = first_error];
  `uniform` = mean 1/L (a uniformly drawn token of the response); `prior` = the largest share of one
  error position (always naming the most common position); `count` = the number of rows.
  """
  mask = jnp.asarray(mask, bool)
  e = jnp.asarray(first_error)
  valid = jnp.asarray(rows, bool) & (e >= 0)
  count = jnp.sum(valid)
  safe = jnp.maximum(count, 1)
  guess = jnp.argmin(jnp.where(mask, scores, jnp.inf), axis=-1)
  lengths = jnp.maximum(jnp.sum(mask, axis=-1), 1)
  share = jnp.sum(valid[:, None] & (e[:, None] == jnp.arange(mask.shape[1])), axis=0)
  return {"precision": jnp.sum(valid & (guess == e)) / safe,
          "uniform": jnp.sum(jnp.where(valid, 1 / lengths, 0)) / safe, "prior": jnp.max(share) / safe,
          "count": count}


def localisation_eval(graphdef, params, prompts: jax.Array, prompt_mask: jax.Array, reference: jax.Array,
                      reward_fn: Callable, *, k: int, key: jax.Array, max_new_tokens: int, eos_token_id: int,
                      pad_token_id: int = 0, control_params=None, threshold: float = 0.5) -> dict:
  """`k` sampled responses per prompt from the policy of `params` (an `attach`ed model), scored by
  `reward_fn(tokens, response_mask)`; over the wrong ones, `localisation` of the RM's token scores
  (`score/...`) and of its negative-token weights ω (`weight/...`, the most weighted token), plus
  `accuracy`. `reference` (`[G, C]`, C = `max_new_tokens`) is each prompt's reference completion.
  With `control_params` (another RM, e.g. the untrained one) its scores on the same responses give
  `control/...`.
  """
  @jax.jit
  def run(params, control_params, key):
    model = nnx.merge(graphdef, params)
    p, pm = jnp.repeat(prompts, k, axis=0), jnp.repeat(prompt_mask, k, axis=0)
    r = sampling.generate(model.policy, p, pm, key=key, max_new_tokens=max_new_tokens, eos_token_id=eos_token_id,
                          pad_token_id=pad_token_id)
    tokens = jnp.concatenate([p, r.tokens], axis=1)
    token_mask = jnp.concatenate([pm, r.mask], axis=1)
    rewards = jnp.asarray(reward_fn(tokens, jnp.concatenate([jnp.zeros_like(pm), r.mask], axis=1)), jnp.float32)
    first = first_deviation(r.tokens, r.mask, jnp.repeat(reference, k, axis=0))
    wrong = rewards <= 0

    def measure(m):
      s = token_scores(m, tokens, token_mask, max_new_tokens)
      w = oreal.token_rm_weights(s, r.mask, rewards, threshold=threshold)
      return {**{f"score/{a}": b for a, b in localisation(s, r.mask, first, wrong).items()},
              **{f"weight/{a}": b for a, b in localisation(-w, r.mask, first, wrong).items()}}

    out = {"accuracy": jnp.mean(rewards), **measure(model)}
    if control_params is not None:
      out |= {f"control/{a}": b for a, b in measure(nnx.merge(graphdef, control_params)).items()}
    return out

  return jax.device_get(run(params, control_params, key))


__all__ = ["RM_DATA", "RM_KEYS", "attach", "first_deviation", "joint_optimizer", "localisation", "localisation_eval",
           "make_token_rm_rl", "token_scores"]
