"""A softmax answer bandit with 0/1 verifiable rewards, trained through the RLVR loss kernels.

Each of P prompts has K candidate answers; answer k of prompt p is verified correct with probability
q[p, k] (reward 1, else 0). The policy is log-linear in features,

    π_θ(k | p) = softmax_k(φ(p, k)ᵀθ),

which is tabular when φ is one-hot (d = P·K) and generalises across prompts when d is small. A
training step samples a group of n answers per prompt, scores them, computes advantages and takes
the gradient of a `rljax.losses` policy loss on `[B, 1]` token arrays — the same kernels a language
model is trained with, on one-token responses.

Closed forms make the estimators checkable: J(θ) = mean_p Σ_k π(k|p) q[p, k] with gradient
mean_p Σ_k π(k|p)(q[p, k] − J_p)φ(p, k), and the entropy H(θ) = mean_p H(π(·|p)).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rljax import checks
from rljax.losses import registry
from rljax.losses.entropy_mechanism import token_covariance


class AnswerBandit(NamedTuple):
  features: jax.Array  # f[P, K, d]
  success: jax.Array  # f[P, K]: probability that answer k of prompt p verifies


class Groups(NamedTuple):
  """n sampled answers per prompt, flattened prompt-major: sample b belongs to prompt b // n."""

  prompt: jax.Array  # i[P·n]
  answer: jax.Array  # i[P·n]
  reward: jax.Array  # f[P·n] in {0, 1}


def make_answer_bandit(
    key: jax.Array, *, n_prompts: int, n_answers: int, dim: int | None = None, logit_mean: float = -1.5,
    logit_scale: float = 2.0,
) -> AnswerBandit:
  """Success probabilities σ(N(logit_mean, logit_scale²)); features one-hot when `dim` is None.

  With d < P·K the features are N(0, I/d) and one parameter vector is shared by all prompts.
  """
  if n_answers < 2:
    raise ValueError(f"`n_answers` must be >= 2, got {n_answers}.")
  checks.check_positive("logit_scale", logit_scale)
  k_q, k_phi = jax.random.split(key)
  success = jax.nn.sigmoid(logit_mean + logit_scale * jax.random.normal(k_q, (n_prompts, n_answers)))
  if dim is None:
    features = jnp.eye(n_prompts * n_answers).reshape(n_prompts, n_answers, n_prompts * n_answers)
  else:
    features = jax.random.normal(k_phi, (n_prompts, n_answers, dim)) / jnp.sqrt(dim)
  return AnswerBandit(features, success)


def logits(theta: jax.Array, env: AnswerBandit) -> jax.Array:
  """Policy logits φ(p, k)ᵀθ, `f[P, K]`."""
  return env.features @ theta


def expected_reward(theta: jax.Array, env: AnswerBandit) -> jax.Array:
  """J(θ) = mean_p E_{k~π(·|p)} q[p, k], exact."""
  return jnp.mean(jnp.sum(jax.nn.softmax(logits(theta, env), -1) * env.success, -1))


def mean_entropy(theta: jax.Array, env: AnswerBandit) -> jax.Array:
  """H(θ) = mean_p −Σ_k π(k|p) log π(k|p), exact."""
  logp = jax.nn.log_softmax(logits(theta, env), -1)
  return jnp.mean(-jnp.sum(jnp.exp(logp) * logp, -1))


def analytic_gradient(theta: jax.Array, env: AnswerBandit) -> jax.Array:
  """∇_θ J = mean_p Σ_k π(k|p)(q[p,k] − J_p)·φ(p,k), the exact policy gradient."""
  pi = jax.nn.softmax(logits(theta, env), -1)
  adv = env.success - jnp.sum(pi * env.success, -1, keepdims=True)
  return jnp.einsum("pk,pkd->d", pi * adv, env.features) / env.success.shape[0]


def sample_groups(key: jax.Array, theta: jax.Array, env: AnswerBandit, group_size: int) -> Groups:
  """`group_size` answers per prompt from π_θ with Bernoulli(q) verification."""
  n_prompts, _ = env.success.shape
  k_a, k_r = jax.random.split(key)
  answer = jax.random.categorical(k_a, logits(theta, env)[:, None, :], shape=(n_prompts, group_size))
  prompt = jnp.broadcast_to(jnp.arange(n_prompts)[:, None], answer.shape)
  reward = jax.random.uniform(k_r, answer.shape) < env.success[prompt, answer]
  return Groups(prompt.reshape(-1), answer.reshape(-1), reward.reshape(-1).astype(theta.dtype))


def token_logps(theta: jax.Array, env: AnswerBandit, groups: Groups) -> jax.Array:
  """log π_θ(answer | prompt) as a `[B, 1]` token array (one-token responses)."""
  logp = jax.nn.log_softmax(logits(theta, env), -1)
  return logp[groups.prompt, groups.answer][:, None]


class Trace(NamedTuple):
  """Per-step training statistics (leading axis = step)."""

  entropy: jax.Array  # mean policy entropy before the step (exact)
  reward: jax.Array  # J(θ) before the step (exact expected reward)
  covariance: jax.Array  # batch Cov(log π(a), A) of the sampled tokens
  entropy_change: jax.Array  # H after − H before


def make_train(
    env: AnswerBandit,
    *,
    steps: int,
    group_size: int,
    optimizer: optax.GradientTransformation,
    advantage_fn: Callable[[jax.Array], jax.Array],
    loss_fn: Callable[..., tuple[jax.Array, dict]],
    updates_per_batch: int = 1,
) -> Callable[[jax.Array, jax.Array], tuple[jax.Array, Trace]]:
  """PureJaxRL-style trainer: returns `train(key, theta0) -> (theta, Trace)`, jittable and vmappable.

  Each step samples `group_size` answers per prompt from π_θ, computes `advantage_fn(rewards: f[B])`
  (e.g. `functools.partial(grpo_advantages, group_size=n)`), then takes `updates_per_batch`
  optimizer steps on `loss_fn(logp, old_logp, advantages, mask, key=...)` over `[B, 1]` token
  arrays, where old_logp is the sampling policy (so updates after the first are off-policy and
  clipping or KL-Cov's |δ| penalty become active). `loss_fn` is any `rljax.losses` policy loss with
  its hyperparameters bound; it receives a fresh `key` through `registry.bind`.
  """

  def step(carry, key):
    theta, opt_state = carry
    k_sample, k_loss = jax.random.split(key)
    groups = sample_groups(k_sample, theta, env, group_size)
    advantages = jax.lax.stop_gradient(advantage_fn(groups.reward))[:, None]
    mask = jnp.ones_like(advantages, dtype=bool)
    old = jax.lax.stop_gradient(token_logps(theta, env, groups))

    def update(inner, k):
      th, state = inner
      objective = lambda t: registry.bind(loss_fn, key=k)(token_logps(t, env, groups), old, advantages, mask)[0]
      grads = jax.grad(objective)(th)
      updates, state = optimizer.update(grads, state, th)
      return (optax.apply_updates(th, updates), state), None

    (new_theta, opt_state), _ = jax.lax.scan(update, (theta, opt_state), jax.random.split(k_loss, updates_per_batch))
    h_before = mean_entropy(theta, env)
    trace = Trace(
        entropy=h_before,
        reward=expected_reward(theta, env),
        covariance=jnp.mean(token_covariance(old, advantages, mask)),
        entropy_change=mean_entropy(new_theta, env) - h_before,
    )
    return (new_theta, opt_state), trace

  def train(key: jax.Array, theta0: jax.Array) -> tuple[jax.Array, Trace]:
    (theta, _), trace = jax.lax.scan(step, (theta0, optimizer.init(theta0)), jax.random.split(key, steps))
    return theta, trace

  return train


def kernel_gradient(theta: jax.Array, env: AnswerBandit, groups: Groups, advantages: jax.Array,
                    loss_fn: Callable[..., tuple[jax.Array, dict]]) -> jax.Array:
  """The ascent direction a policy loss produces on one batch at the sampling policy: −∇_θ loss.

  With `token-mean` over the B = P·n one-token responses this is (1/B)·Σ_i A_i ∇log π(a_i|p_i).
  """
  old = jax.lax.stop_gradient(token_logps(theta, env, groups))
  mask = jnp.ones_like(old, dtype=bool)
  return -jax.grad(lambda t: loss_fn(token_logps(t, env, groups), old, advantages[:, None], mask)[0])(theta)


def gradient_estimate_moments(
    key: jax.Array, theta: jax.Array, env: AnswerBandit, *, group_size: int, n_batches: int,
    advantage_fn: Callable[[jax.Array], jax.Array], loss_fn: Callable[..., tuple[jax.Array, dict]],
) -> tuple[jax.Array, jax.Array]:
  """Monte-Carlo mean and standard error of `kernel_gradient` over `n_batches` independent batches."""

  def one(k):
    groups = sample_groups(k, theta, env, group_size)
    return kernel_gradient(theta, env, groups, advantage_fn(groups.reward), loss_fn)

  samples = jax.vmap(one)(jax.random.split(key, n_batches))
  return samples.mean(0), samples.std(0) / jnp.sqrt(n_batches)
