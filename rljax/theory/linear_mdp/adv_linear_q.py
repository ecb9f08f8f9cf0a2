"""Policy optimisation in adversarial linear-Q MDPs with bandit feedback and a simulator.

Dai, Luo, Wei, Zimmert, "Refined Regret for Adversarial MDPs with Linear Function Approximation",
ICML 2023. The learner keeps, per layer h, the running sum Θ_h = Σ_{τ<k} θ̂_{τ,h} of loss-to-go
estimates θ̂_{τ,h} = Σ̂^{-1}_{τ,h} φ(s_{τ,h}, a_{τ,h}) L_{τ,h}, so that the cumulative estimated
Q-function at any state is φ(s,·)ᵀΘ_h (H d-vectors of state, whatever the number of states), and plays
per-state FTRL on it:

- Algorithm 1 ("logbarrier"): log-barrier FTRL, regret Õ(poly(H)√(dAK)); its analysis tolerates
  arbitrarily negative Q̂, so no clipping or exploration is needed;
- Algorithm 2 ("magred"): exponential weights; the magnitude-reduced estimator Q̃ = Q̂ − c(s) only
  shifts Q̂ by a per-state constant, which leaves the policy unchanged but makes ηQ̃ ≥ −1, so the
  learning rate need not shrink with A: regret Õ(poly(H)√(dK));
- baseline ("explore_mix"): with probability ε_k = k^{-1/3} play the uniform policy and build the
  estimate from exploration episodes only (importance weight 1/ε_k), exponential weights with
  η_k ∝ k^{-2/3}: the Õ(K^{2/3}) approach.

Σ̂_{k,h} is the exact covariance Σ^{π_k}_h + γ_k I from occupancy measures ("exact", the paper's
simulator with M = ∞), the empirical-ridge inverse from M simulator samples ("mc"), or matrix
geometric resampling ("mgr"). Learning rates are anytime (K replaced by k), so one run gives the
whole regret-vs-K curve.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax.theory.envs import linear_mdp as env
from rljax.theory.kernels import inverse_estimators as inv
from rljax.theory.kernels import occupancy as occ
from rljax.theory.kernels.simplex import ftrl_probs

ALGOS = ("logbarrier", "magred", "explore_mix")
COVS = ("exact", "mc", "mgr")
BISECTION_ITERS = 60  # the log-barrier normaliser to (A/η)·2^-60, far below float64 loss resolution


class AdvLinQCfg(NamedTuple):
  """`algo` is a name from ALGOS or its index (an int array may be traced, e.g. vmapped over algorithms,
  so that one compiled run serves all three); `eta`, `gamma`, `explore_power` may be traced too;
  `cov`, `n_samples` and `beta` are static."""
  algo: str | int | jax.Array = "logbarrier"
  eta: float = 1.0  # scale c of the learning rate (see `learning_rate`)
  gamma: float = 1.0  # ridge γ_k = gamma/√k added to Σ^{π_k}_h
  cov: str = "exact"
  n_samples: int = 64  # M simulator samples per layer and episode for cov = "mc" / "mgr"
  beta: float = 0.5  # MGR step, < 1/λ_max(Σ) (‖φ‖ ≤ 1)
  explore_power: float = 1.0 / 3.0  # explore_mix: ε_k = k^{-explore_power}


class AdvLinQState(NamedTuple):
  theta_cum: jax.Array  # f[H,d], Θ_h = Σ_τ θ̂_{τ,h}
  k: jax.Array  # episodes seen so far


class Trajectory(NamedTuple):
  phi: jax.Array  # f[H,d], features of the visited (s_h, a_h)
  loss: jax.Array  # f[H], realised losses ℓ_k(s_h, a_h)


def algo_code(algo):
  """Index of the algorithm in ALGOS (names are checked; traced indices pass through)."""
  if isinstance(algo, str):
    if algo not in ALGOS:
      raise ValueError(f"`algo` must be one of {ALGOS}, got {algo!r}.")
    return ALGOS.index(algo)
  return algo


def check_cfg(cfg: AdvLinQCfg) -> None:
  algo_code(cfg.algo)
  if cfg.cov not in COVS:
    raise ValueError(f"`cov` must be one of {COVS}, got {cfg.cov!r}.")
  if cfg.n_samples < 1 or cfg.beta <= 0:
    raise ValueError(f"`n_samples` and `beta` must be positive, got {cfg.n_samples} and {cfg.beta}.")
  for name in ("eta", "gamma"):
    v = getattr(cfg, name)
    if isinstance(v, (int, float)) and (v < 0 or (name == "eta" and v == 0)):
      raise ValueError(f"`{name}` must be {'positive' if name == 'eta' else '>= 0'}, got {v}.")


def init(horizon: int, dim: int) -> AdvLinQState:
  return AdvLinQState(jnp.zeros((horizon, dim), jnp.result_type(float)), jnp.zeros((), jnp.int32))


def learning_rate(cfg: AdvLinQCfg, k, horizon: int, n_actions, dim: int):
  """Anytime learning rate at episode k ≥ 1 (the paper's tunings with K → k):
  logbarrier η_k = c/√(A d H⁴ k); magred η_k = c/√(d H⁴ k), free of A; explore_mix η_k = c·k^{-2/3}/√(d H⁴)."""
  code = algo_code(cfg.algo)
  k = jnp.maximum(jnp.asarray(k, jnp.result_type(float)), 1.0)
  base = cfg.eta / jnp.sqrt(dim * horizon**4)
  rates = jnp.stack([base / jnp.sqrt(n_actions * k), base / jnp.sqrt(k), base * k ** (-2.0 / 3.0)])
  return rates[code]


def logbarrier_ftrl_step(cum_losses: jax.Array, eta) -> tuple[jax.Array, jax.Array]:
  """Log-barrier FTRL p = argmin_p ⟨p, L⟩ − (1/η) Σ_a log p_a (over the last axis):
  p_a = 1/(η(L_a + λ)), with the normaliser λ > −min_a L_a fixed by Σ_a p_a = 1 (bisection in
  kernels.simplex). Returns (p, λ) with λ recovered from the KKT condition at the leader."""
  p = ftrl_probs(cum_losses, eta, regularizer="log_barrier", iters=BISECTION_ITERS)
  lead = jnp.argmax(p, -1)[..., None]
  lam = 1.0 / (eta * jnp.take_along_axis(p, lead, -1)) - jnp.take_along_axis(cum_losses, lead, -1)
  return p, lam[..., 0]


def policy(state: AdvLinQState, feats: jax.Array, cfg: AdvLinQCfg, action_mask: jax.Array | None = None) -> jax.Array:
  """π_k(·|s) = FTRL on the cumulative estimated Q, Σ_τ Q̂_τ(s,a) = φ(s,a)ᵀΘ_h, at every state given:
  `feats: f[H, ..., A, d]` (layer first). Log-barrier for Algorithm 1, exponential weights otherwise.
  Actions outside `action_mask: bool[A]` get probability 0 (cumulative loss +∞)."""
  H, d = state.theta_cum.shape
  if feats.shape[0] != H or feats.shape[-1] != d:
    raise ValueError(f"`feats` must be [H={H}, ..., A, d={d}], got {feats.shape}.")
  mask = jnp.ones(feats.shape[-2], bool) if action_mask is None else action_mask
  cum = jnp.where(mask, jnp.einsum("h...ad,hd->h...a", feats, state.theta_cum), jnp.inf)
  eta = learning_rate(cfg, state.k + 1, H, jnp.sum(mask), d)
  code = algo_code(cfg.algo)
  if isinstance(code, int):
    return logbarrier_ftrl_step(cum, eta)[0] if code == 0 else ftrl_probs(cum, eta)
  return jnp.where(code == 0, logbarrier_ftrl_step(cum, eta)[0], ftrl_probs(cum, eta))


def magnitude_reduce(q_hat: jax.Array) -> jax.Array:
  """Per-state shift of the estimate over the action axis, Q̃(s,·) = Q̂(s,·) − min{0, min_a Q̂(s,a)}, so that
  Q̃ ≥ 0 and ηQ̃ ≥ −1 holds for any η. (The paper's shift also controls the second moment. A per-state
  constant leaves every FTRL policy on the simplex unchanged, exponential weights and log-barrier alike, so
  the shift enters the analysis, which then allows an A-free learning rate, not the trajectory.)"""
  return q_hat - jnp.minimum(0.0, jnp.min(q_hat, -1, keepdims=True))


def loss_to_go(losses: jax.Array) -> jax.Array:
  """L_h = Σ_{h' ≥ h} ℓ_{h'} along the trajectory."""
  return jnp.cumsum(losses[::-1])[::-1]


def update(state: AdvLinQState, traj: Trajectory, cov_inv: jax.Array, weight=1.0) -> AdvLinQState:
  """Θ_h ← Θ_h + w · Σ̂^{-1}_h φ(s_h, a_h) L_h for every layer (w = 1, or 1{explore}/ε_k for the baseline)."""
  theta_hat = jnp.einsum("hij,hj,h->hi", cov_inv, traj.phi, loss_to_go(traj.loss))
  return AdvLinQState(state.theta_cum + weight * theta_hat, state.k + 1)


def mgr(key, q: jax.Array, phi: jax.Array, beta, n_samples: int) -> jax.Array:
  """Matrix geometric resampling of (Σ^π_h)^{-1} for every layer from M simulator samples (s,a) ~ q^π_h:
  Σ̂⁺_h = βI + β Σ_{j≤M} Π_{i≤j}(I − βφ_iφ_iᵀ). `q: f[H,S,A]`, `phi: f[S,A,d]`. Returns f[H,d,d]."""
  return _sampled_inverse(key, q, phi, n_samples, lambda x: inv.matrix_geometric_resampling(x, beta))


def _sampled_inverse(key, q, phi, n_samples, estimator):
  feats = phi.reshape(-1, phi.shape[-1])
  draw = lambda k, q_h: estimator(inv.sample_features(k, q_h.reshape(-1), feats, n_samples))
  return jax.vmap(draw)(jax.random.split(key, q.shape[0]), q)


def cov_inverse(key, cfg: AdvLinQCfg, q: jax.Array, phi: jax.Array, gamma) -> jax.Array:
  """Σ̂^{-1}_h for the policy with occupancy `q: f[H,S,A]`: exact (Σ^π_h + γI)^{-1}, the empirical-ridge
  inverse from M samples, or MGR. Returns f[H,d,d]."""
  if cfg.cov == "exact":
    cov = occ.feature_covariance(q, phi) + gamma * jnp.eye(phi.shape[-1], dtype=phi.dtype)
    return jnp.linalg.inv(cov)
  if cfg.cov == "mc":
    return _sampled_inverse(key, q, phi, cfg.n_samples, lambda x: inv.empirical_ridge_inverse(x, gamma))
  return mgr(key, q, phi, cfg.beta, cfg.n_samples)


def rollout(key, params: env.LinearMDP, probs: jax.Array, episode) -> Trajectory:
  """One episode of the policy table `probs: f[H,S,A]` in the real MDP through env.reset/env.step."""
  k_reset, k_run = jax.random.split(key)
  state, _ = env.reset(k_reset, params, episode)

  def body(st, k):
    k_a, k_s = jax.random.split(k)
    a = jax.random.categorical(k_a, jnp.log(probs[st.h, st.s]))
    st, _, _, _, info = env.step(k_s, params, st, a)
    return st, (info["phi"], info["loss"])

  _, (phis, losses) = jax.lax.scan(body, state, jax.random.split(k_run, probs.shape[0]))
  return Trajectory(phis, losses)


def run(key, cfg: AdvLinQCfg, params: env.LinearMDP, n_episodes: int, checkpoints) -> dict[str, jax.Array]:
  """K = n_episodes episodes under one `lax.scan`; returns the pseudo-regret
  Σ_{k≤K} ⟨q^{π_k}, ℓ_k⟩ − min_π Σ_{k≤K} ⟨q^π, ℓ_k⟩ and the realised regret (realised losses instead of
  expectations) at every K in `checkpoints`, plus the final policy's smallest available-action probability.
  For explore_mix, π_k is the mixture (1 − ε_k)·FTRL + ε_k·uniform and only exploration episodes feed
  the estimate, with weight 1/ε_k and the uniform policy's covariance."""
  check_cfg(cfg)
  code = algo_code(cfg.algo)
  H = params.P.shape[0]
  S, A, d = params.phi.shape
  dtype = params.phi.dtype
  feats = jnp.broadcast_to(params.phi, (H, S, A, d))
  mask = params.action_mask
  uniform = jnp.broadcast_to(mask / jnp.sum(mask), (H, S, A)).astype(dtype)
  q_unif = occ.occupancy(params.P, jnp.log(uniform), params.s0)

  def episode(state, key):
    k = state.k + 1
    k_exp, k_roll, k_cov = jax.random.split(key, 3)
    probs = policy(state, feats, cfg, mask)
    losses = env.loss_table(params, k)
    kf = k.astype(dtype)
    eps = jnp.where(code == 2, jnp.minimum(1.0, kf ** (-cfg.explore_power)), 0.0)
    explore = jax.random.bernoulli(k_exp, eps)
    q_pi = occ.occupancy(params.P, jnp.log(probs), params.s0)
    exp_loss = eps * occ.expected_return(q_unif, losses) + (1 - eps) * occ.expected_return(q_pi, losses)
    weight = jnp.where(code == 2, explore / jnp.maximum(eps, 1e-300), 1.0)
    q_est = jnp.where(code == 2, q_unif, q_pi)
    traj = rollout(k_roll, params, jnp.where(explore, uniform, probs), k)
    state = update(state, traj, cov_inverse(k_cov, cfg, q_est, params.phi, cfg.gamma / jnp.sqrt(kf)), weight)
    return state, (exp_loss, jnp.sum(traj.loss))

  state, (exp_loss, real_loss) = jax.lax.scan(episode, init(H, d), jax.random.split(key, n_episodes))
  checkpoints = jnp.asarray(checkpoints, jnp.int32)
  best = env.oracle(params, checkpoints)
  idx = checkpoints - 1
  final = policy(state, feats, cfg, mask)
  return {
      "regret": jnp.cumsum(exp_loss)[idx] - best,
      "realised_regret": jnp.cumsum(real_loss)[idx] - best,
      "min_prob": jnp.min(jnp.where(mask, final, 1.0)),
  }
