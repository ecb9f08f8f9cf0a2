"""Pure loss kernels: functions of arrays returning `(loss, metrics)`.

    from rljax.losses import rdpo_loss
    loss, metrics = rdpo_loss(pc, pr, rc, rr, beta=0.1, epsilon=0.2)
    rljax.losses.get("rdpo") is rdpo_loss
"""

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
from rljax.losses.reductions import masked_mean, masked_sum, mask_count, sequence_logps
from rljax.losses.registry import get, names, register
