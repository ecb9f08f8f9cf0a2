"""Tabular Nash learning from preferences: the regularised-equilibrium oracle, Nash-MD, Nash-MP and INPO.

- Munos et al., "Nash Learning from Human Feedback", ICML 2024 (arXiv 2312.00886): Nash-MD, a
  mirror-descent step against the geometric mixture of the policy and the reference μ.
- Tiapkin et al., "Accelerating Nash Learning from Human Feedback via Mirror Prox", 2025
  (arXiv 2505.19731): Nash-MP, two KL-proximal steps per iteration (extragradient).
- Zhang et al., "Iterative Nash Policy Optimization", 2024 (arXiv 2407.00617): INPO, whose squared
  loss on ordered pairs has the online-mirror-descent step as its exact minimiser.

Game, notation and metrics are in `rljax.theory.kernels.preference_games`; policies are
log-probabilities `f[K]`. Every iterative method is a `lax.scan` over a pure step. The policy-gradient
forms call the language-model loss kernels (`rljax.losses.nash_md_pg_loss`, `rljax.losses.inpo_loss`)
on exact expectations over the K responses, so a tabular check of these functions checks the kernels.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax import checks
from rljax.losses import inpo_loss, nash_md_pg_loss
from rljax.theory.kernels import preference_games as pg
from rljax.theory.kernels.simplex import geometric_mixture, kl_prox_step
from rljax.theory.kernels.preference_games import regularized_exploitability

__all__ = [
    "NashSolution", "regularized_nash_equilibrium", "regularized_exploitability", "geometric_mixture",
    "nash_md_step", "nash_md", "anytime_schedule", "horizon_step", "nash_mp_step", "nash_mp",
    "nash_pg_step", "nash_md_pg_step", "prox_by_pg", "nash_mp_approx", "trajectory_metrics",
    "inpo_expected_loss", "inpo_omd_step", "inpo_tabular_step", "inpo",
]


class NashSolution(NamedTuple):
  pi: jax.Array  # f[K] π*_τ
  log_pi: jax.Array  # f[K]
  residual: jax.Array  # ‖π − softmax(log μ + Pπ/τ)‖₁
  exploitability: jax.Array  # regularised exploitability of π (≥ 0, 0 at π*_τ)
  n_iter: jax.Array


def _check_tau(name, tau, *, positive: bool):
  v = checks.concrete_array(tau)
  if v is not None and not (np.all(v > 0) if positive else np.all(v >= 0)):
    raise ValueError(f"`{name}` must be {'> 0' if positive else '>= 0'}, got {tau}.")


def _check_distribution(name, p):
  v = checks.concrete_array(p)
  if v is not None and (np.any(v < 0) or not np.allclose(np.sum(v, -1), 1.0, atol=1e-6)):
    raise ValueError(f"`{name}` must be a probability vector (non-negative, summing to 1).")


def _fixed_point_map(z, P, log_mu, tau):
  """F(z) = log μ + P·softmax(z)/τ; π*_τ = softmax(z*) at its fixed point z* = F(z*)."""
  return log_mu + P @ jax.nn.softmax(z) / tau


def regularized_nash_equilibrium(P, mu, tau, *, tol: float = 1e-12, max_iter: int = 100) -> NashSolution:
  """ORACLE for π*_τ ∝ μ·exp(P(· ≻ π*_τ)/τ), independent of the learning dynamics.

  Damped Newton on G(z) = z − log μ − P·softmax(z)/τ. Its Jacobian I − (P − ½)S/τ, with
  S = diag π − ππᵀ ⪰ 0 and P − ½ antisymmetric, has eigenvalues 1 + i·ℝ, so it is always invertible
  and the Newton direction descends ‖G‖²; the step is the best of 2^0..2^-29 on ‖G‖². Iterates until
  the certificate ‖π − softmax(log μ + Pπ/τ)‖₁ ≤ tol, no step improves ‖G‖², or `max_iter`.
  """
  P = pg.check_preference_matrix(P)
  _check_distribution("mu", mu)
  _check_tau("tau", tau, positive=True)
  log_mu = jnp.log(jnp.asarray(mu, P.dtype))
  if log_mu.shape != P.shape[:1]:
    raise ValueError(f"`mu` has shape {log_mu.shape}, expected ({P.shape[0]},).")
  steps = 2.0 ** -jnp.arange(30, dtype=P.dtype)
  eye = jnp.eye(P.shape[0], dtype=P.dtype)

  def merit(z):
    g = z - _fixed_point_map(z, P, log_mu, tau)
    return g @ g

  def residual(z):
    return jnp.sum(jnp.abs(jax.nn.softmax(z) - jax.nn.softmax(_fixed_point_map(z, P, log_mu, tau))))

  def body(carry):
    z, _, i, _ = carry
    pi = jax.nn.softmax(z)
    jac = eye - P @ (jnp.diag(pi) - jnp.outer(pi, pi)) / tau
    d = -jnp.linalg.solve(jac, z - _fixed_point_map(z, P, log_mu, tau))
    cands = z[None] + steps[:, None] * d[None]
    m = jax.vmap(merit)(cands)
    best = jnp.argmin(m)
    improved = m[best] < merit(z)
    z_new = jnp.where(improved, cands[best], z)
    return z_new, residual(z_new), i + 1, improved

  def cond(carry):
    _, res, i, improved = carry
    return (res > tol) & (i < max_iter) & improved

  z0 = _fixed_point_map(log_mu, P, log_mu, tau)
  z, res, n, _ = jax.lax.while_loop(cond, body, (z0, residual(z0), jnp.asarray(0), jnp.asarray(True)))
  log_pi = jax.nn.log_softmax(z)
  return NashSolution(jnp.exp(log_pi), log_pi, res, regularized_exploitability(log_pi, P, log_mu, tau), n)


def trajectory_metrics(log_pis, P, log_mu, tau, log_pi_star=None) -> dict[str, jax.Array]:
  """Per-iterate metrics of `log_pis: f[T, K]`: `exploit` (regularised; for τ = 0 the plain
  max_y P(y ≻ π) − ½), and with `log_pi_star`: `kl_to_star` = KL(π*‖π_t) and `span` =
  sp(log π_t − log π*)."""
  if isinstance(tau, (int, float)) and tau == 0:
    exploit = jnp.max(jax.vmap(pg.win_rate, in_axes=(None, 0))(P, log_pis), -1) - 0.5
  else:
    exploit = jax.vmap(regularized_exploitability, in_axes=(0, None, None, None))(log_pis, P, log_mu, tau)
  out = {"exploit": exploit}
  if log_pi_star is not None:
    out["kl_to_star"] = pg.kl(log_pi_star, log_pis)
    out["span"] = pg.logprob_span(log_pis, log_pi_star)
  return out


# ---------------------------------------------------------------------------------------------- Nash-MD


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
  return log_pis, trajectory_metrics(log_pis, P, log_mu, tau, log_pi_star)


def anytime_schedule(T: int, tau, dtype=jnp.float64):
  """η_t = 2/(τ(t + 2)), t = 0..T−1: with KL(π*‖π_{t+1}) ≤ (1 − η_tτ)KL(π*‖π_t) + 2η_t² it gives
  KL(π*‖π_T) ≤ 8/(τ²(T + 1)) by induction."""
  return 2.0 / (tau * (jnp.arange(T, dtype=dtype) + 2.0))


def horizon_step(T, tau):
  """Constant η = log T/(τT) for horizon T: KL(π*‖π_T) ≤ (KL(π*‖π_0) + 2 log T/τ²)/T."""
  return jnp.log(T) / (tau * T)


# ---------------------------------------------------------------------------------------------- Nash-MP


def nash_mp_step(log_pi, P, log_mu, *, eta, beta):
  """Nash-MP (mirror prox): with prox_π(g) = log_softmax((log π + ηβ log μ + η g)/(1 + ηβ)),
  π½ = prox_π(P(·≻π)) and π' = prox_π(P(·≻π½)). Returns (log π', log π½): two preference queries."""
  half = kl_prox_step(log_pi, pg.win_rate(P, log_pi), eta, log_anchor=log_mu, tau=beta)
  return kl_prox_step(log_pi, pg.win_rate(P, half), eta, log_anchor=log_mu, tau=beta), half


def nash_mp(P, log_mu, log_pi0, *, eta, beta, T: int, log_pi_star=None):
  """T Nash-MP iterations: (log_pis f[T+1, K], metrics), metrics add `n_queries` = 2t."""
  _check_tau("beta", beta, positive=True)
  _check_tau("eta", eta, positive=True)

  def step(log_pi, _):
    new, _ = nash_mp_step(log_pi, P, log_mu, eta=eta, beta=beta)
    return new, new

  _, traj = jax.lax.scan(step, log_pi0, None, length=T)
  log_pis = jnp.concatenate([log_pi0[None], traj])
  metrics = trajectory_metrics(log_pis, P, log_mu, beta, log_pi_star)
  metrics["n_queries"] = 2 * jnp.arange(T + 1)
  return log_pis, metrics


# ----------------------------------------------------------------- policy-gradient forms (loss kernels)


def _nash_pg_objective(logits, log_ref, pref, tau):
  """E_{y~π}[ℓ(y)] of the `nash_md_pg_loss` surrogate, exact over the K responses (each response a
  one-token sequence; the π(y) weights are constants, as for sampled y)."""
  log_pi = jax.nn.log_softmax(logits)
  mask = jnp.ones((1, 1), bool)
  per_y = jax.vmap(lambda lp, lr, p: nash_md_pg_loss(lp[None, None], lr[None, None], p[None], mask, tau=tau)[0])
  return jnp.sum(jax.lax.stop_gradient(jnp.exp(log_pi)) * per_y(log_pi, log_ref, pref))


def nash_pg_step(log_pi, log_ref, pref, *, lr, tau):
  """Natural policy-gradient step on the Nash-MD-PG surrogate, exact over the K responses:
  ∇_z = π ⊙ (w − ⟨π, w⟩) with w = τ·log(π/μ) − (pref − ½), and the softmax Fisher preconditioner
  divides by π:  log π' = log_softmax(log π − lr·∇_z/π)."""
  grad = jax.grad(_nash_pg_objective)(log_pi, log_ref, pref, tau)
  return jax.nn.log_softmax(log_pi - lr * grad / jnp.exp(log_pi))


def nash_md_pg_step(log_pi, P, log_mu, *, eta, tau):
  """Nash-MD through the PG kernel: one natural-gradient step with lr η, pref = P(· ≻ π^μ) against
  the mixture opponent. Equal to `nash_md_step`: log π − ητ log(π/μ) + η P(·≻π^μ) is its exponent."""
  mix = geometric_mixture(log_pi, log_mu, eta * tau)
  return nash_pg_step(log_pi, log_mu, pg.win_rate(P, mix), lr=eta, tau=tau)


def prox_by_pg(key, log_pi, log_opp, P, log_mu, *, eta, beta, inner_steps: int, n_samples: int | None = None):
  """Approximate prox step argmax_π η[P(π ≻ π_opp) − βKL(π‖μ)] − KL(π‖π_k) by `inner_steps`
  natural-PG steps on the Nash-MD-PG kernel, warm-started at π_k = π.

  βKL(π‖μ) + KL(π‖π_k)/η = (β + 1/η)·KL(π‖ν) + const with ν ∝ π_k^{1/(1+ηβ)}μ^{ηβ/(1+ηβ)}, so the
  kernel runs with τ = β + 1/η and reference ν; the m-th step has lr 1/((m + 1)(β + 1/η)), which
  makes the result the exact prox of the average of the gains used. With `n_samples`, each step's
  gain P(y ≻ π_opp) is the mean of n Bernoulli labels against fresh y′ ~ π_opp (Binomial/n);
  without, the gain is exact and one step already equals the closed form.
  """
  tau_eff = beta + 1.0 / eta
  log_nu = geometric_mixture(log_pi, log_mu, eta * beta / (1.0 + eta * beta))
  exact = pg.win_rate(P, log_opp)

  def inner(z, xs):
    m, k = xs
    gain = exact if n_samples is None else jax.random.binomial(k, n_samples, exact) / n_samples
    return nash_pg_step(z, log_nu, gain, lr=1.0 / ((m + 1.0) * tau_eff), tau=tau_eff), None

  xs = (jnp.arange(inner_steps, dtype=P.dtype), jax.random.split(key, inner_steps))
  return jax.lax.scan(inner, log_pi, xs)[0]


def nash_mp_approx(key, P, log_mu, log_pi0, *, eta, beta, T: int, inner_steps: int,
                   n_samples: int | None = None, log_pi_star=None):
  """Nash-MP with both prox steps solved by `prox_by_pg` (R7). Returns (log_pis f[T+1, K], metrics)."""
  if inner_steps < 1:
    raise ValueError(f"`inner_steps` must be >= 1, got {inner_steps}.")

  def step(log_pi, k):
    k_half, k_main = jax.random.split(k)
    kw = dict(eta=eta, beta=beta, inner_steps=inner_steps, n_samples=n_samples)
    half = prox_by_pg(k_half, log_pi, log_pi, P, log_mu, **kw)
    new = prox_by_pg(k_main, log_pi, half, P, log_mu, **kw)
    return new, new

  _, traj = jax.lax.scan(step, log_pi0, jax.random.split(key, T))
  log_pis = jnp.concatenate([log_pi0[None], traj])
  return log_pis, trajectory_metrics(log_pis, P, log_mu, beta, log_pi_star)


# -------------------------------------------------------------------------------------------------- INPO


def _check_inpo(eta, tau):
  _check_tau("eta", eta, positive=True)
  _check_tau("tau", tau, positive=False)
  v = checks.concrete_array(eta)
  if v is not None and np.any(v * tau > 1):
    raise ValueError(f"`eta * tau` must be <= 1, got {v * tau}.")


def _pairs(key, log_pi_t, P, n_pairs):
  """(winners, losers, weights): all K² ordered pairs weighted π_t(y)π_t(y′)P(y ≻ y′) (key None),
  or n_pairs draws y, y′ ~ π_t ordered by a Bernoulli(P(y ≻ y′)) label, weight 1/n."""
  K = P.shape[0]
  if key is None:
    w, l = jnp.divmod(jnp.arange(K * K), K)
    pi = jnp.exp(log_pi_t)
    return w, l, pi[w] * pi[l] * P[w, l]
  ky, kp, kl = jax.random.split(key, 3)
  y = jax.random.categorical(ky, log_pi_t, shape=(n_pairs,))
  yp = jax.random.categorical(kp, log_pi_t, shape=(n_pairs,))
  first = jax.random.bernoulli(kl, P[y, yp])
  return jnp.where(first, y, yp), jnp.where(first, yp, y), jnp.full((n_pairs,), 1.0 / n_pairs, P.dtype)


def inpo_expected_loss(logits, log_pi_t, log_ref, P, *, eta, tau, key=None, n_pairs=None):
  """INPO's L_t(π) = E[(h_t(π; y_w, y_l) − η/2)²] through `rljax.losses.inpo_loss`, with
  h_t = log π(y_w)/π(y_l) − ητ log π_ref(y_w)/π_ref(y_l) − (1 − ητ) log π_t(y_w)/π_t(y_l),
  exactly over all pairs (key None) or over `n_pairs` sampled pairs (see `_pairs`)."""
  w, l, weights = _pairs(key, log_pi_t, P, n_pairs)
  lp = jax.nn.log_softmax(logits)
  per_pair, _ = inpo_loss(lp[w], lp[l], log_ref[w], log_ref[l], log_pi_t[w], log_pi_t[l],
                          eta=eta, tau=tau, reduction="none")
  return jnp.sum(weights * per_pair)


def inpo_omd_step(log_pi_t, log_ref, P, *, eta, tau):
  """The OMD step INPO implements: π_{t+1} ∝ π_t^{1−ητ}·π_ref^{ητ}·exp(η·P(· ≻ π_t))."""
  _check_inpo(eta, tau)
  return kl_prox_step(geometric_mixture(log_pi_t, log_ref, eta * tau), pg.win_rate(P, log_pi_t), eta)


def inpo_tabular_step(log_pi_t, log_ref, P, *, eta, tau, key=None, n_pairs=None):
  """argmin over tabular logits of `inpo_expected_loss`, exactly: the loss is quadratic in the
  logits (it sees only differences z_y − z_y′), so one Newton step with the pseudo-inverse Hessian
  from z₀ = (1 − ητ) log π_t + ητ log π_ref gives the (minimum-norm) minimiser. Exact mode (key None)
  uses all pairs; sampled mode n_pairs draws (responses never drawn keep z₀)."""
  _check_inpo(eta, tau)
  if key is not None and (n_pairs is None or n_pairs < 1):
    raise ValueError(f"`n_pairs` must be a positive integer in sampled mode, got {n_pairs}.")
  loss = lambda z: inpo_expected_loss(z, log_pi_t, log_ref, P, eta=eta, tau=tau, key=key, n_pairs=n_pairs)
  z0 = (1.0 - eta * tau) * log_pi_t + eta * tau * log_ref
  step = jnp.linalg.pinv(jax.hessian(loss)(z0), hermitian=True) @ jax.grad(loss)(z0)
  return jax.nn.log_softmax(z0 - step)


def inpo(P, log_ref, log_pi0, *, eta, tau, T: int, key=None, n_pairs=None, log_pi_star=None):
  """T INPO iterations (`inpo_tabular_step`, exact or sampled): (log_pis f[T+1, K], metrics)."""
  _check_inpo(eta, tau)
  keys = None if key is None else jax.random.split(key, T)

  def step(log_pi, k):
    new = inpo_tabular_step(log_pi, log_ref, P, eta=eta, tau=tau, key=k, n_pairs=n_pairs)
    return new, new

  _, traj = jax.lax.scan(step, log_pi0, keys, length=T)
  log_pis = jnp.concatenate([log_pi0[None], traj])
  return log_pis, trajectory_metrics(log_pis, P, log_ref, tau, log_pi_star)
