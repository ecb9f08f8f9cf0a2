"""Host rewards evaluated in a pool of worker processes, each evaluation under a timeout.

    pool = RewardPool({"correct": math_equivalence, "format": (answer_format, 0.1)}, workers=4, timeout=10)
    total, metrics = pool(prompts, completions, rows)     # f32[B], {"reward/correct": ..., ...}

    total_b = Σ_name weight_name · r_name(prompt_b, completion_b, **rows[b])

A unit of work is one (item, reward) evaluation. A unit whose reward raises, returns a non-number or a
non-finite number, or kills its worker (segfault, `os._exit`) scores 0 and counts in `reward/errors`; one
that runs past `timeout` seconds scores 0 and counts in `reward/timeouts`, and its worker is killed. The
pool replaces dead and killed workers and never stalls: with W workers a call takes at most about
`timeout` times the number of sequential waves of hanging units (⌈hangs / W⌉) on top of the work itself
(and of waiting for replacements to start when every worker was killed at once).

Metrics per call: `reward/<name>` (the mean of that reward over the batch, before weighting, failed
units counting as 0), `reward/timeouts` and `reward/errors` (unit counts), `reward/seconds` (wall time).

Workers and scheduling. Workers start once and serve every call; each receives the parent's `sys.path`
and the pickled rewards once (module-level functions travel by reference), then calls each reward's
`warmup` (see `rljax.rewards.verifiers`) before it reports ready, so one-time import costs never count
against the timeout. A call hands contiguous chunks of units to idle workers, sized ⌈queued / 2W⌉
(guided scheduling: few messages, balanced ends); a worker replies once per unit, so when a unit hangs
or kills its worker the parent knows which unit it was: that unit alone scores 0, and the rest of its
chunk goes back to the front of the queue for the other (or the fresh) workers. Chunks go only to idle
workers, so the parent never blocks writing to a worker that has stopped reading.

Why this small manager and not a library pool:
- `concurrent.futures.ProcessPoolExecutor` cannot kill a running task, and one dead worker breaks the
  whole executor (`BrokenProcessPool`).
- `pebble.ProcessPool` kills on timeout, but its timeout covers a whole chunk (a hang loses the chunk
  and does not say which item hung), and unchunked tasks pay a message and a future per evaluation.
- `multiprocessing` spawn and forkserver children re-import the parent's `__main__` (the training script,
  hence JAX) in every worker and every replacement, and rerun a script that lacks a main guard.
So each worker is a fresh interpreter started with `subprocess` (fork + exec, like spawn: nothing of the
parent's JAX threads or device state is inherited) that imports only this module and the rewards'
modules, and talks to the parent over a socket pair with `multiprocessing.connection` framing (POSIX:
inherited descriptors, process groups).
Rewards must therefore be importable by reference: not lambdas, not functions defined in `__main__`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import math
import multiprocessing
import multiprocessing.connection
import numbers
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self

import numpy as np

from rljax.rewards import verifiers

logger = logging.getLogger(__name__)

RESERVED_NAMES = ("timeouts", "errors", "seconds")  # the pool's own metrics: `reward/<name>` would clash
_OK, _ERROR, _TIMEOUT = 0, 1, 2

# Parallelism comes from the workers: one BLAS/OpenMP thread each, not one per core (unless the user says).
_WORKER_ENV_DEFAULTS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# The worker's entry point: `sys.path` must match the parent's before `rljax` (or a reward's module) can
# be imported, so it arrives first over the inherited socket, whose descriptor is argv[1].
_BOOTSTRAP = ("import sys\n"
              "from multiprocessing.connection import Connection\n"
              "conn = Connection(int(sys.argv[1]))\n"
              "sys.path[:] = conn.recv()\n"
              "from rljax.rewards.pool import _serve\n"
              "_serve(conn)\n")


def _describe(error: BaseException) -> str:
  try:
    text = f"{type(error).__name__}: {error}"
  except Exception:  # noqa: BLE001 -- a verifier's exception may fail to print; its type is still news
    text = type(error).__name__
  return text[:300]


def _evaluate(fn: Callable[..., Any], prompt: str, completion: str, row: Mapping[str, Any]) -> tuple[float, str | None]:
  """(value, None), or (0, reason) when `fn` raises or returns something that is not a finite number."""
  try:
    value = float(fn(prompt, completion, **row))
  except (Exception, SystemExit) as e:  # noqa: BLE001 -- a verifier's sys.exit() must not end the worker or run
    return 0.0, _describe(e)
  if not math.isfinite(value):
    return 0.0, f"non-finite reward {value}"
  return value, None


def _unwrap(fn: Callable[..., Any]) -> Callable[..., Any]:
  while isinstance(fn, functools.partial):
    fn = fn.func
  return fn


def _exit_with_parent(parent_pid: int) -> None:
  """Ends an orphaned worker (the parent was SIGKILLed) even while it is stuck in a Python-level hang;
  an idle worker would also see EOF, but a hung one never reads."""
  while True:
    time.sleep(1.0)
    if os.getppid() != parent_pid:
      os._exit(1)


def _serve(conn: multiprocessing.connection.Connection) -> None:
  """Worker main loop: load the rewards and warm them up, then evaluate chunks, replying once per unit."""
  threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
  try:
    fns = pickle.loads(conn.recv_bytes())
    warmups = {id(w): w for w in (getattr(_unwrap(fn), "warmup", None) for fn in fns) if w is not None}
    for warmup in warmups.values():
      warmup()
  except BaseException:  # noqa: BLE001 -- reported to the parent, which raises it with the traceback
    conn.send(("error", traceback.format_exc()))
    return
  try:
    conn.send(("ready", os.getpid()))
    while True:
      for uid, k, prompt, completion, row in conn.recv():
        conn.send((uid, *_evaluate(fns[k], prompt, completion, row)))
  except (EOFError, OSError):  # the parent closed the pool or died: nobody to answer
    return


class _Worker:
  """One worker process, the parent's end of its socket, and the units it holds (evaluated in order)."""

  def __init__(self, payload: bytes):
    self.conn, child = multiprocessing.Pipe()
    self.proc = subprocess.Popen([sys.executable, "-c", _BOOTSTRAP, str(child.fileno())],
                                 pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL,
                                 env={**_WORKER_ENV_DEFAULTS, **os.environ}, start_new_session=True)
    child.close()  # before writing: a child that died at once then fails the write instead of blocking it
    try:
      self.conn.send(list(sys.path))
      self.conn.send_bytes(payload)
    except OSError:  # it died: the parent learns why when it waits for "ready"
      pass
    self.ready = False
    self.born = time.monotonic()
    self.pending: collections.deque[int] = collections.deque()
    self.since = 0.0  # when its first pending unit started, as far as the parent knows

  def kill(self) -> int | None:
    """Kills the worker's process group and reaps the worker; returns its exit code (negative: the signal
    that ended it). The group takes any subprocess a verifier started (a sandbox, a test runner) along;
    once the worker is reaped its id may be reused, so the group is only signalled before."""
    self.conn.close()
    if self.proc.returncode is None:
      try:
        os.killpg(self.proc.pid, signal.SIGKILL)
      except ProcessLookupError:
        pass
    try:
      return self.proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:  # stuck in the kernel (D state); subprocess reaps it later
      logger.warning("reward worker %d did not exit after SIGKILL", self.proc.pid)
      return None


def _exit_reason(code: int | None) -> str:
  if code is not None and code < 0:
    try:
      return f"worker killed by {signal.Signals(-code).name}"
    except ValueError:
      pass
  return f"worker exited with code {code}"


def _shutdown(workers: list[_Worker]) -> None:
  for w in workers:
    w.kill()
  workers.clear()


@dataclasses.dataclass
class _Call:
  """The state of one call: units (item, reward index), their results, and the queue still to run."""
  units: list[tuple[int, int]]
  items: list[tuple[str, str, dict]]
  values: np.ndarray
  status: np.ndarray
  queue: collections.deque
  remaining: int
  first_failure: str | None = None

  def settle(self, uid: int, value: float, reason: str | None, code: int) -> None:
    self.values[uid], self.status[uid] = value, code
    self.remaining -= 1
    if reason is not None and self.first_failure is None:
      self.first_failure = reason

  def fail_first(self, pending: collections.deque, code: int, reason: str) -> None:
    """The worker holding `pending` hung or died: its running unit fails, the others are requeued."""
    if pending:
      self.settle(pending.popleft(), 0.0, reason, code)
      self.queue.extendleft(reversed(pending))
      pending.clear()


class RewardPool:
  """Weighted host rewards over a batch, in `workers` processes (or inline with `workers=0`).

  Args:
    rewards: name -> reward, or name -> (reward, weight) (weight 1 otherwise). A reward is a picklable
      `fn(prompt, completion, **row) -> float` or the name of a registered one (`verifiers.names()`).
      Names other than `timeouts`, `errors`, `seconds`.
    workers: worker processes; 0 evaluates in this process (exceptions and non-finite values are still
      caught, but there is no timeout and a crash ends the caller: for tests and debugging).
    timeout: seconds one (item, reward) evaluation may run in a worker.
    start_timeout: seconds a worker may take to start (import the rewards' modules, warm them up).

  Use as a context manager or call `close()`; workers are also killed when the pool is garbage
  collected or the interpreter exits. One call at a time (not thread-safe).
  """

  def __init__(self, rewards: Mapping[str, Callable | str | tuple[Callable | str, float]], *, workers: int = 2,
               timeout: float = 10.0, start_timeout: float = 120.0):
    if not isinstance(workers, int) or workers < 0:
      raise ValueError(f"`workers` must be an integer >= 0, got {workers!r}.")
    for arg, value in (("timeout", timeout), ("start_timeout", start_timeout)):
      if not value > 0:
        raise ValueError(f"`{arg}` must be > 0, got {value!r}.")
    self.names, self._fns, weights = _resolve(rewards)
    self.weights = np.asarray(weights, np.float64)
    self.workers, self.timeout, self.start_timeout = workers, float(timeout), float(start_timeout)
    self._workers: list[_Worker] = []
    self._finalizer = weakref.finalize(self, _shutdown, self._workers)
    if workers:
      self._payload = _pickle_rewards(self.names, self._fns)
      try:
        self._workers.extend(_Worker(self._payload) for _ in range(workers))
        self._await_ready()
      except BaseException:
        self.close()
        raise

  def __call__(self, prompts: Sequence[str], completions: Sequence[str],
               rows: Sequence[Mapping[str, Any]] | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """Total rewards f32[B] and the metrics of this call; `rows[b]` are the columns passed to the rewards."""
    if not self._finalizer.alive:
      raise RuntimeError("this RewardPool is closed.")
    start = time.perf_counter()
    batch = len(prompts)
    rows = [{}] * batch if rows is None else rows
    for arg, seq in (("completions", completions), ("rows", rows)):
      if len(seq) != batch:
        raise ValueError(f"`{arg}` has {len(seq)} entries, expected {batch} (the number of prompts).")
    rows = [dict(row) for row in rows]
    for row in rows:
      if "prompt" in row or "completion" in row:
        raise ValueError(f"`rows` must not hold `prompt` or `completion` columns, got {sorted(row)}.")
    n_rewards = len(self.names)
    units = [(i, k) for i in range(batch) for k in range(n_rewards)]
    call = _Call(units, list(zip(prompts, completions, rows)), np.zeros(len(units)),
                 np.zeros(len(units), np.int8), collections.deque(range(len(units))), len(units))
    if self.workers:
      self._run(call)
    else:
      for uid, (i, k) in enumerate(units):
        value, reason = _evaluate(self._fns[k], *call.items[i])
        call.settle(uid, value, reason, _OK if reason is None else _ERROR)
    values = call.values.reshape(batch, n_rewards)
    timeouts, errors = int(np.sum(call.status == _TIMEOUT)), int(np.sum(call.status == _ERROR))
    if timeouts or errors:
      logger.warning("reward pool: %d timeouts and %d errors in %d evaluations; first: %s", timeouts, errors,
                     len(units), call.first_failure)
    metrics = {f"reward/{name}": float(values[:, k].mean()) if batch else 0.0 for k, name in enumerate(self.names)}
    metrics.update({"reward/timeouts": float(timeouts), "reward/errors": float(errors),
                    "reward/seconds": time.perf_counter() - start})
    return (values @ self.weights).astype(np.float32), metrics

  @property
  def worker_pids(self) -> list[int]:
    """Process ids of the current workers (replacements included; empty inline or once closed)."""
    return [w.proc.pid for w in self._workers]

  def close(self) -> None:
    """Kills and reaps the workers (idempotent)."""
    self._finalizer()

  def __enter__(self) -> Self:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  # Worker management.

  def _replace(self, index: int) -> int | None:
    """Kills worker `index` and starts a fresh one in its place; returns the old one's exit code."""
    code = self._workers[index].kill()
    self._workers[index] = _Worker(self._payload)
    return code

  def _await_ready(self) -> None:
    for w in self._workers:
      if not w.conn.poll(max(0.0, w.born + self.start_timeout - time.monotonic())):
        raise RuntimeError(f"a reward worker did not start within {self.start_timeout:g} s.")
      try:
        self._on_start(w, w.conn.recv())
      except (EOFError, OSError):
        raise RuntimeError(f"a reward worker died while starting ({_exit_reason(w.kill())}).") from None

  def _on_start(self, w: _Worker, message: tuple[str, Any]) -> None:
    kind, info = message
    if kind == "error":
      raise RuntimeError(f"a reward worker failed to load the rewards:\n{info}")
    w.ready = True

  def _run(self, call: _Call) -> None:
    try:
      while call.remaining:
        for i, w in enumerate(self._workers):
          if w.ready and not w.pending and call.queue and not self._dispatch(w, call):
            self._replace(i)  # it died while idle, holding nothing of this call
        self._collect(call)
        self._enforce_deadlines(call)
    except BaseException:
      # An interrupt or a startup failure: workers still holding units would answer into the next call.
      for i, w in enumerate(self._workers):
        if w.pending:
          self._replace(i)
      raise

  def _dispatch(self, w: _Worker, call: _Call) -> bool:
    size = min(len(call.queue), math.ceil(len(call.queue) / (2 * len(self._workers))))
    uids = [call.queue.popleft() for _ in range(size)]
    chunk = [(uid, call.units[uid][1], *call.items[call.units[uid][0]]) for uid in uids]
    try:
      w.conn.send(chunk)
    except OSError:
      call.queue.extendleft(reversed(uids))
      return False
    w.pending.extend(uids)
    w.since = time.monotonic()
    return True

  def _collect(self, call: _Call) -> None:
    """Waits until a reply arrives or the nearest deadline passes, and records every reply received."""
    active = {w.conn: i for i, w in enumerate(self._workers) if w.pending or not w.ready}
    deadlines = [w.since + self.timeout if w.ready else w.born + self.start_timeout
                 for w in self._workers if w.pending or not w.ready]
    wait_s = max(0.0, min(deadlines) - time.monotonic())
    for conn in multiprocessing.connection.wait(list(active), timeout=wait_s):
      i = active[conn]
      w = self._workers[i]
      try:
        while conn.poll():
          message = conn.recv()
          if not w.ready:
            self._on_start(w, message)
            continue
          uid, value, reason = message
          if uid != w.pending[0]:
            raise RuntimeError(f"reward worker replied for unit {uid}, expected {w.pending[0]}.")
          w.pending.popleft()
          call.settle(uid, value, reason, _OK if reason is None else _ERROR)
          w.since = time.monotonic()
      except (EOFError, OSError):
        if not w.ready:
          raise RuntimeError(f"a reward worker died while starting ({_exit_reason(w.kill())}).") from None
        pending = w.pending
        call.fail_first(pending, _ERROR, _exit_reason(self._replace(i)))

  def _enforce_deadlines(self, call: _Call) -> None:
    now = time.monotonic()
    for i, w in enumerate(self._workers):
      if w.pending and now - w.since >= self.timeout:
        pending = w.pending
        self._replace(i)
        call.fail_first(pending, _TIMEOUT, f"timed out after {self.timeout:g} s")
      elif not w.ready and now - w.born >= self.start_timeout:
        raise RuntimeError(f"a reward worker did not start within {self.start_timeout:g} s.")


def _resolve(rewards: Mapping[str, Any]) -> tuple[list[str], list[Callable], list[float]]:
  """Names, callables and weights of a `rewards` mapping, checked."""
  if not isinstance(rewards, Mapping) or not rewards:
    raise ValueError(f"`rewards` must be a non-empty mapping name -> fn or (fn, weight), got {rewards!r}.")
  names, fns, weights = [], [], []
  for name, spec in rewards.items():
    if not isinstance(name, str) or not name or name in RESERVED_NAMES:
      raise ValueError(f"`rewards` names must be non-empty strings other than {RESERVED_NAMES}, got {name!r}.")
    fn, weight = spec if isinstance(spec, tuple) and len(spec) == 2 else (spec, 1.0)
    fn = verifiers.get(fn) if isinstance(fn, str) else fn
    if not callable(fn):
      raise TypeError(f"`rewards[{name!r}]` must be a callable, a registered name or (fn, weight), got {spec!r}.")
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
      raise TypeError(f"`rewards[{name!r}]` weight must be a number, got {weight!r}.")
    if not math.isfinite(weight):
      raise ValueError(f"`rewards[{name!r}]` weight must be finite, got {weight!r}.")
    names.append(name)
    fns.append(fn)
    weights.append(float(weight))
  return names, fns, weights


def _pickle_rewards(names: list[str], fns: list[Callable]) -> bytes:
  """The rewards as sent to every worker; unpicklable or `__main__` rewards fail here, with a hint."""
  for name, fn in zip(names, fns):
    if getattr(_unwrap(fn), "__module__", None) == "__main__":
      raise ValueError(f"`rewards[{name!r}]` is defined in __main__, which the workers do not import; move it to "
                       "a module (or use workers=0).")
  try:
    return pickle.dumps(fns)
  except Exception as e:
    raise ValueError(f"`rewards` must be picklable (module-level functions or functools.partial of them): "
                     f"{_describe(e)}") from e
