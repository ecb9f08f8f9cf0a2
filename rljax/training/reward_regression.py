"""A pointwise learned reward model: a scalar-head decoder regressed on noisy scores, used as an RL reward.

PF-PPO (Zhang, Shen et al., arXiv 2409.06957; spec §11) studies RL against a learned reward model that is
reliable only in some reward ranges. This module builds such a model from (prompt ⊕ response, score)
pairs whose labels carry heteroscedastic noise, reliable at the extremes and noisy in the middle:

    ỹ = s + σ(s)·ε,   σ(s) = σ0·4s(1 − s),   ε ~ N(0, 1),   s ∈ [0, 1] the true score   (`noisy_labels`)

The model is a `rljax.models.RewardModel` (a decoder backbone, usually the SFT policy's, with a
`RewardHead` read at the last real token) fitted by least squares (`regression_loss`):

    L(φ) = mean_b (r_φ(x_b ⊕ y_b) − ỹ_b)²

On finitely many samples the fit keeps part of the label noise (most where σ(s) is largest), which is
the reward-model error PF-PPO's filters act on. `reward_fn` turns the fitted parameters into the online
loop's jittable `reward_fn(tokens, response_mask) -> f32[B]`.

    rm = RewardModel(backbone, rngs=nnx.Rngs(0))
    params = fit_reward_model(rm, tokens, mask, noisy_labels(s, key, sigma0=0.5), steps=400, batch_size=128, lr=1e-3)
    rl = testbed.online("pf_ppo", reward_fn=reward_fn(nnx.graphdef(rm), params, pad_token_id=0))
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from rljax import checks
from rljax.training.loop import train
from rljax.training.metrics import MetricsWriter
from rljax.training.step import init_train_state, make_optimizer, make_train_step


def noise_scale(scores: jax.Array, sigma0: float) -> jax.Array:
  """σ(s) = σ0·4s(1 − s): 0 at s ∈ {0, 1}, σ0 at s = 1/2 (`f32` like `scores`)."""
  checks.check_nonnegative("sigma0", sigma0)
  (s,) = checks.as_compute(scores)
  return sigma0 * 4.0 * s * (1.0 - s)


def noisy_labels(scores: jax.Array, key: jax.Array, *, sigma0: float) -> jax.Array:
  """ỹ = s + σ(s)·ε with independent ε ~ N(0, 1) per entry (`noise_scale`)."""
  (s,) = checks.as_compute(scores)
  return s + noise_scale(s, sigma0) * jax.random.normal(key, s.shape, s.dtype)


def regression_loss() -> Callable:
  """Least-squares loss of a `RewardModel` on `batch = {"tokens" i32[B, T], "mask" bool[B, T], "labels" f[B]}`
  for `make_train_step`; metrics `mse`, `reward_mean`, `label_mean`."""

  def loss_fn(model, batch, rng, extra):
    del rng, extra
    r = model(batch["tokens"], batch["mask"])
    labels = jnp.asarray(batch["labels"], jnp.float32)
    mse = jnp.mean(jnp.square(r - labels))
    return mse, {"mse": mse, "reward_mean": jnp.mean(r), "label_mean": jnp.mean(labels)}

  return loss_fn


def fit_reward_model(model: nnx.Module, tokens: jax.Array, mask: jax.Array, labels: jax.Array, *, steps: int,
                     batch_size: int, lr: float, seed: int = 0, weight_decay: float = 0.0,
                     writer: MetricsWriter | None = None, phase: str = "reward_model") -> nnx.State:
  """Fits `model` (a `RewardModel`) to `labels f[N]` of the sequences `tokens, mask [N, T]` by `regression_loss`:
  `steps` AdamW updates (cosine schedule) on minibatches of `batch_size` rows drawn without replacement
  within each pass over the data, in an order fixed by `seed`. Returns the fitted parameters."""
  n = checks.check_same_shape(2, tokens=tokens, mask=mask)[0]
  checks.check_same_shape(1, labels=labels)
  if labels.shape[0] != n:
    raise ValueError(f"`labels` has {labels.shape[0]} rows, `tokens` has {n}.")
  for name, v in (("steps", steps), ("batch_size", batch_size)):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ValueError(f"`{name}` must be a positive int, got {v!r}.")
  if batch_size > n:
    raise ValueError(f"`batch_size` ({batch_size}) exceeds the {n} training rows.")
  checks.check_positive("lr", lr)
  opt = make_optimizer(lr, schedule="cosine", total_steps=steps, weight_decay=weight_decay)
  graphdef, state = init_train_state(model, opt, rng=jax.random.PRNGKey(seed))
  data = {"tokens": jnp.asarray(tokens, jnp.int32), "mask": jnp.asarray(mask, bool),
          "labels": jnp.asarray(labels, jnp.float32)}
  per_pass = n // batch_size
  base = jax.random.PRNGKey(seed)

  def batch_fn(pos):
    order = jax.random.permutation(jax.random.fold_in(base, pos // per_pass), n)
    rows = jax.lax.dynamic_slice_in_dim(order, (pos % per_pass) * batch_size, batch_size)
    return {k: v[rows] for k, v in data.items()}

  state = train(state, make_train_step(graphdef, regression_loss(), opt), batch_fn, num_steps=steps, writer=writer,
                phase=phase, log_every=max(steps // 10, 1), progress=False)
  return state.params


def reward_fn(graphdef, params: nnx.State, *, pad_token_id: int) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """The online loop's jittable `reward_fn(tokens i32[B, T], response_mask) -> f32[B]`: the reward model
  `nnx.merge(graphdef, params)` on the prompt ⊕ response rows, every non-pad token real (left-padded
  prompt, right-padded response, as the loop builds them)."""
  def fn(tokens, response_mask):
    del response_mask  # the model reads prompt and response alike
    tokens = jnp.asarray(tokens, jnp.int32)
    return nnx.merge(graphdef, params)(tokens, tokens != pad_token_id)

  return fn


__all__ = ["fit_reward_model", "noise_scale", "noisy_labels", "regression_loss", "reward_fn"]
