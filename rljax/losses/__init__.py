"""Pure loss kernels: functions of arrays returning `(loss, metrics)`.

    from rljax.losses import rdpo_loss
    loss, metrics = rdpo_loss(pc, pr, rc, rr, beta=0.1, epsilon=0.2)
    assert rljax.losses.get("rdpo") is rdpo_loss     # configs select losses by name
"""

from rljax.losses.dpg import dpg_loss
from rljax.losses.listwise import lambda_weights, lipo_loss
from rljax.losses.offline_pg import advantage_filter, alol_loss, priority_probs
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
from rljax.losses.reductions import mask_count, masked_mean, masked_sum, sequence_logps
from rljax.losses.registry import get, names, register
from rljax.losses.regression import rebel_loss, refuel_loss
from rljax.losses.reward_model import bt_reward_loss, polar_loss
from rljax.losses.token_logps import token_logps
