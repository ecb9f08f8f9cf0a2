"""Nash-MP (mirror prox) on a finite response set, exact and with PG-solved prox steps.

Tiapkin, Calandriello, Belomestny, Moulines, Naumov, Perrault, Valko & Ménard, "Accelerating Nash
Learning from Human Feedback via Mirror Prox", 2025 (arXiv 2505.19731). Each iteration takes two
KL-proximal steps (extragradient) of the β-regularised game,

    prox_π(g) = log_softmax((log π + ηβ log μ + η g)/(1 + ηβ)),
    π_½ = prox_π(P(· ≻ π)),   π' = prox_π(P(· ≻ π_½)),

and converges linearly in the number of preference queries, at rate (1+2β)^{−1/2} per query for
η = 2, independently of the number of responses K. `nash_mp_approx` solves each prox step by M
natural-PG steps on the Nash-MD-PG loss kernel with sampled preferences (error floor ∝ 1/M).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rljax import checks
from rljax.theory.kernels import preference_games as pg
from rljax.theory.kernels.simplex import geometric_mixture, kl_prox_step


def nash_mp_step(log_pi, P, log_mu, *, eta, beta):
  """Nash-MP (mirror prox): with prox_π(g) = log_softmax((log π + ηβ log μ + η g)/(1 + ηβ)),
  π½ = prox_π(P(·≻π)) and π' = prox_π(P(·≻π½)). Returns (log π', log π½): two preference queries."""
  half = kl_prox_step(log_pi, pg.win_rate(P, log_pi), eta, log_anchor=log_mu, tau=beta)
  return kl_prox_step(log_pi, pg.win_rate(P, half), eta, log_anchor=log_mu, tau=beta), half


def nash_mp(P, log_mu, log_pi0, *, eta, beta, T: int, log_pi_star=None):
  """T Nash-MP iterations: (log_pis f[T+1, K], metrics), metrics add `n_queries` = 2t."""
  pg.check_tau("beta", beta, positive=True)
  pg.check_tau("eta", eta, positive=True)

  def step(log_pi, _):
    new, _ = nash_mp_step(log_pi, P, log_mu, eta=eta, beta=beta)
    return new, new

  _, traj = jax.lax.scan(step, log_pi0, None, length=T)
  log_pis = jnp.concatenate([log_pi0[None], traj])
  metrics = pg.trajectory_metrics(log_pis, P, log_mu, beta, log_pi_star)
  metrics["n_queries"] = 2 * jnp.arange(T + 1)
  return log_pis, metrics


def prox_by_pg(key, log_pi, log_opp, P, log_mu, *, eta, beta, inner_steps, n_samples: int | None = None):
  """Approximate prox step argmax_π η[P(π ≻ π_opp) − βKL(π‖μ)] − KL(π‖π_k) by `inner_steps`
  natural-PG steps on the Nash-MD-PG kernel, warm-started at π_k = π.

  βKL(π‖μ) + KL(π‖π_k)/η = (β + 1/η)·KL(π‖ν) + const with ν ∝ π_k^{1/(1+ηβ)}μ^{ηβ/(1+ηβ)}, so the
  kernel runs with τ = β + 1/η and reference ν; the m-th step has lr 1/((m + 1)(β + 1/η)), which
  makes the result the exact prox of the average of the gains used. With `n_samples`, each step's
  gain P(y ≻ π_opp) is the mean of n Bernoulli labels against fresh y′ ~ π_opp (Binomial/n; the m-th
  step's key is `fold_in(key, m)`); without, the gain is exact and one step already equals the closed
  form. `inner_steps` may be traced (a `fori_loop`), so one compilation serves several values.
  """
  tau_eff = beta + 1.0 / eta
  log_nu = geometric_mixture(log_pi, log_mu, eta * beta / (1.0 + eta * beta))
  exact = pg.win_rate(P, log_opp)

  def inner(m, z):
    gain = exact if n_samples is None else jax.random.binomial(jax.random.fold_in(key, m), n_samples, exact) / n_samples
    lr = 1.0 / ((jnp.asarray(m, P.dtype) + 1.0) * tau_eff)
    return pg.nash_pg_step(z, log_nu, gain, lr=lr, tau=tau_eff)

  return jax.lax.fori_loop(0, inner_steps, inner, log_pi)


def nash_mp_approx(key, P, log_mu, log_pi0, *, eta, beta, T: int, inner_steps,
                   n_samples: int | None = None, log_pi_star=None):
  """Nash-MP with both prox steps solved by `prox_by_pg` (R7). Returns (log_pis f[T+1, K], metrics)."""
  m = checks.concrete_array(inner_steps)
  if m is not None and np.any(m < 1):
    raise ValueError(f"`inner_steps` must be >= 1, got {inner_steps}.")

  def step(log_pi, k):
    k_half, k_main = jax.random.split(k)
    kw = dict(eta=eta, beta=beta, inner_steps=inner_steps, n_samples=n_samples)
    half = prox_by_pg(k_half, log_pi, log_pi, P, log_mu, **kw)
    new = prox_by_pg(k_main, log_pi, half, P, log_mu, **kw)
    return new, new

  _, traj = jax.lax.scan(step, log_pi0, jax.random.split(key, T))
  log_pis = jnp.concatenate([log_pi0[None], traj])
  return log_pis, pg.trajectory_metrics(log_pis, P, log_mu, beta, log_pi_star)
