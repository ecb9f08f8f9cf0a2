"""Policy generations of a regression-oracle contextual bandit under batch-logged feedback, after
"Contextual Bandits in Payment Processing: Non-uniform Exploration and Supervised Learning at Adyen"
(2024).

Generation g deploys a fixed policy π_g for a batch of N decisions (no learning inside a batch; all
rewards arrive before the next generation), then refits the reward model by ERM on the logs of the last
W generations only (short-term memory). Two policies:

- SquareCB: inverse-gap weighting of the model's predicted success probabilities, unweighted
  ("supervised") logistic ERM;
- ε-uniform: greedy with probability 1 − ε, uniform over the open routes otherwise, IPS-weighted ERM.

The model is one logistic regression per route on φ(x) = [x, 1] (the x ⊗ onehot(a) + onehot(a)
features of the paper's sketch, fitted block by block). It is misspecified for route 0 when the
environment's interaction κ ≠ 0: fitted only where route 0 was played, it extrapolates wrongly elsewhere,
so successive generations can get worse (and, in the paper, oscillate).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax.theory.envs import payment_sim as env
from rljax.theory.kernels.regression_oracles import igw_probs, logistic_erm

__all__ = ["AdyenConfig", "igw_probs", "logistic_erm", "policy_probs", "fit_models", "run_generations"]

POLICIES = ("squarecb", "uniform")


class AdyenConfig(NamedTuple):
  n_generations: int = 30  # G
  batch: int = 5000  # N decisions per generation
  policy: str = "squarecb"
  gamma: float = 0.0  # IGW γ; 0 means c·sqrt(|A| N)
  gamma_c: float = 1.0
  epsilon: float = 0.2  # ε of the ε-uniform baseline
  memory: int = 1  # W generations of logs kept for the ERM
  l2: float = 1.0
  newton_iters: int = 20

  def validate(self) -> "AdyenConfig":
    if self.policy not in POLICIES:
      raise ValueError(f"`policy` must be one of {POLICIES}, got {self.policy!r}.")
    if self.n_generations < 1 or self.batch < 1 or self.memory < 1 or self.newton_iters < 1:
      raise ValueError("`n_generations`, `batch`, `memory` and `newton_iters` must be positive.")
    if not 0.0 <= self.epsilon <= 1.0:
      raise ValueError(f"`epsilon` must lie in [0, 1], got {self.epsilon}.")
    if self.gamma < 0 or self.gamma_c <= 0 or self.l2 <= 0:
      raise ValueError("`gamma` must be >= 0, `gamma_c` and `l2` positive.")
    return self

  def igw_gamma(self, n_actions: int) -> float:
    """γ = c·sqrt(|A| N) unless set explicitly."""
    return self.gamma if self.gamma > 0 else self.gamma_c * (n_actions * self.batch) ** 0.5


def _features(x: jax.Array) -> jax.Array:
  return jnp.concatenate([x, jnp.ones(x.shape[:-1] + (1,), x.dtype)], -1)


def predict(theta: jax.Array, x: jax.Array) -> jax.Array:
  """Predicted success probabilities f(x, a) = σ(θ_aᵀ[x, 1]) for every route: [..., A]."""
  return jax.nn.sigmoid(_features(x) @ theta.T)


def policy_probs(cfg: AdyenConfig, theta: jax.Array, ctx: env.Context) -> jax.Array:
  """π_g(·|x) over the open routes A_x: IGW(f, γ) for SquareCB, or
  ε/|A_x| + (1 − ε)·1[a = argmax_{A_x} f] for the ε-uniform baseline."""
  yhat = predict(theta, ctx.x)
  n_actions = theta.shape[0]
  if cfg.policy == "squarecb":
    return igw_probs(yhat, cfg.igw_gamma(n_actions), ctx.avail)
  greedy = jax.nn.one_hot(jnp.argmax(jnp.where(ctx.avail, yhat, -jnp.inf), -1), n_actions)
  n = jnp.sum(ctx.avail, -1, keepdims=True)
  return jnp.where(ctx.avail, cfg.epsilon / n, 0.0) + (1.0 - cfg.epsilon) * greedy


class Logs(NamedTuple):
  """The last W batches: x [W, N, d], action, reward, ERM weight [W, N]."""

  x: jax.Array
  action: jax.Array
  reward: jax.Array
  weight: jax.Array


def fit_models(cfg: AdyenConfig, logs: Logs, n_actions: int) -> jax.Array:
  """θ_a = logistic ERM on the logged rows with action a (weights 1 or IPS 1/p(a|x), 0 for empty slots)."""
  phi = _features(logs.x.reshape(-1, logs.x.shape[-1]))
  a, r, w = logs.action.reshape(-1), logs.reward.reshape(-1), logs.weight.reshape(-1)
  fit = lambda k: logistic_erm(phi, r, weights=w * (a == k), l2=cfg.l2, iters=cfg.newton_iters)
  return jax.vmap(fit)(jnp.arange(n_actions))


def run_generations(key: jax.Array, cfg: AdyenConfig, params: env.PaymentParams) -> dict[str, jax.Array]:
  """Deploy → log → refit for G generations (lax.scan); returns per-generation [G] arrays:

  value      V_g = E_x Σ_a π_g(a|x) μ_a(x)   (expected success rate of the deployed policy on the batch),
  greedy     E_x μ_{argmax f_g}(x)           (the model's greedy policy, no exploration),
  optimal    E_x max_{a∈A_x} μ_a(x)          (oracle on the same contexts),
  top_frac   share of logged decisions on the truly best open route (class imbalance of the logs),
  model_err  E_x Σ_{a∈A_x} |f_g(x, a) − μ_a(x)| / |A_x|.
  """
  cfg.validate()
  n_actions, dim = params.w.shape
  dtype = params.w.dtype
  w_mem = cfg.memory
  logs0 = Logs(jnp.zeros((w_mem, cfg.batch, dim), dtype), jnp.zeros((w_mem, cfg.batch), jnp.int32),
               jnp.zeros((w_mem, cfg.batch), dtype), jnp.zeros((w_mem, cfg.batch), dtype))

  def generation(carry, inp):
    theta, logs = carry
    g, k = inp
    k_ctx, k_act, k_rew = jax.random.split(k, 3)
    ctx = jax.vmap(env.sample_context, in_axes=(0, None))(jax.random.split(k_ctx, cfg.batch), params)
    probs = policy_probs(cfg, theta, ctx)  # [N, A]
    action = jax.random.categorical(k_act, jnp.log(probs)).astype(jnp.int32)
    mu = env.success_probs(params, ctx.x)
    mu_a = jnp.take_along_axis(mu, action[:, None], -1)[:, 0]
    reward = jax.random.bernoulli(k_rew, mu_a).astype(dtype)
    p_a = jnp.take_along_axis(probs, action[:, None], -1)[:, 0]
    weight = jnp.ones_like(p_a) if cfg.policy == "squarecb" else 1.0 / p_a
    yhat = predict(theta, ctx.x)
    best, opt = env.oracle(params, ctx)
    greedy_a = jnp.argmax(jnp.where(ctx.avail, yhat, -jnp.inf), -1)
    n_open = jnp.sum(ctx.avail, -1)
    stats = {
        "value": jnp.mean(jnp.sum(probs * mu, -1)),
        "greedy": jnp.mean(jnp.take_along_axis(mu, greedy_a[:, None], -1)[:, 0]),
        "optimal": jnp.mean(opt),
        "top_frac": jnp.mean(action == best),
        "model_err": jnp.mean(jnp.sum(jnp.where(ctx.avail, jnp.abs(yhat - mu), 0.0), -1) / n_open),
    }
    slot = g % w_mem
    logs = Logs(logs.x.at[slot].set(ctx.x), logs.action.at[slot].set(action), logs.reward.at[slot].set(reward),
                logs.weight.at[slot].set(weight))
    return (fit_models(cfg, logs, n_actions), logs), stats

  theta0 = jnp.zeros((n_actions, dim + 1), dtype)
  gens = jnp.arange(cfg.n_generations)
  _, stats = jax.lax.scan(generation, (theta0, logs0), (gens, jax.random.split(key, cfg.n_generations)))
  return stats
