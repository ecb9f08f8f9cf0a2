"""Learning-rate schedules: linear decay, cosine, REX, step decay, and schedule refinement from gradient norms.

* Linear decay and its refinement: Defazio, Cutkosky, Mehta & Mishchenko, "When, Why and How Much?
  Adaptive Learning Rate Scheduling by Refinement" (2023, arXiv 2310.07831). Linear decay is
  worst-case optimal for the last iterate of SGD; the refinement maps the gradient-norm trace of a
  previous run to a problem-adapted schedule (warm-up and fast final annealing emerge on their own).
* REX: Chen, Wolfe & Kyrillidis, "REX: Revisiting Budgeted Training with an Improved Schedule"
  (MLSys 2022, arXiv 2107.04197). Profile 2z/(1+z) of the remaining fraction z, sampled every step;
  `sampled(schedule, T, S)` re-reads any schedule only S times (the paper's "sampling rate"), and
  `step_decay` is the classic low-rate baseline.

`make(name, peak, total_steps, ...)` builds any of them by name (`constant`, `linear`, `cosine`,
`rex`, `step`, `refined`), which is how `rljax.training.make_optimizer` and the configs pick one.

Every factory returns an `optax.Schedule`: a pure function `step -> learning rate` that accepts a
traced step (no retracing under `jax.jit`) and clamps steps outside [0, total_steps]. Warm-ups are
linear from 0 to the peak over `warmup_steps`; the decay then runs over the remaining steps.
The refinement itself (`median_smooth`, `refined_profile`, `last_iterate_bound`) is NumPy/SciPy
float64 code run once between training runs; only the resulting table is looked up under jit.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.ndimage

NORMS = ("l2_sq", "l1")


def _check_common(peak: float, total_steps: int, warmup_steps: int, end_value: float) -> None:
  if not isinstance(total_steps, numbers.Integral) or total_steps < 1:
    raise ValueError(f"`total_steps` must be an integer >= 1, got {total_steps!r}.")
  if not isinstance(warmup_steps, numbers.Integral) or not 0 <= warmup_steps < total_steps:
    raise ValueError(f"`warmup_steps` must be an integer in [0, total_steps={total_steps}), got {warmup_steps!r}.")
  if not (isinstance(peak, numbers.Real) and math.isfinite(peak) and peak > 0):
    raise ValueError(f"`peak` must be a finite number > 0, got {peak!r}.")
  if not (isinstance(end_value, numbers.Real) and 0 <= end_value <= peak):
    raise ValueError(f"`end_value` must be in [0, peak={peak}], got {end_value!r}.")


def _warmup_then(peak: float, warmup_steps: int, decay: optax.Schedule) -> optax.Schedule:
  """Linear 0 -> peak on [0, W], then `decay(step - W)`."""
  if warmup_steps == 0:
    return decay
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup_steps), decay], [warmup_steps])


def linear_decay(peak: float, total_steps: int, *, warmup_steps: int = 0, end_value: float = 0.0) -> optax.Schedule:
  """Linear decay after an optional linear warm-up (the worst-case-optimal baseline of Defazio et al.).

      η_t = peak · t / W                                          for 0 ≤ t < W
      η_t = end + (peak − end) · (1 − (t − W) / (T − W))           for W ≤ t ≤ T,   η_t = end for t > T

  With W = 0 and end = 0 this is η_t = peak · (1 − t/T).
  """
  _check_common(peak, total_steps, warmup_steps, end_value)
  return _warmup_then(peak, warmup_steps, optax.linear_schedule(peak, end_value, total_steps - warmup_steps))


def cosine(peak: float, total_steps: int, *, warmup_steps: int = 0, end_value: float = 0.0) -> optax.Schedule:
  """Cosine decay after an optional linear warm-up (`optax.warmup_cosine_decay_schedule`).

      η_t = peak · t / W                                                   for 0 ≤ t < W
      η_t = end + (peak − end) · ½ (1 + cos(π (t − W) / (T − W)))          for W ≤ t ≤ T,   end for t > T
  """
  _check_common(peak, total_steps, warmup_steps, end_value)
  return optax.warmup_cosine_decay_schedule(0.0, peak, warmup_steps, total_steps, end_value)


def _check_a(a: float) -> None:
  if not (isinstance(a, numbers.Real) and 0 <= a < 1):
    raise ValueError(f"`a` must be in [0, 1), got {a!r}.")


def rex_profile(frac_done: jax.Array, *, a: float = 0.5) -> jax.Array:
  """REX profile of the done fraction, clamped to [0, 1]:

      f_a(z) = z / ((1 − a) + a·z),   z = 1 − frac_done,   a ∈ [0, 1).

  a = ½ is the paper's REX 2z/(1 + z) (1 at the start, 2/3 halfway, 0 at the end, final slope twice
  linear's); a = 0.9 is the IvanVassi/REX_LR code variant z/(0.1 + 0.9 z); a = 0 is linear decay.
  """
  _check_a(a)
  z = 1.0 - jnp.clip(jnp.asarray(frac_done, jnp.float32), 0.0, 1.0)
  return z / ((1.0 - a) + a * z)


def rex(peak: float, total_steps: int, *, warmup_steps: int = 0, end_value: float = 0.0, a: float = 0.5,
        num_samples: int | None = None) -> optax.Schedule:
  """REX schedule (Chen, Wolfe & Kyrillidis 2022) after an optional linear warm-up.

      η_t = end + (peak − end) · z / ((1 − a) + a·z),   z = 1 − (t − W) / (T − W)   for W ≤ t ≤ T

  (peak · t / W during the warm-up), i.e. for a = ½ and no warm-up η_t = peak · 2(1 − t/T) / (2 − t/T).
  `num_samples = S` re-reads the profile only S times over the decay (the paper's "sampling rate"):
  the done fraction s = 1 − z is replaced by ⌊s·S⌋ / S, so the LR is piecewise constant with at most S values on [W, T).
  None (the paper's REX) samples every step.
  """
  _check_common(peak, total_steps, warmup_steps, end_value)
  _check_a(a)
  if num_samples is not None and (not isinstance(num_samples, numbers.Integral) or num_samples < 1):
    raise ValueError(f"`num_samples` must be None or an integer >= 1, got {num_samples!r}.")
  decay_steps = total_steps - warmup_steps

  def decay(step):
    return end_value + (peak - end_value) * rex_profile(jnp.asarray(step, jnp.float32) / decay_steps, a=a)

  return _warmup_then(peak, warmup_steps, decay if num_samples is None else sampled(decay, decay_steps, num_samples))


def sampled(schedule: optax.Schedule, total_steps: int, num_samples: int) -> optax.Schedule:
  """`schedule` re-read only `num_samples` = S times over [0, T] (the REX paper's "sampling rate"):

      η̃_t = η(⌊t·S/T⌋ · T/S),   t clamped to [0, T],

  piecewise constant with at most S values on [0, T) (S + 1 with the end point), equal to `schedule` at
  the sample points t = kT/S; S = T is the per-step schedule on integer steps.
  """
  if not isinstance(total_steps, numbers.Integral) or total_steps < 1:
    raise ValueError(f"`total_steps` must be an integer >= 1, got {total_steps!r}.")
  if not isinstance(num_samples, numbers.Integral) or num_samples < 1:
    raise ValueError(f"`num_samples` must be an integer >= 1, got {num_samples!r}.")

  def schedule_sampled(step):
    # ⌊t·S/T⌋ with t·S formed first: exact for integer steps (t/T·S may round just below an integer).
    t = jnp.clip(jnp.asarray(step, jnp.float32), 0.0, total_steps)
    return schedule(jnp.floor(t * num_samples / total_steps) * (total_steps / num_samples))

  return schedule_sampled


def step_decay(peak: float, total_steps: int, *, warmup_steps: int = 0, end_value: float = 0.0,
               boundaries: tuple[float, ...] = (0.5, 0.75), factor: float = 0.1) -> optax.Schedule:
  """Step decay after an optional linear warm-up: the peak times `factor` at each boundary passed,

      η_t = peak · factor^{#{b ∈ boundaries : t − W ≥ b·(T − W)}}   for W ≤ t ≤ T,

  boundaries given as fractions of the decay steps (default: ×0.1 at 50 % and 75 %, the usual
  image-classification recipe). `end_value` must be 0: a step schedule keeps its last level to the end.
  """
  _check_common(peak, total_steps, warmup_steps, end_value)
  if end_value != 0:
    raise ValueError(f"the step schedule has no `end_value` (it ends at peak·factor^k), got {end_value!r}.")
  if not (len(boundaries) >= 1 and all(0 < b < 1 for b in boundaries) and list(boundaries) == sorted(boundaries)):
    raise ValueError(f"`boundaries` must be increasing fractions in (0, 1), got {boundaries!r}.")
  if not (isinstance(factor, numbers.Real) and 0 < factor < 1):
    raise ValueError(f"`factor` must be in (0, 1), got {factor!r}.")
  cuts = jnp.asarray(boundaries, jnp.float32) * (total_steps - warmup_steps)

  def decay(step):
    passed = jnp.sum(jnp.asarray(step, jnp.float32)[..., None] >= cuts, -1)  # elementwise over an array of steps
    return peak * jnp.float32(factor) ** passed

  return _warmup_then(peak, warmup_steps, decay)


def _check_trace(name: str, values) -> np.ndarray:
  g = np.asarray(values, np.float64)
  if g.ndim != 1 or g.shape[0] < 2:
    raise ValueError(f"`{name}` must be 1-D with at least 2 entries, got shape {g.shape}.")
  if not (np.all(np.isfinite(g)) and np.all(g > 0)):
    raise ValueError(f"`{name}` must be finite and > 0 everywhere.")
  return g


def median_smooth(gnorms, width_frac: float = 0.1) -> np.ndarray:
  """Median filter of a recorded gradient-norm trace (the refinement recipe's smoothing step).

      width = 2·⌊⌊σ·T⌋ / 2⌋ + 1   (odd; σ = width_frac),
      reflect-pad the end of the trace by 2·width, `scipy.ndimage.median_filter(size=width,
      mode="nearest")`, crop back to T.
  """
  g = _check_trace("gnorms", gnorms)
  if not (isinstance(width_frac, numbers.Real) and 0 <= width_frac < 1):
    raise ValueError(f"`width_frac` must be in [0, 1), got {width_frac!r}.")
  width = 2 * (int(width_frac * g.shape[0]) // 2) + 1
  padded = np.pad(g, (0, 2 * width), mode="reflect")
  return scipy.ndimage.median_filter(padded, size=width, mode="nearest")[: g.shape[0]]


def refined_profile(gnorms, *, norm: str = "l2_sq", smooth: float = 0.1, drop_final_zero: bool = True) -> np.ndarray:
  """Closed-form refined schedule of Defazio et al. from a gradient-norm trace, scaled to max 1.

      w_t = G_t^{−2} (norm="l2_sq", SGD)   or   w_t = 1 / ‖g_t‖₁ (norm="l1", Adam family),
      η_t ∝ w_t · Σ_{p=t+1}^{T'−1} w_p,

  where G = `median_smooth(gnorms, smooth)` (smooth=0: no smoothing). With `drop_final_zero` (the
  default) one copy of G_{T−1} is appended (T' = T + 1) and the trailing η_T = 0 is dropped, so a
  constant trace gives exactly η_t = 1 − t/T (linear decay); without it T' = T and η_t = (T−1−t)/(T−1).
  Large early norms give a warm-up, flat or rising late norms give a fast final drop.
  """
  if norm not in NORMS:
    raise ValueError(f"`norm` must be one of {NORMS}, got {norm!r}.")
  g = median_smooth(gnorms, smooth)
  if drop_final_zero:
    g = np.append(g, g[-1])
  w = g ** (-2.0 if norm == "l2_sq" else -1.0)
  tail = np.append(np.cumsum(w[::-1])[::-1][1:], 0.0)  # Σ_{p>t} w_p
  eta = w * tail
  if drop_final_zero:
    eta = eta[:-1]
  return eta / eta.max()


def refined_schedule(peak: float, gnorms, *, norm: str = "l2_sq", smooth: float = 0.1,
                     drop_final_zero: bool = True) -> optax.Schedule:
  """η_t = peak · `refined_profile(gnorms, ...)`[clip(t, 0, T−1)] as a jittable table lookup.

  T = len(gnorms) is the horizon of the refined run (one recorded norm per step).
  """
  if not (isinstance(peak, numbers.Real) and math.isfinite(peak) and peak > 0):
    raise ValueError(f"`peak` must be a finite number > 0, got {peak!r}.")
  table = jnp.asarray(peak * refined_profile(gnorms, norm=norm, smooth=smooth, drop_final_zero=drop_final_zero),
                      jnp.float32)
  last = table.shape[0] - 1

  def schedule(step):
    return table[jnp.clip(jnp.asarray(step).astype(jnp.int32), 0, last)]

  return schedule


NAMES = ("constant", "linear", "cosine", "rex", "step", "refined")


def make(name: str, peak: float, total_steps: int | None = None, *, warmup_steps: int = 0, end_value: float = 0.0,
         **kwargs) -> optax.Schedule:
  """The schedule called `name` with peak learning rate `peak` over `total_steps`.

  `constant` ignores the horizon (η_t = peak; with `warmup_steps` > 0, a linear warm-up first);
  `linear`, `cosine`, `rex` and `step` need `total_steps` and take `warmup_steps`, `end_value` (and REX's
  `a`, `num_samples`; the step schedule's `boundaries`, `factor`); `refined` needs `gnorms`, the
  gradient-norm trace of a previous run (its horizon is that trace's length), and takes `norm`,
  `smooth`, `drop_final_zero`.
  """
  if name not in NAMES:
    raise ValueError(f"unknown schedule {name!r}; known: {', '.join(NAMES)}.")
  if name == "refined":
    if "gnorms" not in kwargs:
      raise ValueError("the 'refined' schedule needs `gnorms`, the gradient norms of a previous run.")
    return refined_schedule(peak, kwargs.pop("gnorms"), **kwargs)
  if name == "constant":
    if kwargs:
      raise ValueError(f"the 'constant' schedule takes no {sorted(kwargs)}.")
    if warmup_steps:
      return _warmup_then(peak, warmup_steps, optax.constant_schedule(peak))
    return optax.constant_schedule(peak)
  if total_steps is None:
    raise ValueError(f"the {name!r} schedule needs `total_steps`.")
  factory = {"linear": linear_decay, "cosine": cosine, "rex": rex, "step": step_decay}[name]
  return factory(peak, total_steps, warmup_steps=warmup_steps, end_value=end_value, **kwargs)


def last_iterate_bound(lam, G, D: float = 1.0, *, best_scale: bool = False) -> float:
  """Last-iterate bound on E[f(x_T) − f*] for step sizes λ_t (convex, ‖g_t‖ ≤ G_t, ‖x_0 − x*‖ ≤ D):

      D²/(2S_0) + (1/(2S_0)) Σ_t G_t² λ_t² + ½ Σ_{k=0}^{T−2} [λ_k / (S_k S_{k+1})] Σ_{t≥k} G_t² λ_t²,

  with tail sums S_k = Σ_{t≥k} λ_t; λ must be > 0 (the bound is infinite when λ_{T−1} = 0, hence
  `refined_profile(..., drop_final_zero=True)` for comparisons). Scaling λ by c gives A/c + B·c, with
  A = D²/(2S_0) and B the rest, so `best_scale=True` returns the bound of the shape at its best scalar
  multiplier c* = √(A/B): 2√(A·B).
  """
  lam = _check_trace("lam", lam)
  G = _check_trace("G", G)
  if G.shape != lam.shape:
    raise ValueError(f"`G` has shape {G.shape}, expected {lam.shape} (the shape of `lam`).")
  if not D > 0:
    raise ValueError(f"`D` must be > 0, got {D!r}.")
  S = np.cumsum(lam[::-1])[::-1]
  q = G**2 * lam**2
  Q = np.cumsum(q[::-1])[::-1]
  A = D**2 / (2 * S[0])
  B = q.sum() / (2 * S[0]) + 0.5 * np.sum(lam[:-1] / (S[:-1] * S[1:]) * Q[:-1])
  return float(2 * np.sqrt(A * B) if best_scale else A + B)

