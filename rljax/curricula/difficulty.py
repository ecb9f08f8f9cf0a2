"""Balanced online difficulty filtering (Bae, Hong, Lee, Kim, Nam & Kwak 2025, arXiv 2504.03380; EACL 2026).

After the G rollouts of each prompt are scored, keep only the prompts whose empirical pass rate is intermediate,
and refill the batch with more kept prompts (DAPO's "dynamic sampling"; the paper's "stack" rollout). The
refill lives in the trainer (`rljax.theory.curricula.chain_rl`, the online loop); this module holds the filter
and the theory behind it.

Filter. With binary rewards r_{i,j} ∈ {0, 1}, p̂_i = (1/G) Σ_j 1[r_{i,j} ≥ threshold] and

    keep_i = (low <(=) p̂_i <(=) high)         default (low, high) = (0, 1), both bounds exclusive.

The default keeps exactly the groups that are neither all-correct nor all-wrong, i.e. those whose GRPO
advantages (r − mean_g r)/(std_g r + ε) are not identically zero. `inclusive=(True, True)` with (0, 1) keeps
everything (plain GRPO); (0, 1) with one side inclusive gives the one-sided filters "drop too easy" (p̂ < 1) and
"drop too hard" (p̂ > 0); a narrower band such as [0.25, 0.75] keeps fewer, more balanced groups.

Theory (why p̂ ≈ 1/2). The KL-regularised optimum of max_π E_π[r] − β·KL(π‖π_0) is the tilt
π*(y|x) ∝ π_0(y|x)·e^{λ r(x,y)}, λ = 1/β. With binary r and p = P_{π_0}(r = 1 | x) the tilt is constant on
each reward class, so KL(π*‖π_0) is the KL between two Bernoullis: with Z = 1 − p + p·e^λ and q = p·e^λ/Z
(the success rate of π*),

    KL(π*‖π_0) = q·log(q/p) + (1−q)·log((1−q)/(1−p)) = q·λ − log Z                    (`kl_tilted_binary`)
               = (λ²/2)·p(1−p) + O(λ³)                                               (`kl_second_order`)
               ≥ 2·(q − p)² = 2·[p(1−p)·(e^λ − 1)/Z]²     (Pinsker on the Bernoulli)   (`kl_lower_bound_pinsker`)

The leading term is the reward variance p(1−p), largest at p = 1/2; the sampled accuracy's estimate of it is
unbiased up to a factor, E[p̂(1−p̂)] = p(1−p)·(G−1)/G for p̂ ~ Binomial(G, p)/G. Hence filtering to
intermediate p̂ keeps the prompts whose optimal policy moves farthest from π_0 (the paper's bound is in terms of
the variance of the sampled accuracy). The "p = 1/2 is optimal" statement is a small-λ (large-β) statement:
the exact KL's argmax over p is ≈ 0.483 at λ = 0.1 but drifts below 0.4 at λ = 1 (tests compute both).

Provenance: the filter, refill and bound's dependence on the variance are from the paper's abstract (both
versions) and secondary summaries ("stack" GRPO rollout, thresholds named T_low / T_high). The paper's exact
thresholds, the exact form and constant of its bound, model and data were NOT checked: no code release was found
and the stored copies of the paper (arXiv HTML v1/v2, ar5iv) return only the abstract and introduction. The
closed forms above are derived here and tested numerically (tests/curricula/test_balanced_filtering.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from rljax.curricula import base, fixed


def pass_rate(rewards: jax.Array, mask: jax.Array | None = None, threshold: float = 0.5) -> jax.Array:
  """`f32[B]`: p̂_b = the fraction of group b's valid responses with reward ≥ `threshold` (0 for a group with no
  valid response). `rewards` is `f[B, G]`; `mask` (`bool[B, G]`, default all valid) marks the valid ones."""
  rewards = jnp.asarray(rewards)
  if rewards.ndim != 2:
    raise ValueError(f"`rewards` must be f[B, G], got shape {rewards.shape}.")
  m = jnp.ones(rewards.shape, bool) if mask is None else jnp.asarray(mask, bool)
  if m.shape != rewards.shape:
    raise ValueError(f"`mask` must have the rewards' shape {rewards.shape}, got {m.shape}.")
  hits = jnp.sum((rewards >= threshold) & m, axis=-1).astype(jnp.float32)
  return hits / jnp.maximum(jnp.sum(m, axis=-1), 1).astype(jnp.float32)


def _check_band(low, high, inclusive):
  if not 0.0 <= low <= high <= 1.0:
    raise ValueError(f"need 0 <= low <= high <= 1, got low={low!r}, high={high!r}.")
  if len(inclusive) != 2 or not all(isinstance(b, bool) for b in inclusive):
    raise ValueError(f"`inclusive` must be a pair of bools (low, high), got {inclusive!r}.")
  if low == high and not all(inclusive):
    raise ValueError(f"the band ({low}, {high}) with inclusive={tuple(inclusive)} is empty.")


def balanced_filter(rewards: jax.Array, *, low: float = 0.0, high: float = 1.0,
                    inclusive: Sequence[bool] = (False, False), mask: jax.Array | None = None,
                    threshold: float = 0.5) -> tuple[jax.Array, dict[str, jax.Array]]:
  """`(keep bool[B], metrics)`: keep the groups of `rewards` (`f[B, G]`) whose pass rate p̂ (`pass_rate`) lies in
  the band from `low` to `high`, each bound inclusive or not (`inclusive = (low_incl, high_incl)`).

  metrics: `frac_kept`, `frac_all_correct` (p̂ = 1), `frac_all_wrong` (p̂ = 0) and `pass_rate` (mean p̂), all
  over the B groups."""
  _check_band(low, high, tuple(inclusive))
  p = pass_rate(rewards, mask, threshold)
  above = p >= low if inclusive[0] else p > low
  below = p <= high if inclusive[1] else p < high
  keep = above & below
  metrics = {"frac_kept": jnp.mean(keep.astype(jnp.float32)), "frac_all_correct": jnp.mean(p == 1.0),
             "frac_all_wrong": jnp.mean(p == 0.0), "pass_rate": jnp.mean(p)}
  return keep, metrics


def _tilt(p, lam):
  """(p, λ, log Z, q) broadcast, in the inputs' float dtype: log Z = log(1 + p·(e^λ − 1)), q = p·e^λ/Z."""
  p, lam = jnp.broadcast_arrays(*(jnp.asarray(x, jnp.result_type(float, p, lam)) for x in (p, lam)))
  log_z = jnp.log1p(p * jnp.expm1(lam))  # accurate at small λ, where KL ~ λ²
  return p, lam, log_z, p * jnp.exp(lam - log_z)


def kl_tilted_binary(p, lam) -> jax.Array:
  """Exact KL(π*‖π_0) = q·λ − log Z of the tilt π* ∝ π_0·e^{λr} of a binary reward with base success rate p
  (module docstring); 0 at p ∈ {0, 1} and at λ = 0. Elementwise, broadcasting `p` and `lam`."""
  _, lam, log_z, q = _tilt(p, lam)
  return q * lam - log_z


def kl_second_order(p, lam) -> jax.Array:
  """The small-λ expansion (λ²/2)·p(1−p) of `kl_tilted_binary` (relative error O(λ))."""
  p, lam, _, _ = _tilt(p, lam)
  return 0.5 * lam**2 * p * (1.0 - p)


def kl_lower_bound_pinsker(p, lam) -> jax.Array:
  """Pinsker's lower bound 2·(q − p)² = 2·[p(1−p)(e^λ − 1)/Z]² on `kl_tilted_binary` (the total variation of the
  tilt is the change q − p of the success rate)."""
  p, lam, log_z, _ = _tilt(p, lam)
  return 2.0 * (p * (1.0 - p) * jnp.expm1(lam) * jnp.exp(-log_z)) ** 2


def balanced(num_arms: int, *, low: float = 0.0, high: float = 1.0, inclusive: Sequence[bool] = (False, False),
             arms: Sequence[int] | None = None) -> base.Curriculum:
  """Uniform arms (`arms`, default all) whose rollout groups are filtered by `balanced_filter(low, high,
  inclusive)`; the trainer refills the batch with kept groups."""
  low, high, inc = float(low), float(high), tuple(inclusive)
  _check_band(low, high, inc)
  u = fixed.uniform(num_arms, arms=arms)
  keep = lambda rewards: balanced_filter(rewards, low=low, high=high, inclusive=inc)[0]
  return u._replace(name="balanced", config={**u.config, "low": low, "high": high, "inclusive": inc}, keep=keep)


base.register("balanced", balanced)
