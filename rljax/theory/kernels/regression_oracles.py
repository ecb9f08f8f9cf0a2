"""Regression oracles for contextual bandits: IGW / FastCB action probabilities and the regressors.

The Foster–Rakhlin reduction (SquareCB, ICML 2020) and its first-order variant (FastCB, Foster &
Krishnamurthy, NeurIPS 2021) turn any online regression oracle into a contextual-bandit algorithm by
inverse-gap weighting of the oracle's predictions. This module holds the two probability maps and the
oracles used by the theory modules: batch logistic ERM by Newton's method (optionally IPS-weighted),
online gradient descent on a linear model or a small MLP (optax), and online ridge with the
Vovk–Azoury–Warmuth forecaster. Used by `bandits.adyen_generations` (Adyen payment-processing CB,
2024), `bandits.neucb` (Deb et al., ICLR 2024) and `experts.groupwise` (Acharya et al., 2023).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rljax.theory.kernels.ridge import RidgeState, sherman_morrison


def _check_gamma(gamma) -> None:
  if isinstance(gamma, (int, float)) and not gamma >= 0:
    raise ValueError(f"`gamma` must be non-negative, got {gamma}.")


def _available(values: jax.Array, mask) -> jax.Array:
  if mask is None:
    return jnp.ones(values.shape, bool)
  mask = jnp.asarray(mask, bool)
  if mask.shape != values.shape:
    raise ValueError(f"`mask` must have the shape of the predictions {values.shape}, got {mask.shape}.")
  return mask


def _gap_weighting(values: jax.Array, gamma, mask, leader_of, others_of) -> jax.Array:
  """Common IGW skeleton: the leader b gets 1 − Σ_{a≠b} p(a); others get `others_of(n, v_b, v_a)`."""
  _check_gamma(gamma)
  values = jnp.asarray(values)
  avail = _available(values, mask)
  n = jnp.sum(avail, -1, keepdims=True).astype(values.dtype)
  b = leader_of(values, avail)
  is_b = jax.nn.one_hot(b, values.shape[-1], dtype=bool)
  v_b = jnp.take_along_axis(values, b[..., None], -1)
  p = jnp.where(avail & ~is_b, others_of(n, v_b, values), 0.0)
  return jnp.where(is_b, 1.0 - jnp.sum(p, -1, keepdims=True), p)


def igw_probs(yhat: jax.Array, gamma, mask: jax.Array | None = None) -> jax.Array:
  """SquareCB inverse-gap weighting for predicted *rewards* ŷ over the last axis (A_x = available set):

      b = argmax_{a∈A_x} ŷ_a,   p(a) = 1 / (|A_x| + γ(ŷ_b − ŷ_a))  (a ≠ b),   p(b) = 1 − Σ_{a≠b} p(a).

  γ = 0 is uniform over A_x; γ → ∞ is greedy. Unavailable actions get probability 0.
  """
  leader = lambda v, avail: jnp.argmax(jnp.where(avail, v, -jnp.inf), -1)
  return _gap_weighting(yhat, gamma, mask, leader, lambda n, v_b, v: 1.0 / (n + gamma * (v_b - v)))


def fastcb_probs(lhat: jax.Array, gamma, mask: jax.Array | None = None) -> jax.Array:
  """FastCB (first-order) inverse-gap weighting for predicted *losses* l̂ ∈ [0, 1] over the last axis:

      b = argmin_{a∈A_x} l̂_a,   p(a) = l̂_b / (|A_x| l̂_b + γ(l̂_a − l̂_b))  (a ≠ b),   p(b) = 1 − Σ_{a≠b} p(a).

  Exploration shrinks with the leader's loss l̂_b (first-order / small-L* regime); the 0/0 case
  l̂_a = l̂_b = 0 is its limit 1/|A_x|.
  """
  leader = lambda v, avail: jnp.argmin(jnp.where(avail, v, jnp.inf), -1)

  def others(n, l_b, l):
    den = n * l_b + gamma * (l - l_b)
    safe = jnp.where(den > 0, den, 1.0)
    return jnp.where(den > 0, l_b / safe, 1.0 / n)

  return _gap_weighting(lhat, gamma, mask, leader, others)


def logistic_erm(x: jax.Array, y: jax.Array, *, weights: jax.Array | None = None, l2=1e-3,
                 iters: int = 20) -> jax.Array:
  """Weighted, ridge-regularised logistic regression by Newton's method (`iters` full steps):

      θ̂ = argmin_θ Σ_i w_i [log(1 + e^{θᵀx_i}) − y_i θᵀx_i] + (l2/2)‖θ‖²,
      θ ← θ − H^{-1}g,  g = Xᵀ(w ⊙ (σ(Xθ) − y)) + l2 θ,  H = Xᵀ diag(w σ(1−σ)) X + l2 I.

  `weights` w_i ≥ 0 default to 1 (plain ERM); IPS weights 1/p(a_i) give the importance-weighted ERM,
  and w_i = 0 drops a row (masked buffers). The objective is strictly convex for l2 > 0; Newton
  starts at θ = 0, where the full step is safe (no line search).
  """
  x, y = jnp.asarray(x), jnp.asarray(y)
  if x.ndim != 2 or y.shape != x.shape[:1]:
    raise ValueError(f"`x` must be [n, p] and `y` [n], got {x.shape} and {y.shape}.")
  if isinstance(l2, (int, float)) and not l2 > 0:
    raise ValueError(f"`l2` must be positive, got {l2}.")
  w = jnp.ones_like(y) if weights is None else jnp.asarray(weights, y.dtype)
  if w.shape != y.shape:
    raise ValueError(f"`weights` must have shape {y.shape}, got {w.shape}.")
  eye = jnp.eye(x.shape[1], dtype=x.dtype)

  def newton(_, theta):
    s = jax.nn.sigmoid(x @ theta)
    g = x.T @ (w * (s - y)) + l2 * theta
    h = (x * (w * s * (1.0 - s))[:, None]).T @ x + l2 * eye
    return theta - jax.scipy.linalg.solve(h, g, assume_a="pos")

  return jax.lax.fori_loop(0, iters, newton, jnp.zeros((x.shape[1],), x.dtype))


def vaw_predict(state: RidgeState, x: jax.Array) -> jax.Array:
  """Vovk–Azoury–Warmuth forecast: the current point enters the Gram matrix before predicting,

      ŷ_t = x_tᵀ (λI + Σ_{s≤t} x_s x_sᵀ)^{-1} Σ_{s<t} y_s x_s,

  which gives regret ≤ d B² log(1 + T L²/(λd)) + λ‖u‖² against every u for squared loss. Update the
  statistics with `ridge.ridge_update` after y_t is revealed (plain online ridge predicts x_tᵀθ̂_{t-1}).
  """
  return x @ (sherman_morrison(state.v_inv, x) @ state.b)


# ---------------------------------------------------------------------------------------------------
# Online gradient descent oracles (linear model or a one-hidden-layer MLP).

def linear_apply(params: dict, x: jax.Array) -> jax.Array:
  """f(θ; x) = θᵀx (+ bias)."""
  return x @ params["w"] + params["b"]


def linear_init(dim: int, dtype=None) -> dict:
  dtype = dtype or jnp.result_type(float)
  return {"w": jnp.zeros((dim,), dtype), "b": jnp.zeros((), dtype)}


def mlp_init(key: jax.Array, dim: int, width: int, dtype=None) -> dict:
  """NTK-style initialisation of f(θ; x) = v ᵀ relu(W x + c)/√m: W, v ~ N(0, 1), c = 0."""
  if dim <= 0 or width <= 0:
    raise ValueError(f"`dim` and `width` must be positive, got {dim} and {width}.")
  dtype = dtype or jnp.result_type(float)
  k1, k2 = jax.random.split(key)
  return {"w": jax.random.normal(k1, (width, dim), dtype) / jnp.sqrt(dim), "c": jnp.zeros((width,), dtype),
          "v": jax.random.normal(k2, (width,), dtype)}


def mlp_apply(params: dict, x: jax.Array) -> jax.Array:
  """f(θ; x) = vᵀ relu(W x + c) / √m, batched over the leading axes of x."""
  h = jax.nn.relu(x @ params["w"].T + params["c"])
  return h @ params["v"] / jnp.sqrt(params["v"].shape[0])


LOSSES = ("square", "logistic")


def pointwise_loss(pred: jax.Array, y: jax.Array, loss: str) -> jax.Array:
  """square: (f − y)²/2 on the raw output; logistic (KL / cross-entropy on σ(f)):
  log(1 + e^f) − y f, for y ∈ [0, 1]."""
  if loss == "square":
    return 0.5 * (pred - y) ** 2
  if loss == "logistic":
    return jax.nn.softplus(pred) - y * pred
  raise ValueError(f"`loss` must be one of {LOSSES}, got {loss!r}.")


class OGDState(NamedTuple):
  params: Any
  opt_state: Any
  anchor: Any  # θ_0 for the proximal term


def ogd_optimizer(lr_scale) -> optax.GradientTransformation:
  """SGD with the online step size η_t = c / √(t+1) (t counts updates from 0)."""
  if isinstance(lr_scale, (int, float)) and not lr_scale > 0:
    raise ValueError(f"`lr_scale` must be positive, got {lr_scale}.")
  return optax.sgd(lambda t: lr_scale / jnp.sqrt(t + 1.0))


def ogd_init(params, optimizer: optax.GradientTransformation) -> OGDState:
  return OGDState(params, optimizer.init(params), params)


def ogd_update(state: OGDState, apply_fn: Callable, optimizer: optax.GradientTransformation, x: jax.Array,
               y: jax.Array, *, loss: str = "square", lam0=0.0) -> OGDState:
  """One online gradient step on ℓ(f(θ; x), y) + (λ₀/2)‖θ − θ₀‖² (the proximal term pins a unique
  minimiser near the initialisation θ₀, giving quadratic growth)."""

  def objective(params):
    prox = sum(jnp.sum((p - a) ** 2) for p, a in zip(jax.tree.leaves(params), jax.tree.leaves(state.anchor)))
    return pointwise_loss(apply_fn(params, x), y, loss) + 0.5 * lam0 * prox

  grads = jax.grad(objective)(state.params)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  return OGDState(optax.apply_updates(state.params, updates), opt_state, state.anchor)
