"""Full-information online learning over K experts, and the regret-loss for a linear self-attention policy.

Park, Liu, Ozdaglar & Zhang, *Do LLM Agents Have Regret? A Case Study in Online Learning and Games*
(2024). The paper measures no-regret behaviour against the classical learners and proposes the
unsupervised **regret-loss**, whose minimiser over single-layer linear self-attention (LSA) models is
an FTRL-type update. This module holds

- the learners on a loss sequence `ℓ: [T, K]` (rows are rounds): `hedge` (FTRL with entropy),
  `ftpl` (perturbed leader), `ftl` (the unregularised negative control);
- regret against the best fixed action in hindsight, the tuned Hedge step and its bound;
- loss sequences: i.i.d. uniform, linear trend, sine trend, and the alternating sequence on which
  FTL has linear regret (`SEQUENCES`, one signature so that a horizon can be traced);
- the LSA policy, `regret_loss`, `train_lsa` (optax Adam, one `lax.scan`, vmappable over seeds) and
  `ftrl_alignment` (cosine between the LSA's logits and the FTRL direction −Σ_{s<t} ℓ_s).

In full information every FTRL-type learner plays a function of the prefix sums Σ_{s<t} ℓ_s only, so
one exclusive cumulative sum replaces a sequential scan over rounds; all functions jit and vmap.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rljax.theory.kernels.simplex import ftpl_action, ftrl_probs


def _check_losses(losses) -> jax.Array:
  losses = jnp.asarray(losses)
  if losses.ndim != 2 or losses.shape[0] < 1 or losses.shape[1] < 2:
    raise ValueError(f"`losses` must be [T, K] with T >= 1 and K >= 2, got shape {losses.shape}.")
  return losses


def _check_positive(name: str, value) -> None:
  if isinstance(value, (int, float)) and not value > 0:
    raise ValueError(f"`{name}` must be positive, got {value}.")


def leader_losses(losses: jax.Array) -> jax.Array:
  """Cumulative losses before each round, L_t = Σ_{s<t} ℓ_s (so L_1 = 0): `[T, K]`."""
  losses = _check_losses(losses)
  return jnp.cumsum(losses, 0) - losses


# ------------------------------------------------------------------------------------------------
# Learners


def hedge(losses: jax.Array, eta) -> jax.Array:
  """Hedge (FTRL with the entropy regulariser): π_t = softmax(−η Σ_{s<t} ℓ_s). Returns `[T, K]`."""
  _check_positive("eta", eta)
  return ftrl_probs(leader_losses(losses), eta)


def ftl(losses: jax.Array) -> jax.Array:
  """Follow the leader: π_t uniform on argmin_a Σ_{s<t} ℓ_s(a), the η → ∞ limit of Hedge. `[T, K]`.

  Ties are split uniformly (the limit of the softmax), so FTL's regret on the alternating sequence
  is T/2 − 1/4 exactly.
  """
  cum = leader_losses(losses)
  lead = (cum == jnp.min(cum, -1, keepdims=True)).astype(cum.dtype)
  return lead / jnp.sum(lead, -1, keepdims=True)


def ftpl(key: jax.Array, losses: jax.Array, eta, *, noise: str = "gumbel", n_samples: int = 1) -> jax.Array:
  """Follow the perturbed leader: a_t = argmin_a Σ_{s<t} ℓ_s(a) − z_{t,a}/η, fresh noise z each round.

  Returns the mean of `n_samples` independent one-hot plays per round, `[T, K]`: with n_samples = 1
  the realised play, with more an unbiased estimate of FTPL's action distribution (its pseudo-regret
  then has 1/n_samples of the variance). Gumbel noise makes P(a_t = ·) = softmax(−ηL_t) (Hedge);
  exponential noise is Kalai–Vempala's FTPL.
  """
  _check_positive("eta", eta)
  if n_samples < 1:
    raise ValueError(f"`n_samples` must be >= 1, got {n_samples}.")
  cum = leader_losses(losses)
  keys = jax.random.split(key, n_samples)
  actions = jax.vmap(lambda k: ftpl_action(k, cum, eta, noise=noise))(keys)  # [n_samples, T]
  return jnp.mean(jax.nn.one_hot(actions, cum.shape[-1], dtype=cum.dtype), 0)


def _check_horizon(horizon, n_actions: int) -> None:
  _check_positive("horizon", horizon)
  if n_actions < 2:
    raise ValueError(f"`n_actions` must be >= 2, got {n_actions}.")


def tuned_eta(horizon, n_actions: int):
  """The step that minimises Hedge's bound for losses in [0, 1]: η = √(8 ln K / T)."""
  _check_horizon(horizon, n_actions)
  return jnp.sqrt(8.0 * math.log(n_actions) / horizon)


def hedge_bound(horizon, n_actions: int):
  """Hedge's regret bound with the tuned η, for every sequence in [0, 1]^{T×K}: √(T ln K / 2)."""
  _check_horizon(horizon, n_actions)
  return jnp.sqrt(horizon * math.log(n_actions) / 2.0)


# ------------------------------------------------------------------------------------------------
# Regret


def cumulative_regret(losses: jax.Array, plays: jax.Array) -> jax.Array:
  """R_t = Σ_{s≤t} ⟨ℓ_s, π_s⟩ − min_a Σ_{s≤t} ℓ_s(a) for t = 1..T: `[T]` (external regret)."""
  losses = _check_losses(losses)
  if plays.shape != losses.shape:
    raise ValueError(f"`plays` must have the shape of `losses` {losses.shape}, got {plays.shape}.")
  return jnp.cumsum(jnp.sum(losses * plays, -1)) - jnp.min(jnp.cumsum(losses, 0), -1)


def regret(losses: jax.Array, plays: jax.Array) -> jax.Array:
  """Reg_T = Σ_t ⟨ℓ_t, π_t⟩ − min_a Σ_t ℓ_t(a), against the best fixed action in hindsight."""
  return cumulative_regret(losses, plays)[-1]


# ------------------------------------------------------------------------------------------------
# Loss sequences: (key, n_steps, n_actions, horizon) -> [n_steps, n_actions], zero after `horizon`.
# Zero rows leave every learner's cumulative losses and the regret unchanged, so a sequence padded
# to a static length with a traced horizon gives the regret at that horizon (one compile for all T).


def _pad(losses: jax.Array, horizon) -> jax.Array:
  t = jnp.arange(losses.shape[0])[:, None]
  return jnp.where(t < horizon, losses, 0.0)


def _rounds(n_steps: int, horizon):
  """Round indices t = 1..n_steps as a float column `[n_steps, 1]`, and the horizon (n_steps when None)."""
  horizon = n_steps if horizon is None else horizon
  return jnp.arange(1, n_steps + 1, dtype=jnp.result_type(float))[:, None], horizon


def iid_uniform(key: jax.Array, n_steps: int, n_actions: int, horizon=None) -> jax.Array:
  """ℓ_t(a) ~ Uniform[0, 1] i.i.d. over rounds and actions."""
  t, horizon = _rounds(n_steps, horizon)
  return _pad(jax.random.uniform(key, (n_steps, n_actions), t.dtype), horizon)


def linear_trend(key: jax.Array, n_steps: int, n_actions: int, horizon=None) -> jax.Array:
  """ℓ_t(a) = clip(a_0(a) + b(a)·t/T, 0, 1) with a_0 ~ U[0, 1], b ~ U[−1, 1] per action."""
  t, horizon = _rounds(n_steps, horizon)
  k0, kb = jax.random.split(key)
  a0 = jax.random.uniform(k0, (n_actions,), t.dtype)
  b = jax.random.uniform(kb, (n_actions,), t.dtype, -1.0, 1.0)
  return _pad(jnp.clip(a0 + b * t / horizon, 0.0, 1.0), horizon)


def sine_trend(key: jax.Array, n_steps: int, n_actions: int, horizon=None, *, period: float = 50.0) -> jax.Array:
  """ℓ_t(a) = ½ + ½ sin(2πt/P + φ_a) with phases φ_a ~ U[0, 2π]."""
  t, horizon = _rounds(n_steps, horizon)
  phase = jax.random.uniform(key, (n_actions,), t.dtype, 0.0, 2 * jnp.pi)
  return _pad(0.5 + 0.5 * jnp.sin(2 * jnp.pi * t / period + phase), horizon)


def alternating(key: jax.Array, n_steps: int, n_actions: int = 2, horizon=None) -> jax.Array:
  """ℓ_1 = (½, 0), then (0, 1), (1, 0), (0, 1), ... (K = 2; the key is unused).

  The leader flips every round and FTL always picks the action about to lose: Reg_T = T/2 − 1/4,
  while the best action loses ⌊(T−1)/2⌋ + ½·[T even].
  """
  del key
  if n_actions != 2:
    raise ValueError(f"the alternating sequence has `n_actions` = 2, got {n_actions}.")
  t, horizon = _rounds(n_steps, horizon)
  odd = jnp.mod(t[:, 0], 2) == 1
  seq = jnp.stack([odd, ~odd], -1).astype(t.dtype)
  return _pad(seq.at[0].set(jnp.asarray([0.5, 0.0], t.dtype)), horizon)


SEQUENCES: dict[str, Callable] = {
    "iid": iid_uniform, "linear_trend": linear_trend, "sine_trend": sine_trend, "alternating": alternating,
}


# ------------------------------------------------------------------------------------------------
# Linear self-attention policy and the regret-loss


class LSAParams(NamedTuple):
  """A single linear self-attention layer on tokens z_s = (ℓ_s, 1) ∈ R^{K+1}, read at z_q = (0, 1)."""

  w_v: jax.Array  # [K, K+1]: value map (only the policy coordinates are read out)
  w_kq: jax.Array  # [K+1, K+1]: key–query product W_Kᵀ W_Q


def init_lsa(key: jax.Array, n_actions: int, scale: float = 0.1) -> LSAParams:
  """Gaussian initialisation with standard deviation `scale`."""
  _check_positive("scale", scale)
  kv, kq = jax.random.split(key)
  d = n_actions + 1
  dtype = jnp.result_type(float)
  return LSAParams(scale * jax.random.normal(kv, (n_actions, d), dtype),
                   scale * jax.random.normal(kq, (d, d), dtype))


def ftrl_lsa(n_actions: int, eta) -> LSAParams:
  """The LSA weights that implement Hedge: W_V = [−ηI, 0], W_KQ z_q = e_{K+1}, so logits = −ηΣ_{s<t}ℓ_s."""
  dtype = jnp.result_type(float)
  w_v = jnp.concatenate([-eta * jnp.eye(n_actions, dtype=dtype), jnp.zeros((n_actions, 1), dtype)], 1)
  w_kq = jnp.zeros((n_actions + 1, n_actions + 1), dtype).at[-1, -1].set(1.0)
  return LSAParams(w_v, w_kq)


def lsa_logits(params: LSAParams, losses: jax.Array) -> jax.Array:
  """LSA read-out before round t from the past tokens only:

      logits_t = Σ_{s<t} W_V z_s · (z_sᵀ W_KQ z_q),   z_s = (ℓ_s, 1), z_q = e_{K+1}.   `[T, K]`
  """
  losses = _check_losses(losses)
  if params.w_v.shape != (losses.shape[1], losses.shape[1] + 1):
    raise ValueError(f"`params.w_v` must be [K, K+1] for K = {losses.shape[1]}, got {params.w_v.shape}.")
  z = jnp.concatenate([losses, jnp.ones_like(losses[:, :1])], 1)
  scores = z @ params.w_kq[:, -1]
  return leader_losses((z @ params.w_v.T) * scores[:, None])


def lsa_policy(params: LSAParams, losses: jax.Array) -> jax.Array:
  """π_t = softmax(logits_t) of the LSA layer: `[T, K]`."""
  return jax.nn.softmax(lsa_logits(params, losses), -1)


def soft_max_regret(cum_regret: jax.Array, k) -> jax.Array:
  """f_k(R_1..R_T) = Σ_t R_t e^{kR_t} / Σ_t e^{kR_t}, a smooth max_t R_t (the limit k → ∞)."""
  return jnp.sum(cum_regret * jax.nn.softmax(k * cum_regret, -1), -1)


def regret_loss(params: LSAParams, losses: jax.Array, *, k=10.0) -> jax.Array:
  """The regret-loss on a batch `losses: [N, T, K]`:

      L(θ) = mean_n h(f_k(R_1, ..., R_T)),   h(x) = max(0, x)²,
      R_t = Σ_{s≤t} ⟨ℓ_s, π_θ(ℓ_{1:s−1})⟩ − min_a Σ_{s≤t} ℓ_s(a).

  Unsupervised: it needs loss sequences only, no optimal-action labels.
  """
  if losses.ndim != 3:
    raise ValueError(f"`losses` must be [N, T, K], got shape {losses.shape}.")
  _check_positive("k", k)
  regrets = jax.vmap(lambda seq: cumulative_regret(seq, lsa_policy(params, seq)))(losses)
  return jnp.mean(jnp.maximum(soft_max_regret(regrets, k), 0.0) ** 2)


class LSAConfig(NamedTuple):
  """Static training settings (hashable, a `jit` static argument)."""

  n_actions: int = 2
  horizon: int = 25  # T of the training sequences
  n_train: int = 1024  # i.i.d. Uniform[0, 1]^{T×K} training sequences, drawn once (full-batch Adam)
  steps: int = 400
  lr: float = 1e-2
  k: float = 10.0  # sharpness of the soft max over t
  init_scale: float = 0.1


def train_lsa(key: jax.Array, cfg: LSAConfig) -> tuple[LSAParams, jax.Array]:
  """Full-batch Adam on the regret-loss over `n_train` i.i.d. Uniform[0, 1] sequences of length T.

  The full batch makes the gradient deterministic, so the final losses of different restarts can be
  compared. Returns the final parameters and the loss curve `[steps]`. Vmap over keys for seeds:
  `jax.vmap(functools.partial(train_lsa, cfg=cfg))(keys)`.
  """
  for name in ("horizon", "n_train", "steps"):
    if getattr(cfg, name) < 1:
      raise ValueError(f"`cfg.{name}` must be >= 1, got {getattr(cfg, name)}.")
  if cfg.n_actions < 2:
    raise ValueError(f"`cfg.n_actions` must be >= 2, got {cfg.n_actions}.")
  _check_positive("cfg.lr", cfg.lr)
  _check_positive("cfg.k", cfg.k)
  return _train_lsa(key, cfg)


def sample_sequences(key: jax.Array, n: int, n_steps: int, n_actions: int, kind: str = "iid") -> jax.Array:
  """`n` independent sequences of one `SEQUENCES` kind: `[n, n_steps, n_actions]`."""
  if kind not in SEQUENCES:
    raise ValueError(f"`kind` must be one of {tuple(SEQUENCES)}, got {kind!r}.")
  return jax.vmap(lambda k: SEQUENCES[kind](k, n_steps, n_actions))(jax.random.split(key, n))


@functools.partial(jax.jit, static_argnames="cfg")
def _train_lsa(key: jax.Array, cfg: LSAConfig) -> tuple[LSAParams, jax.Array]:
  k_init, k_data = jax.random.split(key)
  params = init_lsa(k_init, cfg.n_actions, cfg.init_scale)
  data = sample_sequences(k_data, cfg.n_train, cfg.horizon, cfg.n_actions)
  opt = optax.adam(cfg.lr)
  loss_grad = jax.value_and_grad(functools.partial(regret_loss, losses=data, k=cfg.k))

  def step(carry, _):
    params, opt_state = carry
    loss, grads = loss_grad(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  (params, _), curve = jax.lax.scan(step, (params, opt.init(params)), None, cfg.steps)
  return params, curve


def ftrl_alignment(params: LSAParams, losses: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Cosine between the LSA's logits and the FTRL direction −L_t = −Σ_{s<t} ℓ_s, both centred over
  actions (a softmax ignores constant shifts), averaged over rounds t ≥ 2 and sequences `[N, T, K]`:

      cos = mean_{n,t} ⟨P y_t, −P L_t⟩ / (‖P y_t‖ ‖P L_t‖),   P = I − 11ᵀ/K,

  and the implied FTRL step η̂ = mean_{n,t} ⟨P y_t, −P L_t⟩ / ‖P L_t‖² (Hedge has y_t = −ηL_t).
  Returns (cos, η̂).
  """
  if losses.ndim != 3:
    raise ValueError(f"`losses` must be [N, T, K], got shape {losses.shape}.")

  def per_sequence(seq):
    y = lsa_logits(params, seq)[1:]
    d = -leader_losses(seq)[1:]
    y = y - jnp.mean(y, -1, keepdims=True)
    d = d - jnp.mean(d, -1, keepdims=True)
    dot = jnp.sum(y * d, -1)
    tiny = jnp.finfo(y.dtype).tiny
    cos = dot / jnp.maximum(jnp.linalg.norm(y, axis=-1) * jnp.linalg.norm(d, axis=-1), tiny)
    return cos, dot / jnp.maximum(jnp.sum(d * d, -1), tiny)

  cos, eta = jax.vmap(per_sequence)(losses)
  return jnp.mean(cos), jnp.mean(eta)
