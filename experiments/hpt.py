"""HPT: per-prompt switching between SFT on a demonstration and RL on rollouts, on a task subset that the
start cannot solve (Lv et al. 2025).

Lv, Zuo, Sun, Liu et al., "Towards a Unified View of Large Language Model Post-Training" (arXiv
2509.04419). Question: where the policy solves a prompt with probability ≈ 0, GRPO's group advantages are
all zero and it cannot learn; Hybrid Post-Training (`rljax.losses.hpt.hpt_loss`) trains such a prompt on
its demonstration instead (k_q ≤ γ correct rollouts of n → SFT, else RL). Does HPT learn the unsolvable
subset where GRPO does not, beat SFT, GRPO and SFT→GRPO in average pass@1, keep pass@k at least as high
as GRPO's, and switch to SFT less as its accuracy rises?

Testbed (`rljax.training.testbed`): a small decoder SFT'd on the suite's traces (a fraction with wrong
answers) of every arm except `hard_arms` (the reverse family: a task tag it never sees), which it then
solves with probability 0. From that start, per seed, `rl.steps` online iterations on prompts drawn uniformly over
all arms, each prompt with its reference completion as the demonstration. Every arm is the `hpt` preset
(the authors' code: Dr.GRPO advantages, no ratio clip, entropy bonus 0.001, sft_coef × token-mean NLL)
and differs only in the gate:

  sft_only  γ = n: every prompt trains on its demonstration (and no entropy bonus): SFT only
  grpo      γ = −1: every prompt trains on its rollouts: the preset's RL loss alone
  sft_grpo  sft_only for a fraction `hpt.sft_first` of the steps, then grpo (the same total steps)
  hpt       γ = `hpt.gamma` (0: SFT only where all n rollouts fail)

Held-out mean@k (pass@1), pass@k and greedy accuracy on the unseen subset, on the SFT'd arms and on all
arms every `rl.eval_every` steps, and HPT's fraction of prompts gated to SFT at every logged step.

    python -m rljax.run --config configs/hpt.py:cpu --workdir results/hpt
"""

from __future__ import annotations

import time
from typing import Any

import ml_collections
import numpy as np

from experiments import cli
from rljax import algorithms, checks
from rljax.training import MetricsWriter
from rljax.training.metrics import read_metrics
from rljax.training.testbed import Testbed, mean_sd

ARMS = ("sft_only", "grpo", "sft_grpo", "hpt")
SUBSETS = ("hard", "seen", "all")
METRICS = ("mean", "pass")  # mean@k (pass@1) and pass@k per subset; greedy accuracy on all arms


# ---------------------------------------------------------------------------------------------- setup


def gate_preset(cfg, gamma: float) -> ml_collections.ConfigDict:
  """The `hpt` preset with gate γ (RL iff more than γ of the n rollouts are correct), validated. With
  γ ≥ n every prompt is SFT'd: the entropy bonus, an RL regulariser, is then off."""
  p = algorithms.get("hpt")
  p.group_size = int(cfg.rl.group_size)
  p.loss_kwargs.gamma = float(gamma)
  p.loss_kwargs.sft_coef = float(cfg.hpt.sft_coef)
  if gamma >= p.group_size:
    p.entropy_coef = 0.0
  algorithms.resolve(p)
  return p


def stages(cfg) -> dict[str, list[tuple[str, float, int]]]:
  """Per arm, its training stages `(phase name, γ, steps)`, checked before any compute."""
  n, steps = int(cfg.rl.group_size), int(cfg.rl.steps)
  if tuple(cfg.arm_names) != ARMS:
    raise ValueError(f"`arm_names` must be {ARMS} (the headline compares them all), got {tuple(cfg.arm_names)}.")
  gamma = cfg.hpt.gamma
  if isinstance(gamma, bool) or not isinstance(gamma, int) or not 0 <= gamma < n:
    raise ValueError(f"`hpt.gamma` must be an int in [0, group_size = {n}), got {gamma!r} (γ ≥ n is SFT only).")
  checks.check_positive("hpt.sft_coef", cfg.hpt.sft_coef)
  first = round(float(cfg.hpt.sft_first) * steps)
  if not 0 < cfg.hpt.sft_first < 1 or not 0 < first < steps:
    raise ValueError(f"`hpt.sft_first` must leave both stages a step of the {steps}, got {cfg.hpt.sft_first}.")
  return {"sft_only": [("sft_only", n, steps)], "grpo": [("grpo", -1, steps)],
          "sft_grpo": [("sft_grpo_stage1", n, first), ("sft_grpo", -1, steps - first)],
          "hpt": [("hpt", gamma, steps)]}


def split_arms(cfg, num_arms: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """`(hard, seen)` arm ids: the configured `hard_arms` and the rest (the SFT start's arms)."""
  hard = tuple(int(a) for a in cfg.hard_arms)
  if not hard or len(set(hard)) != len(hard) or any(not 0 <= a < num_arms for a in hard) or len(hard) == num_arms:
    raise ValueError(f"`hard_arms` must be distinct arm ids in [0, {num_arms}) leaving some arm to SFT, got {hard}.")
  return hard, tuple(a for a in range(num_arms) if a not in hard)


def _arm_key(tb: Testbed, arm: int, metric: str) -> str:
  d = tb.suite.difficulties
  return f"eval/acc/{tb.suite.families[arm // d]}/d{arm % d}/{metric}"


def subset_scores(tb: Testbed, metrics: dict, subsets: dict[str, tuple[int, ...]]) -> dict[str, dict[str, float]]:
  """`{subset: {mean, pass}}`: the means over a subset's arms of their held-out mean@k and pass@k (every arm
  has `eval.per_arm` problems, so this is the mean over the subset's problems), and for "all" also the
  greedy accuracy (evaluated per family, not per arm)."""
  k = int(tb.cfg.eval.k)
  out = {s: {m: float(np.mean([metrics[_arm_key(tb, a, f"{m}@{k}")] for a in arms])) for m in METRICS}
         for s, arms in subsets.items()}
  out["all"]["greedy"] = float(metrics["eval/acc/all/greedy"])
  return out


# ------------------------------------------------------------------------------------------------ run


def run(cfg) -> dict[str, Any]:
  """SFT on the seen arms, then every arm × seed on all arms; final subset scores and curves."""
  t0 = time.perf_counter()
  plan = stages(cfg)  # fail before any compute
  presets = {gamma: gate_preset(cfg, gamma) for arm in plan.values() for _, gamma, _ in arm}
  tb = Testbed(cfg)
  hard, seen = split_arms(cfg, tb.suite.num_arms)
  subsets = {"hard": hard, "seen": seen, "all": hard + seen}
  k = int(cfg.eval.k)
  writer = MetricsWriter(cfg.out_dir)
  start = tb.sft(writer, arms=seen)
  at_start = subset_scores(tb, tb.eval_fn(start), subsets)
  t_sft = time.perf_counter() - t0
  algos = {gamma: tb.online(p) for gamma, p in presets.items()}  # one rollout/scoring compile per gate
  acc_keys = {s: [_arm_key(tb, a, f"mean@{k}") for a in arms] for s, arms in subsets.items()}
  final, curves = {}, {}
  for name, arm in plan.items():
    for seed in cfg.rl.seeds:
      params, offset, c = start, 0, {s: [(0, at_start[s]["mean"])] for s in SUBSETS}
      c |= {"frac_sft": [], "sft_nll": [], "reward": []}
      for phase, gamma, steps in arm:
        base = tb.prompt_fn(seed, demos=True)
        prompt_fn = (lambda pos, base=base, offset=offset: base(pos + offset))  # stage 2 draws new prompts
        state = tb.run_arm(writer, phase, presets[gamma], seed=seed, params=params, algo=algos[gamma], steps=steps,
                           prompt_fn=prompt_fn)
        params = state.params
        records = read_metrics(tb.workdir, phase=f"{phase}/seed{seed}")
        evals = [m for m in records if acc_keys["all"][0] in m]  # every arm is evaluated together
        for s, keys in acc_keys.items():
          c[s] += [(m["step"] + offset, float(np.mean([m[key] for key in keys]))) for m in evals]
        for key, field in (("frac_sft", "frac_sft_prompts"), ("sft_nll", "sft_loss"), ("reward", "reward_mean")):
          c[key] += [(m["step"] + offset, float(m[field])) for m in records if field in m]
        offset += steps
      final.setdefault(name, []).append(subset_scores(tb, evals[-1], subsets))  # the loop evaluates the last step
      curves[f"{name}/seed{seed}"] = c
  writer.close()
  wall = time.perf_counter() - t0
  print(f"wall time {wall:.0f} s (SFT {t_sft:.0f} s)")
  return {"arms": list(ARMS), "seeds": list(cfg.rl.seeds), "steps": int(cfg.rl.steps), "k": k,
          "hard_arms": list(hard), "seen_arms": list(seen), "gamma": int(cfg.hpt.gamma),
          "group_size": int(cfg.rl.group_size), "start": at_start, "final": final, "curves": curves,
          "wall_s": wall, "sft_s": t_sft}


# ------------------------------------------------------------------------------------------ summaries


def arm_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per arm (and the SFT start), mean and sd over seeds of every score: `<subset>_<metric>` and `..._sd`."""
  flat = lambda sc: {f"{s}_{m}": v for s, d in sc.items() for m, v in d.items()}
  start = flat(results["start"])
  rows = [{"arm": "SFT start", "seeds": 0, **start, **{f"{key}_sd": 0.0 for key in start}}]
  for name in results["arms"]:
    runs = [flat(r) for r in results["final"][name]]
    row = {"arm": name, "seeds": len(runs)}
    for key in runs[0]:
      row[key], row[f"{key}_sd"] = mean_sd([r[key] for r in runs])
    rows.append(row)
  return rows


def sft_fraction(results: dict[str, Any], name: str = "hpt") -> tuple[np.ndarray, np.ndarray]:
  """`(steps, fraction)`: the arm's fraction of prompts gated to SFT at each logged step, mean over seeds."""
  series = [results["curves"][f"{name}/seed{s}"]["frac_sft"] for s in results["seeds"]]
  n = min(len(s) for s in series)
  return np.array([p[0] for p in series[0][:n]]), np.array([[p[1] for p in s[:n]] for s in series]).mean(0)


def _window_means(results: dict[str, Any]) -> tuple[float, float]:
  """HPT's SFT fraction averaged over the first and the last fifth of its logged steps."""
  _, frac = sft_fraction(results)
  w = max(1, len(frac) // 5)
  return float(frac[:w].mean()), float(frac[-w:].mean())


def tables(results: dict[str, Any]) -> list[cli.Table]:
  k = results["k"]
  cols = {"arm": "{arm}", "seeds": "{seeds}"}
  for s, label in (("hard", "unseen subset"), ("seen", "SFT'd arms"), ("all", "all arms")):
    cols[f"{label} mean@{k}"] = f"{{{s}_mean:.3f}} ± {{{s}_mean_sd:.3f}}"
  cols[f"all pass@{k}"] = "{all_pass:.3f} ± {all_pass_sd:.3f}"
  cols[f"unseen pass@{k}"] = "{hard_pass:.3f} ± {hard_pass_sd:.3f}"
  cols["all greedy"] = "{all_greedy:.3f} ± {all_greedy_sd:.3f}"
  main = cli.Table(arm_rows(results), cols, title=(
      f"held-out accuracy after {results['steps']} steps (mean ± sd over seeds); unseen subset = arms "
      f"{results['hard_arms']}, never in the SFT start's data; HPT γ = {results['gamma']} of n = "
      f"{results['group_size']}"))
  steps, frac = sft_fraction(results)
  marks = sorted({int(i) for i in np.linspace(0, len(steps) - 1, 6)})
  hpt = [results["curves"][f"hpt/seed{s}"] for s in results["seeds"]]

  def at(key, step):  # seed mean of the last evaluation at or before `step`
    return float(np.mean([[v for t, v in c[key] if t <= step][-1] for c in hpt]))

  rows = [{"step": int(steps[i]), "frac": float(frac[i]), "hard": at("hard", steps[i]), "all": at("all", steps[i])}
          for i in marks]
  frac_table = cli.Table(rows, {"step": "{step}", "HPT prompts gated to SFT": "{frac:.3f}",
                                f"unseen mean@{k} (last eval)": "{hard:.3f}", f"all mean@{k} (last eval)": "{all:.3f}"},
                         title="HPT's fraction of SFT prompts over training (mean over seeds)", name="sft_fraction")
  return [main, frac_table]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """GRPO's unseen-subset mean@k; HPT minus GRPO there; HPT's all-arm mean@k minus the best baseline's;
  HPT's all-arm pass@k minus GRPO's; HPT's early minus late SFT fraction."""
  r = {row["arm"]: row for row in arm_rows(results)}
  early, late = _window_means(results)
  return {
      "grpo_hard_acc": r["grpo"]["hard_mean"],
      "hpt_minus_grpo_hard": r["hpt"]["hard_mean"] - r["grpo"]["hard_mean"],
      "hpt_minus_best_baseline": r["hpt"]["all_mean"] - max(r[a]["all_mean"] for a in ("sft_only", "grpo", "sft_grpo")),
      "hpt_minus_grpo_passk": r["hpt"]["all_pass"] - r["grpo"]["all_pass"],
      "sft_fraction_drop": early - late,
  }


def plot(results: dict[str, Any], path: str | None = None):
  """Held-out mean@k on all arms, the unseen subset and the SFT'd arms against step (median over seeds,
  quartile band), and HPT's fraction of SFT prompts."""
  plt = cli.pyplot(path)
  k = results["k"]
  panels = {"all": f"all arms mean@{k}", "hard": f"unseen subset mean@{k}", "seen": f"SFT'd arms mean@{k}"}
  fig, axes = plt.subplots(1, 4, figsize=(18, 3.9))
  for i, name in enumerate(results["arms"]):
    for ax, key in zip(axes, panels):
      series = [results["curves"][f"{name}/seed{s}"][key] for s in results["seeds"]]
      n = min(len(s) for s in series)
      cli.median_band(ax, [p[0] for p in series[0][:n]], [[p[1] for p in s[:n]] for s in series], label=name,
                      color=f"C{i}")
  for ax, ylabel in zip(axes, panels.values()):
    ax.set(xlabel="RL step", ylabel=ylabel)
  steps, frac = sft_fraction(results)
  axes[3].plot(steps, frac, color=f"C{results['arms'].index('hpt')}", label="hpt")
  axes[3].set(xlabel="RL step", ylabel="fraction of prompts gated to SFT", ylim=(0, 1))
  for ax in axes:
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=7)
  return cli.finish_figure(fig, path, title=(
      f"HPT vs SFT, GRPO and SFT→GRPO, with arms {results['hard_arms']} unseen by the SFT start (median over seeds)"))
