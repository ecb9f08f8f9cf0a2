"""Rule-based host rewards for completions that answer inside `<answer>...</answer>`, and their registry.

A host reward is a picklable callable `fn(prompt: str, completion: str, **columns) -> float`, where
`columns` are the dataset row's other columns (e.g. `answer`). Each reward takes `**_` so that it
ignores the columns it does not read; bind its own settings with `functools.partial`:

    RewardPool({"correct": get("math_equivalence"),
                "format": (answer_format, 0.1),
                "short": (functools.partial(length_limit, max_chars=2000), 0.1)})

A reward may carry a `warmup` attribute, a no-argument callable that the pool's workers call once when
they start, outside the per-item timeout: one-time costs (imports, grammar builds) are then never
mistaken for a hang.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

OPEN, CLOSE = "<answer>", "</answer>"
# LaTeX delimiters that math-verify's LaTeX extraction looks for; a bare answer gets `$...$` around it.
_LATEX_DELIMITERS = ("$", "\\(", "\\[", "\\boxed")

_REGISTRY: dict[str, Callable[..., float]] = {}


def register(name: str) -> Callable[[Callable[..., float]], Callable[..., float]]:
  """Decorator adding a host reward under `name` (unique), so configs can pick it by name."""

  def wrap(fn: Callable[..., float]) -> Callable[..., float]:
    if name in _REGISTRY:
      raise ValueError(f"reward {name!r} is already registered (by {_REGISTRY[name].__module__}).")
    _REGISTRY[name] = fn
    return fn

  return wrap


def get(name: str) -> Callable[..., float]:
  """The host reward registered under `name`; a `KeyError` lists the known names otherwise."""
  try:
    return _REGISTRY[name]
  except KeyError:
    raise KeyError(f"unknown reward {name!r}; known: {', '.join(names())}") from None


def names() -> list[str]:
  """Sorted names of the registered host rewards."""
  return sorted(_REGISTRY)


def extract_answer(completion: str) -> str | None:
  """The stripped content of the last complete `<answer>...</answer>` block, or None when there is none.

  "Last block" is the text between the last `</answer>` and the `<answer>` closest before it, so a stray
  earlier `<answer>` never leaks into the answer. Two `rfind`s: linear time on any model output."""
  end = completion.rfind(CLOSE)
  if end < 0:
    return None
  start = completion.rfind(OPEN, 0, end)
  if start < 0:
    return None
  return completion[start + len(OPEN):end].strip()


@register("answer_format")
def answer_format(prompt: str, completion: str, **_) -> float:
  """1 if the completion holds exactly one `<answer>...</answer>` block with non-empty content, else 0.

  One opening and one closing tag, in that order: a completion that hedges with several answers (the
  last of which `extract_answer` would grade) gets no format reward."""
  del prompt
  if completion.count(OPEN) != 1 or completion.count(CLOSE) != 1:
    return 0.0
  return float(bool(extract_answer(completion)))


@register("length_limit")
def length_limit(prompt: str, completion: str, *, max_chars: int, **_) -> float:
  """1 if `len(completion) <= max_chars`, else 0 (bind `max_chars` with `functools.partial`)."""
  del prompt
  if not max_chars > 0:
    raise ValueError(f"`max_chars` must be > 0, got {max_chars}.")
  return float(len(completion) <= max_chars)


def _alarm_timeout(seconds: int) -> int | None:
  """`seconds` where math-verify's `signal.alarm` timeouts can run (the main thread), else None (off)."""
  return seconds if threading.current_thread() is threading.main_thread() else None


def _parse(text: str, timeout_seconds: int | None) -> list:
  """math-verify's parse of an answer string: bare answers are read as LaTeX math (`2x+1` is then
  2x + 1, not the first number 2), falling back to its plain-expression extraction."""
  from math_verify import parse

  wrapped = text if any(d in text for d in _LATEX_DELIMITERS) else f"${text}$"
  return parse(wrapped, parsing_timeout=timeout_seconds) or parse(text, parsing_timeout=timeout_seconds)


@register("math_equivalence")
def math_equivalence(prompt: str, completion: str, *, answer: str, timeout_seconds: int = 5, **_) -> float:
  """1 if the completion's `<answer>` is mathematically equal to the reference `answer`, else 0.

  Both are parsed with math-verify (`parse`) and compared by `verify(gold, prediction)`: numeric
  equality within its rounding (`\\frac{1}{2}` = 0.5), symbolic equality after simplification
  (2x+1 = 1+2x), sets, intervals and equations (`x = 3` matches 3). No answer block gives 0.

  math-verify bounds each parse and comparison with `signal.alarm(timeout_seconds)`, which only works in
  the main thread: pool workers call rewards there, so the bound holds (and a slow expression scores 0
  without costing the worker); off the main thread (an inline pool called from a thread) its timeouts
  are switched off and nothing bounds the call. `math_verify` is imported on first use: it pulls in
  sympy (~0.4 s), which a training process that only pickles this function by reference never needs."""
  del prompt
  if not timeout_seconds >= 1 or int(timeout_seconds) != timeout_seconds:
    raise ValueError(f"`timeout_seconds` must be a positive integer (signal.alarm), got {timeout_seconds}.")
  prediction = extract_answer(completion)
  if not prediction:
    return 0.0
  from math_verify import verify

  timeout = _alarm_timeout(int(timeout_seconds))
  gold, target = _parse(str(answer), timeout), _parse(prediction, timeout)
  if not gold or not target:
    return 0.0
  return float(verify(gold, target, timeout_seconds=timeout))


def _warm_math_verify() -> None:
  """Imports sympy and builds math-verify's LaTeX grammar (~1 s on first use)."""
  _parse("\\frac{1}{2}", _alarm_timeout(30))


math_equivalence.warmup = _warm_math_verify
