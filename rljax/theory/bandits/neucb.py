"""NeuSquareCB and NeuFastCB: contextual bandits on an online neural regression oracle (Deb, Ban, Zuo, He,
Banerjee, "Contextual Bandits with Online Neural Regression", ICLR 2024).

The Foster–Rakhlin reduction with a one-hidden-layer MLP regressor f(θ; x_{t,a}) trained online.
NeuSquareCB regresses rewards with the square loss and plays inverse-gap weighting (regret Õ(√(KT)));
NeuFastCB regresses losses 1 − r with the KL (cross-entropy) loss on σ(f) and plays FastCB weighting
(first-order regret Õ(√(K L*) + K)). The paper's prediction perturbation is replaced by the proximal
term (λ₀/2)‖θ − θ₀‖² [rljax], which gives a unique minimiser with quadratic growth near θ₀.

The oracle makes `n_steps` OGD steps per round (η_u = c/√(u+1), u counting steps): the newest sample
first, then samples drawn uniformly from a ring buffer of the last `window` rounds [rljax], so the
regressor is accurate within the horizon. The exploration γ_t = c_γ √(K t) grows with t.

Environment [rljax]: a realizable teacher network h*(x_{t,a}) of the same architecture (unit-variance
outputs), μ_a(x) = σ(s h*(x_{t,a})), Bernoulli rewards; a large sharpness s makes the best arm's loss
small (small L*), and the loss mean σ(−s h*) lies in the KL model class.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax.theory.kernels import regression_oracles as ro

__all__ = ["NeuCBConfig", "Env", "State", "fastcb_probs", "make_env", "mean_rewards", "arm_features", "gamma_t",
           "init", "act", "update", "run"]
fastcb_probs = ro.fastcb_probs
ALGOS = ("square", "fast")


class NeuCBConfig(NamedTuple):
  algo: str = "square"
  n_arms: int = 4
  dim: int = 10
  width: int = 64
  horizon: int = 20_000
  lr_scale: float = 1.0  # c in η_u = c/√(u+1)
  gamma_scale: float = 1.0  # c_γ in γ_t = c_γ √(K t)
  lam0: float = 1e-3
  n_steps: int = 4  # OGD steps per round (1 = plain online gradient descent)
  window: int = 256  # replay ring buffer

  def validate(self) -> "NeuCBConfig":
    if self.algo not in ALGOS:
      raise ValueError(f"`algo` must be one of {ALGOS}, got {self.algo!r}.")
    if self.n_arms < 2 or min(self.dim, self.width, self.horizon, self.n_steps, self.window) < 1:
      raise ValueError("`n_arms` must be >= 2 and `dim`, `width`, `horizon`, `n_steps`, `window` positive.")
    if not (self.lr_scale > 0 and self.gamma_scale >= 0 and self.lam0 >= 0):
      raise ValueError("`lr_scale` must be positive, `gamma_scale` and `lam0` non-negative.")
    return self


class Env(NamedTuple):
  teacher: dict  # MLP parameters of h*
  sharpness: jax.Array  # s


class State(NamedTuple):
  oracle: ro.OGDState
  feats: jax.Array  # [W, d + K] replay buffer of chosen-arm features
  targets: jax.Array  # [W]
  t: jax.Array  # rounds seen


def arm_features(x: jax.Array, n_arms: int) -> jax.Array:
  """x_{t,a} = [x, onehot(a)] for every arm: [K, d + K]."""
  return jnp.concatenate([jnp.broadcast_to(x, (n_arms,) + x.shape), jnp.eye(n_arms, dtype=x.dtype)], -1)


def make_env(key: jax.Array, n_arms: int = 4, dim: int = 10, width: int = 16, sharpness=1.0) -> Env:
  """Teacher h* = MLP(width) on x_{t,a}, rescaled to unit output variance over contexts x ~ U(sphere)."""
  k1, k2 = jax.random.split(key)
  teacher = ro.mlp_init(k1, dim + n_arms, width)
  x = jax.random.normal(k2, (2048, dim))
  x = x / jnp.linalg.norm(x, axis=-1, keepdims=True)
  h = ro.mlp_apply(teacher, jax.vmap(lambda xi: arm_features(xi, n_arms))(x))
  teacher = dict(teacher, v=teacher["v"] / jnp.std(h))
  return Env(teacher, jnp.asarray(sharpness, x.dtype))


def mean_rewards(env: Env, x: jax.Array) -> jax.Array:
  """μ_a(x) = σ(s h*(x_{t,a})) for all arms: [K]."""
  n_arms = env.teacher["w"].shape[1] - x.shape[-1]
  return jax.nn.sigmoid(env.sharpness * ro.mlp_apply(env.teacher, arm_features(x, n_arms)))


def gamma_t(t, cfg: NeuCBConfig):
  """γ_t = c_γ √(K t) (t ≥ 1): the √(KT/Reg_sq) tuning of SquareCB with Reg_sq = O(log T) dropped."""
  return cfg.gamma_scale * jnp.sqrt(cfg.n_arms * jnp.maximum(t, 1.0))


def init(key: jax.Array, cfg: NeuCBConfig) -> State:
  cfg.validate()
  params = ro.mlp_init(key, cfg.dim + cfg.n_arms, cfg.width)
  dtype = params["w"].dtype
  return State(ro.ogd_init(params, ro.ogd_optimizer(cfg.lr_scale)),
               jnp.zeros((cfg.window, cfg.dim + cfg.n_arms), dtype), jnp.zeros((cfg.window,), dtype),
               jnp.zeros((), jnp.int32))


def predict(state: State, x: jax.Array, cfg: NeuCBConfig) -> jax.Array:
  """Predicted rewards f(θ; x_{t,a}) (square) or predicted losses σ(f(θ; x_{t,a})) (fast): [K]."""
  f = ro.mlp_apply(state.oracle.params, arm_features(x, cfg.n_arms))
  return f if cfg.algo == "square" else jax.nn.sigmoid(f)


def act(state: State, x: jax.Array, key: jax.Array, cfg: NeuCBConfig):
  """Square: p = IGW(ŷ, γ_t) on predicted rewards, p(a) = 1/(K + γ_t(ŷ_b − ŷ_a)); fast:
  p = FastCB(l̂, γ_t) on predicted losses, p(a) = l̂_b/(K l̂_b + γ_t(l̂_a − l̂_b)). Returns (arm, probs)."""
  pred, g = predict(state, x, cfg), gamma_t(state.t + 1.0, cfg)
  probs = ro.igw_probs(pred, g) if cfg.algo == "square" else ro.fastcb_probs(pred, g)
  return jax.random.categorical(key, jnp.log(jnp.maximum(probs, 1e-300))), probs


def update(state: State, x: jax.Array, arm, reward, key: jax.Array, cfg: NeuCBConfig) -> State:
  """Stores (x_{t,a}, target) and makes `n_steps` OGD steps on ℓ(f(θ; x_i), y_i) + (λ₀/2)‖θ − θ₀‖²:
  the newest sample, then uniform draws i from the buffer. ℓ = (f − r)²/2 (square) or the
  cross-entropy log(1 + e^f) − (1 − r) f on the loss 1 − r (fast)."""
  feat = arm_features(x, cfg.n_arms)[arm]
  target = reward if cfg.algo == "square" else 1.0 - reward
  slot = state.t % cfg.window
  feats, targets = state.feats.at[slot].set(feat), state.targets.at[slot].set(target)
  filled = jnp.minimum(state.t + 1, cfg.window)
  idx = jnp.concatenate([slot[None], jax.random.randint(key, (cfg.n_steps - 1,), 0, filled)])
  loss = "square" if cfg.algo == "square" else "logistic"
  opt = ro.ogd_optimizer(cfg.lr_scale)

  def step(oracle, i):
    return ro.ogd_update(oracle, ro.mlp_apply, opt, feats[i], targets[i], loss=loss, lam0=cfg.lam0), None

  oracle, _ = jax.lax.scan(step, state.oracle, idx)
  return State(oracle, feats, targets, state.t + 1)


def run(key: jax.Array, cfg: NeuCBConfig, env: Env, n_checkpoints: int):
  """T rounds (nested lax.scan). Returns at checkpoints t [C]: cumulative pseudo-regret Σ max μ − μ_{a_t},
  cumulative best-arm loss L* = Σ (1 − max μ), and the oracle's mean squared error over all arms of
  the block, mean_a (pred_a − m_a)² with m = μ (square) or 1 − μ (fast)."""
  cfg.validate()
  if cfg.horizon % n_checkpoints:
    raise ValueError(f"`n_checkpoints`={n_checkpoints} must divide the horizon {cfg.horizon}.")
  k_init, k_run = jax.random.split(key)
  dtype = env.teacher["w"].dtype

  def round_(carry, k):
    state, reg, lstar = carry
    kx, ka, kr, ku = jax.random.split(k, 4)
    x = jax.random.normal(kx, (cfg.dim,), dtype)
    x = x / jnp.linalg.norm(x)
    mu = mean_rewards(env, x)
    err = jnp.mean((predict(state, x, cfg) - (mu if cfg.algo == "square" else 1.0 - mu)) ** 2)
    arm, _ = act(state, x, ka, cfg)
    reward = jax.random.bernoulli(kr, mu[arm]).astype(dtype)
    state = update(state, x, arm, reward, ku, cfg)
    return (state, reg + jnp.max(mu) - mu[arm], lstar + 1.0 - jnp.max(mu)), err

  def block(carry, keys):
    carry, err = jax.lax.scan(round_, carry, keys)
    return carry, (carry[1], carry[2], jnp.mean(err))

  keys = jax.random.split(k_run, cfg.horizon).reshape(n_checkpoints, cfg.horizon // n_checkpoints, -1)
  zero = jnp.zeros((), dtype)
  _, (reg, lstar, mse) = jax.lax.scan(block, (init(k_init, cfg), zero, zero), keys)
  return (jnp.arange(n_checkpoints) + 1) * (cfg.horizon // n_checkpoints), reg, lstar, mse
