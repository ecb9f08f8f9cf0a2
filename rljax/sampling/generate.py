"""`generate`: KV-cache sampling with the training modules, one jit-compiled prefill + while loop.

The sampler calls the same `Decoder` the trainer differentiates, through `Decoder.decode` on a
preallocated `KVCache`, so the log-probability it reports for a sampled token is the training forward
pass's log-probability of that token (to float rounding; a test checks 1e-5 in float32). Per step:

  logits_t = policy(prompt, y_<t)[-1]                  (raw model, temperature 1)
  x_t      = mixture / NLPO mask of logits_t           (optional second / masking model)
  log q_t  = process_logits(x_t)                       (temperature, top-k, top-p, min-p)
  y_t ~ q_t  (or argmax q_t when greedy)
  logprobs[t] = log q_t(y_t),  model_logprobs[t] = log_softmax(logits_t)(y_t)

Prompts are left-padded, so every row's last prompt column is a real token and the prefill's last
logits start every row. Rows that emit an EOS id stop: later columns hold `pad_token_id` with mask 0,
and the loop exits as soon as every row has stopped. Sampling parameters are traced arrays, so
changing them reuses the compiled program; the shapes that do compile are (batch, prompt length,
max_new_tokens, cache length). Every step attends over the whole cache, so by default it is only as long
as it must be, P + max_new_tokens rounded up to a multiple of `bucket` (a coarser rounding would save
no compilation: the prompt length is part of the compiled shape already).

Per step the work is the model's decode plus a few passes over the vocabulary: the processors never sort
(`rljax.ops.masks`), the token is drawn by inverting the CDF at one uniform per row (all drawn before
the loop, `processors.draw`), and with no processor at all the drawn-from log-prob is also the model's.

The cache lives inside the compiled program as a loop carry of `lax.while_loop`, which XLA updates in
place — the effect of donating it between steps, without a host round trip per token.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rljax import checks
from rljax.sampling import processors


class Rollout(NamedTuple):
  """Generated tokens and their log-probabilities.

  tokens: i32[B, N] (pad after a row stops); logprobs: f32[B, N], log-prob of each token under the
  processed distribution it was drawn from (0 when greedy: a point mass); model_logprobs: f32[B, N],
  under the raw policy at temperature 1; mask: bool[B, N], the valid generated tokens (EOS included);
  lengths: i32[B], mask.sum(-1).
  """

  tokens: jax.Array
  logprobs: jax.Array
  model_logprobs: jax.Array
  mask: jax.Array
  lengths: jax.Array


def _check_prompt(prompt_tokens, prompt_mask):
  if jnp.ndim(prompt_tokens) != 2:
    raise ValueError(f"`prompt_tokens` must be [batch, length], got shape {jnp.shape(prompt_tokens)}.")
  if jnp.shape(prompt_mask) != jnp.shape(prompt_tokens):
    raise ValueError(f"`prompt_mask` has shape {jnp.shape(prompt_mask)}, expected {jnp.shape(prompt_tokens)}.")
  if 0 in jnp.shape(prompt_tokens):
    raise ValueError(f"Empty prompt batch: `prompt_tokens` has shape {jnp.shape(prompt_tokens)}.")
  if isinstance(prompt_mask, jax.core.Tracer):
    return
  mask = np.asarray(prompt_mask).astype(bool)
  empty = np.nonzero(~mask.any(-1))[0]
  if empty.size:
    raise ValueError(f"Empty prompt: rows {empty.tolist()} of `prompt_mask` have no real token.")
  if not mask[:, -1].all():
    raise ValueError("Prompts must be left-padded: the last column of `prompt_mask` must be 1 in every row "
                     f"(rows {np.nonzero(~mask[:, -1])[0].tolist()} are not).")


def generate(model: nnx.Module, prompt_tokens: jax.Array, prompt_mask: jax.Array, *, key: jax.Array,
             max_new_tokens: int, temperature=1.0, top_k=None, top_p=None, min_p=None, greedy=False,
             eos_token_id: int | tuple[int, ...] | None = None, pad_token_id: int = 0,
             mixture_model: nnx.Module | None = None, mixture_alpha=0.0,
             mask_model: nnx.Module | None = None, mask_top_p=0.9, mask_min_keep: int = 1,
             mask_always_keep: int | tuple[int, ...] | None = None, cache_len: int | None = None,
             cache_dtype: Any = None, bucket: int = 16) -> Rollout:
  """Samples `max_new_tokens` continuations of left-padded prompts with `model`'s KV-cache decoder.

  Args:
    model: a `rljax.models.Decoder` (any module with `init_cache` and `decode`).
    prompt_tokens, prompt_mask: [B, P] left-padded prompts (mask 1 on real tokens).
    key: PRNG key; the result is a deterministic function of it.
    temperature, top_k, top_p, min_p, greedy: see `rljax.sampling.processors` (None disables).
    eos_token_id: an id or ids that end a row (None: never stop early).
    mixture_model, mixture_alpha: sample from the geometric mixture π^(1−α)·μ^α of `model` and
      `mixture_model` (Nash-MD's opponent policy), token by token.
    mask_model, mask_top_p, mask_min_keep, mask_always_keep: NLPO — restrict each step to the top-p set
      (at least `mask_min_keep` tokens, plus the ids `mask_always_keep`) of the frozen `mask_model`.
    cache_len: KV-cache slots (≥ P + max_new_tokens); default P + max_new_tokens rounded up to `bucket`.
    cache_dtype: storage dtype of the cache (e.g. jnp.bfloat16); default the model's compute dtype.
  """
  _check_prompt(prompt_tokens, prompt_mask)
  if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
    raise ValueError(f"`max_new_tokens` must be a positive int, got {max_new_tokens!r}.")
  params = processors.sampling_params(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                                      greedy=greedy)
  for name, value, lo, hi in (("mixture_alpha", mixture_alpha, 0.0, 1.0), ("mask_top_p", mask_top_p, 1e-38, 1.0)):
    v = checks.concrete_value(value)
    if v is not None and not lo <= v <= hi:
      raise ValueError(f"`{name}` must lie in [{lo:g}, {hi:g}], got {value}.")
  need = prompt_tokens.shape[1] + max_new_tokens
  if cache_len is None:
    cache_len = -(-need // bucket) * bucket
  elif need > cache_len:
    raise ValueError(f"The prompt ({prompt_tokens.shape[1]} tokens) plus max_new_tokens ({max_new_tokens}) "
                     f"needs {need} cache slots, more than cache_len={cache_len}.")
  limit = getattr(getattr(model, "cfg", None), "max_positions", None)
  if limit is not None and getattr(model.cfg, "family", None) == "gpt2" and need > limit:
    raise ValueError(f"The prompt plus max_new_tokens needs {need} positions; the model has {limit}.")
  models = (model,) + tuple(m for m in (mixture_model, mask_model) if m is not None)
  graphdefs, states = zip(*(nnx.split(m) for m in models))
  eos = jnp.asarray([-1] if eos_token_id is None else np.atleast_1d(eos_token_id), jnp.int32)
  keep_ids = jnp.asarray([-1] if mask_always_keep is None else np.atleast_1d(mask_always_keep), jnp.int32)
  return _generate(graphdefs, states, jnp.asarray(prompt_tokens, jnp.int32), jnp.asarray(prompt_mask, jnp.bool_),
                   key, params, jnp.asarray(mixture_alpha, jnp.float32), jnp.asarray(mask_top_p, jnp.float32),
                   eos, jnp.asarray(pad_token_id, jnp.int32), keep_ids, max_new_tokens=int(max_new_tokens),
                   cache_len=int(cache_len), cache_dtype=cache_dtype, has_mixture=mixture_model is not None,
                   has_mask=mask_model is not None, mask_min_keep=int(mask_min_keep))


@functools.partial(jax.jit, static_argnums=(0,),
                   static_argnames=("max_new_tokens", "cache_len", "cache_dtype", "has_mixture", "has_mask",
                                    "mask_min_keep"))
def _generate(graphdefs, states, prompt, prompt_mask, key, params, alpha, mask_top_p, eos, pad, keep_ids, *,
              max_new_tokens, cache_len, cache_dtype, has_mixture, has_mask, mask_min_keep):
  models = [nnx.merge(g, s) for g, s in zip(graphdefs, states)]
  b = prompt.shape[0]

  def decode(caches, tokens, mask):
    outs = [m.decode(tokens, c, attention_mask=mask) for m, c in zip(models, caches)]
    return [o[0][:, -1] for o in outs], [o[1] for o in outs]

  def choose(u, logits):
    x = logits[0]
    if has_mixture:
      x = processors.geometric_mixture(x, logits[1], alpha=alpha)
    if has_mask:
      always = jnp.zeros(x.shape[-1], bool).at[jnp.clip(keep_ids, 0)].max(keep_ids >= 0)
      x = processors.nlpo_mask(x, logits[-1], top_p=mask_top_p, min_keep=mask_min_keep, always_keep=always)
    token, logprob = processors.sample(x, u, params)
    raw = logits[0].astype(jnp.float32)

    def model_logprob():
      return jnp.take_along_axis(raw, token[:, None], axis=-1)[:, 0] - jax.nn.logsumexp(raw, axis=-1)

    if has_mixture or has_mask:
      return token, logprob, model_logprob()
    # Unprocessed sampling draws from the policy itself: its log-prob is the model's, without another pass.
    return token, logprob, jax.lax.cond(processors.unprocessed(params), lambda: logprob, model_logprob)

  caches = [m.init_cache(b, cache_len, cache_dtype) for m in models]
  if prompt.shape[1] > 1:
    # Only the last column's logits are used: prefill the others (their LM head is dead code) and decode
    # the last column alone, so the head runs on B tokens instead of B·P.
    _, caches = decode(caches, prompt[:, :-1], prompt_mask[:, :-1])
  logits, caches = decode(caches, prompt[:, -1:], prompt_mask[:, -1:])
  # One uniform per row and step, all drawn here: the loop itself generates no random numbers.
  uniforms = jax.random.uniform(key, (max_new_tokens, b))
  out = dict(tokens=jnp.full((b, max_new_tokens), pad, jnp.int32),
             logprobs=jnp.zeros((b, max_new_tokens), jnp.float32),
             model_logprobs=jnp.zeros((b, max_new_tokens), jnp.float32),
             mask=jnp.zeros((b, max_new_tokens), jnp.bool_))

  def cond(carry):
    i, _, _, done, _ = carry
    return (i < max_new_tokens) & ~jnp.all(done)

  def body(carry):
    i, logits, caches, done, out = carry
    token, logprob, model_logprob = choose(uniforms[i], logits)
    live = ~done
    token = jnp.where(live, token, pad)
    col = lambda name, v: jax.lax.dynamic_update_slice(out[name], v[:, None].astype(out[name].dtype), (0, i))
    out = dict(tokens=col("tokens", token), logprobs=col("logprobs", jnp.where(live, logprob, 0.0)),
               model_logprobs=col("model_logprobs", jnp.where(live, model_logprob, 0.0)),
               mask=col("mask", live))
    done = done | jnp.isin(token, eos)
    logits, caches = decode(caches, token[:, None], live[:, None])
    return i + 1, logits, caches, done, out

  init = (jnp.zeros((), jnp.int32), logits, caches, jnp.zeros((b,), jnp.bool_), out)
  *_, out = jax.lax.while_loop(cond, body, init)
  return Rollout(out["tokens"], out["logprobs"], out["model_logprobs"], out["mask"],
                 out["mask"].sum(-1).astype(jnp.int32))
