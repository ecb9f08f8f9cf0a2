"""Full-batch L-BFGS to a gradient tolerance, as one `lax.while_loop` (jits and vmaps over seeds).

The theory experiments fit convex objectives exactly (the DPO-family estimators of rDPO's log-linear
bandit, regularised logistic regression) and the tests check closed-form minimisers the same way, so
the loop is written once here over `optax.lbfgs` (zoom line search).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax


class Minimum(NamedTuple):
  x: jax.Array  # the iterate where the loop stopped (a pytree like x0)
  value: jax.Array  # the objective at the last evaluated iterate
  grad_norm: jax.Array  # ‖∇f‖₂ there
  iters: jax.Array  # iterations taken


def lbfgs_minimize(objective: Callable, x0, *, max_iters: int = 100, tol: float = 0.0) -> Minimum:
  """argmin_x f(x) from `x0` by L-BFGS: stops when ‖∇f‖ ≤ tol or after `max_iters` iterations.

  With `tol = 0` it runs exactly `max_iters` iterations. For a convex f every stop with a small
  gradient is near the global minimiser; the caller checks `grad_norm`.
  """
  if max_iters < 1:
    raise ValueError(f"`max_iters` must be >= 1, got {max_iters}.")
  solver = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(objective)
  leaf = jax.tree.leaves(x0)[0]
  inf = jnp.asarray(jnp.inf, leaf.dtype)

  def step(carry):
    x, state, _, _, it = carry
    value, grad = value_and_grad(x, state=state)
    updates, state = solver.update(grad, state, x, value=value, grad=grad, value_fn=objective)
    return optax.apply_updates(x, updates), state, value, optax.tree.norm(grad), it + 1

  def keep_going(carry):
    *_, grad_norm, it = carry
    return (it < max_iters) & (grad_norm > tol)

  x, _, value, grad_norm, iters = jax.lax.while_loop(keep_going, step, (x0, solver.init(x0), inf, inf, 0))
  return Minimum(x, value, grad_norm, iters)
