"""Differential information distribution (DID) and DPO's population optimum on a finite response set.

Won, Lee, Hwang & Seo, "Differential Information: An Information-Theoretic Perspective on Preference
Optimization" (arXiv 2505.23761; v2 "Differential Information Distribution: A Bayesian Perspective on
Direct Preference Optimization"). Over a finite set Y (policies as log-probability vectors `f[K]`):

* DID of π relative to π_ref: q_{π/π_ref}(y) = (π(y)/π_ref(y)) / Σ_{y′} π(y′)/π_ref(y′), so that
  π ∝ π_ref·q is a Bayesian update with likelihood q.
* Pairs y_w ~ π_w, y_l ~ π_l labelled by which sample came from π_w follow Bradley–Terry with reward
  log(π_w/π_l). The nonparametric DPO(β) optimum on such data is π_θ* ∝ π_ref·(π_w/π_l)^{1/β}: its DID
  is a power law of the data ratio, and it equals π* iff π_w/π_l ∝ (π*/π_ref)^β ("the data encode
  DID(π*/π_ref)"), i.e. iff π_l ∝ π_w·(π_ref/π*)^β. With π_w = π_ref this is the paper's closed form
  π_l ∝ π_ref·(π_ref/π*)^β; with π_w = π* it requires π_l = π_ref.
* At that optimum the mean chosen log-likelihood moves by E_{π_w}[log π_θ* − log π_ref], which is
  KL(π*‖π_ref) ≥ 0 for chosen ~ π*, rejected ~ π_ref and −KL(π_ref‖π*) ≤ 0 for the paper's
  chosen ~ π_ref design (`chosen_logp_shift`).

Also a tabular DPO trainer (Adam, `lax.scan`) on a pair distribution — the empirical one of n sampled
pairs, or the population one — through `rljax.losses.dpo_loss`; it records the chosen log-likelihood,
the learned DID's entropy and KL(π*‖π_θ) along training.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rljax import checks
from rljax.losses import dpo_loss
from rljax.theory.kernels.divergences import categorical_kl


def _check_vectors(**arrays) -> None:
  shapes = {name: jnp.shape(a) for name, a in arrays.items()}
  first = next(iter(shapes.values()))
  if len(first) != 1 or any(s != first for s in shapes.values()):
    raise ValueError(f"expected 1-D arrays of one shape, got {shapes}.")
  for name, a in arrays.items():
    if name.startswith("log_") and not isinstance(a, jax.core.Tracer):
      if not np.isclose(np.sum(np.exp(np.asarray(a, np.float64))), 1.0, atol=1e-6):
        raise ValueError(f"`{name}` must be log-probabilities (exp sums to 1).")


def differential_information(log_pi: jax.Array, log_ref: jax.Array) -> jax.Array:
  """log q_{π/π_ref}(y) = log π(y) − log π_ref(y) − log Σ_{y′} π(y′)/π_ref(y′)  (needs π ≪ π_ref).

  Responses outside π_ref's support get −inf.
  """
  _check_vectors(log_pi=log_pi, log_ref=log_ref)
  log_pi, log_ref = checks.as_compute(log_pi, log_ref)
  ratio = jnp.where(log_ref > -jnp.inf, log_pi - jnp.where(log_ref > -jnp.inf, log_ref, 0.0), -jnp.inf)
  return jax.nn.log_softmax(ratio)


def did_entropy(log_pi: jax.Array, log_ref: jax.Array) -> jax.Array:
  """H(q_{π/π_ref}) = −Σ_y q(y) log q(y); equals log|Y| iff π = π_ref (full support)."""
  log_q = differential_information(log_pi, log_ref)
  q = jnp.exp(log_q)
  return -jnp.sum(jnp.where(q > 0, q * log_q, 0.0))


def dpo_population_optimum(log_ref: jax.Array, log_pw: jax.Array, log_pl: jax.Array, beta) -> jax.Array:
  """log π_θ* = log_softmax(log π_ref + (log π_w − log π_l)/β).

  Minimiser of the population DPO loss E_{a~π_w, b~π_l} ℓ(β[(log π_θ(a) − log π_ref(a)) −
  (log π_θ(b) − log π_ref(b))]) over all full-support π_θ: per unordered pair the logistic loss is
  minimised at β·(r(a) − r(b)) = log(π_w(a)π_l(b)/(π_w(b)π_l(a))), which r = log(π_w/π_l)/β solves
  for every pair at once. Its DID is the power law q ∝ (π_w/π_l)^{1/β}.
  """
  _check_vectors(log_ref=log_ref, log_pw=log_pw, log_pl=log_pl)
  checks.check_positive("beta", beta)
  log_ref, log_pw, log_pl = checks.as_compute(log_ref, log_pw, log_pl)
  return jax.nn.log_softmax(log_ref + (log_pw - log_pl) / beta)


def optimal_rejected_distribution(log_pw: jax.Array, log_ref: jax.Array, log_target: jax.Array,
                                  beta=1.0) -> jax.Array:
  """log π_l = log_softmax(log π_w − β·(log π* − log π_ref)): the rejected-sampling distribution
  whose DPO(β) optimum (chosen ~ π_w) is the target π*. With π_w = π_ref it is the paper's
  π_l ∝ π_ref·(π_ref/π*)^β; with π_w = π* and β = 1 it is π_ref."""
  _check_vectors(log_pw=log_pw, log_ref=log_ref, log_target=log_target)
  checks.check_positive("beta", beta)
  log_pw, log_ref, log_target = checks.as_compute(log_pw, log_ref, log_target)
  return jax.nn.log_softmax(log_pw - beta * (log_target - log_ref))


def pair_weighted_loss(logits: jax.Array, log_ref: jax.Array, weights: jax.Array, beta) -> jax.Array:
  """Σ_{a,b} W[a, b]·ℓ_DPO(a ≻ b) with π_θ = softmax(logits): the DPO loss of a pair distribution W.

  ℓ_DPO is `rljax.losses.dpo_loss` (per example) on all K² ordered (chosen a, rejected b) pairs;
  gradients flow into `logits` only. W = counts/n is the empirical loss of n sampled pairs.
  """
  k = jnp.shape(log_ref)[0]
  if jnp.shape(logits) != (k,) or jnp.shape(weights) != (k, k):
    raise ValueError(f"`logits` {jnp.shape(logits)} and `weights` {jnp.shape(weights)} must be [K] and [K, K], "
                     f"K = {k}.")
  log_pi = jax.nn.log_softmax(logits)
  chosen, rejected = jnp.repeat(jnp.arange(k), k), jnp.tile(jnp.arange(k), k)
  per_pair, _ = dpo_loss(log_pi[chosen], log_pi[rejected], log_ref[chosen], log_ref[rejected],
                         beta=beta, reduction="none")
  return jnp.sum(weights.reshape(-1) * per_pair)


def dpo_population_loss(logits: jax.Array, log_ref: jax.Array, log_pw: jax.Array, log_pl: jax.Array,
                        beta) -> jax.Array:
  """L(θ) = Σ_{a,b} π_w(a)·π_l(b)·ℓ_DPO(a ≻ b): the exact expectation over pairs y_w ~ π_w, y_l ~ π_l."""
  _check_vectors(log_ref=log_ref, log_pw=log_pw, log_pl=log_pl)
  return pair_weighted_loss(logits, log_ref, jnp.exp(log_pw[:, None] + log_pl[None, :]), beta)


def chosen_logp_shift(log_pi: jax.Array, log_ref: jax.Array, log_pw: jax.Array) -> jax.Array:
  """E_{y~π_w}[log π(y) − log π_ref(y)] = E_{π_w}[log q_{π/π_ref}] − log E_{π_ref}[q_{π/π_ref}].

  The change of the mean chosen log-likelihood from π_ref to π; with the cross-entropy CE it is
  −CE(π_w, q) − log E_{π_ref}[q]. At the DPO optimum π = π* of DID-encoding data it is KL(π*‖π_ref)
  for chosen ~ π* and −KL(π_ref‖π*) for chosen ~ π_ref. When the chosen responses are distributed
  as the learned DID itself (chosen ~ π*, rejected uniform: q = π*) it is −H(q) − log E_{π_ref}[q],
  so a high-entropy learned DID lowers the chosen log-likelihood (displacement).
  """
  _check_vectors(log_pi=log_pi, log_ref=log_ref, log_pw=log_pw)
  log_pi, log_ref, log_pw = checks.as_compute(log_pi, log_ref, log_pw)
  return jnp.sum(jnp.exp(log_pw) * (log_pi - log_ref))


def sample_pair_weights(key: jax.Array, log_pw: jax.Array, log_pl: jax.Array, n: int) -> jax.Array:
  """Empirical pair distribution `f[K, K]` (counts/n) of n pairs y_w ~ π_w, y_l ~ π_l."""
  k_w, k_l = jax.random.split(key)
  k = log_pw.shape[0]
  chosen = jax.random.categorical(k_w, log_pw, shape=(n,))
  rejected = jax.random.categorical(k_l, log_pl, shape=(n,))
  return jnp.zeros((k, k), log_pw.dtype).at[chosen, rejected].add(1.0 / n)


class DPOTrace(NamedTuple):
  """Recorded every `record_every` Adam steps (step 0 included): `f[R]` each."""

  step: jax.Array
  loss: jax.Array  # DPO loss under the pair weights
  chosen_logp: jax.Array  # mean log π_θ(y_w) under the pair weights
  rejected_logp: jax.Array
  did_entropy: jax.Array  # H(q_{π_θ/π_ref})
  kl_target: jax.Array  # KL(π*‖π_θ)


def train_dpo(weights: jax.Array, log_ref: jax.Array, log_target: jax.Array, *,
              beta: float, lr: float, steps: int, record_every: int) -> tuple[jax.Array, DPOTrace]:
  """Tabular DPO: Adam on `pair_weighted_loss(θ, log π_ref, W, β)` over logits θ, from θ = log π_ref.

  W is a pair distribution (`sample_pair_weights` for n sampled pairs: the full-batch empirical loss).
  `lax.scan` over `steps // record_every` blocks; returns the final logits and a `DPOTrace` measured
  against `log_target` (π*).
  """
  if steps % record_every:
    raise ValueError(f"`steps`={steps} must be a multiple of `record_every`={record_every}.")
  checks.check_positive("lr", lr)
  log_ref, log_target, weights = checks.as_compute(log_ref, log_target, weights)
  w_chosen, w_rejected = jnp.sum(weights, 1), jnp.sum(weights, 0)
  loss_fn = lambda logits: pair_weighted_loss(logits, log_ref, weights, beta)
  opt = optax.adam(lr)

  def measure(logits, step):
    log_pi = jax.nn.log_softmax(logits)
    return DPOTrace(step, loss_fn(logits), jnp.sum(w_chosen * log_pi), jnp.sum(w_rejected * log_pi),
                    did_entropy(log_pi, log_ref), categorical_kl(log_target, log_pi))

  def one_step(carry, _):
    logits, state = carry
    updates, state = opt.update(jax.grad(loss_fn)(logits), state)
    return (optax.apply_updates(logits, updates), state), None

  def block(carry, i):
    carry, _ = jax.lax.scan(one_step, carry, None, length=record_every)
    return carry, measure(carry[0], (i + 1) * record_every)

  (logits, _), trace = jax.lax.scan(block, (log_ref, opt.init(log_ref)), jnp.arange(steps // record_every))
  first = measure(log_ref, jnp.asarray(0))
  trace = jax.tree.map(lambda a, t: jnp.concatenate([a[None].astype(t.dtype), t]), first, trace)
  return logits, trace
