"""PPO-max: running-statistics reward normalisation, and the PPO recipe with each trick switchable.

Zheng, Dou, Gao, … & Huang, "Secrets of RLHF in Large Language Models Part I: PPO", 2023
(arXiv 2307.04964). Implemented after the authors' MOSS-RLHF code (`ppo/ppo_trainer.py`, `utils.py`,
`config_ppo.py`, `train_ppo_zh.sh`). The recipe, each piece a flag of `PPOMaxConfig`:

    rollout   r̃ = clip((r − μ_run)/σ_run, −δ, δ)         reward scaling / normalisation / clipping
              r_t = −η·(log π_old − log π_SFT)_t + r̃·1[t = last]         KL penalty in the reward
              A, R = GAE(r_t, V_old; γ = 1, λ = 0.95)
    minibatch A ← clip(whiten(A), −a, a)                   advantage normalisation / clipping
              L = PPO-clip(ε = 0.2) + c_v·½·max((V − R)², (clip(V, V_old ± 0.2) − R)²)

The running statistics (μ_run, σ²_run, n) are updated with the batch *before* normalising it, and
σ_run is the unbiased std sqrt(σ²_run·n/(n − 1)), as MOSS-RLHF's `RunningMoments`. The reward model
adds an LM loss on the chosen response (`bt_lm_loss`).

The KL coefficient η differs between sources: code default 0.02 (used here), 0.1 in the zh script,
0.05 reported in the paper ([M]). MOSS-RLHF's advantage whitening uses the biased variance and
eps 1e-6; `rljax.losses.advantages.whiten` (unbiased, 1e-8) is used instead.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.losses import aggregation
from rljax.losses.advantages import gae, whiten
from rljax.losses.kl import kl_penalized_rewards
from rljax.losses.policy_gradient import ppo_clip_loss
from rljax.ops.reductions import masked_mean
from rljax.losses.registry import register
from rljax.losses.reward_model import bt_reward_loss
from rljax.losses.value import value_loss

Metrics = dict[str, jax.Array]


class RunningMeanStd(NamedTuple):
  """Running mean and population variance of a stream, as a pure pytree (jit/scan friendly).

  `update` and `merge` return new states (Chan, Golub & LeVeque's parallel update): merging the
  statistics of two data sets gives exactly those of their concatenation, so merging is associative
  and order-free up to rounding. A fresh state has count 0 (mean 0, var 1 are placeholders that carry
  no weight).
  """

  mean: jax.Array
  var: jax.Array
  count: jax.Array

  @classmethod
  def create(cls, shape: tuple[int, ...] = (), dtype=jnp.float32) -> RunningMeanStd:
    return cls(jnp.zeros(shape, dtype), jnp.ones(shape, dtype), jnp.zeros((), dtype))

  def merge(self, other: RunningMeanStd) -> RunningMeanStd:
    """Statistics of the union of the two data sets."""
    n = self.count + other.count
    safe_n = jnp.where(n > 0, n, 1)
    delta = other.mean - self.mean
    mean = self.mean + delta * (other.count / safe_n)
    m2 = self.var * self.count + other.var * other.count + delta**2 * (self.count * other.count / safe_n)
    return RunningMeanStd(jnp.where(n > 0, mean, self.mean), jnp.where(n > 0, m2 / safe_n, self.var), n)

  def update(self, x: jax.Array, valid: jax.Array | None = None) -> RunningMeanStd:
    """Merges a batch `x: f[..., *shape]` (reduced over its leading axes; `valid` masks them)."""
    shape = jnp.shape(self.mean)
    lead = jnp.ndim(x) - len(shape)
    if lead < 0 or jnp.shape(x)[lead:] != shape:
      raise ValueError(f"`x` has shape {jnp.shape(x)}, expected (..., {', '.join(map(str, shape))}).")
    if valid is None:
      valid = jnp.ones(jnp.shape(x)[:lead], bool)
    elif jnp.shape(valid) != jnp.shape(x)[:lead]:
      raise ValueError(f"`valid` has shape {jnp.shape(valid)}, expected {jnp.shape(x)[:lead]}.")
    (x,) = checks.as_compute(jax.lax.stop_gradient(x))
    axes = tuple(range(lead))
    v = jnp.reshape(jnp.asarray(valid, bool), jnp.shape(valid) + (1,) * len(shape))
    count = jnp.sum(jnp.asarray(valid, x.dtype))
    mean = jnp.sum(jnp.where(v, x, 0), axis=axes) / jnp.maximum(count, 1)
    var = jnp.sum(jnp.where(v, (x - mean) ** 2, 0), axis=axes) / jnp.maximum(count, 1)
    batch = RunningMeanStd(mean.astype(self.mean.dtype), var.astype(self.var.dtype), count.astype(self.count.dtype))
    return self.merge(batch)

  def std(self, *, unbiased: bool = True) -> jax.Array:
    """sqrt(var), times sqrt(n/(n − 1)) when `unbiased` and n > 1."""
    factor = jnp.where(self.count > 1, self.count / jnp.where(self.count > 1, self.count - 1, 1), 1)
    return jnp.sqrt(self.var * factor) if unbiased else jnp.sqrt(self.var)


def normalize_and_clip_rewards(
    rewards: jax.Array,
    stats: RunningMeanStd,
    *,
    clip: float | None = 10.0,
    normalize: bool = True,
    shift_mean: bool = True,
    update: bool = True,
    unbiased: bool = True,
    eps: float = 1e-8,
) -> tuple[jax.Array, RunningMeanStd]:
  """PPO-max score reparameterisation: `(r̃ f[B], stats_next)`.

      stats ← stats.update(r)                    (when `update` and `normalize`)
      r̃ = (r − μ_run)/max(σ_run, eps)            (`normalize`; without `shift_mean`: r/max(σ_run, eps))
      r̃ ← clip(r̃, −δ, δ)                        (δ = `clip`; None skips it)

  MOSS-RLHF's flags map as `normalize` = use_reward_scaling, `shift_mean` = use_reward_norm, `clip`
  = reward_clip if use_reward_clip (default δ = 10). With `update=False`, stats (0, 1) and
  `clip=None`, r̃ = r. The output is a constant of the policy objective (stop-gradient).
  """
  checks.check_same_shape(1, rewards=rewards)
  checks.check_positive("eps", eps)
  if clip is not None:
    checks.check_positive("clip", clip)
  (r,) = checks.as_compute(jax.lax.stop_gradient(rewards))
  if normalize:
    if update:
      stats = stats.update(r)
    scale = jnp.maximum(stats.std(unbiased=unbiased), eps)
    r = ((r - stats.mean) if shift_mean else r) / scale
  if clip is not None:
    r = jnp.clip(r, -clip, clip)
  return r, stats


@dataclasses.dataclass(frozen=True)
class PPOMaxConfig:
  """Switches of MOSS-RLHF's `config_ppo.py`. Hashable and not a pytree: under `jax.jit` pass it as a
  static argument (`static_argnames="cfg"` or `functools.partial`).

  Defaults follow the spec's summary of the paper's PPO-max (the exact set is [M]): reward
  normalisation and clipping, advantage normalisation, policy and value clipping; advantage clipping
  off (the paper advises against stacking every clip). MOSS-RLHF's zh script turns on only reward
  scaling and policy/value clipping, with η = 0.1. `PPOMaxConfig(kl_coef=0, **{f: False for f in
  FLAGS})` is vanilla, unclipped policy gradient.
  """

  kl_coef: float = 0.02
  kl_kind: str = "k1"
  use_reward_scaling: bool = True
  use_reward_norm: bool = True
  use_reward_clip: bool = True
  reward_clip: float = 10.0
  gamma: float = 1.0
  lam: float = 0.95
  use_advantage_norm: bool = True
  use_advantage_clip: bool = False
  advantage_clip: float = 0.5
  use_policy_loss_clip: bool = True
  pg_clip: float = 0.2
  use_critic_loss_clip: bool = True
  value_clip: float = 0.2
  vf_coef: float = 1.0
  agg: str = "token-mean"


FLAGS = tuple(f.name for f in dataclasses.fields(PPOMaxConfig) if f.name.startswith("use_"))


def ppo_max_advantages(
    scores: jax.Array,
    old_logp: jax.Array,
    ref_logp: jax.Array,
    old_values: jax.Array,
    mask: jax.Array,
    stats: RunningMeanStd,
    cfg: PPOMaxConfig = PPOMaxConfig(),
) -> tuple[jax.Array, jax.Array, RunningMeanStd, Metrics]:
  """Rollout side of PPO-max: `(advantages f[B, T], returns f[B, T], stats_next, metrics)`.

  `scores: f[B]` are reward-model scores; `old_logp`, `ref_logp`, `old_values: f[B, T]` come from the
  behaviour policy, the SFT reference and the critic at rollout time. Everything returned is a target.
  """
  r_tilde, stats = normalize_and_clip_rewards(
      scores, stats, clip=cfg.reward_clip if cfg.use_reward_clip else None,
      normalize=cfg.use_reward_scaling, shift_mean=cfg.use_reward_norm,
  )
  token_rewards = kl_penalized_rewards(r_tilde, old_logp, ref_logp, mask, kl_coef=cfg.kl_coef, kind=cfg.kl_kind)
  adv, returns = gae(token_rewards, old_values, mask, gamma=cfg.gamma, lam=cfg.lam)
  metrics = {"reward_mean": jnp.mean(scores), "reward_tilde_mean": jnp.mean(r_tilde),
             "running_mean": jnp.mean(stats.mean), "running_std": jnp.mean(stats.std())}
  return jax.lax.stop_gradient(adv), jax.lax.stop_gradient(returns), stats, checks.stop_metrics(metrics)


@register("ppo_max", kind="policy", reads=("logp", "old_logp", "advantages", "values", "old_values", "returns", "mask"))
def ppo_max_loss(
    logp: jax.Array,
    old_logp: jax.Array,
    advantages: jax.Array,
    values: jax.Array,
    old_values: jax.Array,
    returns: jax.Array,
    mask: jax.Array,
    cfg: PPOMaxConfig = PPOMaxConfig(),
) -> tuple[jax.Array, Metrics]:
  """Minibatch side of PPO-max: policy loss + c_v·value loss, both aggregated with `cfg.agg`.

  Advantages are whitened (`use_advantage_norm`) and clipped to ±a (`use_advantage_clip`) per
  minibatch, as MOSS-RLHF's `criterion`. The policy term is `ppo_clip_loss` (ε = ∞ without
  `use_policy_loss_clip`), the value term `value_loss` (clip None without `use_critic_loss_clip`).
  Gradients flow into `logp` and `values` only. Both terms share the aggregation denominator, so
  `loss_numerator`/`loss_denominator` accumulate exactly over micro-batches.
  """
  checks.check_choice("cfg.agg", cfg.agg, aggregation.MODES)
  checks.check_same_shape(2, logp=logp, advantages=advantages, mask=mask)
  mask = jnp.asarray(mask, bool)
  (adv,) = checks.as_compute(jax.lax.stop_gradient(advantages))
  if cfg.use_advantage_norm:
    adv = whiten(adv, mask)
  if cfg.use_advantage_clip:
    adv = jnp.clip(adv, -cfg.advantage_clip, cfg.advantage_clip)
  eps = cfg.pg_clip if cfg.use_policy_loss_clip else jnp.inf
  pg_loss, pg = ppo_clip_loss(logp, old_logp, adv, mask, clip_low=eps, clip_high=eps, agg=cfg.agg)
  vf_loss, vf = value_loss(values, old_values, returns, mask,
                           clip=cfg.value_clip if cfg.use_critic_loss_clip else None, agg=cfg.agg)
  loss = pg_loss + cfg.vf_coef * vf_loss
  metrics = {
      "pg_loss": pg_loss,
      "vf_loss": vf_loss,
      "clipfrac": pg["clipfrac"],
      "vf_clipfrac": vf["vf_clipfrac"],
      "approx_kl": pg["approx_kl"],
      "advantage_mean": masked_mean(adv, mask),
      "loss_numerator": pg["loss_numerator"] + cfg.vf_coef * vf["loss_numerator"],
      "loss_denominator": pg["loss_denominator"],
  }
  return loss, checks.stop_metrics(metrics)


@register("bt_lm", kind="reward_model", reads=("chosen_rewards", "rejected_rewards", "chosen_token_logps", "chosen_mask"))
def bt_lm_loss(
    chosen_rewards: jax.Array,
    rejected_rewards: jax.Array,
    chosen_token_logps: jax.Array,
    chosen_mask: jax.Array,
    *,
    lm_coef: float = 1.0,
) -> tuple[jax.Array, Metrics]:
  """PPO-max's reward-model loss: mean Bradley–Terry loss + β_rm·token-mean NLL of the chosen responses.

      L = mean_i softplus(−(r_c − r_r)) + β_rm · Σ_{i,t} m·(−log p(y_w,t)) / Σ_{i,t} m

  (MOSS-RLHF `reward_trainer.py`, `reward_lm_loss_factor` = β_rm = 1.) Gradients flow into both
  rewards and into `chosen_token_logps` (`f[B, T]`, the LM head on the chosen response). lm_coef = 0
  is `bt_reward_loss`. Metrics: those of `bt_reward_loss` plus `lm_loss`.
  """
  checks.check_nonnegative("lm_coef", lm_coef)
  batch, _ = checks.check_same_shape(2, chosen_token_logps=chosen_token_logps, chosen_mask=chosen_mask)
  if jnp.shape(chosen_rewards) != (batch,):
    raise ValueError(f"`chosen_rewards` has shape {jnp.shape(chosen_rewards)}, expected ({batch},).")
  bt, metrics = bt_reward_loss(chosen_rewards, rejected_rewards)
  (logps,) = checks.as_compute(chosen_token_logps)
  mask = jnp.asarray(chosen_mask, bool)
  lm = masked_mean(-jnp.where(mask, logps, 0), mask)
  return bt + lm_coef * lm, {**metrics, "lm_loss": jax.lax.stop_gradient(lm)}
