"""KDRL: GRPO plus on-policy reverse-KL distillation to a teacher, on the toy suite (Xu et al. 2025).

Xu, Zhu, Deng, Li et al., "KDRL: Post-Training Reasoning LLMs via Unified Knowledge Distillation and
Reinforcement Learning" (arXiv 2506.02208). Question: from a weak student, does adding the KD term
β·k(logp − teacher_logp) on the student's own samples to GRPO (`rljax.losses.kdrl`) beat both GRPO
alone and pure on-policy distillation, with KD the fastest early?

Testbed (`rljax.training.testbed`): the student is a small decoder SFT'd briefly on the suite's traces
with a fraction of wrong answers; the teacher a larger decoder SFT'd longer on clean traces, frozen,
whose log-probs of the student's sampled tokens enter the loss (`Testbed.online(..., teacher=)`). From
the one student start, per seed, `rl.steps` online iterations of each arm:

  grpo         PPO-clip on group-normalised advantages, token-mean (= KDRL with β = 0), no teacher
  kd           the KD term alone (k2, c_PG = 0): pure on-policy RKL distillation
  kdrl_k2      GRPO + β·k2 (the unbiased reverse-KL gradient), constant β
  kdrl_k3      GRPO + β·k3 (forward-KL gradient direction)
  kdrl_mask    kdrl_k2 distilling only the incorrect responses (reward-guided mask "response")
  kdrl_anneal  kdrl_k2 with β annealed linearly β0 → β_min

Held-out accuracy (sampled mean@k, greedy) and response length every `rl.eval_every` steps.

    python -m rljax.run --config configs/kdrl.py:cpu --workdir results/kdrl

`train_arms`, `arm_rows` and `plot_curves` are shared with experiments/nft.py (any testbed comparison of
presets from one start).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import ml_collections
import numpy as np
from flax import nnx

from experiments import cli
from rljax import algorithms, checks
from rljax.losses import kdrl as kdrl_lib
from rljax.training import MetricsWriter
from rljax.training.testbed import Testbed, accuracy, mean_sd

CURVE_KEYS = ("reward_mean", "entropy", "response_length")
HEADLINE_ARMS = ("grpo", "kd", "kdrl_k2", "kdrl_k3", "kdrl_mask", "kdrl_anneal")  # what `headline` compares


# ------------------------------------------------------------------------------- shared testbed helpers


def train_arms(tb: Testbed, writer, start, arms: Mapping[str, tuple[Any, dict]], seeds,
               keys: tuple[str, ...] = CURVE_KEYS) -> dict[str, dict]:
  """Every arm × seed from the parameters `start`: `arms[name] = (preset, online kwargs)` (e.g. `teacher=`,
  `minibatches=`); one `OnlineRL` per arm, so the rollout and scoring compile once. Returns
  `{"<arm>/seed<s>": curves}`: `tb.curves` of the phase (held-out `accuracy`, `greedy` and `length` with
  the start's evaluation as step 0, and the logged metrics `keys`, empty where an arm logs none)."""
  k = int(tb.cfg.eval.k)
  at_start = tb.eval_fn(start)
  out = {}
  for name, (preset, kwargs) in arms.items():
    algo = tb.online(preset, **kwargs)
    for seed in seeds:
      tb.run_arm(writer, name, preset, seed=seed, params=start, algo=algo)
      phase = f"{name}/seed{seed}"
      c = tb.curves(phase, tuple(keys) + ("eval/acc/all/greedy", "eval/acc/all/length"))
      c["greedy"], c["length"] = c.pop("eval/acc/all/greedy"), c.pop("eval/acc/all/length")
      for key, m in (("accuracy", f"mean@{k}"), ("greedy", "greedy"), ("length", "length")):
        c[key] = [(0, float(at_start[f"eval/acc/all/{m}"]))] + c[key]
      out[phase] = c
  return out


def _early(curve, steps: int) -> float:
  """Mean held-out accuracy over the evaluations in the first third of the run (step 0 excluded)."""
  vals = [v for s, v in curve if 0 < s <= steps / 3]
  return float(np.mean(vals)) if vals else float("nan")


def arm_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per arm, mean and sd over seeds: final held-out mean@k and greedy accuracy, the early accuracy
  (`_early`), final response length, and the last logged rollout reward and entropy."""
  rows = []
  for name in results["arms"]:
    cs = [results["curves"][f"{name}/seed{s}"] for s in results["seeds"]]
    last = lambda key: [c[key][-1][1] if c[key] else float("nan") for c in cs]
    stats = {"final": last("accuracy"), "greedy": last("greedy"), "length": last("length"),
             "early": [_early(c["accuracy"], results["steps"]) for c in cs],
             "reward": last("reward_mean"), "entropy": last("entropy")}
    row = {"arm": name, "seeds": len(cs)}
    for key, vals in stats.items():
      row[key], row[f"{key}_sd"] = mean_sd(vals)
    rows.append(row)
  return rows


def plot_curves(results: dict[str, Any], path: str | None, *, title: str, reference: dict[str, float] | None = None):
  """Held-out mean@k, rollout reward, entropy and response length against RL step, per arm (median over
  seeds); `reference` draws horizontal lines on the accuracy panel (e.g. the teacher's accuracy)."""
  plt = cli.pyplot(path)
  panels = {"accuracy": f"held-out mean@{results['k']}", "reward_mean": "rollout reward",
            "entropy": "token entropy (−mean log π)", "length": "held-out response length"}
  fig, axes = plt.subplots(1, len(panels), figsize=(17, 3.8))
  for i, name in enumerate(results["arms"]):
    for ax, key in zip(axes, panels):
      series = [results["curves"][f"{name}/seed{s}"][key] for s in results["seeds"]]
      n = min(len(s) for s in series)
      if n == 0:
        continue
      x = [p[0] for p in series[0][:n]]
      y = np.array([[p[1] for p in s[:n]] for s in series])
      ax.plot(x, np.median(y, 0), color=f"C{i}", label=name)
  for j, (label, value) in enumerate((reference or {}).items()):
    axes[0].axhline(value, color="k", ls=(":", "--", "-.")[j % 3], lw=1, label=label)
  for ax, ylabel in zip(axes, panels.values()):
    ax.set(xlabel="RL step", ylabel=ylabel)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=7)
  return cli.finish_figure(fig, path, title=title)


# ------------------------------------------------------------------------------------------------ KDRL


def arm_preset(cfg, name: str) -> ml_collections.ConfigDict:
  """The algorithm preset of arm `name` (`cfg.arms[name]`), validated before any compute."""
  if name not in cfg.arms:
    raise KeyError(f"unknown arm {name!r}; configured: {', '.join(cfg.arms)}")
  arm, k = cfg.arms[name], cfg.kdrl
  if not arm.teacher:
    if not arm.reward:
      raise ValueError(f"arm {name!r} has neither the reward term nor the teacher term.")
    p = algorithms.get("grpo")  # KDRL's GRPO part: PPO-clip, token-mean, no reference KL
    p.agg = "token-mean"
    p.kl.update(coef=0.0, where="none")
    algorithms.resolve(p)
    return p
  checks.check_choice("kind", arm.kind, kdrl_lib.KL_KINDS)
  checks.check_choice("kd_mask", arm.kd_mask, kdrl_lib.KD_MASKS)
  for field in ("beta", "beta0", "beta_min", "kd_beta"):
    checks.check_nonnegative(f"kdrl.{field}", k[field])
  p = algorithms.get("kdrl")
  p.kl.kind = arm.kind
  p.loss_kwargs.kd_mask = arm.kd_mask
  p.loss_kwargs.pg_coef = 1.0 if arm.reward else 0.0
  if arm.anneal:
    if not 0 < k.anneal_frac <= 1:
      raise ValueError(f"`kdrl.anneal_frac` must be in (0, 1], got {k.anneal_frac}.")
    decay = (k.beta0 - k.beta_min) / (k.anneal_frac * int(cfg.rl.steps))
    p.kl.schedule = dict(name="kdrl_linear", beta0=float(k.beta0), beta_min=float(k.beta_min), decay=decay)
    kdrl_lib.kdrl_kl_schedule(0, **{f: v for f, v in p.kl.schedule.items() if f != "name"})  # β0 ≥ β_min
  else:
    p.kl.schedule = None
    p.kl.coef = float(k.beta if arm.reward else k.kd_beta)
  algorithms.resolve(p)
  return p


def run(cfg) -> dict[str, Any]:
  """Student and teacher SFT, then every arm × seed from the student; `curves` per phase, the student's
  and the teacher's held-out accuracy."""
  t0 = time.perf_counter()
  missing = [a for a in HEADLINE_ARMS if a not in cfg.arm_names]
  if missing:
    raise ValueError(f"`arm_names` must include {missing}: the headline compares them.")
  presets = {name: arm_preset(cfg, name) for name in cfg.arm_names}  # fail before any compute
  tb = Testbed(cfg)
  t_model = ml_collections.ConfigDict(cfg.teacher.model.to_dict())
  if t_model.d_model % t_model.n_heads or t_model.n_heads % t_model.n_kv_heads:
    raise ValueError(f"`teacher.model`: d_model % n_heads and n_heads % n_kv_heads must be 0, got {t_model}.")
  writer = MetricsWriter(cfg.out_dir)
  start = tb.sft(writer)
  t_params = tb.sft(writer, phase="teacher", model_cfg=t_model, steps=int(cfg.teacher.steps),
                    noise=float(cfg.teacher.noise), lr=float(cfg.teacher.lr))
  teacher = tb.model(0, t_model)
  nnx.update(teacher, t_params)
  k = int(cfg.eval.k)
  t_eval = tb.evaluator(tb.graphdef(t_model))(t_params)
  t_sft = time.perf_counter() - t0
  arms = {name: (p, {"teacher": teacher if cfg.arms[name].teacher else None}) for name, p in presets.items()}
  # kd_loss: the token mean of k(logp − teacher_logp) on the student's samples, how far it is from the teacher.
  curves = train_arms(tb, writer, start, arms, cfg.rl.seeds, keys=CURVE_KEYS + ("kd_loss",))
  writer.close()
  wall = time.perf_counter() - t0
  print(f"wall time {wall:.0f} s (SFT of student and teacher {t_sft:.0f} s)")
  return {"arms": list(cfg.arm_names), "seeds": list(cfg.rl.seeds), "steps": int(cfg.rl.steps), "k": k,
          "curves": curves, "teacher": accuracy(t_eval, k), "start": accuracy(tb.eval_fn(start), k),
          "wall_s": wall, "sft_s": t_sft}


def tables(results: dict[str, Any]) -> list[cli.Table]:
  k, t, s = results["k"], results["teacher"], results["start"]
  return [cli.Table(arm_rows(results), {
      "arm": "{arm}", "seeds": "{seeds}",
      f"held-out mean@{k}, final": "{final:.3f} ± {final_sd:.3f}",
      "early (first third)": "{early:.3f} ± {early_sd:.3f}",
      "greedy, final": "{greedy:.3f} ± {greedy_sd:.3f}",
      "length": "{length:.2f} ± {length_sd:.2f}",
      "rollout reward": "{reward:.3f}", "entropy": "{entropy:.3f}"},
      title=(f"held-out accuracy after {results['steps']} RL steps (mean ± sd over seeds); student start "
             f"mean@{k} {s['mean']:.3f} (greedy {s['greedy']:.3f}, length {s['length']:.2f}), teacher "
             f"{t['mean']:.3f} (greedy {t['greedy']:.3f}, length {t['length']:.2f})"))]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """Differences of held-out mean@k between arms (final, or early for KD's head start), and KD's final
  accuracy against the teacher's."""
  r = {row["arm"]: row for row in arm_rows(results)}
  final = lambda a: r[a]["final"]
  return {
      "kd_early_minus_grpo": r["kd"]["early"] - r["grpo"]["early"],
      "kd_final_minus_teacher": final("kd") - results["teacher"]["mean"],
      "kdrl_minus_grpo": final("kdrl_k2") - final("grpo"),
      "kdrl_minus_kd": final("kdrl_k2") - final("kd"),
      "k2_minus_k3": final("kdrl_k2") - final("kdrl_k3"),
      "mask_minus_k2": final("kdrl_mask") - final("kdrl_k2"),
      "anneal_minus_k2": final("kdrl_anneal") - final("kdrl_k2"),
  }


def plot(results: dict[str, Any], path: str | None = None):
  ref = {"teacher": results["teacher"]["mean"], "student start": results["start"]["mean"]}
  return plot_curves(results, path, reference=ref,
                     title="KDRL on the toy suite: GRPO, pure KD and KDRL variants from one student (seed median)")
