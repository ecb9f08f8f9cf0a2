"""INPO on a finite response set: the squared loss whose minimiser is the online-mirror-descent step.

Zhang, Yu, Tang, Yin, Wang, Yang, Zhang, Gu & Ouyang, "Iterative Nash Policy Optimization: Aligning
LLMs with General Preferences via No-Regret Learning", ICLR 2025 (arXiv 2407.00617). With pairs drawn
from the previous iterate π_t and ordered by the preference oracle,

    L_t(π) = E[(h_t(π; y_w, y_l) − η/2)²],
    h_t = log π(y_w)/π(y_l) − ητ log π_ref(y_w)/π_ref(y_l) − (1 − ητ) log π_t(y_w)/π_t(y_l),

is minimised by π_{t+1} ∝ π_t^{1−ητ}·π_ref^{ητ}·exp(η·P(· ≻ π_t)); iterating converges to the
regularised equilibrium. The loss is `rljax.losses.inpo_loss`, the kernel language models train with.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rljax import checks
from rljax.losses import inpo_loss
from rljax.theory.kernels import preference_games as pg
from rljax.theory.kernels.simplex import geometric_mixture, kl_prox_step


def _check_inpo(eta, tau):
  pg.check_tau("eta", eta, positive=True)
  pg.check_tau("tau", tau, positive=False)
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
  return log_pis, pg.trajectory_metrics(log_pis, P, log_ref, tau, log_pi_star)
