"""KL-regularised RL as Bayesian inference, on an enumerable Markov "language model".

Korbak, Perez & Buckley, "RL with KL penalties is better viewed as Bayesian inference", Findings of
EMNLP 2022 (arXiv 2205.11275). For a prior LM π_0 and reward r, the KL-regularised objective

    J(π) = E_π[r] − β·KL(π‖π_0) = β·log Z − β·KL(π‖π*),   π*(y) = π_0(y)·exp(r(y)/β)/Z,

so maximising J is reverse-KL variational inference of the posterior π* (prior π_0, likelihood
exp(r/β)). Pure RL (β → 0) has the point mass on argmax r as optimum ("distribution collapse");
distribution matching (DPG) instead minimises the forward KL(π*‖π).

The environment: sequences of `length` tokens from a `vocab`-token alphabet, all V^L of which are
enumerated, a first-order Markov prior π_0 and a per-token reward r(y) = Σ_t w[y_t]. Then π* is a
time-inhomogeneous first-order Markov chain (`markov_posterior`), so the tabular policy
(first-token logits and per-position transition logits) represents it exactly. Training uses the
`rljax.losses` kernels — `reinforce_loss` (pure and KL-regularised REINFORCE, the KL as the
sequence-level k1 `kl_penalty` in the reward) and `dpg_loss` — either on sampled rollouts or with
exact expectations (the enumerated batch with importance weights N·π(y) against a uniform proposal).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rljax import checks
from rljax.losses import dpg_loss, kl_penalty, reinforce_loss
from rljax.theory.kernels.divergences import categorical_kl

METHODS = ("rl", "kl_rl", "dpg")
OPTIMIZERS = ("adam", "sgd")


def _check_log_probs(name, x) -> None:
  if jnp.ndim(x) != 1:
    raise ValueError(f"`{name}` must be 1-D, got shape {jnp.shape(x)}.")
  if not isinstance(x, jax.core.Tracer) and not np.isclose(np.sum(np.exp(np.asarray(x, np.float64))), 1.0, atol=1e-6):
    raise ValueError(f"`{name}` must be log-probabilities (exp sums to 1).")


def kl_optimal_policy(log_ref: jax.Array, reward: jax.Array, beta) -> jax.Array:
  """log π* = log π_0 + r/β − log Z,  Z = Σ_y π_0(y)·exp(r(y)/β): the argmax of J over all π."""
  _check_log_probs("log_ref", log_ref)
  if jnp.shape(reward) != jnp.shape(log_ref):
    raise ValueError(f"`reward` {jnp.shape(reward)} must match `log_ref` {jnp.shape(log_ref)}.")
  checks.check_positive("beta", beta)
  log_ref, reward = checks.as_compute(log_ref, reward)
  return jax.nn.log_softmax(log_ref + reward / beta)


def kl_regularized_objective(log_pi: jax.Array, log_ref: jax.Array, reward: jax.Array, beta) -> jax.Array:
  """J(π) = E_π[r] − β·KL(π‖π_0) = Σ_y π(y)·(r(y) − β·(log π(y) − log π_0(y)))."""
  _check_log_probs("log_ref", log_ref)
  if not jnp.shape(log_pi) == jnp.shape(reward) == jnp.shape(log_ref):
    raise ValueError("`log_pi`, `log_ref` and `reward` must have one shape.")
  checks.check_nonnegative("beta", beta)
  log_pi, log_ref, reward = checks.as_compute(log_pi, log_ref, reward)
  return jnp.sum(jnp.exp(log_pi) * reward) - beta * categorical_kl(log_pi, log_ref)


# --- the Markov LM ---------------------------------------------------------------------------------

class MarkovLM(NamedTuple):
  """A (possibly time-inhomogeneous) first-order Markov LM as logits; log-probs are log_softmax of them.

  first: `f[V]` logits of y_0; trans: `f[L−1, V, V]`, trans[t, a] the logits of y_{t+1} given y_t = a.
  """

  first: jax.Array
  trans: jax.Array


def make_markov_lm(key: jax.Array, vocab: int, length: int, *, scale: float = 1.0) -> MarkovLM:
  """A random time-homogeneous prior π_0: logits scale·N(0, 1) for y_0 and for each row of the
  transition matrix, repeated over the L − 1 positions."""
  if vocab < 2 or length < 1:
    raise ValueError(f"need `vocab` >= 2 and `length` >= 1, got {vocab}, {length}.")
  k1, k2 = jax.random.split(key)
  first = scale * jax.random.normal(k1, (vocab,))
  trans = scale * jax.random.normal(k2, (vocab, vocab))
  return normalize(MarkovLM(first, jnp.broadcast_to(trans, (length - 1, vocab, vocab))))


def normalize(lm: MarkovLM) -> MarkovLM:
  """The same LM with log-probabilities as logits (log_softmax over the next token)."""
  return MarkovLM(jax.nn.log_softmax(lm.first), jax.nn.log_softmax(lm.trans, axis=-1))


def enumerate_sequences(vocab: int, length: int) -> jax.Array:
  """All V^L sequences as `int[V^L, L]`, in lexicographic order."""
  return jnp.asarray(np.array(list(itertools.product(range(vocab), repeat=length)), dtype=np.int32))


def token_logps(lm: MarkovLM, seqs: jax.Array) -> jax.Array:
  """`f[B, L]`: log π(y_0), log π(y_1 | y_0), …, for the sequences `int[B, L]`."""
  lm = normalize(lm)
  first = lm.first[seqs[:, 0]]
  steps = jnp.arange(seqs.shape[1] - 1)
  rest = lm.trans[steps[None, :], seqs[:, :-1], seqs[:, 1:]]
  return jnp.concatenate([first[:, None], rest], axis=1)


def sequence_logps(lm: MarkovLM, seqs: jax.Array) -> jax.Array:
  """`f[B]`: log π(y) = Σ_t log π(y_t | y_{t−1})."""
  return jnp.sum(token_logps(lm, seqs), axis=1)


def sequence_rewards(token_reward: jax.Array, seqs: jax.Array) -> jax.Array:
  """`f[B]`: r(y) = Σ_t w[y_t]."""
  return jnp.sum(token_reward[seqs], axis=1)


def markov_posterior(prior: MarkovLM, token_reward: jax.Array, beta) -> MarkovLM:
  """π* of a Markov prior and a per-token reward, as a time-inhomogeneous Markov LM.

  Backward messages m_{L−1}(a) = 0, m_t(a) = log Σ_b π_0(b | a, t)·exp(w[b]/β + m_{t+1}(b)) give
  π*(y_{t+1} = b | y_t = a) ∝ π_0(b | a)·exp(w[b]/β + m_{t+1}(b)) and π*(y_0) ∝ π_0(y_0)·exp(w[y_0]/β + m_0(y_0)).
  Its sequence probabilities equal `kl_optimal_policy` on the enumeration.
  """
  checks.check_positive("beta", beta)
  prior = normalize(prior)
  gain = token_reward / beta

  def backward(m_next, log_trans_t):
    logits = log_trans_t + (gain + m_next)[None, :]
    return jax.nn.logsumexp(logits, axis=-1), logits

  m0, trans = jax.lax.scan(backward, jnp.zeros_like(gain), prior.trans, reverse=True)
  return normalize(MarkovLM(prior.first + gain + m0, trans))


# --- pure environment: reset / step ----------------------------------------------------------------

class EnvParams(NamedTuple):
  token_reward: jax.Array  # f[V], w
  length: int


class EnvState(NamedTuple):
  t: jax.Array  # tokens emitted so far
  prev: jax.Array  # last token (0 before the first; unused then)


def reset(key: jax.Array, params: EnvParams) -> tuple[EnvState, EnvState]:
  """Empty sequence; the observation is the state (position, previous token)."""
  del key, params
  state = EnvState(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
  return state, state


def step(key: jax.Array, params: EnvParams, state: EnvState, action):
  """Emit token `action`: reward w[action], done once `length` tokens are out."""
  del key
  new = EnvState(state.t + 1, jnp.asarray(action, jnp.int32))
  return new, new, params.token_reward[action], new.t >= params.length, {}


def rollout(key: jax.Array, lm: MarkovLM, params: EnvParams, batch: int) -> tuple[jax.Array, jax.Array]:
  """Samples `batch` sequences from the policy `lm` through reset/step: `(int[B, L], rewards f[B])`."""
  lm = normalize(lm)

  def one(key):
    k0, key = jax.random.split(key)
    state, obs = reset(k0, params)

    def body(carry, key):
      state, obs = carry
      k_a, k_s = jax.random.split(key)
      logits = jnp.where(obs.t == 0, lm.first, lm.trans[jnp.maximum(obs.t - 1, 0), obs.prev])
      action = jax.random.categorical(k_a, logits)
      state, obs, reward, _, _ = step(k_s, params, state, action)
      return (state, obs), (action, reward)

    _, (tokens, rewards) = jax.lax.scan(body, (state, obs), jax.random.split(key, params.length))
    return tokens, jnp.sum(rewards)

  return jax.vmap(one)(jax.random.split(key, batch))


def sample_sequences(key: jax.Array, lm: MarkovLM, seqs: jax.Array, batch: int) -> jax.Array:
  """`batch` sequences drawn from π over the enumeration `seqs`: equal in law to `rollout` (ancestral
  sampling through reset/step), at the cost of one categorical draw over V^L log-probabilities."""
  return seqs[jax.random.categorical(key, sequence_logps(lm, seqs), shape=(batch,))]


# --- training --------------------------------------------------------------------------------------

class Trace(NamedTuple):
  """Exact (enumerated) diagnostics, `f[R]` each, recorded every `record_every` steps from step 0."""

  step: jax.Array
  entropy: jax.Array  # H(π_θ) over sequences
  reward: jax.Array  # E_{π_θ} r
  objective: jax.Array  # J(π_θ)
  kl_reverse: jax.Array  # KL(π_θ‖π*)
  kl_forward: jax.Array  # KL(π*‖π_θ)


def surrogate_loss(lm: MarkovLM, ref: MarkovLM, seqs: jax.Array, rewards: jax.Array, *, method: str, beta,
                   weights: jax.Array | None = None) -> jax.Array:
  """The `rljax.losses` surrogate whose gradient estimates −∇ of the method's objective.

  * "rl": reinforce_loss with A(y) = r(y) − b;  "kl_rl": A(y) = r(y) − β·Σ_t k1_t − b, k1_t =
    log π_θ(y_t|·) − log π_0(y_t|·) (`kl_penalty`, kind "k1"), whose sum is the exact sequence log-ratio,
    so E[A∇log π] = ∇J. Aggregation "seq-mean-token-sum" sums token log-probs into log π(y).
  * "dpg": dpg_loss with the unnormalised target log π_0 + r/β, self-normalised weights.

  `weights=None`: `seqs` were sampled from π_θ; b is the batch mean and DPG's proposal is π_θ.
  `weights=π_θ(y)` on the full enumeration: exact expectations (uniform proposal with importance
  weight N·π_θ(y); b = E_π A), so the gradient is the exact one.
  """
  checks.check_choice("method", method, METHODS)
  tok = token_logps(lm, seqs)
  ref_tok = token_logps(ref, seqs)
  n = seqs.shape[0]
  if method == "dpg":
    target = jnp.sum(ref_tok, 1) + rewards / beta
    proposal = jax.lax.stop_gradient(jnp.sum(tok, 1)) if weights is None else jnp.full((n,), -jnp.log(n))
    loss, _ = dpg_loss(jnp.sum(tok, 1), target, proposal)
    return loss
  adv = rewards
  if method == "kl_rl":
    adv = adv - beta * jnp.sum(kl_penalty(tok, ref_tok, kind="k1"), axis=1)
  adv = jax.lax.stop_gradient(adv)
  if weights is None:
    adv = adv - jnp.mean(adv)
  else:
    w = jax.lax.stop_gradient(weights)
    adv = n * w * (adv - jnp.sum(w * adv))
  loss, _ = reinforce_loss(tok, adv, jnp.ones(tok.shape, bool), agg="seq-mean-token-sum")
  return loss


def make_train(vocab: int, length: int, *, methods: tuple[str, ...] = METHODS, beta: float, lr: float,
               steps: int, record_every: int, batch: int = 0, optimizer: str = "adam"):
  """Returns a jit-able `train(key, ref, token_reward) -> (MarkovLM [M], Trace [M, R])`, from π_θ = π_0 = `ref`.

  Every method in `methods` is trained side by side in one compiled function (results stacked on a
  leading method axis; samples share their keys across methods). `batch=0`: exact expected gradients on the
  enumeration; `batch=B`: B sequences from π_θ per step (`sample_sequences`). `beta` is the KL
  strength of "kl_rl", the posterior temperature of "dpg" and the π* of the diagnostics for every
  method ("rl" ignores it in training).
  """
  for method in methods:
    checks.check_choice("method", method, METHODS)
  checks.check_choice("optimizer", optimizer, OPTIMIZERS)
  checks.check_positive("lr", lr)
  checks.check_positive("beta", beta)
  if steps % record_every or batch < 0:
    raise ValueError(f"`steps` must be a multiple of `record_every` and `batch` >= 0, got {steps}, "
                     f"{record_every}, {batch}.")
  seqs = enumerate_sequences(vocab, length)
  opt = optax.adam(lr) if optimizer == "adam" else optax.sgd(lr)

  def train(key, ref, token_reward):
    rewards = sequence_rewards(token_reward, seqs)
    log_ref = sequence_logps(ref, seqs)
    log_star = kl_optimal_policy(log_ref, rewards, beta)

    def measure(lm, i):
      log_pi = sequence_logps(lm, seqs)
      pi = jnp.exp(log_pi)
      return Trace(i, -jnp.sum(pi * log_pi), jnp.sum(pi * rewards),
                   kl_regularized_objective(log_pi, log_ref, rewards, beta),
                   categorical_kl(log_pi, log_star), categorical_kl(log_star, log_pi))

    def grad_of(method):
      def grad(lm, key):
        if batch == 0:
          w = jnp.exp(sequence_logps(lm, seqs))
          return jax.grad(surrogate_loss)(lm, ref, seqs, rewards, method=method, beta=beta, weights=w)
        sample = sample_sequences(key, lm, seqs, batch)
        return jax.grad(surrogate_loss)(lm, ref, sample, sequence_rewards(token_reward, sample),
                                        method=method, beta=beta)
      return grad

    def run_method(method):
      grad = grad_of(method)

      def one_step(carry, key):
        lm, state = carry
        updates, state = opt.update(grad(lm, key), state)
        return (optax.apply_updates(lm, updates), state), None

      def block(carry, xs):
        i, key = xs
        carry, _ = jax.lax.scan(one_step, carry, jax.random.split(key, record_every))
        return carry, measure(carry[0], (i + 1) * record_every)

      n_blocks = steps // record_every
      (lm, _), trace = jax.lax.scan(block, (ref, opt.init(ref)),
                                    (jnp.arange(n_blocks), jax.random.split(key, n_blocks)))
      first = measure(ref, jnp.asarray(0))
      trace = jax.tree.map(lambda a, t: jnp.concatenate([a[None].astype(t.dtype), t]), first, trace)
      return lm, trace

    runs = [run_method(m) for m in methods]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *runs)

  return train
