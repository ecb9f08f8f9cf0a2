"""Algorithm presets of the papers' methods, built on the estimators of `rljax.algorithms.presets`.

Clip-Cov / KL-Cov (the entropy mechanism), KDRL, NFT, OREAL, GRPO-D, APO, PF-PPO, HPT and NLPO: each is the
estimator preset it extends plus the paper's kernel and settings. The config fields, the preset table and
`get`/`names` are in `rljax.algorithms.presets`; each preset's `paper`, `notes` and `unchecked` say where its
values come from.
"""

from __future__ import annotations

from collections.abc import Callable

from rljax.algorithms.presets import _Replace, _base, _grpo, _merge, _ppo


def _clip_cov() -> dict:
  return _merge(_base(), dict(
      unchecked=(),
      paper=("The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models. Cui, Zhang, Chen, "
             "Yuan, Wang, Zuo, Li, Fan, Chen, Chen, Liu, Peng, Bai, Ouyang, Cheng, Zhou & Ding, 2025, arXiv "
             "2505.22617."),
      loss="clip_cov",
      loss_kwargs=_Replace(clip_ratio=2e-4, cov_lb=1.0, cov_ub=5.0, clip_low=1.0, clip_high=1.0),
      notes=(
          "Clip-Cov (spec §3.2.4): PPO-clip with ε_low = ε_high = 1 on GRPO advantages (G = 8), token-mean, "
          "with a random clip_ratio = 2e-4 fraction of the tokens whose Cov(logp, A) lies in (1, 5) detached; "
          "needs batch['key']. No KL, no entropy bonus. All values are the authors' (PRIME-RL/Entropy-Mechanism-"
          "of-RL recipe/dapo/{7b,32b}_clip_cov.sh: clip_ratio_low = clip_ratio_high = 1, clip_cov_ratio 2e-4, "
          "lb 1, ub 5, n = 8; corrected from ε = 0.2, which is their baseline's and KL-Cov's). Ours: dynamic "
          "sampling off (their Clip-Cov recipe filters groups by accuracy, up to 10 generation batches; their "
          "baseline and KL-Cov recipes do not); the recipe's 8 updates per rollout (256 prompts, mini-batch 32) "
          "are a trainer setting (make_online_rl minibatches). Matches verl policy_loss mode 'clip_cov'; the "
          "draw is uniform like torch.randperm but not the same subset. Toy batches (< 1/ratio tokens) select "
          "a single token: scale the ratio. No TRL counterpart."
      ),
  ))


def _kl_cov() -> dict:
  return _merge(_clip_cov(), dict(
      unchecked=(),
      loss="kl_cov",
      loss_kwargs=_Replace(kl_ratio=2e-3, kl_coef=1.0),
      notes=(
          "KL-Cov (spec §3.2.5): unclipped −A·r plus kl_coef·|log r| on the top kl_ratio fraction of tokens "
          "by Cov(logp, A), token-mean, no reference KL, G = 8. κ = 2e-3, β = 1 are the authors' 7B recipe "
          "(recipe/dapo/7b_kl_cov.sh: k_percent = 0.2, i.e. 0.2 %, ppo_kl_coef = 1; 32B: κ = 2e-4). Their "
          "recipe makes one update per rollout (mini-batch = batch = 256 prompts; 64 in 32b_kl_cov_mininbsz.sh): "
          "there δ = log r is 0 up to the rounding between verl's old-log-prob pass and the training forward, "
          "and |δ| has gradient sign(δ), so the penalty only acts from the second update of a rollout on "
          "(make_online_rl minibatches > 1). vs verl policy_loss mode 'kl_cov': same kernel, but verl's config "
          "defaults are kl_cov_ratio 2e-4 and ppo_kl_coef 0.1. No TRL counterpart."
      ),
  ))


def _kdrl() -> dict:
  return _merge(_base(), dict(
      unchecked=('kl.schedule', 'loss_kwargs.kd_mask', 'group_size'),
      paper=("KDRL: Post-Training Reasoning LLMs via Unified Knowledge Distillation and Reinforcement Learning. "
             "Xu, Zhu, Deng, Li, Hou, Wang, Shang, Xu & Mi, 2025, arXiv 2506.02208."),
      loss="kdrl",
      loss_kwargs=_Replace(kd_mask="none", pg_coef=1.0, clip_low=0.2, clip_high=0.2),
      kl=dict(kind="k2", coef=5e-3, where="loss", clamp=None, target="teacher_logp",
              schedule=dict(name="kdrl_linear", beta0=5e-3, beta_min=1e-3, decay=1e-5)),
      notes=(
          "KDRL (spec §4): GRPO (PPO-clip ε = 0.2, token-mean, the paper's 1/Σ|o_i|) plus β_t·k2(logp − "
          "teacher_logp) on the student's own samples, in place of the reference KL; needs "
          "batch['teacher_logp'] and batch['step'] (β_t = max(5e-3 − decay·t, 1e-3)). [M] k2 preferred over "
          "k3, β0 = 5e-3, β_min = 1e-3, decay = 1e-5/step (placeholder; the paper's rate was not read), "
          "kd_mask 'none' (which reward-guided mask won is unchecked; secondary summaries describe masking "
          "the KD term on correct responses, i.e. 'response'), G = 8. No code of the authors was found, so "
          "none of these is checked. `kl.coef` is unused while `kl.schedule` is set. `loss_kwargs.pg_coef` "
          "= 1 is KDRL; 0 gives the paper's pure on-policy RKL distillation baseline. No TRL/verl "
          "counterpart: verl's use_kl_loss with the reference swapped for the teacher is the closest "
          "(kl_loss_coef 0.001, low_var_kl)."
      ),
  ))


def _nft() -> dict:
  return _merge(_base(), dict(
      unchecked=('agg',),
      paper=("Bridging Supervised Learning and Reinforcement Learning in Math Reasoning. Chen, Zheng, Zhu, "
             "Chen, Zhao, Wang, Chen, Liu, Zhu & Zhu (NVIDIA, Tsinghua), 2025, arXiv 2505.18116."),
      advantage_kwargs=dict(scale="none"),
      loss="nft",
      loss_kwargs=_Replace(weighting="one_minus_r", neg_weight=1.0, eps_pos=0.0, eps_neg=1.0,
                           acc_clip=(0.02, 0.98), ratio_type="token", log_ratio_clamp=10.0),
      agg="seq-mean-token-sum-norm",
      group_size=16,
      dynamic_sampling=dict(enabled=True, max_num_gen_batches=10),
      notes=(
          "NFT (spec §5): maximum likelihood on positives under π_θ and on negatives under the implicit "
          "negative policy, weights from the group accuracy r̂ = mean_g R (binary rewards; computed from "
          "batch['rewards']), groups with r̂ ∈ {0, 1} dropped. The loss does not read the advantages; "
          "`advantage` = Dr. GRPO's because on-policy NFT with 'one_minus_r' has exactly the Dr. GRPO "
          "gradient. Read in NVlabs/NFT train_7B.sh / train_32B.sh / dp_actor.py (and the kernel's own "
          "defaults): normalize=1 ('one_minus_r'), neg_weight 1.0 (0.0 = RFT, −1 = DAPO), clamp_negative "
          "1.0, clamp_positive 0.0, ratio_type 'token', log-ratio clamp 10, r̂ clipped to [0.02, 0.98], "
          "n = 16 responses, filter_groups with max_num_gen_batches 10, no KL; the spec's earlier "
          "placeholders were 'grpo' weighting and ε⁻ = 1e-2. Ours: the aggregation, since the reference "
          "divides a token sum by a constant 1000; here S·T ('seq-mean-token-sum-norm'). No TRL/verl "
          "counterpart."
      ),
  ))


def _oreal() -> dict:
  return _merge(_base(), dict(
      unchecked=(),
      paper=("Exploring the Limit of Outcome Reward for Learning Mathematical Reasoning. Lyu, Gao, Gu, Zhang, "
             "Gao, Liu, Wang, Li, Zhao, Huang, Cao, Liu, Liu, Liu, Zhang, Lin & Chen, 2025, arXiv 2502.06781."),
      advantage="rloo",
      advantage_kwargs=_Replace(),
      loss="oreal",
      loss_kwargs=_Replace(pos_factor=1.0, neg_factor=0.5, sft_weight=1.0, pg_weight=0.0, sft_mult_adv=True,
                           clip_low=0.2, clip_high=0.2),
      kl=dict(kind="k3", coef=0.01, where="loss", clamp=None),
      group_size=16,
      filter_trajectory=True,
      notes=(
          "OREAL (spec §6), the released trainer (train_oreal.py + configs, InternLM; read in a stored mirror): "
          "RLOO advantages over all k = 16 samples (reward_shaping_type='rloo': A⁺ = 1 − p̂_loo, A⁻ = −p̂_loo), "
          "computed BEFORE filter_trajectory, which keeps one uniformly drawn correct and one incorrect "
          "response per prompt with both outcomes (pass rate 0 or 1: dropped, no refill); BC on positives "
          "times A⁺ (pos_mult_adv=True, sft_mult_adv here) over N⁺ tokens, λ⁺ = 1; on-policy policy gradient "
          "on negatives over N⁻ tokens, λ⁻ = 0.5 (pg_weight = 0: no PG term on positives; PPO-clip ε = 0.2 "
          "equals the trainer's unclipped ratio at its single update); k3 ('unbias') KL β = 0.01 over all "
          "kept tokens [V]. Optional batch['token_weights'] from the token RM (rljax.training.token_rm: "
          "RM lr 2e-6 vs actor 5e-7, actor frozen 10 of 90 steps in the release). Not represented: top-p 0.9 "
          "sampling, the difficulty-bucket prompt repeats. xtuner v1's OrealLoss instead uses pg_weight=1, "
          "sft_mult_adv=False. [M] the paper's own negative-reward factor. No TRL/verl counterpart."
      ),
  ))


def _grpo_d() -> dict:
  return _merge(_grpo(), dict(
      unchecked=('kl.schedule', 'group_size'),
      paper=("OThink-MR1: Stimulating Multimodal Generalized Reasoning Capabilities via Dynamic Reinforcement "
             "Learning. Liu, Zhang, Liu, Zhang, Sun & Wang, 2025, arXiv 2503.16081."),
      kl=dict(schedule=dict(name="grpo_d", total_steps=1000, kind="ramp", beta_min=0.0, beta_max=0.04,
                            warmup_frac=0.3)),
      group_size=8,
      notes=(
          "GRPO-D (spec §7): GRPO (ε = 0.2, 'seq-mean-token-mean', k3 KL loss) with a step-dependent β(s) "
          "ramping from β_min to β_max over the first warmup_frac of training; needs batch['step'] (traced, "
          "no recompile). [M] the whole schedule: 'ramp', β_min = 0, β_max = 0.04, w = 0.3; total_steps = 1000 "
          "is a placeholder (set it to the run length); G = 8 placeholder. `kl.coef` is unused while "
          "`kl.schedule` is set. No released code was found (stored repositories and pages searched); the "
          "abstract and secondary summaries give only the direction (weak KL early, stronger later), so every "
          "schedule value stays ours. On the toy-suite testbed β = 0.04 is indistinguishable from β = 0 "
          "(experiments/grpo_d.py uses β_max = 1). vs TRL/verl: constant beta / kl_loss_coef only (see the grpo "
          "preset)."
      ),
  ))


def _apo() -> dict:
  return _merge(_grpo(), dict(
      unchecked=('agg',),
      paper=("APO: Enhancing Reasoning Ability of MLLMs via Asymmetric Policy Optimization (View-R1). Hong, "
             "Guo, Xia, Wang, Zhang, Jin & Zhao, 2025, arXiv 2506.21655."),
      advantage_kwargs=dict(eps=1e-9),
      kl=dict(kind="k3", coef=1e-3, where="loss", clamp=None),
      group_size=8,
      stcr=dict(enabled=True, base=1.00001),
      dads=dict(enabled=True, form="one_minus_exp"),
      notes=(
          "APO (spec §8, View-R1 code): GRPO advantages (unbiased std, eps 1e-9) times the STCR scale "
          "(longer-than-correct wrong answers get up to 2× more negative advantage), PPO-clip ε = 0.2, k3 KL "
          "loss β = 1e-3 (init_kl_coef, unclamped) weighted per response by DADS f(d) = 1 − exp(−e(1 − d)) "
          "on positives, per-response token mean; n = 8 [V script]. Lengths are Σ_t mask. ε = 0.2 [V: View-R1's "
          "train_ppo_ray.py defaults --eps_clip to 0.2 and train_grpo.sh does not set it]. [M] the per-response "
          "('seq-mean-token-mean') policy-loss aggregation (OpenRLHF's PolicyLoss of that time; View-R1's own "
          "loss.py is not in the stored code). STCR's base 1.00001 is sized for excess lengths of thousands of "
          "tokens (s = 1.04 at Δ = 4096). With stcr and dads "
          "disabled this is GRPO with β = 1e-3. vs TRL/verl: neither has DADS/STCR; verl's kl_loss_coef is "
          "0.001 too but unweighted and token-mean."
      ),
  ))


def _pf_ppo() -> dict:
  return _merge(_ppo(), dict(
      unchecked=('group_size', 'filter.strategy'),
      paper=("Policy Filtration in RLHF to Fine-Tune LLM for Code Generation (later: Policy Filtration for RLHF "
             "to Mitigate Noise in Reward Models). Shen, Zhang, Zhao, ... & Bian, 2024 / ICML 2025, arXiv "
             "2409.06957."),
      group_size=8,
      filter=dict(strategy="best_worst"),
      notes=(
          "PF-PPO (spec §11): N responses per prompt scored by the RM; PPO (the ppo preset: GAE, critic, "
          "k1 reward KL) trains only on a rank-based subset ('keep' = pf_ppo_filter of the group's rewards). "
          "[M] N = 8, strategy 'best_worst' (BR/BW beat BoN/none on R²; pick by rljax.losses.pf_ppo."
          "choose_filter); 'best_random' also needs batch['key']. vs verl (compute_pf_ppo_reweight_data): "
          "batch-level resampling with replacement by |r|^2 ('pow'), not a per-prompt filter; see "
          "pf_ppo.pf_ppo_resample. Order as in verl's compute_advantage (checked): GAE and its masked "
          "whitening over the whole batch first, then the filter/reweighting, so kept responses keep their "
          "batch-whitened advantages and the critic trains on kept responses only. The authors' branch "
          "(DtYXs/verl pf-ppo) was not available: N, the filter set and the paper's R² values stay [M]. "
          "No TRL counterpart."
      ),
  ))


def _hpt() -> dict:
  return _merge(_base(), dict(
      unchecked=(),
      paper=("Towards a Unified View of Large Language Model Post-Training (UPGE + HPT). Lv, Zuo, Sun, Liu, "
             "Wei, Chen, Ding, Zhou, et al., 2025, arXiv 2509.04419."),
      advantage_kwargs=dict(scale="none"),
      loss="hpt",
      loss_kwargs=_Replace(gamma=0.0, sft_coef=1.0, mode="switch", clip_low=float("inf"), clip_high=float("inf"),
                           rl_norm="width"),
      agg="token-mean",
      entropy_coef=0.001,
      group_size=8,
      notes=(
          "HPT (spec §12), from the authors' code (TsinghuaC3I/Unify-Post-Training: mix_trainer.py "
          "select_on_off_ada_balance, mix_actor.py, exp_scripts/train.sh): per prompt, count the correct "
          "rollouts k_q of n = 8; if k_q <= γ drop them and train sft_coef × the token-mean NLL of the "
          "demonstration (batch['demo_logp'], batch['demo_mask'], [G, Td]), else RL on the rollouts. Code "
          "values: γ = 0 (Qwen2.5-Math; γ = 2 in train_llama.sh), sft_coef = 1.0, Dr.GRPO advantages "
          "R − mean_g (grpo_use_std=False), no ratio clip (loss_remove_clip=True: ε = ∞), RL tokens summed "
          "and divided by the padded width T (loss_remove_token_mean=True: rl_norm='width'), entropy "
          "coefficient 0.001 on the token-mean entropy ('token-mean' is used for that term only), no KL (lr "
          "5e-6, 128 prompts, 500 steps there). verl applies the loss per micro-batch (a token budget) and "
          "averages over micro-batches, so there the RL side's weight against the demonstrations grows with "
          "the micro-batch's rollouts, here with the batch's; verl's entropy mean also covers the "
          "demonstration tokens. [M] the paper's text (not its code) was not read for these values. No TRL "
          "counterpart; verl has none built in (built on LUFFY + verl)."
      ),
  ))


def _nlpo() -> dict:
  return _merge(_ppo(), dict(
      unchecked=(),
      paper=("Is Reinforcement Learning (Not) for Natural Language Processing: Benchmarks, Baselines, and Building "
             "Blocks for Natural Language Policy Optimization. Ramamurthy, Ammanabrolu, Brantley, Hessel, Sifa, "
             "Bauckhage, Hajishirzi & Choi, ICLR 2023, arXiv 2210.01241."),
      advantage_kwargs=_Replace(gamma=0.99, lam=0.95),
      loss_kwargs=dict(dual_clip=None, log_ratio_clamp=None),
      kl=dict(kind="k1", coef=0.1, where="reward", adaptive=dict(target=0.1, horizon=10.0, per="rollout")),
      critic=dict(value_clip=None, vf_coef=1.0, whiten_advantages=True),
      entropy_coef=0.0,
      nlpo=dict(enabled=True, top_p=0.9, min_keep=100, update_every=5),
      notes=(
          "NLPO, RL4LMs' IMDB run (scripts/training/task_configs/imdb_text_continuation/gpt2_nlpo.yml, "
          "rl4lms/algorithms/nlpo/nlpo.py NLPO, rl4lms/envs/text_generation/alg_wrappers.py, "
          "kl_controllers.py KLController, policy/causal_policy.py MaskedCausalLMActorCriticPolicy, "
          "algorithms/common/maskable/logits_processor.py): PPO whose actions are restricted at every step to "
          "the learned_top_p set, top_mask p = 0.9 with min_tokens_to_keep = 100 (special tokens such as EOS "
          "always kept), of a masking policy, a copy of π_θ refreshed every target_update_iterations μ = 5 "
          "rollouts; sampling and the PPO ratio use the masked policy, the KL to the unmasked π_0. k1 KL in "
          "the reward, kl_div.coeff β0 = 0.1 adapted as β ← β(1 + 0.1·clip(KL/target − 1, ±0.2)) once per "
          "rollout (horizon 10, n_steps 1) with target_kl 0.1 (the yml at HEAD, commit 81fe8f0 'Fix NLPO "
          "configs'; 1.0 and lr 1e-5 before it, lr 1e-6 after). NLPO constructor defaults: GAE γ = 0.99, "
          "λ = 0.95, PPO-clip ε = 0.2, clip_range_vf None (no value clip), vf_coef 0.5 on the un-halved MSE "
          "(= vf_coef 1 on rljax's ½·MSE), ent_coef 0, normalize_advantage True (per minibatch there, "
          "(A − μ)/(std + 1e-8) with the unbiased std; per rollout batch here), max_grad_norm 0.5 and the "
          "optimiser (AdamW, lr 1e-6, 5 epochs of minibatch 64 over 10 envs × 128 steps) are trainer "
          "settings. Differences: RL4LMs' reward KL and its controller's KL use the *unmasked* π_θ log-probs "
          "(alg_wrappers.py raw_log_probs; rljax.losses.nlpo.nlpo_token_logps(return_raw=True) gives them) "
          "and the controller reads the mean over all tokens of the rollout; RL4LMs copies the masking "
          "policy before training on every μ-th rollout, here after. No TRL/verl counterpart."
      ),
  ))


BUILDERS: dict[str, Callable[[], dict]] = {
    "clip_cov": _clip_cov,
    "kl_cov": _kl_cov,
    "kdrl": _kdrl,
    "nft": _nft,
    "oreal": _oreal,
    "grpo_d": _grpo_d,
    "apo": _apo,
    "pf_ppo": _pf_ppo,
    "hpt": _hpt,
    "nlpo": _nlpo,
}
