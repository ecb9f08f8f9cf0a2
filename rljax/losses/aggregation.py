"""Aggregation of a per-token loss matrix `f[B, T]` into a scalar (`loss_agg_mode` of verl).

With per-token loss ℓ_{i,t}, mask m_{i,t}, length L_i = Σ_t m_{i,t} and S = #{i : L_i > 0}:

| mode                        | value                                  | numerator          | denominator |
|-----------------------------|----------------------------------------|--------------------|-------------|
| `token-mean`                | Σ_{i,t} mℓ / Σ_{i,t} m                 | Σ mℓ               | Σ m         |
| `token-sum`                 | Σ_{i,t} mℓ                             | Σ mℓ               | 1           |
| `seq-mean-token-mean`       | (1/S) Σ_i (Σ_t mℓ / L_i)               | Σ_i Σ_t mℓ / L_i   | S           |
| `seq-mean-token-sum`        | (1/S) Σ_i Σ_t mℓ                       | Σ mℓ               | S           |
| `seq-mean-token-sum-norm`   | (1/S) Σ_i Σ_t mℓ / norm  (norm = T)    | Σ mℓ               | S · norm    |

`token-mean` is DAPO's token-level loss (verl's default); `seq-mean-token-mean` is the original
GRPO; `seq-mean-token-sum-norm` is Dr.GRPO's constant normaliser (pass `norm = max_completion_length`).
Empty sequences (L_i = 0) are left out of S, as in verl; TRL's `dr_grpo` divides by B·norm
instead, which agrees whenever no row is empty. A zero denominator is replaced by 1, so an all-empty
mask gives 0, never NaN.

Exact gradient accumulation over micro-batches: sum the numerators and the denominators separately
and divide once (for `token-sum` the numerators alone). The per-micro-batch mean of values is not
the full-batch value for any mode but `token-sum`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks

MODES = ("token-mean", "token-sum", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")


def aggregate_parts(
    loss_mat: jax.Array, mask: jax.Array, mode: str, *, norm: float | None = None
) -> tuple[jax.Array, jax.Array]:
  """`(numerator, denominator)` of `aggregate`; the value is their ratio."""
  checks.check_choice("mode", mode, MODES)
  checks.check_same_shape(2, loss_mat=loss_mat, mask=mask)
  if norm is not None:
    if mode != "seq-mean-token-sum-norm":
      raise ValueError(f"`norm` is only used by 'seq-mean-token-sum-norm', got mode {mode!r}.")
    checks.check_positive("norm", norm)
  mask = jnp.asarray(mask, bool)
  (loss_mat,) = checks.as_compute(loss_mat)
  # where(), not a product: a NaN/inf in padding must not reach the sum or its gradient.
  token_loss = jnp.where(mask, loss_mat, 0)
  lengths = jnp.sum(mask, axis=-1, dtype=loss_mat.dtype)
  n_seq = jnp.sum(lengths > 0, dtype=loss_mat.dtype)
  total = jnp.sum(token_loss)
  if mode == "token-mean":
    return total, jnp.sum(lengths)
  if mode == "token-sum":
    return total, jnp.ones((), loss_mat.dtype)
  if mode == "seq-mean-token-mean":
    per_seq = jnp.sum(token_loss, axis=-1) / jnp.maximum(lengths, 1)
    return jnp.sum(per_seq), n_seq
  if mode == "seq-mean-token-sum":
    return total, n_seq
  return total, n_seq * (loss_mat.shape[-1] if norm is None else norm)


def aggregate(loss_mat: jax.Array, mask: jax.Array, mode: str = "token-mean", *, norm: float | None = None) -> jax.Array:
  """Scalar loss from per-token `loss_mat: f[B, T]` and `mask: bool[B, T]` (modes in the module doc)."""
  num, den = aggregate_parts(loss_mat, mask, mode, norm=norm)
  return num / jnp.where(den > 0, den, 1)


def aggregate_with_parts(
    loss_mat: jax.Array, mask: jax.Array, mode: str, *, norm: float | None = None
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """`aggregate` together with the metrics `loss_numerator` / `loss_denominator` that a train step
  sums over micro-batches for exact accumulation."""
  num, den = aggregate_parts(loss_mat, mask, mode, norm=norm)
  return num / jnp.where(den > 0, den, 1), {"loss_numerator": num, "loss_denominator": den}

