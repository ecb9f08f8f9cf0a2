"""The ground floor under losses, models and sampling: token log-probabilities, masks, reductions.

    from rljax import ops
    logps = ops.token_logps(logits, targets)          # chunked log_softmax(logits)[targets], f32[B, T]
    seq = ops.sequence_logps(logps, mask)             # masked sum over the response, f[B]
    keep = ops.top_p_mask(logits, 0.9)                # the nucleus of each distribution, bool[..., V]
"""

from rljax import host_memory as _host_memory
from rljax.ops.logps import default_chunk_size, map_chunks, token_logps
from rljax.ops.masks import at_last_token, last_token, top_p_mask
from rljax.ops.reductions import group_mean, mask_count, masked_mean, masked_sum, sequence_logps

# Return the host memory each XLA compilation leaves freed but resident (rljax.host_memory). Here, under
# everything that compiles, rather than in `rljax/__init__`: host-only processes (reward-pool workers) do
# not import jax.
_host_memory.trim_after_compiles()

__all__ = ["at_last_token", "default_chunk_size", "group_mean", "last_token", "map_chunks", "mask_count", "masked_mean",
           "masked_sum", "sequence_logps", "token_logps", "top_p_mask"]
