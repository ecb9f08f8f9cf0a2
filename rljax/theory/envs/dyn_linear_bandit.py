"""Dynamical (state-space) linear bandit with its Markov-parameter oracle.

Environment of "Dynamical Linear Bandits" (Mussi, Metelli & Restelli, ICML 2023), in the general form
of the authors' reference code: a hidden state x ∈ R^n driven by the action u ∈ U ⊂ R^p,

    y_t = C x_t + D u_t + η_t,   reward_t = 1ᵀ y_t,   x_{t+1} = A x_t + B u_t + ξ_t,   x_0 = 0,

with η, ξ ~ N(0, σ² I). The action set is a finite list of vectors (arms); `step` takes an arm index.
Holding u forever, E[reward_t] → h ᵀu with the steady-state ("Markov parameter") gain

    h = 1ᵀ(D + C (I − A)^{-1} B) ∈ R^p,

so the optimal policy repeats u* = argmax_{u ∈ U} hᵀu, and (pseudo-)regret is Σ_t (hᵀu* − hᵀu_t).
`paper_params` builds the synthetic instance of the paper's `testcase_synt` configs.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class DynLinParams(NamedTuple):
  """System matrices A [n, n], B [n, p], C [m, n], D [m, p], noise scale σ and arms `actions: [K, p]`."""

  a: jax.Array
  b: jax.Array
  c: jax.Array
  d: jax.Array
  sigma: jax.Array
  actions: jax.Array


class DynLinState(NamedTuple):
  x: jax.Array  # hidden state [n]


def make_params(a, b, c, d, sigma, actions) -> DynLinParams:
  """Checks shapes (A [n,n], B [n,p], C [m,n], D [m,p], actions [K,p]), σ ≥ 0 and ρ(A) < 1."""
  a, b, c, d, actions = (np.asarray(v, np.float64) for v in (a, b, c, d, actions))
  n, p = b.shape if b.ndim == 2 else (None, None)
  if a.ndim != 2 or a.shape != (n, n):
    raise ValueError(f"`a` must be [n, n] with n = rows of `b`, got {a.shape} and `b` {b.shape}.")
  if c.ndim != 2 or c.shape[1] != n:
    raise ValueError(f"`c` must be [m, {n}], got {c.shape}.")
  if d.shape != (c.shape[0], p):
    raise ValueError(f"`d` must be [{c.shape[0]}, {p}], got {d.shape}.")
  if actions.ndim != 2 or actions.shape[1] != p:
    raise ValueError(f"`actions` must be [K, {p}], got {actions.shape}.")
  if sigma < 0:
    raise ValueError(f"`sigma` must be >= 0, got {sigma}.")
  if spectral_radius(a) >= 1:
    raise ValueError("`a` must be stable (spectral radius < 1).")
  dtype = jnp.result_type(float)
  return DynLinParams(*(jnp.asarray(v, dtype) for v in (a, b, c, d, sigma, actions)))


def permutation_actions(values=(1.0, 0.5, 0.0)) -> np.ndarray:
  """Distinct permutations of a budget allocation (the paper's fill rule with budget 1.5 on [0, 1]³
  gives the 6 permutations of (1, 0.5, 0)), in decreasing lexicographic order."""
  return np.unique(np.asarray(list(itertools.permutations(values)), np.float64), axis=0)[::-1]


def paper_params(sigma: float = 0.01, a_scale: float = 1.0) -> DynLinParams:
  """The paper's synthetic system: A = diag(0.2, 0, 0.1)·a_scale, B = diag(0.45, 0, 0.1),
  C = diag(1, 0, 0.1), D = diag(0, 0.5, 0.1), arms = permutations of (1, 0.5, 0)."""
  return make_params(np.diag([0.2, 0.0, 0.1]) * a_scale, np.diag([0.45, 0.0, 0.1]), np.diag([1.0, 0.0, 0.1]),
                     np.diag([0.0, 0.5, 0.1]), sigma, permutation_actions())


def spectral_radius(a) -> float:
  """ρ(A) = max |eig(A)| (a concrete float; computed in numpy)."""
  return float(np.max(np.abs(np.linalg.eigvals(np.asarray(a, np.float64))))) if np.size(a) else 0.0


def markov_gain(params: DynLinParams) -> jax.Array:
  """h = 1ᵀ(D + C (I − A)^{-1} B): the steady-state reward per unit of each action coordinate."""
  n = params.a.shape[0]
  steady = params.d + params.c @ jnp.linalg.solve(jnp.eye(n, dtype=params.a.dtype) - params.a, params.b)
  return jnp.sum(steady, axis=0)


def immediate_gain(params: DynLinParams) -> jax.Array:
  """1ᵀD: the reward of u seen by a myopic learner from a zero state (the gain LinUCB would chase)."""
  return jnp.sum(params.d, axis=0)


def oracle(params: DynLinParams) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(h, u*, hᵀu*) with u* = argmax_{u ∈ actions} hᵀu."""
  h = markov_gain(params)
  values = params.actions @ h
  best = jnp.argmax(values)
  return h, params.actions[best], values[best]


def reset(key: jax.Array, params: DynLinParams) -> tuple[DynLinState, jax.Array]:
  """x_0 = 0; the learner observes nothing but rewards, so obs is an empty vector."""
  del key
  return DynLinState(jnp.zeros(params.a.shape[0], params.a.dtype)), jnp.zeros((0,), params.a.dtype)


def step(key: jax.Array, params: DynLinParams, state: DynLinState, action):
  """Plays arm `action`: reward = 1ᵀ(C x + D u + η), x' = A x + B u + ξ. `info["expected"]` is the
  conditional mean 1ᵀ(C x + D u) and `info["steady"]` the steady-state value hᵀu."""
  u = params.actions[action]
  k_out, k_state = jax.random.split(key)
  m, n = params.c.shape
  mean = jnp.sum(params.c @ state.x + params.d @ u)
  reward = mean + params.sigma * jnp.sum(jax.random.normal(k_out, (m,), params.a.dtype))
  x = params.a @ state.x + params.b @ u + params.sigma * jax.random.normal(k_state, (n,), params.a.dtype)
  info = {"expected": mean, "steady": markov_gain(params) @ u}
  return DynLinState(x), jnp.zeros((0,), params.a.dtype), reward, jnp.asarray(False), info
