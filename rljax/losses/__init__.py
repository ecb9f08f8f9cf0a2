"""Pure loss kernels: functions of arrays returning `(loss, metrics)`.

    from rljax.losses import rdpo_loss
    loss, metrics = rdpo_loss(pc, pr, rc, rr, beta=0.1, epsilon=0.2)
    assert rljax.losses.get("rdpo") is rdpo_loss     # configs select losses by name
"""

from rljax.losses.advantages import (
    broadcast_to_tokens,
    gae,
    grpo_advantages,
    opo_advantages,
    passk_advantages,
    reinforce_pp_advantages,
    remax_advantages,
    rloo_advantages,
    whiten,
)
from rljax.losses.aggregation import aggregate, aggregate_parts
from rljax.losses.apo import apo_stcr_scale, dads_kl_weights, weighted_seq_kl_loss
from rljax.losses.aspo import aspo_advantages
from rljax.losses.dpg import dpg_loss
from rljax.losses.entropy_mechanism import (
    clip_cov_loss,
    entropy_performance_fit,
    kl_cov_loss,
    predicted_entropy_change,
    token_covariance,
)
from rljax.losses.hpt import hpt_gate, hpt_loss, unified_pg_loss
from rljax.losses.kdrl import kd_loss, kdrl_kl_schedule, kdrl_loss, reward_guided_kd_mask
from rljax.losses.kl import KLControllerState, adaptive_kl_update, kl_penalized_rewards, kl_penalty
from rljax.losses.lipo import lambda_weights, lipo_loss
from rljax.losses.nash_md import geometric_mixture_logits, nash_md_pg_loss
from rljax.losses.nft import nft_loss
from rljax.losses.nlpo import nlpo_masked_logits
from rljax.losses.alol import advantage_filter, alol_loss, priority_probs
from rljax.losses.oreal import oreal_loss
from rljax.losses.pf_ppo import pf_ppo_filter, pf_ppo_resample
from rljax.losses.policy_gradient import cispo_loss, gspo_loss, ppo_clip_loss, reinforce_loss
from rljax.losses.ppo_max import RunningMeanStd, bt_lm_loss, normalize_and_clip_rewards, ppo_max_loss
from rljax.losses.preference import (
    cdpo_loss,
    dpo_loss,
    hinge_loss,
    inpo_loss,
    ipo_loss,
    pairwise_loss,
    rdpo_loss,
    simpo_loss,
)
from rljax.losses.registry import LossSpec, bind, get, names, register, spec
from rljax.losses.refuel import rebel_loss, refuel_loss
from rljax.losses.reward_model import bt_reward_loss, polar_loss
from rljax.losses.grpo_d import grpo_d_kl_schedule
from rljax.losses.value import entropy_from_logits, value_loss

# The array ops every loss is written with, re-exported for `from rljax.losses import token_logps`.
from rljax.ops import mask_count, masked_mean, masked_sum, sequence_logps, token_logps, top_p_mask
