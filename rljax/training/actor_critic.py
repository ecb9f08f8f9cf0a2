"""The models of online RL and their forward pass on responses.

`ActorCritic` pairs a policy `Decoder` with a per-token `rljax.models.ValueHead`, on the policy's backbone
(shared) or on a separate one; `response_forward` reads log-probabilities, values and entropies of the
response tokens in one pass (value of token t at the hidden state of position t − 1, where its log-prob is
read), and `nlpo_response_forward` does the same under NLPO's masked policy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from rljax import models
from rljax.losses.nlpo import nlpo_token_logps
from rljax.losses.value import entropy_from_logits
from rljax.models.heads import lm_head_token_logps, lm_head_weights
from rljax.training import objectives


class ActorCritic(nnx.Module):
  """A policy `Decoder` plus a per-token `ValueHead`, on the policy's backbone (`critic_backbone`
  None: shared) or on a separate backbone `critic_backbone` (any module with `hidden_states`)."""

  def __init__(self, policy: nnx.Module, *, rngs: nnx.Rngs, critic_backbone: nnx.Module | None = None):
    self.policy = policy
    self.critic = critic_backbone
    backbone = policy if critic_backbone is None else critic_backbone
    self.value_head = models.ValueHead(backbone.cfg.d_model, rngs=rngs)


def policy_of(model: nnx.Module) -> nnx.Module:
  """The policy `Decoder` of a trained model (the model itself, or an `ActorCritic`'s policy)."""
  return model.policy if isinstance(model, ActorCritic) else model


def response_forward(model: nnx.Module, tokens: jax.Array, token_mask: jax.Array, n_new: int, *,
                     values: bool = False, entropy: bool = False):
  """`(logp, values, entropy)` on the last `n_new` columns of `tokens` (the response), each `f32[B, N]`
  or None when not asked for.

      logp[b, t]    = log π(y_t | x, y_<t)          (t = response position, read at position t − 1)
      values[b, t]  = V(x, y_<t)                    (ValueHead on the critic's or shared hidden state)
      entropy[b, t] = H(π(· | x, y_<t))

  Without `entropy` the log-probs use the fused LM head (`objectives.token_logps`, or the same head
  on hidden states shared with the value head), so `[B, T, V]` logits never exist.
  """
  policy = policy_of(model)
  if values and not isinstance(model, ActorCritic):
    raise ValueError("the preset uses a critic (critic.enabled): the trained model must be an ActorCritic.")
  shared = values and model.critic is None
  inputs, attn, targets = tokens[:, :-1], token_mask[:, :-1], tokens[:, -n_new:]
  hidden = ent = val = None
  if entropy or shared:
    hidden = policy.hidden_states(inputs, attention_mask=attn)
    h_resp = hidden[:, -n_new:]
    if entropy:
      logits = policy.logits_from_hidden(h_resp)
      logp = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), targets[..., None], -1)[..., 0]
      ent = entropy_from_logits(logits)
    else:
      logp = lm_head_token_logps(h_resp, lm_head_weights(policy), targets)
  else:
    logp = objectives.token_logps(policy, tokens, token_mask)[:, -n_new:]
  if values:
    if not shared:
      hidden = model.critic.hidden_states(inputs, attention_mask=attn)
    val = model.value_head(hidden[:, -n_new:])
  return logp, val, ent


def nlpo_response_forward(model: nnx.Module, mask_model: nnx.Module, tokens: jax.Array, token_mask: jax.Array,
                          n_new: int, *, top_p: float, min_keep: int, always_keep: jax.Array, values: bool = False,
                          entropy: bool = False):
  """`response_forward` under NLPO's masked policy π_θ^mask ∝ π_θ·1[a ∈ top-p set of π_ψ]
  (`rljax.losses.nlpo.nlpo_token_logps`); `mask_model` (π_ψ) is frozen (no gradient)."""
  policy = policy_of(model)
  inputs, attn, targets = tokens[:, :-1], token_mask[:, :-1], tokens[:, -n_new:]
  logits = policy(inputs, attention_mask=attn)[:, -n_new:]
  mask_logits = jax.lax.stop_gradient(policy_of(mask_model)(inputs, attention_mask=attn)[:, -n_new:])
  keep = jnp.zeros(logits.shape[-1], bool).at[jnp.clip(always_keep, 0)].max(always_keep >= 0)
  logp = nlpo_token_logps(logits, mask_logits, targets, top_p=top_p, min_keep=min_keep, always_keep=keep)
  logp = jnp.where(token_mask[:, -n_new:], logp, 0.0)
  _, val, _ = response_forward(model, tokens, token_mask, n_new, values=values) if values else (None, None, None)
  ent = entropy_from_logits(logits) if entropy else None
  return logp, val, ent
