"""NLPO: PPO over a per-step action space restricted to the top-p tokens of a masking policy.

Ramamurthy, Ammanabrolu, Brantley, Hessel, Sifa, Bauckhage, Hajishirzi & Choi, "Is Reinforcement
Learning (Not) for Natural Language Processing: Benchmarks, Baselines, and Building Blocks for Natural
Language Policy Optimization", ICLR 2023 (RL4LMs). A masking policy π_ψ, a copy of π_θ refreshed every
μ iterations, defines at each state s the smallest set S_p(s) of most likely tokens whose mass under
π_ψ reaches p (at least `min_keep` tokens). The policy acts and is evaluated (in the PPO ratio) as

    π_θ^mask(a|s) ∝ π_θ(a|s)·1[a ∈ S_p(s)],   i.e. logits outside S_p(s) are set to −∞.

With p = 1 nothing is masked and NLPO is PPO. The PPO pieces are the generic ones (`ppo_clip_loss`,
`gae`, `kl_penalized_rewards` with per-token reward −β·(log π_θ − log π_0) plus the task score at
the last token), fed with `nlpo_token_logps`. RL4LMs adapts β as β·(1 + 0.1·clip(KL/KL_target − 1,
±0.2)), which is `rljax.losses.kl.adaptive_kl_update` with n_steps/horizon = 0.1 (e.g. n_steps = 1,
horizon = 10).

RL4LMs IMDB config (`gpt2_nlpo.yml`): top_mask p = 0.9, min_tokens_to_keep = 100,
target_update_iterations μ = 5, KL coefficient 0.1 with target KL 1.0. RL4LMs also always unmasks the
special tokens (BOS/EOS): pass them as `always_keep`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import checks
from rljax.ops.masks import check_top_p, top_p_mask


def nlpo_masked_logits(
    policy_logits: jax.Array,
    mask_policy_logits: jax.Array,
    *,
    top_p: float = 0.9,
    min_keep: int = 1,
    always_keep: jax.Array | None = None,
) -> jax.Array:
  """π_θ's logits with every token outside the top-p set of π_ψ set to −∞ `f[..., V]`.

  The set comes from `mask_policy_logits` (π_ψ) only; gradients flow into the kept entries of
  `policy_logits`. `always_keep`, a `bool[V]` (or broadcastable) mask, is added to the set.
  """
  check_top_p("top_p", top_p, "min_keep", min_keep)
  checks.check_same_shape(policy_logits=policy_logits, mask_policy_logits=mask_policy_logits)
  keep = top_p_mask(mask_policy_logits, top_p, min_tokens_to_keep=min_keep)
  if always_keep is not None:
    keep = keep | jnp.asarray(always_keep, bool)
  (x,) = checks.as_compute(policy_logits)
  return jnp.where(keep, x, -jnp.inf)


def nlpo_token_logps(
    policy_logits: jax.Array,
    mask_policy_logits: jax.Array,
    tokens: jax.Array,
    *,
    top_p: float = 0.9,
    min_keep: int = 1,
    always_keep: jax.Array | None = None,
    mask: jax.Array | None = None,
) -> jax.Array:
  """log π_θ^mask(y_t|·) `f[B, T]` of the sampled tokens under the masked policy (logits `f[B, T, V]`).

  These are the `logp`/`old_logp` of NLPO's PPO ratio. A token outside the set gets −∞; tokens
  sampled from the masked policy with the same π_ψ never are. Where `mask` is False (padding, whose
  token ids are arbitrary) the value is 0.
  """
  checks.check_same_shape(3, policy_logits=policy_logits, mask_policy_logits=mask_policy_logits)
  if mask is not None:
    checks.check_same_shape(2, tokens=tokens, mask=mask)
  if jnp.shape(tokens) != jnp.shape(policy_logits)[:2]:
    raise ValueError(f"`tokens` has shape {jnp.shape(tokens)}, expected {jnp.shape(policy_logits)[:2]}.")
  logits = nlpo_masked_logits(
      policy_logits, mask_policy_logits, top_p=top_p, min_keep=min_keep, always_keep=always_keep
  )
  logps = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), jnp.asarray(tokens)[..., None], axis=-1)[..., 0]
  return logps if mask is None else jnp.where(mask, logps, 0)

