"""NLPO: PPO over a per-step action space restricted to the top-p tokens of a masking policy.

Ramamurthy, Ammanabrolu, Brantley, Hessel, Sifa, Bauckhage, Hajishirzi & Choi, "Is Reinforcement
Learning (Not) for Natural Language Processing: Benchmarks, Baselines, and Building Blocks for Natural
Language Policy Optimization", ICLR 2023 (RL4LMs). A masking policy π_ψ, a copy of π_θ refreshed every
μ iterations, defines at each state s the smallest set S_p(s) of most likely tokens whose mass under
π_ψ reaches p (at least `min_keep` tokens). The policy acts and is evaluated (in the PPO ratio) as

    π_θ^mask(a|s) ∝ π_θ(a|s)·1[a ∈ S_p(s)],   i.e. logits outside S_p(s) are set to −∞.

With p = 1 nothing is masked and NLPO is PPO. The PPO pieces are the generic ones (`ppo_clip_loss`,
`gae`, `kl_penalized_rewards` with per-token reward −β·(log π_θ − log π_0) plus the task score at
the last token), fed with `nlpo_token_logps`. RL4LMs adapts β once per rollout as
β·(1 + 0.1·clip(KL/KL_target − 1, ±0.2)), which is `rljax.losses.kl.adaptive_kl_update` with
n_steps/horizon = 0.1 (n_steps = 1, horizon = 10).

Checked against allenai/RL4LMs:
* `rl4lms/algorithms/common/maskable/logits_processor.py` `MaskLogitsProcessorCasualLM._get_action_masks`
  (mask_type 'learned_top_p'): sort π_ψ's logits, remove where the cumulative probability is > p,
  un-remove the first `min_tokens_to_keep − 1`, shift right by one, keep the first: S_p is the shortest
  prefix whose mass exceeds p, widened to `min_tokens_to_keep` tokens; then every tokenizer special id
  (BOS/EOS/PAD) is unmasked: pass them as `always_keep`. `rljax.ops.top_p_mask` is the same set except at
  an exact tie (preceding mass == p, where RL4LMs keeps one more token). The seq2seq processor un-removes
  `min_tokens_to_keep` entries before the shift, keeping one token more than asked.
* `rl4lms/envs/text_generation/policy/causal_policy.py` `MaskedCausalLMActorCriticPolicy.forward_policy`:
  the masked log-prob feeds the PPO ratio (the rollout's action masks are stored and reused in
  `evaluate_actions`), while `raw_log_probs`, the *unmasked* π_θ log-prob, feeds the KL:
  `alg_wrappers.py` computes kl_div = raw_log_probs − ref_log_probs and reward −β·kl_div per token, and
  the controller reads the mean of kl_div over all tokens of the rollout. `nlpo_token_logps(...,
  return_raw=True)` returns both.
* `rl4lms/algorithms/nlpo/nlpo.py` `NLPO.learn`: after each rollout `iteration += 1`, and when
  `iteration % target_update_iterations == 0` the mask model is re-copied from π_θ before training on
  that rollout. Constructor defaults: γ 0.99, λ 0.95, clip 0.2, clip_range_vf None, vf_coef 0.5 (on
  F.mse_loss), ent_coef 0, normalize_advantage True (per minibatch, (A − μ)/(std + 1e-8)), max_grad_norm 0.5.

RL4LMs IMDB config (`scripts/training/task_configs/imdb_text_continuation/gpt2_nlpo.yml`): top_mask
p = 0.9, min_tokens_to_keep = 100, mask_type learned_top_p, target_update_iterations μ = 5, kl_div
coeff 0.1 with target_kl 0.1 (HEAD, commit 81fe8f0 "Fix NLPO configs"; 1.0 in earlier versions, e.g.
6f22de5), lr 1e-6, 5 epochs, batch 64, 10 envs × 128 steps. Other tasks differ (e.g. common_gen
t5_nlpo.yml: β 0.001, target 2.0, μ = 20).
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
    return_raw: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
  """log π_θ^mask(y_t|·) `f[B, T]` of the sampled tokens under the masked policy (logits `f[B, T, V]`).

  These are the `logp`/`old_logp` of NLPO's PPO ratio. A token outside the set gets −∞; tokens
  sampled from the masked policy with the same π_ψ never are. Where `mask` is False (padding, whose
  token ids are arbitrary) the value is 0. With `return_raw`, returns `(masked, raw)`, raw being the
  unmasked log π_θ(y_t|·), which RL4LMs' per-token KL reward and KL controller use (`raw_log_probs`).
  Gradients flow into `policy_logits` only.
  """
  checks.check_same_shape(3, policy_logits=policy_logits, mask_policy_logits=mask_policy_logits)
  if mask is not None:
    checks.check_same_shape(2, tokens=tokens, mask=mask)
  if jnp.shape(tokens) != jnp.shape(policy_logits)[:2]:
    raise ValueError(f"`tokens` has shape {jnp.shape(tokens)}, expected {jnp.shape(policy_logits)[:2]}.")
  logits = nlpo_masked_logits(
      policy_logits, mask_policy_logits, top_p=top_p, min_keep=min_keep, always_keep=always_keep
  )
  idx = jnp.asarray(tokens)[..., None]
  logps = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), idx, axis=-1)[..., 0]
  logps = logps if mask is None else jnp.where(mask, logps, 0)
  if not return_raw:
    return logps
  (x,) = checks.as_compute(policy_logits)
  raw = jnp.take_along_axis(jax.nn.log_softmax(x, axis=-1), idx, axis=-1)[..., 0]
  return logps, (raw if mask is None else jnp.where(mask, raw, 0))
