"""R2PVI: robust regularised pessimistic value iteration for d-rectangular linear MDPs.

Tang, Liu & Xu, "Robust Offline RL with Linearly Structured f-Divergence Regularization", ICML 2025.
In a d-rectangular robust regularised MDP (d-RRMDP) the adversary perturbs each factor μ_{h,i} of the
nominal transition P_h(·|s,a) = Σ_i φ_i(s,a) μ_{h,i} at a price λ·D_f(μ_i‖μ⁰_{h,i}), so the robust
Bellman operator is

    Q_h(s,a) = r_h(s,a) + Σ_i φ_i(s,a) inf_{μ_i} { E_{μ_i}[V_{h+1}] + λ D_f(μ_i‖μ⁰_{h,i}) },

and each infimum has a closed-form (TV, KL) or one-dimensional (χ²) dual. `fit` is the offline
algorithm: the duals are evaluated under the ridge-regressed factors, minus a pessimism bonus;
div="none" gives the non-robust PEVI baseline, and div="drpvi" / "drvi_l" the constrained
distributionally robust baselines (an uncertainty ball of radius ρ instead of a price λ: TV ball as in
DRPVI, Liu & Xu 2024; KL ball as in DRVI-L, Ma et al. 2022), whose duals need an inner search with one
regression per grid point — the cost R2PVI's closed forms avoid. `robust_value_iteration` is the exact robust planner
(known μ⁰) built on the divergence duals of `kernels.divergences`, re-exported here as
`dual_kl`, `dual_tv`, `dual_chi2`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax.theory.kernels import divergences

DIVERGENCES = ("none", "tv", "kl", "chi2", "drpvi", "drvi_l")


def dual_kl(v, p0, lam):
  """inf_μ E_μ V + λ KL(μ‖μ⁰) = −λ log E_{μ⁰} e^{−V/λ} (`kernels.divergences.dual_kl`)."""
  return divergences.dual_kl(v, p0, lam)


def dual_tv(v, p0, lam):
  """inf_μ E_μ V + λ TV(μ, μ⁰) = E_{μ⁰} min{V, min_s V(s) + λ} (`kernels.divergences.dual_tv`)."""
  return divergences.dual_tv(v, p0, lam)


def dual_chi2(v, p0, lam):
  """inf_μ E_μ V + λ χ²(μ‖μ⁰) = sup_α E_{μ⁰}V_α − Var_{μ⁰}(V_α)/(4λ), V_α = min{V, α}
  (`kernels.divergences.dual_chi2`, exact 1-D search)."""
  return divergences.dual_chi2(v, p0, lam)


_DUALS = {"tv": dual_tv, "kl": dual_kl, "chi2": dual_chi2}


class R2PVIConfig(NamedTuple):
  div: str = "tv"  # "none" (PEVI), "tv", "kl" or "chi2"
  lam_r: float = 0.1  # ridge of Λ_h
  lam: float = 0.1  # regularisation strength λ of the adversary
  beta: float = 1.0  # pessimism
  n_alpha: int = 64  # grid of the inner search (χ², and the DRPVI / DRVI-L baselines)
  rho: float = 0.1  # radius of the uncertainty ball of the constrained baselines drpvi (TV) and drvi_l (KL)


class OfflineData(NamedTuple):
  phi: jax.Array  # f[H, N, d]: φ(s_h, a_h)
  reward: jax.Array  # f[H, N]
  next_phi: jax.Array  # f[H, N, A, d]: φ(s_{h+1}, ·) for every action (ignored at h = H − 1)


class R2PVIParams(NamedTuple):
  w: jax.Array  # f[H, d]
  lam_inv: jax.Array  # f[H, d, d]
  div: str
  beta: float


def check_config(cfg: R2PVIConfig) -> None:
  if cfg.div not in DIVERGENCES:
    raise ValueError(f"`cfg.div` must be one of {DIVERGENCES}, got {cfg.div!r}.")
  for name in ("lam_r", "lam", "rho"):
    if not getattr(cfg, name) > 0:
      raise ValueError(f"`cfg.{name}` must be > 0, got {getattr(cfg, name)}.")
  if cfg.beta < 0:
    raise ValueError(f"`cfg.beta` must be >= 0, got {cfg.beta}.")


def bonus(phi, lam_inv, beta, div: str):
  """Γ(s,a): β Σ_i φ_i ‖e_i‖_{Λ⁻¹} for R2PVI (the paper's d-rectangular bonus), β ‖φ‖_{Λ⁻¹} for PEVI."""
  if div == "none":
    return beta * jnp.sqrt(jnp.einsum("...i,ij,...j->...", phi, lam_inv, phi))
  return beta * phi @ jnp.sqrt(jnp.diagonal(lam_inv))


def _q(w, lam_inv, phi, cap, beta, div: str):
  return jnp.clip(phi @ w - bonus(phi, lam_inv, beta, div), 0.0, cap)


def q_values(params: R2PVIParams, phi, h):
  """Q_h(s,a) = clip(φᵀw_h − Γ_h(s,a), 0, H − h) for features `phi: f[..., d]` (h = 0..H−1)."""
  return _q(params.w[h], params.lam_inv[h], phi, params.w.shape[0] - h, params.beta, params.div)


def policy(params: R2PVIParams, phi_all_actions, h):
  """π_h(s) = argmax_a Q_h(s, a) for `phi_all_actions: f[A, d]`; returns (action, Q_h(s, ·))."""
  q = q_values(params, phi_all_actions, h)
  return jnp.argmax(q), q


def regressed_dual(z, coef, lam, div: str, horizon: int, n_alpha: int):
  """ν_i = inf_μ E_μ V + λ D(μ‖μ̂_i) with the ridge-regressed factor E_{μ̂_i}[f] = Σ_τ c_{iτ} f(z_τ),
  c = Λ⁻¹Φᵀ (`coef: f[d, N]`, signed, so the probability-only kernels do not apply):

      none: ν = c z
      TV  : ν = c min{z, min_τ z_τ + λ}
      KL  : ν = −λ log max{c e^{−z/λ}, e^{−H/λ}}
      χ²  : ν_i = max_{α ∈ grid[0, H]} c_i z_α − (c_i z_α² − (c_i z_α)²)/(4λ),  z_α = min{z, α}

  and the constrained baselines (`lam` is then the radius ρ), each a search over n_alpha regressions:

      DRPVI (TV ball):  ν_i = max_{α ∈ grid[min z, max z]} c_i z_α − ρ(α − min_τ z_τ)
      DRVI-L (KL ball): ν_i = max_{b ∈ geomgrid[H/10³, 10³H]: c_i e^{−z/b} > e^{−H/b}} −b log(c_i e^{−z/b}) − bρ
  """
  if div == "none":
    return coef @ z
  if div == "tv":
    return coef @ jnp.minimum(z, jnp.min(z) + lam)
  if div == "kl":
    return -lam * jnp.log(jnp.maximum(coef @ jnp.exp(-z / lam), jnp.exp(-horizon / lam)))
  if div == "drpvi":
    alphas = jnp.linspace(jnp.min(z), jnp.max(z), n_alpha)
    z_a = jnp.minimum(z[None], alphas[:, None])
    return jnp.max(z_a @ coef.T - lam * (alphas - jnp.min(z))[:, None], axis=0)
  if div == "drvi_l":
    b = jnp.geomspace(horizon * 1e-3, horizon * 1e3, n_alpha)[:, None]
    z0 = jnp.min(z)  # shift so that the smallest target never underflows: e^{−z/b} = e^{−z0/b} e^{−(z−z0)/b}
    mgf = jnp.exp(-(z[None] - z0) / b) @ coef.T  # [n_alpha, d]
    # A regressed (signed) mgf below e^{−H/b} is not a moment generating function of values in [0, H]; at
    # small b it would read as V ≡ H, so those b are left out (a factor without data keeps R2PVI-KL's H).
    valid = mgf > jnp.exp(-(horizon - z0) / b)
    obj = z0 - b * jnp.log(jnp.where(valid, mgf, 1.0)) - b * lam
    return jnp.where(valid.any(0), jnp.max(jnp.where(valid, obj, -jnp.inf), axis=0), horizon)
  alphas = jnp.linspace(0.0, horizon, n_alpha)
  z_a = jnp.minimum(z[None], alphas[:, None])  # [n_alpha, N]
  m1, m2 = z_a @ coef.T, (z_a**2) @ coef.T  # [n_alpha, d]
  return jnp.max(m1 - (m2 - m1**2) / (4 * lam), axis=0)


def fit(data: OfflineData, cfg: R2PVIConfig) -> R2PVIParams:
  """R2PVI (PEVI for div="none"): for h = H−1..0, with V_H ≡ 0,

      Λ_h = λ_r I + Σ_τ φ_τ φ_τᵀ,  θ̂_h = Λ_h⁻¹ Σ_τ φ_τ r_τ,  z_τ = V_{h+1}(s^τ_{h+1}) = max_a Q_{h+1}(s^τ_{h+1}, a),
      w_h = θ̂_h + ν_h (ν from `regressed_dual`; w_{H−1} = θ̂_{H−1}),
      Q_h = clip(φᵀw_h − Γ_h, 0, H − h).
  """
  check_config(cfg)
  H, N, d = data.phi.shape
  if data.reward.shape != (H, N) or data.next_phi.shape[:2] != (H, N) or data.next_phi.shape[-1] != d:
    raise ValueError(f"`data` shapes disagree: phi {data.phi.shape}, reward {data.reward.shape}, "
                     f"next_phi {data.next_phi.shape}.")
  w, lam_inv = _fit(data, cfg)
  return R2PVIParams(w, lam_inv, cfg.div, cfg.beta)


@functools.partial(jax.jit, static_argnums=1)
def _fit(data: OfflineData, cfg: R2PVIConfig) -> R2PVIParams:
  H, _, d = data.phi.shape
  dtype = data.phi.dtype

  def backup(carry, xs):
    w_next, lam_inv_next = carry
    h, phi, reward, next_phi = xs
    lam_inv = jnp.linalg.inv(cfg.lam_r * jnp.eye(d, dtype=dtype) + phi.T @ phi)
    coef = lam_inv @ phi.T  # [d, N]
    # V_{h+1}(s') = max_a Q_{h+1}(s', a); the carry is a placeholder at h = H − 1, masked below.
    z = jnp.max(_q(w_next, lam_inv_next, next_phi, H - h - 1, cfg.beta, cfg.div), axis=-1)
    nu = regressed_dual(z, coef, cfg.rho if cfg.div in ("drpvi", "drvi_l") else cfg.lam, cfg.div, H, cfg.n_alpha)
    w = coef @ reward + jnp.where(h == H - 1, 0.0, nu)
    return (w, lam_inv), (w, lam_inv)

  init = (jnp.zeros(d, dtype), jnp.eye(d, dtype=dtype))
  xs = (jnp.arange(H), data.phi, data.reward, data.next_phi)
  _, (w, lam_inv) = jax.lax.scan(backup, init, xs, reverse=True)
  return w, lam_inv


def robust_value_iteration(phi, mu, theta, div: str, lam):
  """Exact robust regularised values with known factors (`phi: f[S,A,d]`, `mu: f[H,d,S]`, `theta: f[H,d]`):

      Q_h(s,a) = φ(s,a)ᵀθ_h + Σ_i φ_i(s,a) dual_D(V_{h+1}, μ_{h,i}, λ),  V_h = max_a Q_h,  V_H ≡ 0
  (plain expectation for div="none"). Returns (greedy policy i[H,S], V f[H+1,S]).
  """
  if div not in ("none", *_DUALS):
    raise ValueError(f"`div` must be one of {('none', *_DUALS)}, got {div!r}.")
  return _robust_vi(phi, mu, theta, div, lam)


@functools.partial(jax.jit, static_argnums=3)
def _robust_vi(phi, mu, theta, div: str, lam):
  S = phi.shape[0]

  def backup(v_next, xs):
    th, m = xs
    vs = jnp.broadcast_to(v_next, m.shape)
    nu = m @ v_next if div == "none" else _DUALS[div](vs, m, lam)
    q = phi @ (th + nu)
    return jnp.max(q, -1), (jnp.argmax(q, -1), jnp.max(q, -1))

  v_end = jnp.zeros(S, phi.dtype)
  _, (pol, v) = jax.lax.scan(backup, v_end, (theta, mu), reverse=True)
  return pol, jnp.concatenate([v, v_end[None]])
