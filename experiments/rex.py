"""REX under a training budget: REX vs linear, cosine and step decay (Chen, Wolfe & Kyrillidis, MLSys 2022).

Chen, Wolfe & Kyrillidis, "REX: Revisiting Budgeted Training with an Improved Schedule" (arXiv 2107.04197).
The question: when training is cut to a small fraction of its usual length, does the REX profile
2z/(1+z) of the remaining fraction z, re-read every step, end with a lower loss than linear decay (and
cosine, and step decay), while matching them when the budget is large?

Problems (`rljax.theory.schedules.rex`): a 10-class Gaussian mixture (3 modes per class in R^20, fresh per
seed) learned by (a) multinomial logistic regression and (b) a 2-layer ReLU MLP, with minibatch SGD +
momentum 0.9 (optax), batch 32. Budgets: {1, 2, 5, 10, 25, 50, 100} % of `max_steps` (4000; the cpu preset
2000). Arms, all from `rljax.schedules.make` with end value 0 and no warm-up (the paper uses none for REX):

    rex      η_max · 2z/(1+z), z = 1 − t/T (the paper; a = ½)
    linear   η_max · z
    cosine   η_max · ½(1 + cos(π t/T))
    step     η_max, ×0.1 at 50 % and 75 % of T (the usual image-classification recipe)
    rex_a09  η_max · z/(0.1 + 0.9z) (the IvanVassi/REX_LR code; gpu preset only)

The learning rate is tuned per arm and budget on one shared grid (factor √2, 0.005-0.64; the cpu preset
0.01-0.64; the same grid for every arm and budget): for each (problem, budget, arm) the peak with the
lowest seed-mean validation loss is kept, and the test loss and accuracy at that peak are reported (the
best, per budget); the chosen peak is printed. Everything runs in one
compile per problem: budgets and learning-rate tables are traced, arms × peaks and seeds (16) are vmapped.

Claims, each a seed-mean over paired seeds (same data, initialisation and minibatches for every arm) of the
per-seed difference of final test loss, averaged over the smallest budgets (1, 2, 5 %) or the largest (50,
100 %), with its standard error: REX − linear ≤ 0 and REX − cosine ≤ 0 at low budgets; |REX − linear| ≤ 2
SE at high budgets; step − REX ≥ 3 SE at low budgets.

    python -m rljax.run --config configs/rex.py:cpu --workdir results/rex
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from experiments import cli
from rljax.theory.schedules import rex as K

# arm -> (schedule name in rljax.schedules.make, its options)
ARMS = {"rex": ("rex", {}), "linear": ("linear", {}), "cosine": ("cosine", {}), "step": ("step", {}),
        "rex_a09": ("rex", {"a": 0.9})}
REQUIRED = ("rex", "linear", "cosine", "step")  # the claims compare these
PROBLEMS = ("logreg", "mlp")


def validate(cfg) -> None:
  unknown = [a for a in cfg.arms if a not in ARMS]
  if unknown or not set(REQUIRED) <= set(cfg.arms) or len(set(cfg.arms)) != len(cfg.arms):
    raise ValueError(f"`arms` must be distinct names of {sorted(ARMS)} including {REQUIRED}, got {cfg.arms}.")
  if tuple(cfg.problems) != PROBLEMS:
    raise ValueError(f"`problems` must be {PROBLEMS} (the claims name them), got {tuple(cfg.problems)}.")
  b = np.asarray(cfg.budgets, float)
  if b.ndim != 1 or not (np.all(b > 0) and np.all(b <= 1) and np.all(np.diff(b) > 0)):
    raise ValueError(f"`budgets` must be increasing fractions in (0, 1], got {cfg.budgets}.")
  if not (isinstance(cfg.max_steps, int) and cfg.max_steps * b[0] >= 1):
    raise ValueError(f"`max_steps` must be an integer giving >= 1 step at the smallest budget, got {cfg.max_steps}.")
  if not (1 <= cfg.low_budgets and 1 <= cfg.high_budgets and cfg.low_budgets + cfg.high_budgets <= len(b)):
    raise ValueError(f"`low_budgets` + `high_budgets` must be >= 1 each and <= {len(b)} budgets together.")
  if not (len(cfg.peaks) >= 2 and all(p > 0 for p in cfg.peaks)):
    raise ValueError(f"`peaks` must hold at least two positive learning rates, got {cfg.peaks}.")
  if cfg.seeds < 2:
    raise ValueError(f"`seeds` must be >= 2 (standard errors), got {cfg.seeds}.")
  for name in PROBLEMS:
    K.check_problem(_problem(cfg, name))


def _problem(cfg, name: str) -> K.Problem:
  return K.Problem(**cfg.data.to_dict(), hidden=cfg.problems[name].hidden, batch_size=cfg.batch_size,
                   momentum=cfg.momentum)


def budget_steps(cfg) -> list[int]:
  return [int(round(b * cfg.max_steps)) for b in cfg.budgets]


def run(cfg) -> dict[str, Any]:
  validate(cfg)
  arms = [ARMS[a] for a in cfg.arms]
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)
  steps = budget_steps(cfg)
  out = {}
  for name in PROBLEMS:
    p = _problem(cfg, name)
    raw = [jax.device_get(K.sweep(keys, K.lr_tables(arms, cfg.peaks, t, pad_to=cfg.max_steps), t, p)) for t in steps]
    raw = {k: np.stack([r[k] for r in raw]) for k in raw[0]}  # [budget, seed, arm, peak]
    tuned = [K.tune(raw["val_loss"][i], raw["test_loss"][i], raw["test_acc"][i]) for i in range(len(steps))]
    out[name] = {"raw": raw, "best": np.stack([t[0] for t in tuned]),  # [budget, arm]
                 "test_loss": np.stack([t[1][0] for t in tuned]), "test_acc": np.stack([t[1][1] for t in tuned])}
  return {"problems": out, "arms": tuple(cfg.arms), "steps": np.asarray(steps), "budgets": np.asarray(cfg.budgets),
          "peaks": np.asarray(cfg.peaks), "low": int(cfg.low_budgets), "high": int(cfg.high_budgets)}


def difference(results: dict[str, Any], problem: str, a: str, b: str, budgets: slice) -> tuple[float, float]:
  """Seed mean and SE of arm a's minus arm b's tuned test loss, each seed's difference averaged over `budgets`."""
  loss = results["problems"][problem]["test_loss"][budgets]  # [budget, seed, arm]
  i, j = results["arms"].index(a), results["arms"].index(b)
  return K.paired_difference(loss[..., i].mean(0), loss[..., j].mean(0))


def _low(results) -> slice:
  return slice(0, results["low"])


def _high(results) -> slice:
  return slice(len(results["steps"]) - results["high"], None)


def tables(results: dict[str, Any]) -> list[cli.Table]:
  arms, peaks = results["arms"], results["peaks"]
  rows = []
  for name, pr in results["problems"].items():
    for i, (frac, t) in enumerate(zip(results["budgets"], results["steps"])):
      row = {"problem": name, "pct": 100 * frac, "steps": int(t)}
      for k, arm in enumerate(arms):
        row[arm] = float(pr["test_loss"][i, :, k].mean())
        row[f"{arm}_lr"] = float(peaks[pr["best"][i, k]])
        row[f"{arm}_acc"] = float(pr["test_acc"][i, :, k].mean())
      row["d_lin"], row["d_lin_se"] = difference(results, name, "rex", "linear", slice(i, i + 1))
      row["d_step"], row["d_step_se"] = difference(results, name, "step", "rex", slice(i, i + 1))
      rows.append(row)
  cols = {"problem": "{problem}", "budget": "{pct:g}% ({steps})"}
  cols.update({f"{a} loss (η)": (lambda r, a=a: f"{r[a]:.4f} ({r[a + '_lr']:.3g})") for a in arms})
  cols.update({"acc rex / linear": "{rex_acc:.3f} / {linear_acc:.3f}", "rex − linear": "{d_lin:+.4f} ± {d_lin_se:.4f}",
               "step − rex": "{d_step:+.4f} ± {d_step_se:.4f}"})
  budget_table = cli.Table(rows, cols, name="budgets", title="Final test loss, seed mean at the best peak η per arm "
                           "(paired differences ± standard error over seeds)")
  claim_rows = []
  for name in results["problems"]:
    for label, (a, b, which) in {"rex − linear, low": ("rex", "linear", _low(results)),
                                 "rex − cosine, low": ("rex", "cosine", _low(results)),
                                 "step − rex, low": ("step", "rex", _low(results)),
                                 "rex − linear, high": ("rex", "linear", _high(results))}.items():
      m, se = difference(results, name, a, b, which)
      claim_rows.append({"problem": name, "comparison": label, "mean": m, "se": se, "z": m / se if se > 0 else 0.0})
  claim_table = cli.Table(claim_rows, {"problem": "{problem}", "comparison": "{comparison}",
                                       "Δ test loss": "{mean:+.4f} ± {se:.4f}", "Δ / SE": "{z:+.1f}"},
                          name="claims", title="Budget-averaged differences (low: the smallest budgets, high: the "
                          "largest)")
  return [budget_table, claim_table]


def headline(results: dict[str, Any]) -> dict[str, float]:
  out = {}
  for name in results["problems"]:
    out[f"{name}_rex_minus_linear_low"] = difference(results, name, "rex", "linear", _low(results))[0]
    out[f"{name}_rex_minus_cosine_low"] = difference(results, name, "rex", "cosine", _low(results))[0]
    m, se = difference(results, name, "step", "rex", _low(results))
    out[f"{name}_step_minus_rex_low_z"] = m / se
    m, se = difference(results, name, "rex", "linear", _high(results))
    out[f"{name}_rex_linear_high_z"] = m / se
  return out


def plot(results: dict[str, Any], path: str | None = None):
  plt = cli.pyplot(path)
  from rljax import schedules

  fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
  pct = 100 * results["budgets"]
  for ax, (name, pr) in zip(axes, results["problems"].items()):
    base = pr["test_loss"][..., results["arms"].index("linear")]
    for k, arm in enumerate(results["arms"]):
      d = pr["test_loss"][..., k] - base  # [budget, seed]
      se = d.std(1, ddof=1) / np.sqrt(d.shape[1])
      ax.errorbar(pct, d.mean(1), yerr=se, marker="o", ms=3, capsize=2, label=arm)
    ax.axhline(0, color="k", lw=0.6)
    ax.set(xscale="log", xlabel="budget (% of the full run)", ylabel="test loss − linear's (tuned η each)",
           title=name)
    ax.legend(fontsize=8)
  t = np.arange(101)
  for arm in results["arms"]:
    sched, options = ARMS[arm]
    axes[2].plot(t / 100, schedules.make(sched, 1.0, 100, **options)(t), label=arm)
  axes[2].set(xlabel="t / T", ylabel="η / η_max", title="profiles")
  axes[2].legend(fontsize=8)
  return cli.finish_figure(fig, path, title="REX vs linear, cosine and step decay under a budget (mean ± SE)")
