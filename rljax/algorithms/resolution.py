"""Turning an algorithm config (a preset of `rljax.algorithms.presets`) into callables.

    import rljax.algorithms as algos
    cfg = algos.get("dapo")                   # presets.get plus the derived `inputs` field
    advantage_fn, loss_fn = algos.resolve(cfg)
    batch |= advantage_fn(batch)              # {"advantages", ...}: constants of the objective
    loss, metrics = loss_fn(logp, batch)      # differentiate w.r.t. logp (the policy's log-probs)

The config fields are described in `rljax.algorithms.presets`; `advantage` names a key of
`ADVANTAGES`, `kl.schedule["name"]` a key of `KL_SCHEDULES`, and `loss` a registered loss of kind
"policy": its registration (`rljax.losses.spec`) says which batch fields it reads, whether it
computes its own KL term, and how to call it. `resolve` / `resolve_kernels` convert and validate the
config once.

**Uniform call convention.** `resolve(cfg)` returns `(advantage_fn, loss_fn)`, two
`functools.partial` objects whose bound keywords are the estimator and kernel themselves, each a
`functools.partial` of the named function with its `*_kwargs`:

* `advantage_fn(batch) -> dict` with `"advantages"` (`f[B]` or `f[B, T]`), `"returns"` (`f[B, T]`,
  token-level estimators) and `"keep"` (`bool[B]`, when dynamic sampling or a filter is on).
* `loss_fn(logp, batch) -> (loss, metrics)`; gradients flow into `logp` (and into
  `batch["values"]` for the critic term, `batch["demo_logp"]` for HPT); every other input is a
  constant. Metrics are stop-gradient; `pg_loss` is the kernel's term, `kl_loss`/`kl_coef`,
  `entropy` and `value_loss` the added ones; `loss_numerator`/`loss_denominator`, where present,
  belong to the kernel's term only.

`batch` is a mapping with the shared array conventions of the spec (§0.1): `mask: bool[B, T]`,
`rewards: f[B]`, `old_logp`, `ref_logp: f[B, T]`, and, per preset (`required_inputs(cfg)`):

| key                         | needed by                                                       |
|-----------------------------|-----------------------------------------------------------------|
| `old_values: f[B, T]`       | GAE (ppo, pf_ppo): critic values at rollout time                |
| `values: f[B, T]`           | critic term (ppo, pf_ppo): current critic values                |
| `key: PRNGKey`              | clip_cov (random token draw); pf_ppo with `filter.strategy="best_random"` |
| `teacher_logp: f[B, T]`     | kdrl: teacher log-probs of the student's tokens                 |
| `demo_logp, demo_mask: [G, Td]` | hpt: each prompt's demonstration                            |
| `step: i32[]`               | a KL schedule (grpo_d, kdrl): the training step (traced; no recompile) |
| `token_weights: f[B, T]`    | oreal, optional: token-RM weights (`rljax.losses.oreal.token_rm_weights`) |
| `entropy: f[B, T]`          | any preset with `entropy_coef != 0`                             |
| `greedy_rewards: f[B]`      | the "remax" estimator                                           |
| `kl_coef: f[]`              | `kl.adaptive`: the controller's current β (traced)              |
| `reward_stats: {mean, var, count}` | `reward_norm` (ppo_max): running reward statistics; the advantage stage returns the updated ones |

Generic pieces applied by the resolved callables (all off unless the preset turns them on):

* KL `where="reward"`: for token-level estimators the per-token penalty −β·k_t(old_logp, ref_logp)
  enters the token rewards (`gae` via `kl_penalized_rewards`, `reinforce_pp` via `token_kl`); for
  group estimators the sequence sum β·Σ_t m·k_t is subtracted from the scalar reward (TRL's RLOO).
* KL `where="loss"`: β·`weighted_seq_kl_loss(logp, batch[target], mask, w, agg=agg)` with w = 1,
  or w = DADS weights (APO). KDRL and OREAL compute their KL inside the kernel instead.
* Dynamic sampling: `keep` marks groups whose raw rewards are not all equal, and the loss trains on
  `mask & keep` (the same as dropping the other groups from the batch; the refill loop that keeps
  the batch full is the sampler's job, bounded by `max_num_gen_batches`).
* OREAL's `filter_trajectory`: `keep` also marks one correct and one incorrect response per group with
  both outcomes (`rljax.losses.oreal.one_pos_one_neg`, drawn with `batch["key"]`); the advantages are
  computed on the whole group first.
* Overlong shaping: R ← R + factor·R_len(L) with L = Σ_t mask (response length), before the estimator.
* Critic: `value_loss(batch["values"], batch["old_values"], batch["returns"], mask)` times `vf_coef`.

All configuration is static: `resolve` snapshots the config (later edits do not change the returned
callables), and both callables are `jax.jit`-able with `batch` as a pytree argument.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from rljax import checks
from rljax.algorithms import presets
from rljax.losses import advantages as adv_lib
from rljax.losses import aggregation, apo, grpo_d, kdrl, oreal, pf_ppo, ppo_max, registry, value
from rljax.losses.kl import KINDS as KL_KINDS, kl_penalized_rewards, kl_penalty

Batch = Mapping[str, Any]

# ------------------------------------------------------------------------------------------------
# Name -> function tables


ADVANTAGES: dict[str, Callable] = {
    "grpo": adv_lib.grpo_advantages,  # (rewards, *, group_size, scale, eps, std_ddof) -> f[B]
    "rloo": adv_lib.rloo_advantages,  # (rewards, *, group_size) -> f[B]
    "passk": adv_lib.passk_advantages,  # (rewards, *, group_size, eps, scale_by_std) -> f[B]
    "opo": adv_lib.opo_advantages,  # (rewards, lengths, *, group_size) -> f[B]
    "reinforce_pp": adv_lib.reinforce_pp_advantages,  # (rewards, mask, *, token_kl, kl_coef, gamma, baseline, group_size)
    "gae": adv_lib.gae,  # (token_rewards, values, mask, *, gamma, lam) -> (adv, returns)
    "remax": adv_lib.remax_advantages,  # (rewards, greedy_rewards, mask) -> (adv, returns)
}
"""Advantage estimators by name (all in `rljax.losses.advantages`)."""

_GROUP_ESTIMATORS = ("grpo", "rloo", "passk", "opo")  # scalar f[B] -> f[B], contiguous groups
_TOKEN_ESTIMATORS = ("reinforce_pp", "gae", "remax")  # -> (f[B, T] advantages, f[B, T] returns)

KL_SCHEDULES: dict[str, Callable] = {
    "grpo_d": grpo_d.grpo_d_kl_schedule,  # (step, total_steps, *, kind, beta_min, beta_max, warmup_frac)
    "kdrl_linear": kdrl.kdrl_kl_schedule,  # (step, *, beta0, beta_min, decay)
}
"""β(step) schedules by name; `kl.schedule = {"name": ..., **kwargs}`."""

KL_PLACES = ("loss", "reward", "none")


# ------------------------------------------------------------------------------------------------
# Resolution


def _as_dict(config) -> dict:
  if isinstance(config, ml_collections.ConfigDict):
    return config.to_dict()
  return copy.deepcopy(dict(config))


def _validate(c: dict) -> registry.LossSpec:
  """Checks every name and switch of a converted config; returns the loss's registration."""
  if c["advantage"] not in ADVANTAGES:
    raise KeyError(f"unknown advantage estimator {c['advantage']!r}; known: {', '.join(sorted(ADVANTAGES))}")
  spec = registry.spec(c["loss"])  # KeyError listing the registered losses
  if spec.kind != "policy":
    raise ValueError(f"loss {c['loss']!r} is a {spec.kind} loss; an algorithm preset needs a policy loss: "
                     f"{', '.join(registry.names('policy'))}.")
  checks.check_choice("agg", c["agg"], aggregation.MODES)
  kl = c["kl"]
  checks.check_choice("kl.where", kl["where"], KL_PLACES)
  checks.check_choice("kl.kind", kl["kind"], KL_KINDS)
  if kl["where"] == "reward":
    if c["advantage"] == "remax":
      raise ValueError("kl.where='reward' is not supported with the 'remax' estimator; pass KL-penalised "
                       "token rewards yourself or use kl.where='loss'.")
    if kl.get("schedule"):
      raise ValueError("a KL schedule is only supported with kl.where='loss'.")
  adaptive = kl.get("adaptive")
  if adaptive:
    if kl.get("schedule"):
      raise ValueError("kl.adaptive and kl.schedule both set β: choose one.")
    if kl["where"] == "none":
      raise ValueError("kl.adaptive needs kl.where='loss' or 'reward'.")
    for field in ("target", "horizon"):
      checks.check_positive(f"kl.adaptive.{field}", adaptive.get(field, 0.0))
    checks.check_choice("kl.adaptive.per", adaptive.get("per", "samples"), ("samples", "rollout"))
  if kl.get("schedule") and kl["schedule"]["name"] not in KL_SCHEDULES:
    raise KeyError(f"unknown KL schedule {kl['schedule']['name']!r}; known: {', '.join(sorted(KL_SCHEDULES))}")
  if c.get("dads", {}).get("enabled") and (kl["where"] != "loss" or spec.own_kl):
    raise ValueError("DADS weights the KL loss term: it needs kl.where='loss' and a loss without its own KL.")
  if c["advantage"] == "gae" and not c["critic"]["enabled"]:
    raise ValueError("the 'gae' estimator needs critic values: set critic.enabled=True.")
  strategy = c.get("filter", {}).get("strategy", "none")
  checks.check_choice("filter.strategy", strategy, presets.PF_STRATEGIES)
  if not isinstance(c.get("filter_trajectory", False), bool):
    raise ValueError(f"`filter_trajectory` must be a bool, got {c['filter_trajectory']!r}.")
  n = c["group_size"]
  if isinstance(n, bool) or not isinstance(n, int) or n < 1:
    raise ValueError(f"`group_size` must be a positive int, got {n!r}.")
  return spec


def _plan(config) -> dict:
  """The config converted to a plain dict and validated once, with the derived `inputs`."""
  c = _as_dict(config)
  spec = _validate(c)
  c["inputs"] = _inputs(c, spec)
  return c


def _uses_keep(c: Mapping) -> bool:
  return (bool(c["dynamic_sampling"]["enabled"]) or c.get("filter", {}).get("strategy", "none") != "none"
          or bool(c.get("filter_trajectory")))


def _loss_kl_applies(c: Mapping) -> bool:
  """The generic KL-as-loss term (not computed inside the kernel)."""
  return c["kl"]["where"] == "loss" and not registry.spec(c["loss"]).own_kl


def _inputs(c: Mapping, spec: registry.LossSpec) -> dict[str, tuple[str, ...]]:
  name, kl = c["advantage"], c["kl"]
  adv = ["rewards", "mask"]
  if name == "gae":
    adv.append("old_values")
  if name == "remax":
    adv.append("greedy_rewards")
  if c.get("reward_norm", {}).get("enabled"):
    adv.append("reward_stats")
  if kl["where"] == "reward":
    adv += ["old_logp", kl["target"]]
    if kl.get("adaptive"):
      adv.append("kl_coef")
  if c.get("filter", {}).get("strategy") == "best_random" or c.get("filter_trajectory"):
    adv.append("key")

  loss = [k for k in spec.reads if k != "logp"]
  if spec.own_kl:  # the kernel takes its KL target as an input even when its coefficient is 0
    loss.append(kl["target"])
  if kl["where"] == "loss":
    if _loss_kl_applies(c):
      loss.append(kl["target"])
    if kl.get("schedule"):
      loss.append("step")
    if kl.get("adaptive"):
      loss.append("kl_coef")
    if c.get("dads", {}).get("enabled"):
      loss += ["rewards", "advantages"]
  if c["entropy_coef"]:
    loss.append("entropy")
  if c["critic"]["enabled"]:
    loss += ["values", "old_values", "returns"]
  if _uses_keep(c):
    loss.append("keep")
  loss.append("mask")
  dedup = lambda keys: tuple(dict.fromkeys(keys))
  return {"advantage": dedup(adv), "loss": dedup(loss)}


def required_inputs(config) -> dict[str, tuple[str, ...]]:
  """Batch keys read by the resolved callables: {"advantage": ..., "loss": ...}.

  The loss keys are the loss's registered `reads` (less `logp`, the argument being differentiated)
  plus what the preset's switches add, and include the advantage stage's outputs ("advantages",
  "returns", "keep"), which the caller merges into the batch (`batch |= advantage_fn(batch)`).
  "token_weights" (OREAL) is optional and not listed.
  """
  return _plan(config)["inputs"]


def get(name: str) -> ml_collections.ConfigDict:
  """`presets.get(name)` plus the derived `inputs` field (`required_inputs`); this is `rljax.algorithms.get`.

  A fresh, unlocked `ConfigDict`; a `KeyError` lists the known names for an unknown `name`.
  """
  cfg = presets.get(name)
  cfg.inputs = _plan(cfg)["inputs"]
  return cfg


def override(config: ml_collections.ConfigDict, overrides: Mapping, *, where: str = "overrides"):
  """Sets `overrides` into a preset config in place, key by key, and returns it: nested mappings merge into the
  nested fields (`{"kl": {"coef": 0.1}}` changes β only); a key the preset lacks is a `KeyError` naming its path
  (`where.key`), not a silent new field. A config that carries `inputs` (from `get`) has them recomputed, which
  validates the edited config."""
  for key, new in overrides.items():
    if key not in config:
      raise KeyError(f"{where}: the preset has no field {key!r}.")
    if isinstance(new, (Mapping, ml_collections.ConfigDict)) and isinstance(config[key], ml_collections.ConfigDict):
      override(config[key], new, where=f"{where}.{key}")
    else:
      config[key] = new
  if "inputs" in config:
    config.inputs = _plan(config)["inputs"]
  return config


def _require(batch: Batch, keys, what: str) -> None:
  missing = [k for k in keys if k not in batch]
  if missing:
    raise KeyError(f"{what} needs batch keys {missing} (required: {list(keys)}); see required_inputs(config).")


def _kl_coef(kl: Mapping, batch: Batch):
  if kl["where"] == "none":
    return 0.0
  if kl.get("adaptive"):
    return batch["kl_coef"]
  schedule = kl.get("schedule")
  if not schedule:
    return kl["coef"]
  fn = KL_SCHEDULES[schedule["name"]]
  return fn(batch["step"], **{k: v for k, v in schedule.items() if k != "name"})


def _seq_kl(batch: Batch, kl: Mapping) -> jax.Array:
  """Σ_t m·k(old_logp, target) per response, `f[B]` (constant)."""
  mask = jnp.asarray(batch["mask"], bool)
  old = jnp.where(mask, batch["old_logp"], 0)
  tgt = jnp.where(mask, batch[kl["target"]], 0)
  tok = kl_penalty(old, tgt, kind=kl["kind"], clamp=kl["clamp"])
  return jax.lax.stop_gradient(jnp.sum(jnp.where(mask, tok, 0), axis=-1))


def _compute_advantages(batch: Batch, *, plan: Mapping, estimator: Callable) -> dict[str, jax.Array]:
  """advantage_fn(batch) -> {"advantages", ["returns"], ["keep"]} (see the module docstring)."""
  _require(batch, plan["inputs"]["advantage"], f"advantage estimator {plan['advantage']!r}")
  name, n, kl = plan["advantage"], plan["group_size"], plan["kl"]
  mask = jnp.asarray(batch["mask"], bool)
  (raw,) = checks.as_compute(batch["rewards"])
  lengths = jnp.sum(mask, axis=-1)
  rewards = raw
  out: dict[str, jax.Array] = {}
  norm = plan.get("reward_norm", {})
  if norm.get("enabled"):
    stats = ppo_max.RunningMeanStd(**batch["reward_stats"])
    rewards, stats = ppo_max.normalize_and_clip_rewards(rewards, stats, clip=norm["clip"],
                                                        shift_mean=norm["shift_mean"])
    out["reward_stats"] = stats._asdict()
  over = plan["overlong"]
  if over["enabled"]:
    rewards = rewards + adv_lib.overlong_penalty(
        lengths, max_len=over["max_len"], cache_len=over["cache_len"], factor=over["factor"])
  reward_kl = kl["where"] == "reward" and (kl["coef"] != 0 or bool(kl.get("adaptive")))
  coef = _kl_coef(kl, batch) if reward_kl else 0.0
  if name in _GROUP_ESTIMATORS:
    if reward_kl:
      rewards = rewards - coef * _seq_kl(batch, kl)
    if name == "opo":
      adv = estimator(rewards, lengths, group_size=n)
    else:
      adv = estimator(rewards, group_size=n)
  elif name == "reinforce_pp":
    kw = {}
    if reward_kl:
      kw = dict(token_kl=kl_penalty(batch["old_logp"], batch[kl["target"]], kind=kl["kind"], clamp=kl["clamp"]),
                kl_coef=coef)
    if estimator.keywords.get("baseline", "none") == "group":
      kw["group_size"] = n
    adv, out["returns"] = estimator(rewards, mask, **kw)
  elif name == "gae":
    token_rewards = kl_penalized_rewards(
        rewards, batch["old_logp"] if reward_kl else jnp.zeros(mask.shape),
        batch[kl["target"]] if reward_kl else jnp.zeros(mask.shape), mask,
        kl_coef=coef, kind=kl["kind"], clamp=kl["clamp"])
    adv, out["returns"] = estimator(token_rewards, batch["old_values"], mask)
    if plan["critic"]["whiten_advantages"]:
      adv = adv_lib.whiten(adv, mask)
  else:  # remax
    adv, out["returns"] = estimator(rewards, batch["greedy_rewards"], mask)

  stcr = plan.get("stcr", {})
  if stcr.get("enabled"):
    scale = apo.apo_stcr_scale(raw.reshape(-1, n), lengths.reshape(-1, n), base=stcr["base"]).reshape(-1)
    adv = adv * (scale if jnp.ndim(adv) == 1 else scale[:, None])
  if _uses_keep(plan):
    keep = jnp.ones(raw.shape, bool)
    if plan["dynamic_sampling"]["enabled"]:
      keep = keep & adv_lib.dynamic_sampling_mask(raw, group_size=n)
    strategy = plan.get("filter", {}).get("strategy", "none")
    if strategy != "none":
      keep = keep & pf_ppo.pf_ppo_filter(raw.reshape(-1, n), batch.get("key"), strategy=strategy).reshape(-1)
    if plan.get("filter_trajectory"):  # after the advantages: OREAL's RLOO sees the whole group
      keep = keep & oreal.one_pos_one_neg(raw.reshape(-1, n), batch["key"]).reshape(-1)
    out["keep"] = keep
  out["advantages"] = adv
  return jax.lax.stop_gradient(out)


def _compute_loss(logp: jax.Array, batch: Batch, *, plan: Mapping, kernel: Callable):
  """loss_fn(logp, batch) -> (loss, metrics) (see the module docstring)."""
  _require(batch, plan["inputs"]["loss"], f"loss {plan['loss']!r}")
  mask = jnp.asarray(batch["mask"], bool)
  if _uses_keep(plan):
    mask = mask & jnp.asarray(batch["keep"], bool)[:, None]
  b = {**batch, "logp": logp, "mask": mask}
  kl = plan["kl"]
  # With kl.where="reward" the KL already sits in the advantages: the loss sees β = 0.
  ctx = {"group_size": plan["group_size"], "kl_coef": _kl_coef(kl, b) if kl["where"] == "loss" else 0.0,
         "kl_kind": kl["kind"],
         "kl_target": kl["target"]}
  pg, kernel_metrics = registry.spec(plan["loss"])(kernel, b, ctx)
  metrics = {**kernel_metrics, "pg_loss": pg}
  loss = pg
  agg = plan["agg"]
  if _loss_kl_applies(plan):
    coef = ctx["kl_coef"]
    dads = plan.get("dads", {})
    if dads.get("enabled"):
      adv = jnp.asarray(b["advantages"])
      seq_adv = adv if adv.ndim == 1 else jnp.sum(jnp.where(mask, adv, 0), axis=-1)
      n = plan["group_size"]
      weights = apo.dads_kl_weights(
          jnp.asarray(b["rewards"]).reshape(-1, n), seq_adv.reshape(-1, n), form=dads["form"]).reshape(-1)
    else:
      weights = jnp.ones(mask.shape[:1], checks.compute_dtype(logp))
    kl_loss, _ = apo.weighted_seq_kl_loss(
        logp, b[kl["target"]], mask, weights, kind=kl["kind"], clamp=kl["clamp"], agg=agg)
    loss = loss + coef * kl_loss
    metrics["kl_loss"], metrics["kl_coef"] = kl_loss, jnp.asarray(coef, loss.dtype)
  if plan["entropy_coef"]:
    entropy = aggregation.aggregate(b["entropy"], mask, agg)
    loss = loss - plan["entropy_coef"] * entropy
    metrics["entropy"] = entropy
  critic = plan["critic"]
  if critic["enabled"]:
    v_loss, v_metrics = value.value_loss(
        b["values"], b["old_values"], b["returns"], mask, clip=critic["value_clip"], agg=agg)
    loss = loss + critic["vf_coef"] * v_loss
    metrics["value_loss"], metrics["vf_clipfrac"] = v_loss, v_metrics["vf_clipfrac"]
  return loss, checks.stop_metrics(metrics)


def _kernels(c: Mapping) -> tuple[functools.partial, functools.partial]:
  estimator = functools.partial(ADVANTAGES[c["advantage"]], **c["advantage_kwargs"])
  # `agg` reaches kernels that aggregate tokens; sequence-level ones (A-LoL) reduce per example.
  kernel = registry.bind(c["loss"], agg=c["agg"])
  return estimator, functools.partial(kernel.func, **kernel.keywords, **c["loss_kwargs"])


def resolve_kernels(config) -> tuple[functools.partial, functools.partial]:
  """The raw `(estimator, kernel)`: `partial(ADVANTAGES[advantage], **advantage_kwargs)` and
  `partial(registry.get(loss), agg=agg, **loss_kwargs)` (`agg` only where the kernel takes it), with
  their own signatures."""
  return _kernels(_plan(config))


def resolve(config) -> tuple[functools.partial, functools.partial]:
  """`(advantage_fn, loss_fn)` of a preset, with the uniform signatures of the module docstring.

      advantage_fn(batch) -> {"advantages": ..., ["returns"], ["keep"]}
      loss_fn(logp, batch) -> (loss, metrics)

  Both are `functools.partial`s of module functions with the snapshot of the config (`plan`,
  converted and validated once) and the named estimator / loss kernel (`resolve_kernels`) bound as
  keywords. Raises `KeyError` for an unknown estimator, loss or schedule name and `ValueError` for
  inconsistent switches or a loss that is not a policy loss.
  """
  c = _plan(config)
  estimator, kernel = _kernels(c)
  plan = _freeze(c)
  return (functools.partial(_compute_advantages, plan=plan, estimator=estimator),
          functools.partial(_compute_loss, plan=plan, kernel=kernel))


class _FrozenDict(dict):
  """A read-only dict snapshot (mutation raises), so a resolved callable cannot drift."""

  def _readonly(self, *args, **kwargs):
    raise TypeError("a resolved plan is read-only; edit the config and call resolve() again.")

  __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]


def _freeze(x):
  if isinstance(x, Mapping):
    return _FrozenDict({k: _freeze(v) for k, v in x.items()})
  if isinstance(x, list):
    return tuple(_freeze(v) for v in x)
  return x

