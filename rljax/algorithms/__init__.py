"""Named RL algorithm presets (PPO, GRPO, DAPO, Dr. GRPO, GSPO, ...) built on the `rljax.losses` kernels.

    import rljax.algorithms as algos
    algos.names()                              # ['apo', 'clip_cov', 'dapo', ...]
    cfg = algos.get("dapo")                    # fresh unlocked ml_collections.ConfigDict
    algos.override(cfg, {"kl": {"coef": 0.1}})  # edit nested fields; an unknown key is a KeyError
    advantage_fn, loss_fn = algos.resolve(cfg)
    batch |= advantage_fn(batch)
    loss, metrics = loss_fn(logp, batch)

See `rljax.algorithms.presets` for the config fields and each preset's defaults, and
`rljax.algorithms.resolution` for the uniform call convention and the batch keys.
"""

from rljax.algorithms.presets import names
from rljax.algorithms.resolution import (
    ADVANTAGES,
    KL_SCHEDULES,
    get,
    override,
    required_inputs,
    resolve,
    resolve_kernels,
)

__all__ = ["ADVANTAGES", "KL_SCHEDULES", "get", "names", "override", "required_inputs", "resolve", "resolve_kernels"]
