"""PPO-max: running-statistics reward normalisation, and the PPO recipe with each trick switchable.

Zheng, Dou, Gao, … & Huang, "Secrets of RLHF in Large Language Models Part I: PPO", 2023
(arXiv 2307.04964). Implemented after the authors' MOSS-RLHF code, checked file by file:
`ppo/ppo_trainer.py` (`PPOTrainer.make_experiences`, `PPOTrainer.criterion`), `ppo/ppo_datahelper.py`
(`ExperienceDataset.get_advantages_and_returns`), `utils.py` (`RunningMoments`, `whiten`),
`config_ppo.py` and the released scripts `train_ppo_zh.sh` / `run_en.sh`. The recipe, each piece a
flag of `PPOMaxConfig`:

    rollout   r̃ = r/σ_run  (scaling)  or  (r − μ_run)/σ_run  (scaling + norm);  r̃ ← clip(r̃, ±δ)
              r_t = −η·(log π_old − log π_SFT)_t + r̃·1[t = last]         KL penalty in the reward
              A, R = GAE(r_t, V_old; γ = 1, λ = 0.95)                     (terminal value 0)
    minibatch A ← clip(whiten(A), −a, a)                   advantage normalisation / clipping
              L = PPO-clip(ε = 0.2) + c_v·½·max((V − R)², (clip(V, V_old ± 0.2) − R)²)
                  [+ c_H·|mean_t H(π_θ(·|s_t)) − H_target|]              entropy term (off)

Defaults (`PPOMaxConfig()`) are the released scripts' switches, on which `train_ppo_zh.sh` and
`run_en.sh` agree: reward scaling only (no mean subtraction, no reward clip: `--reward_clip 0.` and no
`--use_reward_clip`), policy-loss clip 0.2, critic-loss clip 0.2, vf weight 1, γ = 1, λ = 0.95, no
advantage normalisation or clipping, no entropy or pretraining loss. Every `use_*` flag of
`config_ppo.py` is `store_true` (off unless a script passes it). The values used when a trick is turned
on are `config_ppo.py`'s: δ = `reward_clip` 10, a = `advantage_clip` 0.5, H_target = `entropy_clip` 35.
The paper's own PPO-max text normalises *and* clips rewards (§5.4; Fig. 6 tries δ ∈ {0.3, 0.8}); the δ
of its final runs is [M].

The KL coefficient η differs between sources: `config_ppo.py` default `kl_penalty_weight` 0.02 (used
here), `train_ppo_zh.sh` 0.1, `run_en.sh` 0.01, the paper's KL-penalty experiments 0.05 (§5.3.2, Fig. 7).

The running statistics (μ_run, σ²_run, n) are updated with the batch *before* normalising it, and
σ_run is the unbiased std sqrt(σ²_run·n/(n − 1)), as `RunningMoments`. Advantage whitening is MOSS-RLHF's
`whiten`, per minibatch: (A − μ)·rsqrt(σ² + 1e-6) with the biased (÷N) masked variance (not
`rljax.losses.advantages.whiten`, which is unbiased with eps 1e-8). The reward model adds an LM loss on
the chosen response (`bt_lm_loss`). The PPO-ptx pretraining loss (`use_ppo_pretrain_loss`, weight 0) is
not part of this kernel: add c·NLL of pretraining data to the loss.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.losses import aggregation
from rljax.losses.advantages import gae
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

  Defaults are the released scripts' run (`train_ppo_zh.sh`, `run_en.sh`): reward scaling, policy and
  critic clipping on, every other trick off; η = 0.02 is `config_ppo.py`'s default (zh script 0.1, en
  script 0.01, paper 0.05). The constants of the tricks that are off are `config_ppo.py`'s defaults.
  `PPOMaxConfig(kl_coef=0, **{f: False for f in FLAGS})` is vanilla, unclipped policy gradient.
  """

  kl_coef: float = 0.02
  kl_kind: str = "k1"
  use_reward_scaling: bool = True
  use_reward_norm: bool = False
  use_reward_clip: bool = False
  reward_clip: float = 10.0
  gamma: float = 1.0
  lam: float = 0.95
  use_advantage_norm: bool = False
  use_advantage_clip: bool = False
  advantage_clip: float = 0.5
  use_policy_loss_clip: bool = True
  pg_clip: float = 0.2
  use_critic_loss_clip: bool = True
  value_clip: float = 0.2
  vf_coef: float = 1.0
  use_entropy_loss: bool = False
  entropy_coef: float = 0.0
  entropy_clip: float = 35.0
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


def moss_whiten(x: jax.Array, mask: jax.Array, *, eps: float = 1e-6) -> jax.Array:
  """MOSS-RLHF `utils.whiten` (shift_mean=True): (x − μ)·rsqrt(σ² + eps) over the valid entries.

      μ = Σ m·x / N,     σ² = Σ m·(x − μ)² / N     (biased),     N = Σ m

  0 outside the mask (MOSS keeps x − μ there; the loss masks it out). An empty mask gives zeros.
  """
  checks.check_same_shape(x=x, mask=mask)
  checks.check_nonnegative("eps", eps)
  mask = jnp.asarray(mask, bool)
  (x,) = checks.as_compute(x)
  n = jnp.maximum(jnp.sum(mask), 1).astype(x.dtype)
  mean = jnp.sum(jnp.where(mask, x, 0)) / n
  var = jnp.sum(jnp.where(mask, (x - mean) ** 2, 0)) / n
  return jnp.where(mask, (x - mean) * jax.lax.rsqrt(var + eps), 0)


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
    entropy: jax.Array | None = None,
) -> tuple[jax.Array, Metrics]:
  """Minibatch side of PPO-max (MOSS-RLHF `PPOTrainer.criterion`): policy + c_v·value (+ entropy) loss.

  Advantages are whitened (`use_advantage_norm`, `moss_whiten`: biased variance, eps 1e-6) and clipped
  to ±a (`use_advantage_clip`) per minibatch. The policy term is `ppo_clip_loss` (ε = ∞ without
  `use_policy_loss_clip`), the value term `value_loss` (½·max(...); clip None without
  `use_critic_loss_clip`), both aggregated with `cfg.agg` (MOSS: Σ m·ℓ / Σ m, "token-mean"). With
  `use_entropy_loss`, `entropy: f[B, T]` (per-token entropy of π_θ, differentiable) adds
  c_H·|Σ m·H / Σ m − H_target| (MOSS's `entro_loss`, a token mean whatever `agg`). Gradients flow into
  `logp`, `values` and `entropy` only. Policy and value terms share the aggregation denominator, so
  `loss_numerator`/`loss_denominator` accumulate exactly over micro-batches (without the entropy term,
  which is not linear in the tokens).
  """
  checks.check_choice("cfg.agg", cfg.agg, aggregation.MODES)
  checks.check_same_shape(2, logp=logp, advantages=advantages, mask=mask)
  mask = jnp.asarray(mask, bool)
  (adv,) = checks.as_compute(jax.lax.stop_gradient(advantages))
  if cfg.use_advantage_norm:
    adv = moss_whiten(adv, mask)
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
  if cfg.use_entropy_loss:
    if entropy is None:
      raise ValueError("`entropy` is required with cfg.use_entropy_loss.")
    checks.check_same_shape(2, entropy=entropy, mask=mask)
    (ent,) = checks.as_compute(entropy)
    entropy_loss = jnp.abs(masked_mean(jnp.where(mask, ent, 0), mask) - cfg.entropy_clip)
    loss = loss + cfg.entropy_coef * entropy_loss
    metrics["entropy_loss"] = entropy_loss
  return loss, checks.stop_metrics(metrics)


@register("bt_lm", kind="reward_model",
          reads=("chosen_rewards", "rejected_rewards", "chosen_token_logps", "chosen_mask"))
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
