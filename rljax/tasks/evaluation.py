"""Evaluation of sampled completions: unbiased pass@k and accuracy tables per family and difficulty.

With n samples per prompt of which c are correct, the unbiased estimator of pass@k (Chen et al. 2021,
*Evaluating Large Language Models Trained on Code*) is

    pass@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{i = n-c+1}^{n} (1 - k / i),

the probability that k samples drawn without replacement from the n include a correct one. The product
form never forms the binomials, so it is exact-to-rounding for any n. pass@1 = c / n.

Correctness. Reasoning-gym scorers give partial credit (countdown 0.05 for a wrong expression over the
right numbers; exact-match families len(oracle)/len(answer) when the answer merely contains the oracle,
so "-44" for "44" scores 0.67). A threshold such as reward > 0.5 would count such answers, so a sample is
correct when its reward is >= CORRECT_AT = 1 - 1e-6, i.e. full credit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


CORRECT_AT = 1.0 - 1e-6


def pass_at_k(n: int, c: int, k: int) -> float:
  """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k) (module docstring)."""
  if not isinstance(n, (int, np.integer)) or n < 1:
    raise ValueError(f"`n` must be an int >= 1, got {n!r}.")
  if not isinstance(c, (int, np.integer)) or not 0 <= c <= n:
    raise ValueError(f"`c` must be an int in [0, n={n}], got {c!r}.")
  if not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
    raise ValueError(f"`k` must be an int in [1, n={n}], got {k!r}.")
  if n - c < k:  # every k-subset holds a correct sample
    return 1.0
  return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def accuracy_table(rows: Sequence[Mapping], rewards: np.ndarray, lengths: np.ndarray, *,
                   ks: Sequence[int] | None = None, correct_at: float = CORRECT_AT) -> dict[str, float]:
  """Accuracy of k samples per prompt, overall, per family and per (family, difficulty).

  rows: the R prompts' dataset rows (with `family` and `difficulty`); rewards f32[R, k]: the reward of
  each sample; lengths [R, k]: its length (tokens). Returns flat keys `acc/<scope>/<metric>` with scope
  `all`, `<family>` or `<family>/d<difficulty>` and metric
    mean@k   the fraction of correct samples (reward >= correct_at), averaged over the scope's samples
    pass@j   unbiased pass@j averaged over the scope's prompts, for j in `ks` (default (1, k))
    reward   the mean raw reward (partial credit included)
    length   the mean sample length
    n        the number of prompts.
  """
  rewards, lengths = np.asarray(rewards, np.float64), np.asarray(lengths, np.float64)
  # NumPy checks, not rljax.checks: reward workers import this package and should not import JAX.
  if rewards.ndim != 2:
    raise ValueError(f"`rewards` must have rank 2 ([R, k]), got shape {rewards.shape}.")
  if lengths.shape != rewards.shape:
    raise ValueError(f"`lengths` has shape {lengths.shape}, expected {rewards.shape} (the shape of `rewards`).")
  num_rows, k = rewards.shape
  if len(rows) != num_rows:
    raise ValueError(f"`rows` has {len(rows)} rows but `rewards` has {num_rows}.")
  if num_rows == 0 or k == 0:
    raise ValueError(f"`rewards` must have at least one row and one sample, got shape {rewards.shape}.")
  ks = sorted({1, k} if ks is None else set(ks))
  if not all(isinstance(j, (int, np.integer)) and 1 <= j <= k for j in ks):
    raise ValueError(f"`ks` must hold ints in [1, k={k}], got {ks}.")
  correct = rewards >= correct_at
  # pass@j depends on a row only through its count of correct samples c in 0..k: tabulate once.
  num_correct = correct.sum(axis=1)
  pass_table = {j: np.array([pass_at_k(k, c, j) for c in range(k + 1)]) for j in ks}

  scopes: dict[str, list[int]] = {"all": list(range(num_rows))}
  for i, row in enumerate(rows):
    family, difficulty = row["family"], int(row["difficulty"])
    scopes.setdefault(family, []).append(i)
    scopes.setdefault(f"{family}/d{difficulty}", []).append(i)

  table = {}
  for scope, index in scopes.items():
    prefix = f"acc/{scope}/"
    table[prefix + f"mean@{k}"] = float(correct[index].mean())
    for j in ks:
      table[prefix + f"pass@{j}"] = float(pass_table[j][num_correct[index]].mean())
    table[prefix + "reward"] = float(rewards[index].mean())
    table[prefix + "length"] = float(lengths[index].mean())
    table[prefix + "n"] = float(len(index))
  return table
