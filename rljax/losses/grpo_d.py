"""Step-dependent loss coefficients: GRPO-D's dynamic KL weight and the piecewise-linear kernel under it.

GRPO-D (Liu, Zhang, Liu, Zhang, Sun & Wang, "OThink-MR1: Stimulating multimodal generalized reasoning
capabilities via dynamic reinforcement learning", 2025) is GRPO whose KL coefficient β(s) changes
with the training step s ∈ [0, S]: a weak constraint early (explore), a stronger one later (exploit).

    loss(s) = L_PPO-clip + β(s) · aggregate(k3(logp − ref_logp), mask)

The paper's exact schedule is not pinned down here (spec §7 tags it [M]); `grpo_d_kl_schedule` offers
the spec's candidate shapes with placeholder constants β_min = 0, β_max = 0.04 (DeepSeekMath's GRPO
value) and warm-up fraction w = 0.3.

Both functions are pure in `step`, which may be a traced integer: pass β(s) into a jitted loss as an
array argument and a new step never retraces.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks

KINDS = ("ramp", "ramp_then_decay", "constant")


def piecewise_linear(step: jax.Array, knots_x: tuple[float, ...], knots_y: tuple[float, ...]) -> jax.Array:
  """Linear interpolation through (knots_x[i], knots_y[i]), constant beyond the first and last knot.

  `knots_x` is static and strictly increasing; `knots_y` may hold traced values (e.g. a vmapped β_max).
  Returns a float scalar (float32, or float64 when any knot value is float64).
  """
  if len(knots_x) == 0 or len(knots_x) != len(knots_y):
    raise ValueError(f"`knots_x` and `knots_y` must be non-empty and of equal length, got {len(knots_x)} and {len(knots_y)}.")
  xs = [checks.concrete_value(x) for x in knots_x]
  if any(x is None for x in xs):
    raise ValueError("`knots_x` must be static numbers (they fix the shape of the schedule).")
  if any(b <= a for a, b in zip(xs, xs[1:])):
    raise ValueError(f"`knots_x` must be strictly increasing, got {tuple(xs)}.")
  ys = jnp.stack([jnp.asarray(y) for y in knots_y])
  (ys,) = checks.as_compute(ys)
  x = jnp.asarray(step, ys.dtype)
  if len(xs) == 1:
    return ys[0] + jnp.zeros_like(x)
  return jnp.interp(x, jnp.asarray(xs, ys.dtype), ys)


def grpo_d_kl_schedule(
    step: jax.Array,
    total_steps: int,
    *,
    kind: str = "ramp",
    beta_min: float = 0.0,
    beta_max: float = 0.04,
    warmup_frac: float = 0.3,
) -> jax.Array:
  """GRPO-D's KL coefficient β(s) at training step s ∈ [0, S] (S = `total_steps`).

      ramp             β(s) = β_min + (β_max − β_min)·min(s / (w·S), 1)
      ramp_then_decay  linear β_min → β_max on [0, w·S], then β_max → β_min on [w·S, S]
      constant         β(s) = β_max  (plain GRPO with a fixed coefficient)

  Continuous in s, within [β_min, β_max], equal to the knot values at the knots, and constant outside
  [0, S]. β only scales the KL term, so at β = 0 the loss is the pure PPO-clip GRPO loss.

  Args:
    step: integer or float scalar s; may be traced.
    total_steps: S > 0, static.
    kind: one of `KINDS`.
    beta_min, beta_max: 0 ≤ β_min ≤ β_max (defaults are spec placeholders, [M]).
    warmup_frac: w ∈ (0, 1] (w = 1 with `ramp_then_decay` is the plain ramp).
  """
  checks.check_choice("kind", kind, KINDS)
  if checks.concrete_value(total_steps) is None:
    raise ValueError("`total_steps` must be a static number.")
  checks.check_positive("total_steps", total_steps)
  checks.check_nonnegative("beta_min", beta_min)
  checks.check_nonnegative("beta_max", beta_max)
  lo, hi = checks.concrete_value(beta_min), checks.concrete_value(beta_max)
  if lo is not None and hi is not None and lo > hi:
    raise ValueError(f"`beta_min` must be <= `beta_max`, got {lo} > {hi}.")
  w = checks.concrete_value(warmup_frac)
  if w is None or not 0.0 < w <= 1.0:
    raise ValueError(f"`warmup_frac` must be a static number in (0, 1], got {warmup_frac}.")
  if kind == "constant":
    return piecewise_linear(step, (0.0,), (beta_max,))
  peak = w * float(total_steps)
  if kind == "ramp" or w == 1.0:
    return piecewise_linear(step, (0.0, peak), (beta_min, beta_max))
  return piecewise_linear(step, (0.0, peak, float(total_steps)), (beta_min, beta_max, beta_min))
