"""Held-out evaluation of a policy inside training: sample, score, tabulate accuracy.

    eval_fn = make_evaluator(graphdef, prompts, prompt_mask, rows, reward, k=4, max_new_tokens=24,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    train(state, step_fn, batch_fn, ..., eval_fn=eval_fn, eval_every=10)   # logged as eval/...

For each held-out prompt x_r (r = 1..R) the evaluator draws k samples y_r1..y_rk ~ π_θ(·|x_r) at
`temperature` and, with `greedy`, the greedy response ŷ_r; the reward is the same host reward (or
jittable token reward) as in training, and a sample is correct when its reward is full credit
(`rljax.tasks.evaluation.CORRECT_AT`). Logged, overall and per family and difficulty
(`rljax.tasks.evaluation.accuracy_table`):

    eval/acc/<scope>/mean@k   (1/Rk) Σ_r Σ_i 1[y_ri correct]          the sampled accuracy
    eval/acc/<scope>/pass@k   (1/R) Σ_r 1 − C(k − c_r, k)/C(k, k)      c_r correct samples of prompt r
    eval/acc/<scope>/greedy   (1/R) Σ_r 1[ŷ_r correct]
    eval/acc/<scope>/length   mean sample length (tokens)

The keys of the evaluation are fixed (one key per call, so two evaluations of the same parameters
agree and a curve compares checkpoints on the same draws).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rljax import sampling
from rljax.tasks.evaluation import CORRECT_AT, accuracy_table
from rljax.training import distributed
from rljax.training.online import policy_of


def make_evaluator(graphdef, prompts, prompt_mask, rows: Sequence[Mapping], reward_fn: Callable, *, k: int,
                   max_new_tokens: int, eos_token_id, pad_token_id: int = 0, temperature: float = 1.0,
                   greedy: bool = True, seed: int = 0, prefix: str = "eval/",
                   sharding: jax.sharding.NamedSharding | None = None) -> Callable:
  """`eval_fn(state) -> dict` of held-out accuracy (module docstring) for `rljax.training.train`.

  `reward_fn` is a host reward (`on_host = True`, e.g. `rljax.rewards.TextReward`) or a jittable
  `reward_fn(tokens, response_mask) -> f[B]`; `rows` are the prompts' dataset rows (with `family`
  and `difficulty` for the per-family table). `state` is a `TrainState` or a parameter state.
  With `sharding` (the run's `rljax.sharding.batch_sharding`) the prompts are sampled data-parallel,
  each process placing its rows (`distributed.process_rows`); the samples are then gathered, and every
  process scores every row and returns the same table (every process holds all of `rows`).
  """
  prompts, prompt_mask = jnp.asarray(prompts, jnp.int32), jnp.asarray(prompt_mask, bool)
  if prompts.ndim != 2 or prompt_mask.shape != prompts.shape or len(rows) != prompts.shape[0]:
    raise ValueError(f"`prompts` must be [R, P] with a mask of the same shape and R rows, got {prompts.shape}, "
                     f"{prompt_mask.shape} and {len(rows)} rows.")
  if isinstance(k, bool) or not isinstance(k, int) or k < 1:
    raise ValueError(f"`k` must be a positive int, got {k!r}.")
  host = bool(getattr(reward_fn, "on_host", False))
  num = prompts.shape[0]
  gen = dict(max_new_tokens=max_new_tokens, eos_token_id=eos_token_id, pad_token_id=pad_token_id)

  def _token_reward(p, pm, tokens, mask):
    full = jnp.concatenate([p, tokens], 1)
    return jnp.asarray(reward_fn(full, jnp.concatenate([jnp.zeros_like(pm), mask], 1)), jnp.float32)

  @jax.jit
  def _sample(params, key, prompts, prompt_mask):
    model = policy_of(nnx.merge(graphdef, params))
    p, pm = jnp.repeat(prompts, k, axis=0), jnp.repeat(prompt_mask, k, axis=0)
    r = sampling.generate(model, p, pm, key=key, temperature=temperature, **gen)
    out = {"tokens": r.tokens, "mask": r.mask}
    if greedy:
      g = sampling.generate(model, prompts, prompt_mask, key=key, greedy=True, **gen)
      out |= {"greedy_tokens": g.tokens, "greedy_mask": g.mask}
    if not host:
      out["rewards"] = _token_reward(p, pm, r.tokens, r.mask)
      if greedy:
        out["greedy_rewards"] = _token_reward(prompts, prompt_mask, g.tokens, g.mask)
    return out

  key = jax.random.PRNGKey(seed)
  p_np, pm_np = np.asarray(prompts), np.asarray(prompt_mask)
  if sharding is not None:
    local = distributed.process_rows(num)
    prompts, prompt_mask = distributed.global_batch((p_np[local], pm_np[local]), sharding)

  def eval_fn(state) -> dict[str, float]:
    params = getattr(state, "params", state)
    out = distributed.host_all(_sample(params, key, prompts, prompt_mask))
    metrics = {}
    if host:
      rep = [r for r in rows for _ in range(k)]
      rewards, _ = reward_fn(np.repeat(p_np, k, 0), np.repeat(pm_np, k, 0), out["tokens"], out["mask"], rep)
      if greedy:
        out["greedy_rewards"], _ = reward_fn(p_np, pm_np, out["greedy_tokens"], out["greedy_mask"], list(rows))
    else:
      rewards = out["rewards"]
    lengths = out["mask"].sum(-1).reshape(num, k)
    table = accuracy_table(rows, np.asarray(rewards).reshape(num, k), lengths)
    metrics |= table
    if greedy:
      correct = np.asarray(out["greedy_rewards"]) >= CORRECT_AT
      for scope in {key.split("/")[1] for key in table if key.startswith("acc/")}:
        idx = [i for i, r in enumerate(rows) if scope == "all" or scope == r.get("family")]
        if idx:
          metrics[f"acc/{scope}/greedy"] = float(correct[idx].mean())
    return {prefix + name: value for name, value in metrics.items()}

  return eval_fn


__all__ = ["make_evaluator"]
