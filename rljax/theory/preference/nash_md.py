"""Nash-MD on a finite response set, exact and through the policy-gradient loss kernel.

Munos, Valko, Calandriello, Azar, Rowland, Guo, Tang, Geist, Mesnard, Michi, Selvi, Girgin, Momchev,
Bachem, Mankowitz, Precup & Piot, "Nash Learning from Human Feedback", ICML 2024 (arXiv 2312.00886).
One Nash-MD step is a mirror-descent step against the geometric mixture π^μ ∝ π^{1−ητ}μ^{ητ}:

    π_{t+1} ∝ π^μ_t · exp(η·P(· ≻ π^μ_t)),

which contracts KL(π*_τ‖π_t) at rate 1 − ητ to a floor of order η² for a constant step, and like
1/t for the anytime schedule η_t = 2/(τ(t+2)). τ = 0 is self-play MWU, which cycles. The policy-
gradient form (`nash_md_pg_step`) is one natural-gradient step on `rljax.losses.nash_md_pg_loss`,
equal to the exact step. Game, oracle and metrics are `rljax.theory.kernels.preference_games`;
policies are log-probabilities `f[K]`; every iterative method is a `lax.scan` over a pure step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rljax import checks
from rljax.theory.kernels import preference_games as pg
from rljax.theory.kernels.simplex import geometric_mixture, kl_prox_step


def nash_md_step(log_pi, P, log_mu, *, eta, tau):
  """Nash-MD: log π^μ = log_softmax((1 − ητ) log π + ητ log μ), then
  π' ∝ π^μ·exp(η·P(· ≻ π^μ)) = argmax_π η·P(π ≻ π^μ) − KL(π‖π^μ). τ = 0 is self-play MWU."""
  mix = geometric_mixture(log_pi, log_mu, eta * tau)
  return kl_prox_step(mix, pg.win_rate(P, mix), eta)


def _step_sizes(eta, tau, T, dtype):
  v = checks.concrete_array(eta)
  if v is not None and np.any(v < 0):
    raise ValueError("`eta` must be >= 0.")
  if v is not None and np.any(v * tau > 1):
    raise ValueError("`eta * tau` must be <= 1 (a geometric-mixture weight).")
  return jnp.broadcast_to(jnp.asarray(eta, dtype), (T,))


def nash_md(P, log_mu, log_pi0, *, eta, tau, T: int, log_pi_star=None):
  """T Nash-MD steps with step sizes `eta` (scalar or f[T]; η_t = 0 leaves π unchanged, which
  lets one scan serve several horizons). Returns (log_pis f[T+1, K], `trajectory_metrics`)."""
  etas = _step_sizes(eta, tau, T, P.dtype)

  def step(log_pi, eta_t):
    new = nash_md_step(log_pi, P, log_mu, eta=eta_t, tau=tau)
    return new, new

  _, traj = jax.lax.scan(step, log_pi0, etas)
  log_pis = jnp.concatenate([log_pi0[None], traj])
  return log_pis, pg.trajectory_metrics(log_pis, P, log_mu, tau, log_pi_star)


def anytime_schedule(T: int, tau, dtype=jnp.float64):
  """η_t = 2/(τ(t + 2)), t = 0..T−1: with KL(π*‖π_{t+1}) ≤ (1 − η_tτ)KL(π*‖π_t) + 2η_t² it gives
  KL(π*‖π_T) ≤ 8/(τ²(T + 1)) by induction."""
  return 2.0 / (tau * (jnp.arange(T, dtype=dtype) + 2.0))


def horizon_step(T, tau):
  """Constant η = log T/(τT) for horizon T: KL(π*‖π_T) ≤ (KL(π*‖π_0) + 2 log T/τ²)/T."""
  return jnp.log(T) / (tau * T)


def nash_md_pg_step(log_pi, P, log_mu, *, eta, tau):
  """Nash-MD through the PG kernel: one natural-gradient step with lr η, pref = P(· ≻ π^μ) against
  the mixture opponent. Equal to `nash_md_step`: log π − ητ log(π/μ) + η P(·≻π^μ) is its exponent."""
  mix = geometric_mixture(log_pi, log_mu, eta * tau)
  return pg.nash_pg_step(log_pi, log_mu, pg.win_rate(P, mix), lr=eta, tau=tau)
