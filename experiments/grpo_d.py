"""GRPO-D's dynamic KL coefficient on a real decoder: task-A fit and task-B transfer against constant β.

Liu, Zhang, Liu, Zhang, Sun & Wang, "OThink-MR1: Stimulating multimodal generalized reasoning capabilities
via dynamic reinforcement learning" (arXiv 2503.16081). GRPO-D is GRPO whose KL coefficient grows during
training, β(s) = β_min + (β_max − β_min)·min(s/(w·S), 1) (`rljax.losses.grpo_d.grpo_d_kl_schedule`; the exact
shape is unpublished code, [M]): weak early (explore), strong late (exploit). The paper reports that it
beats constant-β GRPO on the trained task and transfers better to another task.

Question: on the toy suite (`rljax.training.testbed`), a small decoder SFT'd on two families with 30% wrong
answers (task A = `add`, task B = `modchain`) is trained by RL on task A only. Where do the arms land in
the (A accuracy, B accuracy) plane, and does the ramp's point dominate the constant-β one?

Arms (all the `grpo_d` preset, 3 seeds, the same start and prompts): β = 0; constant β; GRPO-D's ramp
0 → β over the first w·S steps; ramp-then-decay 0 → β → 0. Measured: held-out mean@k (and greedy)
accuracy on A and B, the KL to the start, and the logged β(s).

    python -m rljax.run --config configs/grpo_d.py:cpu --workdir results/grpo_d
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from experiments import cli
from rljax import algorithms
from rljax.losses.grpo_d import KINDS
from rljax.training.metrics import MetricsWriter
from rljax.training.testbed import Testbed, accuracy, mean_sd

CURVE_KEYS = ("kl_k1", "kl_coef", "reward_mean", "entropy")
REQUIRED_ARMS = ("beta0", "constant", "ramp")  # what the headline compares


def family_arms(cfg, family: str) -> tuple[int, ...]:
  """The arm ids of `family` (arm = family index · D + level) in the config's suite."""
  families, d = tuple(cfg.task.families), int(cfg.task.difficulties)
  if family not in families:
    raise ValueError(f"family {family!r} is not one of the config's task.families {families}.")
  i = families.index(family)
  return tuple(range(i * d, (i + 1) * d))


def check_steps(cfg) -> None:
  """The final step is evaluated by the loop, so the headline reads it from the logged curves."""
  steps, every = int(cfg.rl.steps), int(cfg.rl.eval_every)
  if steps < 1 or every < 1 or steps % every:
    raise ValueError(f"rl.steps ({steps}) must be a positive multiple of rl.eval_every ({every}).")


def arm_preset(cfg, name: str):
  """The `grpo_d` preset of arm `name`: its schedule kind and β_max, β_min = 0, S = rl.steps."""
  arm = cfg.arms[name]
  if arm.kind not in KINDS:
    raise ValueError(f"arm {name!r}: kind {arm.kind!r} is not one of {KINDS}.")
  p = algorithms.get("grpo_d")
  p.group_size = int(cfg.rl.group_size)
  p.kl.schedule.update(kind=arm.kind, beta_min=0.0, beta_max=float(arm.beta_max), warmup_frac=float(cfg.warmup_frac),
                       total_steps=int(cfg.rl.steps))
  p.inputs = algorithms.required_inputs(p)  # validates the edited preset
  return p


def final_accuracy(tb: Testbed, phase: str, families: Sequence[str]) -> dict[str, dict[str, float]]:
  """Per family, the accuracy of the last evaluation logged in `phase` (`testbed.accuracy`)."""
  last = tb.last_eval(phase)
  return {f: accuracy(last, int(tb.cfg.eval.k), f) for f in families}


def curves(tb: Testbed, phase: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
  """`{"step": [n], key: [n]}` of a phase's logged training metrics."""
  c = tb.curves(phase, keys)
  return {"step": np.asarray([s for s, _ in c[keys[0]]]), **{k: np.asarray([v for _, v in c[k]]) for k in keys}}


def run(cfg) -> dict[str, Any]:
  """`start`: the SFT model's accuracy per family; `arms[name]`: per seed, the final accuracy on A and B
  (`{"A": {"mean": [S], "greedy": [S], ...}, "B": ...}`), the logged curves (`[S, n]`) and the final KL."""
  check_steps(cfg)
  missing = set(REQUIRED_ARMS) - set(cfg.arm_names)
  if missing:
    raise ValueError(f"arm_names must include {REQUIRED_ARMS} (the headline compares them); missing {sorted(missing)}.")
  presets = {name: arm_preset(cfg, name) for name in cfg.arm_names}  # bad arms fail before compute
  fam = {"A": cfg.task_a, "B": cfg.task_b}
  if fam["A"] == fam["B"]:
    raise ValueError(f"task_a and task_b must differ, got {fam['A']!r} twice.")
  arms_a, arms_b = family_arms(cfg, fam["A"]), family_arms(cfg, fam["B"])
  tb = Testbed(cfg, arms=arms_a, eval_arms=arms_a + arms_b)
  writer = MetricsWriter(cfg.out_dir, tensorboard=False)
  start = tb.sft(writer, arms=arms_a + arms_b)
  k = int(cfg.eval.k)
  ev = tb.eval_fn(start)
  out = {"families": fam, "start": {t: accuracy(ev, k, f) for t, f in fam.items()}, "arms": {}}
  for name, preset in presets.items():
    algo = tb.online(preset)  # one compilation per arm, shared by its seeds
    per_seed = []
    for seed in cfg.rl.seeds:
      tb.run_arm(writer, name, preset, seed=int(seed), params=start, algo=algo)
      phase = f"{name}/seed{seed}"
      final = final_accuracy(tb, phase, fam.values())
      per_seed.append({"acc": {t: final[f] for t, f in fam.items()}, "curves": curves(tb, phase, CURVE_KEYS)})
    out["arms"][name] = {
        **{t: {m: np.asarray([s["acc"][t][m] for s in per_seed]) for m in per_seed[0]["acc"][t]} for t in fam},
        "curves": {key: np.stack([s["curves"][key] for s in per_seed]) for key in per_seed[0]["curves"]},
        "kind": str(cfg.arms[name].kind), "beta_max": float(cfg.arms[name].beta_max),
    }
  return out


def _final_kl(arm: dict) -> np.ndarray:
  """Per seed, the mean KL(π‖π_SFT) per response over the last quarter of the logged steps."""
  kl = arm["curves"]["kl_k1"]
  return kl[:, -max(1, kl.shape[1] // 4):].mean(1)


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  s = results["start"]
  rows = [{"arm": "SFT start", "a": s["A"]["mean"], "a_sd": 0.0, "b": s["B"]["mean"], "b_sd": 0.0,
           "a_greedy": s["A"]["greedy"], "b_greedy": s["B"]["greedy"], "kl": 0.0, "beta_mean": float("nan")}]
  for name, arm in results["arms"].items():
    (a, a_sd), (b, b_sd) = mean_sd(arm["A"]["mean"]), mean_sd(arm["B"]["mean"])
    rows.append({"arm": name, "a": a, "a_sd": a_sd, "b": b, "b_sd": b_sd,
                 "a_greedy": float(np.mean(arm["A"]["greedy"])), "b_greedy": float(np.mean(arm["B"]["greedy"])),
                 "kl": float(_final_kl(arm).mean()), "beta_mean": float(arm["curves"]["kl_coef"].mean())})
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  f = results["families"]
  return [cli.Table(summary_rows(results), {
      "arm": "{arm}", f"A = {f['A']} mean@k": "{a:.3f} ± {a_sd:.3f}", f"B = {f['B']} mean@k": "{b:.3f} ± {b_sd:.3f}",
      "A greedy": "{a_greedy:.3f}", "B greedy": "{b_greedy:.3f}", "KL to start (last ¼)": "{kl:.3f}",
      "mean β": "{beta_mean:.3f}"},
      title="Held-out accuracy after RL on task A (mean ± sd over seeds); B is never trained by RL")]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """Differences of seed-mean held-out mean@k: the constant β's under-fit of A (β = 0 minus constant), the
  ramp minus the constant β on A and on B, B's transfer under the ramp (ramp minus the SFT start), and how
  much further β = 0 drifts from the start than the constant β (KL ratio)."""
  arms = results["arms"]
  acc = lambda name, task: float(np.mean(arms[name][task]["mean"]))
  return {
      "constant_beta_underfit": acc("beta0", "A") - acc("constant", "A"),
      "ramp_a_gain": acc("ramp", "A") - acc("constant", "A"),
      "ramp_b_gain": acc("ramp", "B") - acc("constant", "B"),
      "cross_task_transfer": acc("ramp", "B") - results["start"]["B"]["mean"],
      "kl_drift_ratio": float(_final_kl(arms["beta0"]).mean() / max(_final_kl(arms["constant"]).mean(), 1e-9)),
  }


def plot(results: dict[str, Any], path: str | None = None):
  """The (A, B) plane (seeds and their mean per arm, the SFT start), the logged β(s), and the KL to the start."""
  plt = cli.pyplot(path)
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
  f, s = results["families"], results["start"]
  axes[0].plot(s["A"]["mean"], s["B"]["mean"], "k*", ms=12, label="SFT start")
  for name, arm in results["arms"].items():
    pts, = axes[0].plot(arm["A"]["mean"], arm["B"]["mean"], "o", alpha=0.35)
    axes[0].plot(np.mean(arm["A"]["mean"]), np.mean(arm["B"]["mean"]), "o", ms=10, color=pts.get_color(), label=name)
    c = arm["curves"]
    axes[1].plot(c["step"][0], c["kl_coef"].mean(0), color=pts.get_color(), label=name)
    cli.median_band(axes[2], c["step"][0], c["kl_k1"], label=name, color=pts.get_color())
  axes[0].set(xlabel=f"task A ({f['A']}) held-out mean@k", ylabel=f"task B ({f['B']}) held-out mean@k",
              title="A fit vs B transfer (up-right is better)")
  axes[1].set(xlabel="RL step", ylabel="β(s) logged by the loss", title="KL coefficient schedules")
  axes[2].set(xlabel="RL step", ylabel="KL(π‖π_SFT) per response (k1)", title="drift from the start")
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  return cli.finish_figure(fig, path, title="GRPO-D: RL on task A from a noisy SFT start (3 seeds)")
