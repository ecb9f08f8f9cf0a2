"""The host loop around a jit-compiled step: data by position, logging, checkpoints, preemption.

Batches are a pure function of the data position (`batch_fn(pos)`), and the state carries that
position and the RNG key, so a run restored from step k replays steps k+1, k+2, ... exactly as an
uninterrupted run would (a test checks every logged metric). The only host synchronisation is on
logging and checkpoint steps.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import jax

from rljax.training.checkpoint import Checkpointer, PreemptionGuard
from rljax.training.metrics import MetricsWriter, Throughput
from rljax.training.step import TrainState


def train(state: TrainState, step_fn: Callable, batch_fn: Callable[[int], Any], *, num_steps: int,
          writer: MetricsWriter | None = None, checkpointer: Checkpointer | None = None, phase: str | None = None,
          log_every: int = 10, ckpt_every: int = 100, tokens_fn: Callable[[Any], float] | None = None,
          progress: bool = True, eval_fn: Callable[[TrainState], dict] | None = None,
          eval_every: int = 0, data_from_state: bool = False, bar_keys: tuple[str, ...] = ("loss",),
          step_of: Callable[[TrainState], int] | None = None) -> TrainState:
  """Runs `step_fn` until `step_of(state) == num_steps`, resuming from `checkpointer` if it holds a step.

  Logs the step's metrics and tokens/s (when `tokens_fn(batch)` gives the batch's token count)
  every `log_every` steps and at the end; `eval_fn(state) -> dict` every `eval_every` steps. The
  progress bar shows `bar_keys`.
  Saves every `ckpt_every` steps and at the end. SIGTERM saves the current state and exits with
  status 0.

  `step_of` maps the state to the loop's step count (default `state.step`, one update per step; an
  online-RL iteration applies several). With `data_from_state`, each batch is `batch_fn(state.data_pos)`
  read after the previous step (for steps that consume a variable number of batches, e.g. DAPO's
  refill); otherwise the loop counts positions itself and never waits on the device for them.
  """
  if num_steps < 0 or log_every < 1 or ckpt_every < 1:
    raise ValueError(f"need num_steps >= 0, log_every >= 1, ckpt_every >= 1; got {num_steps}, {log_every}, "
                     f"{ckpt_every}.")
  step_of = step_of or (lambda st: int(st.step))
  if checkpointer is not None:
    restored_step, restored = checkpointer.restore_latest(state)
    if restored_step is not None:
      state = restored
      if writer is not None:
        writer.truncate(phase, step_of(restored))
  start = step_of(state)
  pos = int(state.data_pos)
  bar = None
  if progress and start < num_steps:
    from tqdm.auto import tqdm
    bar = tqdm(total=num_steps, initial=start, desc=phase or "train", dynamic_ncols=True, leave=False)
  rate = Throughput()
  tokens_since = 0.0

  def save(step):
    if checkpointer is not None:
      checkpointer.save(step, state)

  with PreemptionGuard() as guard:
    for step in range(start + 1, num_steps + 1):
      if data_from_state:
        pos = int(state.data_pos)
      batch = batch_fn(pos)
      pos += 1
      state, metrics = step_fn(state, batch)
      if tokens_fn is not None:
        tokens_since += float(tokens_fn(batch))
      if step % log_every == 0 or step == num_steps:
        metrics = jax.device_get(metrics)
        if tokens_fn is not None:
          metrics["tokens_per_s"] = rate(tokens_since)
          tokens_since = 0.0
        if eval_fn is not None and eval_every and (step % eval_every == 0 or step == num_steps):
          metrics.update(jax.device_get(eval_fn(state)))
        if writer is not None:
          writer.write(step, metrics, phase=phase)
        if bar is not None:
          shown = {k: f"{float(metrics[k]):.4g}" for k in bar_keys if k in metrics}
          bar.set_postfix(**shown, **({"tok/s": f"{metrics['tokens_per_s']:,.0f}"} if tokens_fn else {}))
      if bar is not None:
        bar.update(1)
      if step % ckpt_every == 0 or step == num_steps:
        save(step)
      if guard.requested:
        save(step)
        if bar is not None:
          bar.close()
        if writer is not None:
          writer.close()
        print(f"SIGTERM: saved step {step}, exiting.", file=sys.stderr, flush=True)
        raise SystemExit(0)
  if bar is not None:
    bar.close()
  return state
