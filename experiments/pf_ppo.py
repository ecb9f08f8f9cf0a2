"""PF-PPO: PPO against a noisy learned reward model, training only on rank-filtered responses.

Zhang, Shen, Zhao, … & Bian, "Policy Filtration for RLHF to Mitigate Noise in Reward Models" (ICML 2025;
first "Policy Filtration in RLHF to Fine-Tune LLM for Code Generation", arXiv 2409.06957). A learned
reward model (RM) is reliable only in some reward ranges; PF-PPO samples N responses per prompt and runs
PPO on a rank-based subset of them (none, best-of-N, best + random, best + worst), choosing the filter by
the R² between reward and true score on the kept samples. The paper's finding: BR/BW have the higher R²
and train better than BoN and unfiltered PPO.

Question: on the toy suite (`rljax.training.testbed`), with an RM fitted to heteroscedastically noisy
scores, does the R² of each filter at init rank the filters as their PPO runs' final true scores do, and
do BR/BW beat no filter?

  1. SFT a small decoder on the suite's reference traces (noisy answers), as every RLVR experiment does.
  2. True score s ∈ [0, 1]: the fraction of the reference solution (trace steps and answer digits) that a
     response reproduces (`rljax.tasks.partial_credit`). Sample `rm.prompts` × `rm.samples` responses of
     the SFT policy and label them s + σ0·4s(1 − s)·ε (`rljax.training.reward_regression.noisy_labels`):
     reliable at the extremes, noisy in the middle.
  3. RM: a `RewardModel` on a copy of the SFT decoder fitted by least squares to those labels; for each σ0
     of the sweep another one.
  4. R² at init: N = rl.group_size responses of the SFT policy per held-out prompt, their RM rewards and
     true scores, the R² of s on r over each filter's kept samples (`rljax.losses.pf_ppo.choose_filter`).
  5. Arms: the `pf_ppo` preset (PPO, critic on the shared backbone, GAE, k1 reward KL with β = rl.kl_coef)
     with filter.strategy = each of `filters`, the RM of σ0 = rm.sigma0 as the reward, `rl.steps` iterations,
     `rl.seeds` seeds from the same start. Held-out true score, accuracy and RM reward every `eval_every`.

    python -m rljax.run --config configs/pf_ppo.py:cpu --workdir results/pf_ppo
"""

from __future__ import annotations

import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments import cli
from rljax import algorithms, models
from rljax.losses import pf_ppo
from rljax.tasks import toy_suite
from rljax.tasks.partial_credit import solution_credit
from rljax.training import reward_regression
from rljax.training.metrics import MetricsWriter
from rljax.training.testbed import Testbed, mean_sd

_LABEL_KEY, _DATA_KEY, _R2_KEY, _EVAL_KEY = 101, 102, 103, 104
_EVAL_METRICS = ("eval/true_score", "eval/accuracy", "eval/rm_reward")


def _check(cfg) -> None:
  """Bad config values fail here, before any computation."""
  if not cfg.filters or any(f not in pf_ppo.STRATEGIES for f in cfg.filters) or len(set(cfg.filters)) != len(
      cfg.filters):
    raise ValueError(f"`filters` must be distinct names from {pf_ppo.STRATEGIES}, got {tuple(cfg.filters)}.")
  for value in (cfg.rm.sigma0, *cfg.rm.sweep):
    if not value >= 0:
      raise ValueError(f"`rm.sigma0` and `rm.sweep` must be non-negative noise scales, got {value}.")
  for name in ("prompts", "samples", "steps", "batch"):
    if int(cfg.rm[name]) < 1:
      raise ValueError(f"`rm.{name}` must be positive, got {cfg.rm[name]}.")
  if cfg.rm.batch > cfg.rm.prompts * cfg.rm.samples:
    raise ValueError(f"`rm.batch` ({cfg.rm.batch}) exceeds the {cfg.rm.prompts * cfg.rm.samples} RM training rows.")
  if not cfg.rl.kl_coef >= 0:
    raise ValueError(f"`rl.kl_coef` must be non-negative, got {cfg.rl.kl_coef}.")
  if int(cfg.rl.group_size) < 2:
    raise ValueError(f"`rl.group_size` must be at least 2 for a rank filter, got {cfg.rl.group_size}.")


@functools.lru_cache(maxsize=8)
def _sampler(tb: Testbed, n: int):
  return tb.sampler(n)  # compiled once per testbed and n


def _scored(tb: Testbed, params, key, batch, n: int) -> dict[str, jax.Array]:
  """n sampled responses per problem: `tokens`, true score `s`, suite reward `correct` (all rows b·n + i)."""
  r = _sampler(tb, n)(params, key, batch)
  return {"tokens": r["tokens"], "s": solution_credit(r["batch"], r["completion"], r["completion_mask"]),
          "correct": r["reward"]}


def _reward_model(tb: Testbed, start, data, sigma0: float, seed: int, writer) -> tuple[Any, Any]:
  """`(graphdef, params)` of a RewardModel on a copy of the SFT decoder fitted to noisy scores of `data`."""
  backbone = tb.model(seed)
  nnx.update(backbone, start)
  rm = models.RewardModel(backbone, rngs=nnx.Rngs(seed + 1))
  c = tb.cfg.rm
  labels = reward_regression.noisy_labels(data["s"], jax.random.PRNGKey(_LABEL_KEY + seed), sigma0=sigma0)
  params = reward_regression.fit_reward_model(
      rm, data["tokens"], data["tokens"] != toy_suite.PAD_ID, labels, steps=int(c.steps), batch_size=int(c.batch),
      lr=float(c.lr), seed=seed, writer=writer, phase=f"rm/sigma{sigma0:g}")
  return nnx.graphdef(rm), params


def _true_evaluator(tb: Testbed, rm_fn, k: int):
  """`eval_fn(policy params) -> {true_score, accuracy, rm_reward}` on k samples per held-out problem (fixed key)."""
  batch, _ = tb.heldout()
  rm_fn = jax.jit(rm_fn)

  def eval_fn(params):
    d = _scored(tb, params, jax.random.PRNGKey(_EVAL_KEY), batch, k)
    return {"eval/true_score": float(jnp.mean(d["s"])), "eval/accuracy": float(jnp.mean(d["correct"])),
            "eval/rm_reward": float(jnp.mean(rm_fn(d["tokens"], None)))}

  return eval_fn


def _rl_arm(tb: Testbed, writer, strategy: str, seed: int, start, rm_fn, eval_fn) -> None:
  """PPO with critic (`pf_ppo` preset, `filter.strategy = strategy`) from the SFT parameters against the RM;
  phase `<strategy>/seed<seed>`, resumed from its checkpoint (a finished phase is read back, not rerun)."""
  preset = algorithms.get("pf_ppo")
  preset.filter.strategy = strategy
  preset.kl.coef = float(tb.cfg.rl.kl_coef)
  tb.run_arm(writer, strategy, preset, seed=seed, params=start, algo=tb.online(preset, reward_fn=rm_fn),
             eval_fn=eval_fn)


def run(cfg) -> dict[str, Any]:
  """SFT, the RM data and reward models, R² per filter at init, then PPO per filter × seed (see docstring)."""
  _check(cfg)
  tb = Testbed(cfg)
  writer = MetricsWriter(cfg.out_dir)
  clock, times = time.perf_counter(), {}

  def lap(name):
    nonlocal clock
    now = time.perf_counter()
    times[name] = times.get(name, 0.0) + now - clock
    clock = now

  start = tb.sft(writer)
  lap("sft")
  base = jax.random.PRNGKey(cfg.seed)
  problems = tb.problems(jax.random.fold_in(base, _DATA_KEY), int(cfg.rm.prompts))
  data = _scored(tb, start, jax.random.fold_in(base, _DATA_KEY), problems, int(cfg.rm.samples))
  n = int(cfg.rl.group_size)
  heldout = _scored(tb, start, jax.random.fold_in(base, _R2_KEY), tb.heldout()[0], n)
  s_init = heldout["s"].reshape(-1, n)
  lap("samples")

  r2, corr, rms = {}, {}, {}
  for sigma0 in sorted({float(cfg.rm.sigma0), *map(float, cfg.rm.sweep)}):
    graphdef, params = _reward_model(tb, start, data, sigma0, int(cfg.seed), writer)
    rms[sigma0] = reward_regression.reward_fn(graphdef, params, pad_token_id=toy_suite.PAD_ID)
    r = jax.jit(rms[sigma0])(heldout["tokens"], None)
    r2[sigma0] = {f: float(v) for f, v in pf_ppo.choose_filter(r.reshape(-1, n), s_init, jax.random.fold_in(
        base, _R2_KEY), tuple(cfg.filters)).items()}
    corr[sigma0] = float(np.corrcoef(np.asarray(r), np.asarray(heldout["s"]))[0, 1])
  lap("reward_models")

  rm_fn = rms[float(cfg.rm.sigma0)]
  eval_fn = _true_evaluator(tb, rm_fn, int(cfg.eval.k))
  init = eval_fn(start)
  arms = {}
  keys = ("reward_mean", "keep_frac", *_EVAL_METRICS)
  for strategy in cfg.filters:
    curves = {}
    for seed in cfg.rl.seeds:
      _rl_arm(tb, writer, strategy, int(seed), start, rm_fn, eval_fn)
      curves[str(seed)] = tb.curves(f"{strategy}/seed{seed}", keys)
      lap(f"rl/{strategy}")
    # The loop evaluates at the last step: the final values are the curves' last points.
    arms[strategy] = {"final": {k.removeprefix("eval/"): [c[k][-1][1] for c in curves.values()]
                                for k in _EVAL_METRICS}, "curves": curves}
  writer.close()
  return {"sigma0": float(cfg.rm.sigma0), "filters": list(cfg.filters),
          "r2": {f"{k:g}": v for k, v in r2.items()}, "rm_corr": {f"{k:g}": v for k, v in corr.items()},
          "init": {k.removeprefix("eval/"): v for k, v in init.items()},
          "s_init_full": float(jnp.mean(s_init == 1)), "arms": arms, "seconds": times}


def _rows(results) -> list[dict[str, Any]]:
  key = f"{results['sigma0']:g}"
  rows = []
  for f in results["filters"]:
    fin = results["arms"][f]["final"]
    (s, s_sd), (acc, acc_sd), (rm, rm_sd) = (mean_sd(fin[m]) for m in ("true_score", "accuracy", "rm_reward"))
    rows.append({"filter": f, "r2": results["r2"][key][f], "s": s, "s_sd": s_sd, "acc": acc, "acc_sd": acc_sd,
                 "rm": rm, "rm_sd": rm_sd, "ds": s - results["init"]["true_score"]})
  return rows


def tables(results) -> list[cli.Table]:
  init = results["init"]
  main = cli.Table(_rows(results), {
      "filter": "{filter}", "R² at init": "{r2:.3f}", "final true score s": "{s:.3f} ± {s_sd:.3f}",
      "Δs vs SFT": "{ds:+.3f}", "final accuracy": "{acc:.3f} ± {acc_sd:.3f}",
      "final RM reward": "{rm:.3f} ± {rm_sd:.3f}"},
      title=(f"PPO against the RM of σ0 = {results['sigma0']:g} (mean ± sd over seeds; SFT start: s = "
             f"{init['true_score']:.3f}, accuracy {init['accuracy']:.3f}, RM reward {init['rm_reward']:.3f}; "
             f"{results['s_init_full']:.0%} of its responses have s = 1)"))
  sweep = [{"sigma0": k, "corr": results["rm_corr"][k], **v} for k, v in results["r2"].items()]
  cols = {"σ0": "{sigma0}", "corr(r, s)": "{corr:.3f}"} | {f"R² {f}": f"{{{f}:.3f}}" for f in results["filters"]}
  return [main, cli.Table(sweep, cols, title="R² of s on r over each filter's kept samples at init, per RM noise σ0",
                          name="r2_sweep")]


def _spearman(x, y) -> float:
  """Spearman's ρ = 1 − 6Σd²/(n(n² − 1)) of the ranks (ties broken by order), exact in rationals: with four
  filters one adjacent swap is 0.8, not 0.7999…"""
  rx, ry = (np.argsort(np.argsort(np.asarray(v))) for v in (x, y))
  n = len(rx)
  return 1.0 - 6.0 * float(np.sum((rx - ry) ** 2)) / (n * (n * n - 1))


def headline(results) -> dict[str, float]:
  """Spearman ρ between the filters' R² at init and their final true score; the smaller of BR's and BW's
  R² minus the larger of none's and BoN's; the smaller of BR's and BW's final true score minus none's."""
  rows = {r["filter"]: r for r in _rows(results)}
  need = {"none", "bon", "best_random", "best_worst"}
  if not need <= set(rows):
    raise ValueError(f"headline needs the filters {sorted(need)}, got {sorted(rows)}.")
  ext = ("best_random", "best_worst")
  return {
      "r2_rank_agreement": _spearman([r["r2"] for r in rows.values()], [r["s"] for r in rows.values()]),
      "r2_extremes_gain": min(rows[f]["r2"] for f in ext) - max(rows[f]["r2"] for f in ("none", "bon")),
      "filter_true_score_gain": min(rows[f]["s"] for f in ext) - rows["none"]["s"],
  }


def plot(results, path: str | None = None):
  """True score and RM reward on held-out prompts against steps per filter (seed means); R² at init
  against final true score; R² per filter against σ0."""
  plt = cli.pyplot(path)
  fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
  init = results["init"]
  for f in results["filters"]:
    curves = results["arms"][f]["curves"]
    for ax, key, base in ((axes[0], "eval/true_score", init["true_score"]), (axes[1], "eval/rm_reward",
                                                                              init["rm_reward"])):
      runs = [np.asarray(c[key], float) for c in curves.values() if c[key]]
      if runs:
        steps = np.concatenate([[0], runs[0][:, 0]])
        ax.plot(steps, np.concatenate([[base], np.mean([r[:, 1] for r in runs], 0)]), "o-", ms=3, label=f)
  rows = _rows(results)
  for r in rows:
    axes[2].errorbar(r["r2"], r["s"], yerr=r["s_sd"], fmt="o", capsize=3, label=r["filter"])
  axes[2].axhline(init["true_score"], color="k", ls=":", lw=1, label="SFT")
  sig = sorted(results["r2"], key=float)
  for f in results["filters"]:
    axes[3].plot([float(s) for s in sig], [results["r2"][s][f] for s in sig], "o-", label=f)
  axes[0].set(xlabel="PPO step", ylabel="held-out true score s", title="true score")
  axes[1].set(xlabel="PPO step", ylabel="held-out RM reward", title="reward-model reward")
  axes[2].set(xlabel="R² at init (kept samples)", ylabel="final true score", title="R² vs final true score")
  axes[3].set(xlabel="σ0 (label noise at s = 1/2)", ylabel="R² at init", title="R² per filter vs RM noise")
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  return cli.finish_figure(fig, path, title=f"PF-PPO on the toy suite: PPO against a learned RM (σ0 = "
                                            f"{results['sigma0']:g}), by response filter")


__all__ = ["headline", "plot", "run", "tables"]
