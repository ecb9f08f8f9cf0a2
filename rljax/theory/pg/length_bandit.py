"""A variable-length answer bandit: the length bias of per-response loss normalisation, exactly.

Liu et al. 2025 (Dr. GRPO, arXiv 2503.20783) argue that GRPO's per-response normalisation 1/|o_i|
(`seq-mean-token-mean`) lets wrong answers grow long: a long wrong response is penalised less per
token. This toy isolates that mechanism; everything but the sampling is in closed form, and training
goes through the shared kernels (`rljax.losses.advantages`, `rljax.losses.aggregation` inside the
policy losses) on `[B, T]` token arrays, as a language model is trained.

Each of P prompts has K candidate answers, exactly one correct (`correct[p]`). A response is the
answer token followed by filler tokens until <eos>, within a width of T tokens:

    y = (k, c, …, c, eos),   k ~ softmax(θ[p]),   then at positions 1, 2, …: eos w.p. s = σ(φ[p, k]), else c

so L = 1 + min(J, T − 1) with J ~ Geometric(s) on {1, 2, …}; a response that reaches T tokens without
<eos> is cut there. The length logit φ depends on the answer given: the policy can make its wrong
answers longer than its right ones, as a language model's state can depend on the answer it is heading
for. The reward is 1[k = correct[p]]: length does not enter it, so the true policy gradient in φ is 0.

Per response, the score of the length decisions is Σ_t ∂_φ log π(y_t) = (1 − s)·1[stopped] − s·(#fillers),
whose expectation is 0. A loss Σ_i A_i·w·Σ_t log π(y_it) with a weight w that does not depend on the
response (`seq-mean-token-sum`, Dr. GRPO's constant normaliser `seq-mean-token-sum-norm`) therefore
moves φ only by noise. With `seq-mean-token-mean` the weight is 1/L_i, which favours the short
responses' positive score terms: E[(1/L)·Σ_t ∂_φ log π] > 0, so the ascent direction raises φ (shorter)
where A > 0 and lowers it (longer) where A < 0. The wrong answers get longer, the right ones shorter.
`token-mean` (1/Σ_j L_j over the batch) couples every response to the whole batch's length, a weak
version of the same bias that vanishes as the batch grows.

    env = make_length_bandit(key, n_prompts=64, n_answers=4, width=16)
    train = make_train(env, steps=200, group_size=8, optimizer=optax.adam(0.05),
                       advantage_fn=partial(grpo_advantages, group_size=8),
                       loss_fn=partial(ppo_clip_loss, agg="seq-mean-token-mean"))
    params, trace = jax.jit(train)(key, init_params(env))     # trace.length_wrong: E[L | wrong] per step
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rljax import checks
from rljax.losses import registry


class LengthBandit(NamedTuple):
  correct: jax.Array  # i[P]: the index of the correct answer of each prompt
  answer_logits: jax.Array  # f[P, K]: θ at initialisation (sets each prompt's starting pass rate)
  stop_logit: float  # φ at initialisation, the same for every (prompt, answer)
  width: int  # T: the response width (answer token + at most T − 1 length decisions)


class Params(NamedTuple):
  theta: jax.Array  # f[P, K] answer logits
  phi: jax.Array  # f[P, K] stop logits, one per (prompt, answer given)


class Responses(NamedTuple):
  """n sampled responses per prompt, flattened prompt-major: response b answers prompt b // n."""

  prompt: jax.Array  # i[B]
  answer: jax.Array  # i[B]
  length: jax.Array  # i[B]: L, in 2..T (T also when cut without <eos>)
  stopped: jax.Array  # bool[B]: ended with <eos> (False: cut at T)
  reward: jax.Array  # f[B] in {0, 1}


class Trace(NamedTuple):
  """Per-step statistics before the step's update (leading axis = step); expectations are exact."""

  reward: jax.Array  # J = mean_p π(correct | p)
  length_wrong: jax.Array  # E[L | wrong answer], pooled over prompts
  length_right: jax.Array  # E[L | right answer], pooled over prompts
  sampled_length_wrong: jax.Array  # mean L of the batch's wrong responses (0 if none)


def make_length_bandit(key: jax.Array, *, n_prompts: int, n_answers: int, width: int, logit_scale: float = 1.0,
                       stop_prob: float = 0.2) -> LengthBandit:
  """Random correct answers, answer logits N(0, logit_scale²) and a common stop probability."""
  checks.check_positive("n_prompts", n_prompts)
  if n_answers < 2:
    raise ValueError(f"`n_answers` must be >= 2, got {n_answers}.")
  if width < 2:
    raise ValueError(f"`width` must be >= 2 (an answer and one length decision), got {width}.")
  if not 0.0 < stop_prob < 1.0:
    raise ValueError(f"`stop_prob` must be in (0, 1), got {stop_prob}.")
  k_c, k_t = jax.random.split(key)
  correct = jax.random.randint(k_c, (n_prompts,), 0, n_answers)
  theta = logit_scale * jax.random.normal(k_t, (n_prompts, n_answers))
  return LengthBandit(correct, theta, float(jnp.log(stop_prob) - jnp.log1p(-stop_prob)), int(width))


def init_params(env: LengthBandit) -> Params:
  return Params(env.answer_logits, jnp.full(env.answer_logits.shape, env.stop_logit, env.answer_logits.dtype))


def expected_length(phi: jax.Array, width: int) -> jax.Array:
  """E[L] = 1 + E[min(J, T − 1)] = 1 + (1 − (1 − s)^(T−1))/s with s = σ(φ), elementwise."""
  s = jax.nn.sigmoid(phi)
  return 1.0 + -jnp.expm1((width - 1) * jax.nn.log_sigmoid(-phi)) / s


def expected_stats(params: Params, env: LengthBandit) -> tuple[jax.Array, jax.Array, jax.Array]:
  """`(J, E[L | wrong], E[L | right])`, the conditional lengths pooled over prompts (prompts uniform)."""
  pi = jax.nn.softmax(params.theta, -1)
  right = jax.nn.one_hot(env.correct, pi.shape[-1], dtype=pi.dtype)
  length = expected_length(params.phi, env.width)
  p_right = jnp.sum(pi * right, -1)
  wrong_mass = pi * (1 - right)
  return (jnp.mean(p_right), jnp.sum(wrong_mass * length) / jnp.sum(wrong_mass),
          jnp.sum(pi * right * length) / jnp.sum(p_right))


def sample(key: jax.Array, params: Params, env: LengthBandit, group_size: int) -> Responses:
  """`group_size` responses per prompt from the policy."""
  n_prompts = params.theta.shape[0]
  k_a, k_l = jax.random.split(key)
  answer = jax.random.categorical(k_a, params.theta[:, None, :], shape=(n_prompts, group_size)).reshape(-1)
  prompt = jnp.repeat(jnp.arange(n_prompts), group_size)
  s = jax.nn.sigmoid(params.phi[prompt, answer])
  stops = jax.random.uniform(k_l, (answer.shape[0], env.width - 1)) < s[:, None]
  stopped = jnp.any(stops, -1)
  length = jnp.where(stopped, 2 + jnp.argmax(stops, -1), env.width)
  reward = (answer == env.correct[prompt]).astype(params.theta.dtype)
  return Responses(prompt, answer, length, stopped, reward)


def token_logps(params: Params, responses: Responses, width: int) -> tuple[jax.Array, jax.Array]:
  """`(logp f[B, T], mask bool[B, T])`: log π of the answer token, the fillers and the <eos>."""
  r = responses
  t = jnp.arange(width)[None, :]
  answer_logp = jax.nn.log_softmax(params.theta, -1)[r.prompt, r.answer]
  phi = params.phi[r.prompt, r.answer][:, None]
  is_eos = r.stopped[:, None] & (t == r.length[:, None] - 1)
  length_logp = jnp.where(is_eos, jax.nn.log_sigmoid(phi), jax.nn.log_sigmoid(-phi))
  logp = jnp.where(t == 0, answer_logp[:, None], length_logp)
  return logp, t < r.length[:, None]


def kernel_gradient(params: Params, responses: Responses, advantages: jax.Array, width: int,
                    loss_fn: Callable[..., tuple[jax.Array, dict]]) -> Params:
  """The ascent direction −∇ loss of a policy loss on one batch at the sampling policy."""
  old = jax.lax.stop_gradient(token_logps(params, responses, width)[0])

  def loss(p):
    logp, mask = token_logps(p, responses, width)
    return loss_fn(logp, old, jnp.broadcast_to(advantages[:, None], logp.shape), mask)[0]

  return jax.tree.map(jnp.negative, jax.grad(loss)(params))


def make_train(env: LengthBandit, *, steps: int, group_size: int, optimizer: optax.GradientTransformation,
               advantage_fn: Callable[[jax.Array], jax.Array],
               loss_fn: Callable[..., tuple[jax.Array, dict]]) -> Callable[[jax.Array, Params], tuple[Params, Trace]]:
  """`train(key, params0) -> (params, Trace)`, jittable and vmappable: each step samples `group_size`
  responses per prompt, computes `advantage_fn(rewards f[B]) -> f[B]` and takes one optimizer step on
  `loss_fn(logp, old_logp, advantages, mask)` (any `rljax.losses` policy loss with its aggregation bound;
  one update per batch, so a ratio loss is at ratio 1 and gives the REINFORCE gradient)."""
  checks.check_positive("steps", steps)
  checks.check_positive("group_size", group_size)

  def step(carry, key):
    params, opt_state = carry
    k_sample, k_loss = jax.random.split(key)
    responses = sample(k_sample, params, env, group_size)
    advantages = jax.lax.stop_gradient(advantage_fn(responses.reward))
    ascent = kernel_gradient(params, responses, advantages, env.width, registry.bind(loss_fn, key=k_loss))
    updates, opt_state = optimizer.update(jax.tree.map(jnp.negative, ascent), opt_state, params)
    reward, length_wrong, length_right = expected_stats(params, env)
    wrong = responses.reward == 0
    sampled = jnp.sum(jnp.where(wrong, responses.length, 0)) / jnp.maximum(jnp.sum(wrong), 1)
    return (optax.apply_updates(params, updates), opt_state), Trace(reward, length_wrong, length_right, sampled)

  def train(key: jax.Array, params0: Params) -> tuple[Params, Trace]:
    (params, _), trace = jax.lax.scan(step, (params0, optimizer.init(params0)), jax.random.split(key, steps))
    return params, trace

  return train


__all__ = ["LengthBandit", "Params", "Responses", "Trace", "expected_length", "expected_stats", "init_params",
           "kernel_gradient", "make_length_bandit", "make_train", "sample", "token_logps"]
