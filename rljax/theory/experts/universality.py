"""Bayes mixtures under log-loss and the weight of a hypothesis ("The Universality Lens: Why Even Highly
Over-Parametrized Models Learn Well", 2025).

A Bayesian mixture q(x^n) = Σ_θ' w(θ') p_θ'(x^n) predicts sequentially with its posterior predictive
q(x_t | x^{t−1}) = q(x^t)/q(x^{t−1}). Its regret against θ, R_n(θ) = E_θ[log p_θ(X^n) − log q(X^n)], is
governed by the prior weight of the hypotheses KL-close to θ, not by the size of the class:

    R_n(θ) ≤ min_{ε>0} { −log W_ε(θ) + nε },   W_ε(θ) = w({θ' : D(p_θ‖p_θ') ≤ ε})

(index of resolvability; D the per-sample KL of i.i.d. models). The module holds the generic finite-class
mixture (`mixture_predict`, `mixture_logprob`), the Bernoulli instance with sufficient statistics
(`bernoulli_loglik`, `regret`, `expected_regret`), the weight and the bound (`weight`,
`resolvability_bound`), and the over-parametrised class of the reproduction: w ∈ {−1, 0, 1}^m with
p_w(X=1) = 0.5 + 0.45·mean(w) under the uniform prior on all 3^m vectors, which only depends on
s = Σ_j w_j (`overparam_class`), and the large-deviation rate I of the trinomial mean (`trinomial_rate`).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, xlog1py, xlogy
from scipy.special import gammaln as scipy_gammaln
from scipy.special import logsumexp

from rljax.theory.kernels.divergences import bernoulli_kl, kl_ball_mass


def _check_prior(log_prior) -> jax.Array:
  log_prior = jnp.asarray(log_prior)
  if log_prior.ndim != 1:
    raise ValueError(f"`log_prior` must be 1-D [G], got shape {log_prior.shape}.")
  # numpy, not jnp: under an outer jit a closed-over concrete prior must not turn into a tracer here.
  if not isinstance(log_prior, jax.core.Tracer) and abs(logsumexp(np.asarray(log_prior))) > 1e-6:
    raise ValueError("`log_prior` must be normalised: logsumexp(log_prior) = 0.")
  return log_prior


def mixture_predict(log_prior: jax.Array, loglik_fn: Callable[[jax.Array], jax.Array], x_hist: jax.Array) -> jax.Array:
  """Sequential Bayes predictions log q(x_t | x^{t−1}) for t = 1..n over a finite class.

  `loglik_fn(x) -> [G]` gives log p_g(x) for one observation; with the posterior
  log π_{t−1}(g) = log w_g + Σ_{s<t} log p_g(x_s) − log q(x^{t−1}),

      log q(x_t | x^{t−1}) = logsumexp_g(log π_{t−1}(g) + log p_g(x_t)),

  and the posterior is renormalised after each step (one lax.scan). Their sum is log q(x^n).
  """
  log_prior = _check_prior(log_prior)

  def body(log_post, x):
    joint = log_post + loglik_fn(x)
    pred = jax.nn.logsumexp(joint)
    return joint - pred, pred

  return jax.lax.scan(body, log_prior, x_hist)[1]


def mixture_logprob(log_prior: jax.Array, loglik: jax.Array) -> jax.Array:
  """Batch mixture log q(x^n) = logsumexp_g(log w_g + log p_g(x^n)) from `loglik: [..., G]`."""
  return jax.nn.logsumexp(_check_prior(log_prior) + loglik, axis=-1)


def bernoulli_loglik(probs, k, n) -> jax.Array:
  """log p(x^n) = k log p + (n − k) log(1 − p) of a sequence with k ones out of n (0·log 0 = 0),
  broadcasting `probs` against k and n."""
  return xlogy(k, probs) + xlog1py(n - k, -probs)


def overparam_class(m: int) -> tuple[jax.Array, jax.Array]:
  """The class {−1, 0, 1}^m with p_w = 0.5 + 0.45·s/m, s = Σ_j w_j, under the uniform prior on 3^m vectors,
  collapsed onto s = −m..m: returns (probs[2m+1], log_prior[2m+1]) with

      log w(s) = log #{w : Σ w = s} − m log 3,   #{w : Σ w = s} = Σ_k m! / (k! (k+|s|)! (m − 2k − |s|)!)

  (k minus-ones, k+|s| plus-ones), summed in log space with gammaln.
  """
  if m < 1:
    raise ValueError(f"`m` must be >= 1, got {m}.")
  # A static table: numpy avoids compiling each elementwise op once per m.
  s = np.arange(-m, m + 1, dtype=np.float64)
  k = np.arange(m + 1, dtype=np.float64)[None]
  a = np.abs(s)[:, None]
  zeros = m - 2 * k - a
  terms = scipy_gammaln(m + 1.0) - scipy_gammaln(k + 1) - scipy_gammaln(k + a + 1) - scipy_gammaln(np.maximum(zeros, 0) + 1)
  log_counts = logsumexp(np.where(zeros >= 0, terms, -np.inf), axis=1)
  dtype = jnp.result_type(float)
  return jnp.asarray(0.5 + 0.45 * s / m, dtype), jnp.asarray(log_counts - m * np.log(3.0), dtype)


def trinomial_rate(x) -> jax.Array:
  """Large-deviation rate of the mean of i.i.d. uniform {−1, 0, 1} variables:

      I(x) = sup_λ [λx − log((1 + e^λ + e^{−λ})/3)],  attained at e^λ = (x + √(4 − 3x²)) / (2(1 − x)),

  for |x| < 1 (I(0) = 0, I(0.5) ≈ 0.1974). −log P(mean = x) = m·I(x) + O(log m).
  """
  x = jnp.asarray(x, jnp.result_type(float))
  lam = jnp.log((x + jnp.sqrt(4 - 3 * x**2)) / (2 * (1 - x)))
  return lam * x - jnp.log((1 + 2 * jnp.cosh(lam)) / 3)


def regret(key: jax.Array, p_theta, probs: jax.Array, log_prior: jax.Array, ns) -> jax.Array:
  """Realised regret log p_θ(X^n) − log q(X^n) of the Bernoulli mixture along one sampled sequence
  X_1..X_{n_max} ~ Ber(p_θ), at the increasing checkpoints `ns` (static ints). Both log-likelihoods depend
  on the sequence only through the running count of ones k_n (a cumulative sum), so each checkpoint
  costs O(G)."""
  ns = np.asarray(ns)
  if ns.ndim != 1 or np.any(np.diff(ns) <= 0) or ns[0] < 1:
    raise ValueError(f"`ns` must be increasing positive integers, got {ns}.")
  log_prior = _check_prior(log_prior)
  dtype = log_prior.dtype
  k = jnp.cumsum(jax.random.bernoulli(key, p_theta, (int(ns[-1]),)).astype(jnp.int32))[ns - 1].astype(dtype)
  n = jnp.asarray(ns, dtype)
  return bernoulli_loglik(p_theta, k, n) - mixture_logprob(log_prior, bernoulli_loglik(probs, k[:, None], n[:, None]))


def expected_regret(p_theta, probs: jax.Array, log_prior: jax.Array, n, *, half_width: int) -> jax.Array:
  """R_n(θ) = Σ_k Bin(k; n, p_θ)·[log p_θ(k, n) − log q(k, n)], summed over the window
  k ∈ round(n p_θ) ± half_width (static), clipped to [0, n]. A half-width of 10 standard deviations
  √(n p(1−p)) leaves out a mass below 1e-20, so the window's pmf is renormalised to sum to 1 (which
  cancels the rounding error of gammaln(n + 1), ~1e-10 relative at n = 1e5, common to every term); n may
  be traced, so one compile serves every n."""
  log_prior = _check_prior(log_prior)
  dtype = log_prior.dtype
  n = jnp.asarray(n, dtype)
  k = jnp.round(n * p_theta) + jnp.arange(-half_width, half_width + 1, dtype=dtype)
  valid = (k >= 0) & (k <= n)
  k = jnp.clip(k, 0, n)
  log_binom = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) + bernoulli_loglik(p_theta, k, n)
  pmf = jnp.where(valid, jnp.exp(log_binom), 0.0)
  pmf = pmf / jnp.sum(pmf)
  r = bernoulli_loglik(p_theta, k, n) - mixture_logprob(log_prior, bernoulli_loglik(probs, k[:, None], n))
  return jnp.sum(pmf * r)


def weight(p_theta, eps, probs: jax.Array, log_prior: jax.Array) -> jax.Array:
  """log W_ε(θ) = log w({g : KL(Ber(p_θ) ‖ Ber(p_g)) ≤ ε}), the prior mass of the per-sample KL ball."""
  return kl_ball_mass(bernoulli_kl(p_theta, probs), _check_prior(log_prior), eps)


def resolvability_bound(p_theta, n, probs: jax.Array, log_prior: jax.Array) -> jax.Array:
  """min_{ε>0} { −log W_ε(θ) + nε }, exactly: W_ε is a step function jumping at the divergences
  D_g = KL(p_θ‖p_g), so the minimum is attained at ε ∈ {D_g} (`n` may be an array)."""
  d = bernoulli_kl(p_theta, probs)
  log_w = weight(p_theta, d, probs, log_prior)
  n = jnp.asarray(n, d.dtype)[..., None]
  return jnp.min(-log_w + n * d, axis=-1)
