"""Named RLVR algorithm presets: each method's settings as one `ml_collections.ConfigDict`.

A preset holds the paper's (or its released code's) values where they were checked, and our own
placeholders elsewhere; `cfg.unchecked` names the latter, so "the paper defaults" is never claimed
for a value nobody read in the paper.

    import rljax.algorithms as algos
    algos.names()                             # sorted preset names
    cfg = algos.get("dapo")                   # a fresh, unlocked copy; edit freely

This module holds the definitions only: a common `_base()` plus the estimators' overrides
(`_merge`: PPO, GRPO and its descendants, RLOO, REINFORCE++, GSPO, ReMax, PPO-max), the preset table and
`names()`/`get()`; the papers' methods built on them are in `rljax.algorithms.method_presets`. Turning a config into callables (and
validating it) is `rljax.algorithms.resolution`, which also adds the derived `inputs` field to the
configs that `rljax.algorithms.get` returns.

A preset names its pieces by string and carries their keyword arguments:

| field              | meaning                                                                        |
|--------------------|--------------------------------------------------------------------------------|
| `advantage`        | estimator, a key of `resolution.ADVANTAGES` (functions of `rljax.losses.advantages`) |
| `advantage_kwargs` | its keyword arguments (`scale`, `eps`, `std_ddof`, `gamma`, `lam`, ...)        |
| `loss`             | a name in the `rljax.losses` registry (`rljax.losses.registry.get`)            |
| `loss_kwargs`      | its keyword arguments (`clip_low`, `clip_high`, `dual_clip`, `clip_ratio`, ...)|
| `agg`              | aggregation mode (`rljax.losses.aggregation.MODES`), passed to every term      |
| `kl`               | `kind` (k1/k2/k3/abs), `coef` β, `where` ∈ {"loss", "reward", "none"}, `clamp` |
|                    | (k3 only; 20 = verl), `target` (batch key of the log-probs the KL is taken to: |
|                    | "ref_logp", or "teacher_logp" for KDRL), `schedule` (None, or                  |
|                    | {"name": a key of `resolution.KL_SCHEDULES`, **kwargs} for a β(step)), `adaptive` |
|                    | (None, or {"target", "horizon", "per"}: β from `adaptive_kl_update` after each |
|                    | rollout, n_steps = responses ("per": "samples", verl) or 1 ("rollout", RL4LMs))   |
| `entropy_coef`     | c_H of the entropy bonus (needs `batch["entropy"]` when non-zero)              |
| `group_size`       | responses per prompt n (contiguous rows); B must be a multiple                 |
| `dynamic_sampling` | `enabled`: drop groups whose rewards are all equal (DAPO); `max_num_gen_batches` |
| `overlong`         | `enabled`, `max_len`, `cache_len`, `factor`: DAPO's soft overlong punishment   |
| `critic`           | `enabled`, `value_clip` ε_v, `vf_coef`, `whiten_advantages` (PPO with GAE)     |
| `reward_norm`      | `enabled`, `clip`, `shift_mean`: running-statistics reward normalisation       |
|                    | (`rljax.losses.ppo_max.normalize_and_clip_rewards`; PPO-max)                   |
| `paper`, `notes`   | citation; where the preset departs from TRL/verl defaults, and the [M] values  |
| `unchecked`        | the fields whose values are ours: placeholders or values recalled from the     |
|                    | paper ([M]) and not yet checked against it or its code; every other field is   |
|                    | the paper's (or its released code's) setting                                  |
| `inputs`           | batch keys the resolved callables read (`required_inputs`), for documentation; |
|                    | added by `rljax.algorithms.get`, not by `presets.get`                          |

plus paper-specific fields: `stcr` (APO), `dads` (APO), `filter` (PF-PPO; `strategy` in
`PF_STRATEGIES`), `filter_trajectory` (OREAL), `nlpo` (NLPO's masking policy: `top_p`, `min_keep`,
`update_every`). Values tagged [M] in `notes` are recalled from the
paper and not re-checked (the spec's provenance tags ([M] = recalled, unchecked)); treat them as
placeholders.

The presets (each one's `paper` and `notes` give the source and the departures):

| preset                  | built on | what it sets                                                       |
|-------------------------|----------|--------------------------------------------------------------------|
| `ppo`                   | base     | GAE + critic, dual clip, log-ratio clamp, k1 KL in the reward      |
| `grpo`                  | base     | group-std advantages, 'seq-mean-token-mean', k3 KL loss, G = 64    |
| `dr_grpo`               | grpo     | no std scaling, 'seq-mean-token-sum-norm', no KL                   |
| `dapo`                  | grpo     | clip-higher, token-mean, dynamic sampling, overlong shaping        |
| `lite_ppo`              | base     | batch-std advantages, vanilla PPO-clip                             |
| `rloo`                  | base     | leave-one-out advantages, REINFORCE loss, k1 KL in the reward      |
| `reinforce_pp`          | base     | REINFORCE++ token advantages, k1 KL in the reward                  |
| `reinforce_pp_baseline` | reinforce_pp | group-mean baseline                                            |
| `gspo`                  | base     | sequence-level ratio with tight clip                               |
| `clip_cov`              | base     | Clip-Cov kernel                                                    |
| `kl_cov`                | clip_cov | KL-Cov kernel                                                      |
| `kdrl`                  | base     | KDRL kernel: k2 KL to the teacher with a linear β schedule         |
| `nft`                   | base     | NFT kernel, dynamic sampling                                       |
| `oreal`                 | base     | OREAL kernel with RLOO advantages, one-correct-one-wrong filter    |
| `grpo_d`                | grpo     | GRPO-D β(step) ramp schedule                                       |
| `apo`                   | grpo     | STCR advantage scale, DADS-weighted KL loss                        |
| `pf_ppo`                | ppo      | rank-based per-prompt response filter                              |
| `hpt`                   | base     | HPT kernel: Dr.GRPO (no clip) or demonstration NLL per prompt      |
| `remax`                 | base     | REINFORCE with the greedy response's reward as baseline            |
| `ppo_max`               | ppo      | running-std reward scaling, GAE λ = 0.95, value clip 0.2           |
| `nlpo`                  | ppo      | PPO over the top-p action set of a frozen masking policy, adaptive β |
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import ml_collections

from rljax.losses import pf_ppo

PF_STRATEGIES = pf_ppo.STRATEGIES
"""Values of a preset's `filter.strategy` (PF-PPO)."""

# ------------------------------------------------------------------------------------------------
# Presets: one base plus small overrides


class _Replace(dict):
  """Marks an override that replaces a nested dict instead of merging into it."""


def _merge(base: dict, overrides: Mapping) -> dict:
  out = copy.deepcopy(base)
  for k, v in overrides.items():
    if isinstance(v, _Replace):
      out[k] = dict(copy.deepcopy(v))
    elif isinstance(v, Mapping) and isinstance(out.get(k), dict):
      out[k] = _merge(out[k], v)
    else:
      out[k] = copy.deepcopy(dict(v) if isinstance(v, Mapping) else v)
  return out


def _base() -> dict:
  """Common RLVR defaults: GRPO advantages, PPO-clip ε = 0.2, token-mean, no KL, no entropy bonus."""
  return dict(
      name="",
      paper="",
      notes="",
      unchecked=(),
      advantage="grpo",
      advantage_kwargs=dict(scale="group", eps=1e-6, std_ddof=1),
      loss="ppo_clip",
      loss_kwargs=dict(clip_low=0.2, clip_high=0.2, dual_clip=None, log_ratio_clamp=None),
      agg="token-mean",
      kl=dict(kind="k3", coef=0.0, where="none", clamp=20.0, target="ref_logp", schedule=None, adaptive=None),
      entropy_coef=0.0,
      group_size=8,
      dynamic_sampling=dict(enabled=False, max_num_gen_batches=None),
      overlong=dict(enabled=False, max_len=20480, cache_len=4096, factor=1.0),
      critic=dict(enabled=False, value_clip=0.5, vf_coef=1.0, whiten_advantages=True),
      reward_norm=dict(enabled=False, clip=10.0, shift_mean=True),
  )


_VERL_DIFF = "verl's vanilla PPO loss always applies the dual clip (c = 3) and clamps log r to ±20 (off here)"


def _ppo() -> dict:
  return _merge(_base(), dict(
      unchecked=('critic.value_clip',),
      paper=("Proximal Policy Optimization Algorithms. Schulman, Wolski, Dhariwal, Radford & Klimov, 2017, "
             "arXiv 1707.06347 (RLHF form: Ouyang et al. 2022, InstructGPT, arXiv 2203.02155)."),
      advantage="gae",
      advantage_kwargs=_Replace(gamma=1.0, lam=1.0),
      loss_kwargs=dict(dual_clip=3.0, log_ratio_clamp=20.0),
      kl=dict(kind="k1", coef=0.001, where="reward"),
      group_size=1,
      critic=dict(enabled=True),
      notes=(
          "verl-style PPO for LLMs (spec §1.2.1-2.2): GAE γ = λ = 1 then masked whitening, critic with value "
          "clip ε_v = 0.5 ([M] verl default), PPO-clip ε = 0.2 with dual clip c = 3 and log-ratio clamp ±20 "
          "(verl compute_policy_loss_vanilla), token-mean, k1 KL in the reward with β = 0.001 (verl "
          "kl_ctrl.kl_coef). vs verl: verl's use_kl_in_reward defaults to False (no KL) and it trains the "
          "critic with its own optimizer (vf_coef = 1 here adds it to one scalar). vs TRL PPOTrainer (<= 1.9): "
          "λ = 0.95, cliprange_value = 0.2, vf_coef = 0.1, kl_coef = 0.05, no dual clip, no ratio clamp. "
          "An adaptive β is rljax.losses.kl.adaptive_kl_update (verl target_kl 0.1, horizon 10000)."
      ),
  ))


def _grpo() -> dict:
  return _merge(_base(), dict(
      unchecked=('loss_kwargs.clip_low', 'loss_kwargs.clip_high'),
      paper=("DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models. Shao, Wang, "
             "Zhu, Xu, Song, Zhang, Li, Wu & Guo, 2024, arXiv 2402.03300."),
      agg="seq-mean-token-mean",
      kl=dict(kind="k3", coef=0.04, where="loss"),
      group_size=64,
      notes=(
          "Original GRPO (spec §1.2.3): (R − mean_g)/(std_g + 1e-6) with the unbiased std, PPO-clip ε = 0.2, "
          "per-response token mean ('seq-mean-token-mean'), k3 KL as a loss. β = 0.04, G = 64 [V DeepSeekMath §4.2: "
          "'The KL coefficient is 0.04. For each question, we sample 64 outputs', lr 1e-6, batch 1024, one policy "
          "update per exploration stage, so the ratio is 1 and the clip never binds in its runs]. [M] ε = 0.2 "
          "(§4.2 gives "
          "no value). "
          "vs TRL GRPOTrainer: default loss_type 'dapo' (token-mean; loss_type='grpo' matches this), beta 0.0, "
          "std eps 1e-4, k3 unclamped and multiplied by the IS ratio (use_bias_correction_kl). vs verl: "
          "loss_agg_mode 'token-mean', kl_loss_coef 0.001 (low_var_kl = k3 clamped as here), " + _VERL_DIFF + "."
      ),
  ))


def _dr_grpo() -> dict:
  return _merge(_grpo(), dict(
      unchecked=('kl.coef', 'group_size'),
      paper=("Understanding R1-Zero-Like Training: A Critical Perspective. Liu, Chen, Li, Qi, Pang, Du, Lee & "
             "Lin, 2025, arXiv 2503.20783."),
      advantage_kwargs=dict(scale="none"),
      agg="seq-mean-token-sum-norm",
      kl=dict(coef=0.0, where="none"),
      group_size=8,
      notes=(
          "Dr. GRPO (spec §1.2.4): A = R − mean_g (no std), constant normaliser 'seq-mean-token-sum-norm' = "
          "Σ m·ℓ / (S·T) with T the padded width: pad responses to max_completion_length. [M] β = 0, G = 8. "
          "vs verl (norm_adv_by_std_in_grpo=False, seq-mean-token-sum-norm): verl divides by T only, not by "
          "the number of responses; vs TRL loss_type='dr_grpo' (scale_rewards='none'): divides by "
          "B·max_completion_length (same as here when no response is empty). " + _VERL_DIFF + "."
      ),
  ))


def _dapo() -> dict:
  return _merge(_grpo(), dict(
      unchecked=('loss_kwargs.clip_high', 'group_size', 'overlong.max_len', 'overlong.cache_len', 'overlong.factor',
                 'dynamic_sampling.max_num_gen_batches'),
      paper=("DAPO: An Open-Source LLM Reinforcement Learning System at Scale. Yu, Zhang, Zhu, Yuan, Zuo, et "
             "al. (ByteDance Seed, Tsinghua AIR), 2025, arXiv 2503.14476."),
      loss_kwargs=dict(clip_high=0.28),
      agg="token-mean",
      kl=dict(coef=0.0, where="none"),
      group_size=16,
      dynamic_sampling=dict(enabled=True, max_num_gen_batches=10),
      overlong=dict(enabled=True, max_len=20480, cache_len=4096, factor=1.0),
      notes=(
          "DAPO (spec §1.2.7): clip-higher ε_low = 0.2 / ε_high = 0.28, dynamic sampling (groups with all-"
          "equal rewards dropped; 'keep' masks them out of the loss, the sampler refills the batch), "
          "token-mean, overlong reward shaping, no KL. [M] ε_high = 0.28, G = 16, L_max = 20480, L_cache = "
          "4096, factor 1.0, max_num_gen_batches = 10, 512 prompts/step, lr 1e-6. vs TRL: loss_type 'dapo' is "
          "TRL's default aggregation, but epsilon_high defaults to ε (0.2), beta 0.0, std eps 1e-4, no dynamic "
          "sampling or overlong shaping built in. vs verl recipe/dapo: same switches (filter_groups, "
          "overlong_buffer), " + _VERL_DIFF + " (the DAPO recipe sets clip_ratio_c = 10, unchecked)."
      ),
  ))


def _lite_ppo() -> dict:
  return _merge(_base(), dict(
      unchecked=('group_size',),
      paper=("Part I: Tricks or Traps? A Deep Dive into RL for LLM Reasoning. Liu, Wang, et al. (Alibaba), "
             "2025, arXiv 2508.08221."),
      advantage_kwargs=dict(scale="batch", center="group"),
      notes=(
          "Lite PPO (spec §2): group-mean centring with the batch std of the raw rewards, vanilla PPO-clip "
          "ε = 0.2, token-mean, no critic, no KL, no dynamic sampling, no overlong filtering. Checked in "
          "alibaba/ROLL (roll/utils/functionals.py at 41422373, the paper's framework): the LitePPO doc config "
          "sets norm_mean_type='group', norm_std_type='batch', and `reward_norm` then computes (R − mean_g R) / "
          "(R.std() + 1e-6), the unbiased std of the raw response rewards over the whole batch: center='group', "
          "scale='batch', eps = 1e-6, std_ddof = 1 here. The same file keeps an older `group_reward_norm(..., "
          "div_std_global=True)` that divides by the std of the group-centred rewards (the doc's earlier "
          "revision, 'coming soon'); the pipelines call it without div_std_global, so it is not used. The "
          "paper's own equation was not read. [M] G = 8 (ours; the doc config's num_return_sequences_in_group "
          "is a template value). vs TRL: scale_rewards='batch' is the same normalisation (eps 1e-4); TRL's "
          "default is 'group'. vs ROLL's sample config: it keeps kl_loss_coef = 0.001. vs verl: no batch-std "
          "option in compute_grpo_outcome_advantage; " + _VERL_DIFF + "."
      ),
  ))


def _rloo() -> dict:
  return _merge(_base(), dict(
      unchecked=('kl.coef', 'group_size'),
      paper=("Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human Feedback in "
             "LLMs. Ahmadian, Cremer, Gallé, Fadaee, Kreutzer, Pietquin, Üstün & Hooker, 2024, arXiv 2402.14740 "
             "(estimator: Kool, van Hoof & Welling 2019)."),
      advantage="rloo",
      advantage_kwargs=_Replace(),
      loss="reinforce",
      loss_kwargs=_Replace(),
      agg="seq-mean-token-sum",
      kl=dict(kind="k1", coef=0.05, where="reward"),
      group_size=4,
      notes=(
          "RLOO (spec §1.2.5): A_i = R_i − mean_{j≠i} R_j on the KL-penalised sequence reward R − β·Σ_t k1, "
          "on-policy REINFORCE over the whole response (−A·Σ_t logp, mean over responses). [M] k = 4, β = "
          "0.05 (TRL's default). For several updates per batch switch `loss` to 'ppo_clip'. vs TRL "
          "RLOOTrainer: same reward KL, but a PPO-clipped *sequence-level* ratio (ε = 0.2), mean over "
          "sequences. vs verl (adv_estimator=rloo): token-level PPO-clip with token-mean, no reward KL by "
          "default, a singleton group gets its raw score (0 here)."
      ),
  ))


def _reinforce_pp() -> dict:
  return _merge(_base(), dict(
      unchecked=('kl.coef', 'loss_kwargs.clip_low', 'loss_kwargs.clip_high'),
      paper=("REINFORCE++: A Simple and Efficient Approach for Aligning Large Language Models. Jian Hu, 2025, "
             "arXiv 2501.03262."),
      advantage="reinforce_pp",
      advantage_kwargs=_Replace(gamma=1.0, baseline="none"),
      kl=dict(kind="k1", coef=0.01, where="reward"),
      group_size=1,
      notes=(
          "REINFORCE++ (spec §1.2.6): token rewards = outcome at EOS − β·k1 per token, reward-to-go with "
          "γ = 1, whitened over all tokens of the batch (no critic, no groups), PPO-clip ε = 0.2, token-mean. "
          "[M] β = 0.01, ε = 0.2. vs verl (adv_estimator=reinforce_plus_plus): identical estimator, but KL in "
          "the reward is off by default (use_kl_in_reward=False); " + _VERL_DIFF + ". TRL has no REINFORCE++."
      ),
  ))


def _reinforce_pp_baseline() -> dict:
  return _merge(_reinforce_pp(), dict(
      unchecked=('kl.coef', 'group_size'),
      advantage_kwargs=dict(baseline="group"),
      group_size=8,
      notes=(
          "REINFORCE++-baseline (spec §1.2.6): the group mean is subtracted from the outcome before the "
          "per-token KL penalty and the batch whitening (OpenRLHF's reinforce_baseline). [M] β = 0.01, G = 8. "
          "vs verl reinforce_plus_plus_baseline: subtracts the group mean of Σ_t r_t and broadcasts it without "
          "reward-to-go (agrees when β = 0), singleton groups keep their raw score; " + _VERL_DIFF + "."
      ),
  ))


def _gspo() -> dict:
  return _merge(_base(), dict(
      unchecked=('loss_kwargs.clip_low', 'loss_kwargs.clip_high', 'group_size'),
      paper=("Group Sequence Policy Optimization. Zheng, Liu, Li, Zhang, Yu, Yang, et al. (Qwen), 2025, arXiv "
             "2507.18071."),
      loss="gspo",
      loss_kwargs=_Replace(clip_low=3e-4, clip_high=4e-4, max_log_ratio=10.0),
      agg="seq-mean-token-mean",
      notes=(
          "GSPO (spec §1.2.9): length-normalised sequence ratio s_i = exp(mean_t δ) clipped to [1 − 3e-4, "
          "1 + 4e-4], GRPO advantages, 'seq-mean-token-mean', no KL. [M] ε_l = 3e-4, ε_h = 4e-4, no KL, G = 8 "
          "(placeholder). vs verl policy_loss mode 'gspo': the same (log s clamped at 10). vs TRL "
          "importance_sampling_level='sequence': same value and gradient only with loss_type='grpo'; TRL's "
          "default loss_type 'dapo' re-weights by length, and TRL's epsilon defaults to 0.2."
      ),
  ))


def _remax() -> dict:
  return _merge(_base(), dict(
      unchecked=('agg',),
      paper=("ReMax: A Simple, Effective, and Efficient Reinforcement Learning Method for Aligning Large Language "
             "Models. Li, Xu, Zhang, Liu, Sun & Luo, 2023, arXiv 2310.10505."),
      advantage="remax",
      advantage_kwargs=_Replace(),
      loss="reinforce",
      loss_kwargs=_Replace(),
      group_size=1,
      notes=(
          "ReMax (spec §1.2.8): one sampled and one greedy response per prompt, A = R(y) − R(ŷ_greedy) on "
          "every response token, on-policy REINFORCE; the greedy response is decoded by the online loop and "
          "scored by the same reward. No KL (the ReMax code puts a k1 penalty in the reward; "
          "kl.where='reward' is not supported with this estimator). [M] token-mean aggregation. vs verl "
          "(adv_estimator=remax): the same advantage, trained with its PPO-clip loss. TRL has no ReMax."
      ),
  ))


def _ppo_max() -> dict:
  return _merge(_ppo(), dict(
      unchecked=(),
      paper=("Secrets of RLHF in Large Language Models Part I: PPO. Zheng, Dou, Gao, Hua, Shen, Wang, Liu, Jin, "
             "Liu, Zhou, Xiong, Chen, Xi, Xu, Lai, Zhu, Chang, Yin, Weng, Cheng, Huang, Wang, Zhang, Qiu, Huang, "
             "2023, arXiv 2307.04964."),
      advantage_kwargs=_Replace(gamma=1.0, lam=0.95),
      loss_kwargs=dict(dual_clip=None, log_ratio_clamp=None),
      kl=dict(kind="k1", coef=0.02, where="reward"),
      critic=dict(value_clip=0.2, vf_coef=1.0, whiten_advantages=False),
      reward_norm=dict(enabled=True, clip=None, shift_mean=False),
      notes=(
          "PPO-max (spec §15), the released MOSS-RLHF run (train_ppo_zh.sh and run_en.sh agree on every switch; "
          "ppo/ppo_trainer.py make_experiences/criterion, ppo/ppo_datahelper.py, utils.py RunningMoments; as "
          "rljax.losses.ppo_max.PPOMaxConfig()): reward scaling only, r/σ_run with the running std updated with "
          "the batch first (unbiased), no mean subtraction (no --use_reward_norm) and no reward clip (no "
          "--use_reward_clip, --reward_clip 0); k1 KL in the reward with η = 0.02 (config_ppo.py "
          "kl_penalty_weight; train_ppo_zh.sh 0.1, run_en.sh 0.01, paper 0.05 in §5.3.2/Fig. 7); GAE γ = 1, "
          "λ = 0.95 (paper App. C.3: λ = 0.9); no advantage whitening or clipping (no --use_advantage_norm); "
          "PPO-clip ε = 0.2 (pg_clip), value clip 0.2 (value_clip), vf weight 1, token mean over the "
          "minibatch, no dual clip, no entropy or pretraining loss. The paper's PPO-max text also normalises "
          "and clips rewards (§5.4; clip δ of its final runs [M]) and adds PPO-ptx: reward_norm.shift_mean, "
          "reward_norm.clip = 10 (config_ppo.py reward_clip) turn that on. When whitening is turned on here it "
          "is per rollout batch with the unbiased variance (MOSS: per minibatch, biased, eps 1e-6, as "
          "ppo_max.moss_whiten). Not in the preset: Adam β = (0.9, 0.95), eps 1e-6, lr 5e-7 policy / 1.5e-6 "
          "critic (scripts), sampling temperature 0.8, top-p 0.9, repetition penalty 1.1. No TRL/verl "
          "counterpart of the reward scaling."
      ),
  ))


_BUILDERS: dict[str, Callable[[], dict]] = {
    "ppo": _ppo,
    "grpo": _grpo,
    "dr_grpo": _dr_grpo,
    "dapo": _dapo,
    "lite_ppo": _lite_ppo,
    "rloo": _rloo,
    "reinforce_pp": _reinforce_pp,
    "reinforce_pp_baseline": _reinforce_pp_baseline,
    "gspo": _gspo,
    "remax": _remax,
    "ppo_max": _ppo_max,
}


def _builders() -> dict[str, Callable[[], dict]]:
  """The estimators above and the paper methods built on them (`rljax.algorithms.method_presets`, which
  imports this module's `_base`, `_ppo`, `_grpo` and `_merge`, hence imported here rather than at the top)."""
  from rljax.algorithms import method_presets

  return {**_BUILDERS, **method_presets.BUILDERS}


def names() -> list[str]:
  """Sorted preset names."""
  return sorted(_builders())


def get(name: str) -> ml_collections.ConfigDict:
  """A fresh, unlocked `ConfigDict` of preset `name`; a `KeyError` lists the known names otherwise.

  The preset's definition only: `rljax.algorithms.get` (`resolution.get`) also adds the derived
  `inputs` field.
  """
  try:
    builder = _builders()[name]
  except (KeyError, TypeError):
    raise KeyError(f"unknown algorithm preset {name!r}; known: {', '.join(names())}") from None
  d = builder()
  d["name"] = name
  return ml_collections.ConfigDict(d)
