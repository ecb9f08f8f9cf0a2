"""The "explore then compress" strategy toy of Train Long, Think Short (spec §5.4; Hammoud et al. 2025).

Every prompt is answered with one of K strategies (default long / medium / short) drawn from a softmax policy
π = softmax(z). Strategy k thinks for L ~ μ_k + U(−ν, ν) tokens and is right with probability

    P(correct | k) = σ(θ − h_k),        a shared skill θ (init θ0), hardness h (default (−1, 1, 3)),

so the short strategy needs skill. One step t: B prompts × G responses, the reward of each response is the
curriculum's `shape_rewards` (`rljax.curricula.length_budget`: correctness, the length reward under the budget
B(t) at the curriculum's step, format always well formed), GRPO advantages A (`rljax.losses.grpo_advantages`)
over each prompt's G responses, and one REINFORCE step on

    loss = −(1 / BG) Σ A · [log π(k) + log P(outcome | k, θ)]

for θ and z (the outcome's log-probability is exact, so ∇θ is the score function, as on the skill chain).
The default optimiser is plain SGD with separate step sizes for θ and z: the update of θ is then proportional
to the learning signal, which is what makes a strategy with frequent successes a faster teacher of θ than one
with rare successes. (With Adam the per-coordinate scaling moves θ at about its step size whatever the signal;
the toy's curricula then do not differ in θ.)

`make_train(cfg, curriculum)` returns `train(key, hardness f32[K])`, one `lax.scan` over steps (the hardness is
an argument so that a sweep over h shares one compile); `run_seeds` vmaps it over seeds and hardness vectors.
Recorded per step (after the update): the exact accuracy Σ π_k σ(θ − h_k), the exact mean think length
Σ π_k μ_k, π, θ, the mean shaped reward and batch accuracy, and the fraction of groups with all-equal rewards.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from rljax import curricula
from rljax.losses import grpo_advantages

STRATEGIES = ("long", "medium", "short")


def toy_config(**overrides) -> ml_collections.ConfigDict:
  """The strategy toy's fields (spec §5.4 defaults; the step sizes and optimiser are rljax's [D])."""
  c = ml_collections.ConfigDict(dict(
      think_lengths=(220.0, 140.0, 70.0),  # μ_k, tokens
      length_noise=10.0,                   # ν: L ~ μ_k + U(−ν, ν)
      hardness=(-1.0, 1.0, 3.0),           # h_k
      theta0=0.0,
      prompts=64, group_size=8, steps=400,
      optimizer="sgd",                     # or "adam"
      lr_theta=0.1, lr_logits=0.1,
      adv_eps=1e-6))
  c.update(overrides)
  return c


_OPTIMIZERS = {"adam": optax.adam, "sgd": optax.sgd}


def _check(cfg, curriculum) -> None:
  if curriculum.shape_rewards is None:
    raise ValueError(f"the strategy toy needs a curriculum with `shape_rewards` (e.g. 'length_budget'), got "
                     f"{curriculum.name!r}.")
  if cfg.optimizer not in _OPTIMIZERS:
    raise ValueError(f"`optimizer` must be one of {sorted(_OPTIMIZERS)}, got {cfg.optimizer!r}.")
  k = len(tuple(cfg.think_lengths))
  if k < 2 or len(tuple(cfg.hardness)) != k:
    raise ValueError(f"`think_lengths` and `hardness` must give K >= 2 strategies each, got {cfg.think_lengths} "
                     f"and {cfg.hardness}.")
  if min(cfg.think_lengths) - cfg.length_noise <= 0:
    raise ValueError(f"think lengths must stay positive: min μ − ν = {min(cfg.think_lengths) - cfg.length_noise}.")
  for name in ("prompts", "steps"):
    if int(cfg[name]) < 1:
      raise ValueError(f"`{name}` must be >= 1, got {cfg[name]}.")
  if int(cfg.group_size) < 2:
    raise ValueError(f"`group_size` must be >= 2 for group advantages, got {cfg.group_size}.")
  if not (cfg.lr_theta > 0 and cfg.lr_logits > 0):
    raise ValueError(f"step sizes must be > 0, got lr_theta={cfg.lr_theta}, lr_logits={cfg.lr_logits}.")


def exact_accuracy(theta, logits, hardness) -> jax.Array:
  """Σ_k π_k σ(θ − h_k): the policy's probability of a correct answer."""
  return jnp.sum(jax.nn.softmax(logits) * jax.nn.sigmoid(theta - jnp.asarray(hardness)))


def make_train(cfg: ml_collections.ConfigDict, curriculum: curricula.Curriculum):
  """`train(key, hardness f32[K]) -> (params (θ, z), curriculum state, per-step records)`."""
  _check(cfg, curriculum)
  B, G, T = int(cfg.prompts), int(cfg.group_size), int(cfg.steps)
  N = B * G
  mu = jnp.asarray(cfg.think_lengths, jnp.float32)
  nu = float(cfg.length_noise)
  make_opt = _OPTIMIZERS[cfg.optimizer]
  opt = optax.multi_transform({"theta": make_opt(float(cfg.lr_theta)), "logits": make_opt(float(cfg.lr_logits))},
                              {"theta": "theta", "logits": "logits"})

  def logp(params, k, correct, hardness):
    """log π(k) + log P(outcome | k, θ) of each response, `f32[N]`."""
    x = params["theta"] - hardness[k]
    return jax.nn.log_softmax(params["logits"])[k] + jnp.where(correct, jax.nn.log_sigmoid(x),
                                                              jax.nn.log_sigmoid(-x))

  def step(carry, _, hardness):
    params, opt_state, cstate, key = carry
    key, k_strat, k_len, k_out = jax.random.split(key, 4)
    k = jax.random.categorical(k_strat, params["logits"], shape=(N,))
    length = mu[k] + jax.random.uniform(k_len, (N,), minval=-nu, maxval=nu)
    correct = jax.random.uniform(k_out, (N,)) < jax.nn.sigmoid(params["theta"] - hardness[k])
    reward = curriculum.shape_rewards(cstate, correct.astype(jnp.float32), length, None)
    adv = grpo_advantages(reward, group_size=G, eps=float(cfg.adv_eps))
    grads = jax.grad(lambda p: -jnp.mean(adv * logp(p, k, correct, hardness)))(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    r = reward.reshape(B, G)
    cstate = curriculum.update(cstate, curricula.Feedback.of(
        jnp.zeros((B,), jnp.int32), r, adv.reshape(B, G), length.reshape(B, G)))
    pi = jax.nn.softmax(params["logits"])
    rec = dict(accuracy=exact_accuracy(params["theta"], params["logits"], hardness), length=jnp.sum(pi * mu),
               pi=pi, theta=params["theta"], reward=jnp.mean(reward), batch_accuracy=jnp.mean(correct),
               zero_adv=jnp.mean(jnp.all(r == r[:, :1], axis=1)))
    return (params, opt_state, cstate, key), rec

  def train(key: jax.Array, hardness):
    hardness = jnp.asarray(hardness, jnp.float32)
    if hardness.shape != mu.shape:
      raise ValueError(f"`hardness` must be f32[{mu.shape[0]}], got shape {hardness.shape}.")
    params = {"theta": jnp.asarray(float(cfg.theta0), jnp.float32), "logits": jnp.zeros_like(mu)}
    carry = (params, opt.init(params), curriculum.init(), key)
    (params, _, cstate, _), records = jax.lax.scan(lambda c, x: step(c, x, hardness), carry, None, length=T)
    return params, cstate, records

  return train


def run_seeds(cfg: ml_collections.ConfigDict, curriculum: curricula.Curriculum, seeds: int,
              hardness: Sequence[Sequence[float]] | None = None):
  """Records `{key: [H, seeds, T, ...]}` of `train` for every hardness vector (default: `cfg.hardness` alone,
  H = 1) and seed (seed s uses PRNGKey(s)), as NumPy arrays from one jit(vmap(vmap))."""
  hs = jnp.asarray([cfg.hardness] if hardness is None else hardness, jnp.float32)
  if hs.ndim != 2:
    raise ValueError(f"`hardness` must be a list of K-vectors, got shape {hs.shape}.")
  keys = jnp.stack([jax.random.PRNGKey(s) for s in range(int(seeds))])
  train = make_train(cfg, curriculum)
  one = lambda h, key: train(key, h)[2]
  return jax.tree.map(np.asarray, jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))(hs, keys))


__all__ = ["STRATEGIES", "exact_accuracy", "make_train", "run_seeds", "toy_config"]
