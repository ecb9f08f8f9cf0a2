"""Offline policy gradients on a fixed (prompt, response, reward) dataset: A-LoL and its baselines.

Baheti, Lu, Brahman, Le Bras, Sap & Riedl, "Leftover Lunch: Advantage-based Offline Reinforcement
Learning for Language Models" (A-LoL), ICLR 2024. The whole response is one action. With

    NLL_θ(y) = −Σ_t log π_θ(y_t|·)                   (masked sum, not mean)
    ρ = π_θ(y|x)/π_ref(y|x) = exp(Σ_t log π_θ − Σ_t log π_ref),   stop-gradient
    A₊ = max(A, 0),  A = R(x, y) − V_ref(x)
    KL(y) = log π_θ(y) − log π_ref(y)                 (sequence log-probs; = NLL_ref − NLL_θ)

the per-example losses of `alol_loss` are

    a_lol           A₊ · clip(ρ, 1−ε, 1+ε) · NLL_θ(y)
    a_lol_seq       A₊ · Σ_t clip(ρ_t, 1−ε, 1+ε)·(−log π_θ(y_t)),   ρ_t the per-token ratio
    a_lol_ref_free  A₊ · NLL_θ(y)
    a_lol_kl        A₊ · NLL_θ(y) + β_KL·KL(y)                      (requires ε = 0 and β_KL > 0)
    r_lol           R · clip(ρ, 1−ε, 1+ε) · NLL_θ(y)
    wbc             R · NLL_θ(y)
    r_gold          R · Σ_t max(π_θ(y_t), u)·(−log π_θ(y_t)),   weight stop-gradient, u = gold_floor
    nll             NLL_θ(y)

and, as in the HH script, `a_lol` / `r_lol` with β_KL > 0 are "A-LoL KL" / "R-LoL KL": ε must be 0
(no ratio) and the loss is A₊·NLL_θ + β_KL·KL (resp. R·NLL_θ + β_KL·KL), so `a_lol` with β_KL > 0
equals `a_lol_kl`. No other variant takes a KL term.

Gradients flow only through `policy_token_logps`: the reference log-probs, the ratios, the GOLD
token weights and `weights` (A or R) are constants of the objective.

Checked against the released code (abaheti95/LoL-RL, commits 223df72 / fb47141):
* `train_generation_task_with_off_policy_PG.py`, training loop of `main()`: the variant formulas
  above, the per-token (`a_lol_seq`) and sequence (`a_lol`, `r_lol`) ratio exp(NLL_ref − NLL_θ)
  clamped to [1−ε, 1+ε] when `--ppo_clip` is given (argparse default None: no clip), the clamp of
  A at 0 in all four advantage variants, the `a_lol_kl` branch (ratio fixed to 1, penalty
  `kl_beta * (baseline_nll − nll)` per example), GOLD's floor max(π_t, 0.1), summed NLLs.
  `--kl_beta` defaults to None there (no KL unless passed).
* `lolrl_qlora_llama_hh.py`, `ScriptArguments` and the `__main__` loop: `ppo_clip = 0.9`,
  `kl_beta = 0.0`; the `a_lol` and `r_lol` branches add `kl_beta * mean(baseline_nll − nll)` and
  drop the ratio when `kl_beta > 0`, after `assert ppo_clip == 0.0`; that script never dispatches on
  `a_lol_kl`. It clips the sequence ratio only when `ppo_clip > 0` (so ε = 0 there means *no clip*,
  which is `clip_eps=None` here) but the per-token ratio whenever `ppo_clip is not None`.
* Not confirmed: the stored README revision that lists the options says "`--kl_beta`: default `0.2`.
  KL beta parameter for A-LoL KL", against the dataclass default 0.0; no revision stating 0.0 could
  be found. The β_KL of the released A-LoL KL runs is unknown [M]; the default here is the code's 0.0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.ops.reductions import masked_mean, masked_sum
from rljax.losses.registry import register

Metrics = dict[str, jax.Array]

VARIANTS = ("a_lol", "a_lol_seq", "a_lol_ref_free", "a_lol_kl", "r_lol", "wbc", "r_gold", "nll")
_ADVANTAGE_VARIANTS = ("a_lol", "a_lol_seq", "a_lol_ref_free", "a_lol_kl")
_KL_VARIANTS = ("a_lol_kl", "a_lol", "r_lol")  # the variants the released code adds β_KL·KL to


def _clip(ratio: jax.Array, clip_eps: float | None) -> jax.Array:
  if clip_eps is None:
    return ratio
  return jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)


@register("alol", kind="policy", reads=("logp", "ref_logp", "mask", "weights"))
def alol_loss(
    policy_token_logps: jax.Array,
    ref_token_logps: jax.Array,
    mask: jax.Array,
    weights: jax.Array,
    *,
    variant: str = "a_lol",
    clip_eps: float | None = 0.9,
    kl_beta: float = 0.0,
    gold_floor: float = 0.1,
    reduction: str = "mean",
) -> tuple[jax.Array, Metrics]:
  """A-LoL family of offline policy-gradient losses (formulas in the module docstring).

  Conventions, and where they differ from the reference code (abaheti95/LoL-RL,
  `lolrl_qlora_llama_hh.py`):
  * All four advantage variants use A₊ = max(weights, 0), so an example with A ≤ 0 has exactly zero
    loss and gradient. The reference clamps in `a_lol`/`a_lol_seq` but feeds the raw advantage to
    `a_lol_ref_free`, relying on positive-advantage sampling (`priority_probs`) instead.
  * `clip_eps = ε ∈ [0, 1]` clips the ratio to [1−ε, 1+ε] in every ratio variant, so ε = 0 disables
    the ratio (ρ̄ = 1: `a_lol` becomes `a_lol_ref_free`). `clip_eps=None` uses the unclipped ratio,
    which is what the reference's `a_lol`/`r_lol` do for `ppo_clip = 0`.
  * `a_lol_kl` raises `ValueError` unless `clip_eps == 0` (the HH script's `assert ppo_clip == 0.0`
    in its KL branch; the generation-task script just ignores ε there) and unless `kl_beta > 0`
    (with β_KL = 0 it would silently be `a_lol_ref_free`). `kl_beta` defaults to 0.0, the HH
    dataclass default, so A-LoL KL needs an explicit β_KL. `a_lol`/`r_lol` with `kl_beta > 0` are the
    HH script's KL branches and need `clip_eps == 0` too; other variants refuse `kl_beta > 0`. The
    reference adds β·mean(...) once per batch; here the KL term is per example, which is the same
    under `reduction="mean"`.
  * `r_lol`, `wbc` and `r_gold` use R as given (HH rewards are σ(RM score) ≥ 0 in the paper).

  Args:
    policy_token_logps: `f[B, T]` log π_θ(y_t|x, y_<t) of the response tokens; receives gradients.
    ref_token_logps: `f[B, T]` log π_ref(y_t|·); stop-gradient. Ignored by wbc/r_gold/nll and by
      a_lol_ref_free, but always validated.
    mask: `bool[B, T]`, True on response tokens. An empty row gives NLL = 0 and ρ = 1.
    weights: `f[B]` advantage A (a_lol*) or reward R (r_lol, wbc, r_gold); ignored by nll.
    variant: one of `VARIANTS`.
    clip_eps: ratio clip ε ∈ [0, 1], or None for no clipping (ignored by variants without ratio).
    kl_beta: β_KL ≥ 0; > 0 required by a_lol_kl, allowed (with clip_eps=0) for a_lol and r_lol.
    gold_floor: lower bound u ∈ [0, 1] on the GOLD token weight (r_gold only).
    reduction: "mean" (default), "sum" or "none" (per-example `f[B]`).

  Metrics (stop-gradient batch means): `nll` (summed NLL), `weight` (A₊ or R as used),
  `log_ratio` (sequence log ρ), `ratio` (ρ, per-token ρ_t for a_lol_seq), `clip_frac` (fraction of
  ratios outside the clip range), `pos_frac` (fraction of `weights` > 0) and `kl` (sequence
  log π_θ − log π_ref, the a_lol_kl penalty before β).
  """
  checks.check_choice("variant", variant, VARIANTS)
  batch, _ = checks.check_same_shape(
      2, policy_token_logps=policy_token_logps, ref_token_logps=ref_token_logps, mask=mask
  )
  checks.check_same_shape(1, weights=weights)
  if jnp.shape(weights) != (batch,):
    raise ValueError(f"`weights` has shape {jnp.shape(weights)}, expected ({batch},) (one per example).")
  if clip_eps is not None:
    checks.check_in_range("clip_eps", clip_eps, 0.0, 1.0)
  checks.check_nonnegative("kl_beta", kl_beta)
  checks.check_in_range("gold_floor", gold_floor, 0.0, 1.0)
  beta = checks.concrete_value(kl_beta)  # None when traced: the value checks below are skipped
  if variant == "a_lol_kl" and beta is not None and not beta > 0:
    raise ValueError(f"`kl_beta` must be > 0 for variant 'a_lol_kl' (A-LoL KL), got {kl_beta}; "
                     "with kl_beta = 0 it is 'a_lol_ref_free'.")
  if variant not in _KL_VARIANTS and beta is not None and beta > 0:
    raise ValueError(f"`kl_beta` > 0 is only used by variants {_KL_VARIANTS}, got kl_beta={kl_beta} "
                     f"for variant {variant!r}.")
  # A traced kl_beta cannot be checked: a_lol/r_lol then add β·KL whatever ε is (zero at β = 0).
  kl_branch = variant == "a_lol_kl" or (variant in _KL_VARIANTS and (beta is None or beta > 0))
  needs_zero_clip = variant == "a_lol_kl" or (kl_branch and beta is not None)
  if needs_zero_clip and (clip_eps is None or checks.concrete_value(clip_eps) not in (0.0, None)):
    raise ValueError(f"`clip_eps` must be 0 for variant {variant!r} with a KL term (no ratio, as the "
                     f"reference's `assert ppo_clip == 0.0`), got {clip_eps}.")

  pol, ref, w = checks.as_compute(policy_token_logps, ref_token_logps, weights)
  ref = jax.lax.stop_gradient(ref)
  w = raw_w = jax.lax.stop_gradient(w)
  if variant in _ADVANTAGE_VARIANTS:
    w = jnp.maximum(w, 0)

  seq_pol = masked_sum(pol, mask, axis=-1)
  seq_ref = masked_sum(ref, mask, axis=-1)
  nll = -seq_pol
  log_ratio = jax.lax.stop_gradient(seq_pol) - seq_ref
  ratio = jnp.exp(log_ratio)
  tok_ratio = jnp.exp(jax.lax.stop_gradient(pol) - ref)
  lo, hi = (0.0, jnp.inf) if clip_eps is None else (1.0 - clip_eps, 1.0 + clip_eps)
  clip_frac = jnp.mean(((ratio < lo) | (ratio > hi)).astype(pol.dtype))
  ratio_metric = jnp.mean(ratio)

  if variant in ("a_lol", "r_lol"):
    per_example = w * _clip(ratio, clip_eps) * nll  # ε = 0 in the KL branch: the ratio is 1
    if kl_branch:
      per_example = per_example + kl_beta * (seq_pol - seq_ref)
  elif variant == "a_lol_seq":
    per_example = w * masked_sum(_clip(tok_ratio, clip_eps) * -pol, mask, axis=-1)
    outside = (tok_ratio < lo) | (tok_ratio > hi)
    clip_frac = masked_mean(outside.astype(pol.dtype), mask)
    ratio_metric = masked_mean(tok_ratio, mask)
  elif variant == "a_lol_kl":
    per_example = w * nll + kl_beta * (seq_pol - seq_ref)
  elif variant == "r_gold":
    # GOLD's importance weight π_θ(y_t) is floored so that unlikely tokens keep some signal.
    gold_w = jnp.maximum(jnp.exp(jax.lax.stop_gradient(pol)), gold_floor)
    per_example = w * masked_sum(gold_w * -pol, mask, axis=-1)
  elif variant == "nll":
    per_example = nll
  else:  # a_lol_ref_free, wbc: the weight times the summed NLL.
    per_example = w * nll

  metrics = {
      "nll": jnp.mean(nll),
      "weight": jnp.mean(w),
      "log_ratio": jnp.mean(log_ratio),
      "ratio": ratio_metric,
      "clip_frac": clip_frac,
      "pos_frac": jnp.mean((raw_w > 0).astype(pol.dtype)),
      "kl": jnp.mean(seq_pol - seq_ref),
  }
  return checks.reduce_examples(per_example, reduction), checks.stop_metrics(metrics)


def advantage_filter(rewards: jax.Array, values: jax.Array) -> tuple[jax.Array, jax.Array]:
  """A-LoL advantage A = R − V_ref(x): returns (A₊ = max(A, 0) `f[B]`, keep = A > 0 `bool[B]`).

  The advantage is a fixed property of the data (V_ref is regressed separately on π_ref's own
  samples), so the output is stop-gradient: the policy loss must not train the value head.
  """
  checks.check_same_shape(1, rewards=rewards, values=values)
  r, v = checks.as_compute(rewards, values)
  adv = jax.lax.stop_gradient(r - v)
  return jnp.maximum(adv, 0), adv > 0


def priority_probs(adv_pos: jax.Array) -> jax.Array:
  """Sampling distribution of A-LoL's "good_priority" strategy: p ∝ A₊ (negative entries count as 0).

  When every A₊ is 0 the distribution is uniform rather than 0/0 = NaN, which is what the reference
  code's `weights / weights.sum()` would give.
  """
  (n,) = checks.check_same_shape(1, adv_pos=adv_pos)
  (a,) = checks.as_compute(adv_pos)
  a = jnp.maximum(jax.lax.stop_gradient(a), 0)
  total = jnp.sum(a)
  has_mass = total > 0
  return jnp.where(has_mass, a / jnp.where(has_mass, total, 1), 1.0 / max(n, 1))
