"""APO's two halves on a real decoder: STCR shortens wrong answers, DADS keeps entropy and held-out skill.

Hong, Guo, Xia, Wang, Zhang, Jin & Zhao, "APO: Enhancing Reasoning Ability of MLLMs via Asymmetric Policy
Optimization" (View-R1, arXiv 2506.21655; `rljax.losses.apo`). APO treats a group's correct and incorrect
responses asymmetrically:
  * STCR scales the (negative) advantage of a wrong response longer than the group's mean correct length,
        A_i ← (2 − b^{−Δ_i})·A_i,   Δ_i = L_i − L̄⁺_g > 0,
    so long wrong answers are pushed down harder ("overthinking" is curbed);
  * DADS weights the k3 KL term of a correct response by f(d_g) = 1 − exp(−e(1 − d_g)) (d_g the group's
    fraction wrong), so the correct answers of hard prompts are nearly free of the KL constraint.
The paper predicts: STCR shortens wrong answers at equal accuracy; DADS keeps the policy entropy and the
accuracy on general tasks higher than fixed-β GRPO; APO (both) improves reasoning.

Question: on the toy suite (`rljax.training.testbed`), a small decoder SFT'd on two families with 30% wrong
answers is trained by RL on one family (`task`); the other (`heldout_task`) stays in the SFT mixture but is
never rewarded (the "general" skill). STCR acts only on wrong answers longer than their group's right ones; the
run reports how many the start has (few on this testbed: see configs/apo.py) and the STCR scale they get.
Arms (the `apo` preset, 3 seeds, the same start and prompts): GRPO + KL (fixed β, both switches off); +DADS;
+STCR; APO (both). Measured on held-out prompts of `task` at temperature 1: accuracy, the mean length
of correct and of incorrect responses, the per-token entropy; and the held-out task's accuracy.

    python -m rljax.run --config configs/apo.py:cpu --workdir results/apo
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from experiments import cli
from experiments.grpo_d import check_steps, curves, family_arms, final_accuracy
from rljax import algorithms
from rljax.training.metrics import MetricsWriter
from rljax.training.testbed import Testbed, accuracy, mean_sd

REQUIRED_ARMS = ("grpo_kl", "dads", "stcr", "apo")
CURVE_KEYS = ("entropy", "kl_k1", "reward_mean", "response_length")


def arm_preset(cfg, name: str):
  """The `apo` preset with arm `name`'s switches, β = `cfg.beta` and the STCR base `cfg.stcr_base`."""
  arm = cfg.arms[name]
  for switch in ("stcr", "dads"):
    if not isinstance(arm.get(switch), bool):
      raise ValueError(f"arm {name!r}: `{switch}` must be a bool, got {arm.get(switch)!r}.")
  p = algorithms.get("apo")
  p.group_size = int(cfg.rl.group_size)
  p.kl.coef = float(cfg.beta)
  p.stcr.update(enabled=arm.stcr, base=float(cfg.stcr_base))
  p.dads.enabled = arm.dads
  p.inputs = algorithms.required_inputs(p)  # validates the edited preset
  if not float(cfg.stcr_base) > 1:
    raise ValueError(f"`stcr_base` must be > 1, got {cfg.stcr_base}.")
  return p


def length_stats(rewards: np.ndarray, lengths: np.ndarray) -> dict[str, float]:
  """Lengths of k samples for each of R prompts (`[R, k]`; correct = reward ≥ 1) split by correctness.

  `correct_len`, `wrong_len`: mean length of the correct and of the incorrect samples (NaN without any);
  `longer_wrong`: the fraction of incorrect samples, among prompts with a correct one, longer than the
  prompt's mean correct length (what STCR penalises); `excess`: their mean excess Δ (NaN without any);
  `accuracy`: the fraction of correct samples.
  """
  rewards, lengths = np.asarray(rewards, np.float64), np.asarray(lengths, np.float64)
  if rewards.ndim != 2 or lengths.shape != rewards.shape:
    raise ValueError(f"`rewards` and `lengths` must be [R, k] of one shape, got {rewards.shape} and {lengths.shape}.")
  correct = rewards >= 1.0
  n_correct = correct.sum(1, keepdims=True)
  mean_pos = np.where(n_correct > 0, (lengths * correct).sum(1, keepdims=True) / np.maximum(n_correct, 1), np.nan)
  judged = ~correct & (n_correct > 0)  # the wrong answers STCR can see
  delta = np.where(judged, lengths - mean_pos, 0.0)
  mean = lambda x, m: float(x[m].mean()) if m.any() else float("nan")
  return {"accuracy": float(correct.mean()), "correct_len": mean(lengths, correct),
          "wrong_len": mean(lengths, ~correct), "longer_wrong": mean((delta > 0).astype(float), judged),
          "excess": mean(delta, judged & (delta > 0))}


def make_sampler(tb: Testbed, arms: Sequence[int], k: int, *, seed: int = 0) -> Callable[[Any], dict[str, np.ndarray]]:
  """`fn(params) -> {"rewards", "lengths" [R, k], "logp_sum" [R, k]}`: k samples at temperature 1 for each
  held-out problem of `arms` (`Testbed.heldout`), scored by the suite; one compilation, fixed key."""
  batch, _ = tb.heldout(arms)
  draw, key, num = tb.sampler(k, temperature=1.0), jax.random.PRNGKey(seed), batch.ids.shape[0]

  def fn(params):
    r = jax.device_get(draw(params, key, batch))
    mask = np.asarray(r["completion_mask"])
    return {"rewards": np.asarray(r["reward"]).reshape(num, k), "lengths": mask.sum(-1).reshape(num, k),
            "logp_sum": np.where(mask, r["logprobs"], 0.0).sum(-1).reshape(num, k)}

  return fn


def sample_summary(s: dict[str, np.ndarray]) -> dict[str, float]:
  """`length_stats` plus the per-token entropy estimate −Σ log π / Σ length of the samples."""
  return {**length_stats(s["rewards"], s["lengths"]),
          "entropy": float(-s["logp_sum"].sum() / max(s["lengths"].sum(), 1))}


def run(cfg) -> dict[str, Any]:
  """`start`: the SFT model's sample summary on `task` and held-out accuracies; `arms[name]`: per seed
  (arrays `[S]`) the final sample summary on `task`, the held-out accuracy of both families, the curves."""
  check_steps(cfg)
  missing = set(REQUIRED_ARMS) - set(cfg.arm_names)
  if missing:
    raise ValueError(f"arm_names must include {REQUIRED_ARMS} (the headline compares them); missing {sorted(missing)}.")
  presets = {name: arm_preset(cfg, name) for name in cfg.arm_names}  # bad arms fail before compute
  fam = {"task": cfg.task_rl, "heldout": cfg.heldout_task}
  if fam["task"] == fam["heldout"]:
    raise ValueError(f"task_rl and heldout_task must differ, got {fam['task']!r} twice.")
  if isinstance(cfg.heldout_sft_steps, bool) or not isinstance(cfg.heldout_sft_steps, int) or cfg.heldout_sft_steps < 0:
    raise ValueError(f"`heldout_sft_steps` must be a non-negative int, got {cfg.heldout_sft_steps!r}.")
  arms_t, arms_h = family_arms(cfg, fam["task"]), family_arms(cfg, fam["heldout"])
  for f in fam.values():
    w = cfg.sft_weights.get(f)
    if isinstance(w, bool) or not isinstance(w, int) or w < 1:
      raise ValueError(f"sft_weights[{f!r}] must be a positive int (draws per arm in the SFT mixture), got {w!r}.")
  tb = Testbed(cfg, arms=arms_t, eval_arms=arms_t + arms_h)
  writer = MetricsWriter(cfg.out_dir, tensorboard=False)
  # The held-out skill first (when `heldout_sft_steps` > 0), then the short mixed SFT that leaves `task` overrunning.
  general = tb.sft(writer, phase="sft_heldout", arms=arms_h, steps=int(cfg.heldout_sft_steps)) \
      if int(cfg.heldout_sft_steps) > 0 else None
  weights = cfg.sft_weights
  start = tb.sft(writer, arms=arms_t * int(weights[fam["task"]]) + arms_h * int(weights[fam["heldout"]]), init=general)
  k = int(cfg.eval.k)
  sample = make_sampler(tb, arms_t, int(cfg.length_samples))
  ev = tb.eval_fn(start)
  out = {"families": fam, "start": {**sample_summary(sample(start)),
                                    **{f"acc_{t}": accuracy(ev, k, f)["mean"] for t, f in fam.items()}}, "arms": {}}
  for name, preset in presets.items():
    algo = tb.online(preset)  # one compilation per arm, shared by its seeds
    per_seed = []
    for seed in cfg.rl.seeds:
      state = tb.run_arm(writer, name, preset, seed=int(seed), params=start, algo=algo)
      phase = f"{name}/seed{seed}"
      final = final_accuracy(tb, phase, fam.values())
      per_seed.append({**sample_summary(sample(state.params)),
                       **{f"acc_{t}": final[f]["mean"] for t, f in fam.items()},
                       **{f"greedy_{t}": final[f]["greedy"] for t, f in fam.items()},
                       "curves": curves(tb, phase, CURVE_KEYS)})
    arm = {key: np.asarray([s[key] for s in per_seed]) for key in per_seed[0] if key != "curves"}
    arm["curves"] = {key: np.stack([s["curves"][key] for s in per_seed]) for key in per_seed[0]["curves"]}
    out["arms"][name] = arm
  # The STCR factor a wrong answer of the start's mean excess length gets (1 when none is longer).
  excess = np.nan_to_num(out["start"]["excess"])
  out["start"]["stcr_scale"] = float(2 - float(cfg.stcr_base) ** -excess)
  return out


def _nanmean(x) -> float:
  """The mean of the finite values (NaN when there are none, without numpy's warning)."""
  x = np.asarray(x, np.float64)
  return float(x[np.isfinite(x)].mean()) if np.isfinite(x).any() else float("nan")


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  s = results["start"]
  zero = {f"{key}_sd": 0.0 for key in ("acc_task", "acc_heldout", "correct_len", "wrong_len", "entropy")}
  rows = [{"arm": "SFT start", **{key: s[key] for key in ("acc_task", "acc_heldout", "correct_len", "wrong_len",
                                                          "longer_wrong", "entropy")}, **zero, "kl": 0.0}]
  for name, arm in results["arms"].items():
    row = {"arm": name, "longer_wrong": _nanmean(arm["longer_wrong"]),
           "kl": float(arm["curves"]["kl_k1"][:, -max(1, arm["curves"]["kl_k1"].shape[1] // 4):].mean())}
    for key in ("acc_task", "acc_heldout", "correct_len", "wrong_len", "entropy"):
      row[key], row[f"{key}_sd"] = mean_sd(arm[key])
    rows.append(row)
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  f = results["families"]
  return [cli.Table(summary_rows(results), {
      "arm": "{arm}", f"{f['task']} mean@k": "{acc_task:.3f} ± {acc_task_sd:.3f}",
      f"held-out task {f['heldout']} mean@k": "{acc_heldout:.3f} ± {acc_heldout_sd:.3f}",
      "length, correct": "{correct_len:.2f} ± {correct_len_sd:.2f}",
      "length, incorrect": "{wrong_len:.2f} ± {wrong_len_sd:.2f}",
      "wrong & longer than correct": "{longer_wrong:.2f}", "entropy (nats/token)": "{entropy:.3f} ± {entropy_sd:.3f}",
      "KL to start": "{kl:.3f}"},
      title=(f"RL on {f['task']} (mean ± sd over seeds; lengths and entropy of samples at T = 1 on held-out "
             f"{f['task']} prompts)"))]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """Seed means, each arm against GRPO + KL: STCR's relative change of the incorrect-response length and its
  accuracy change; DADS's entropy ratio and held-out-task accuracy change; APO's accuracy change."""
  arms = results["arms"]
  m = lambda name, key: float(np.mean(arms[name][key]))
  base = "grpo_kl"
  return {
      "stcr_wrong_length_change": m("stcr", "wrong_len") / m(base, "wrong_len") - 1,
      "stcr_accuracy_change": m("stcr", "acc_task") - m(base, "acc_task"),
      "dads_entropy_ratio": m("dads", "entropy") / m(base, "entropy"),
      "dads_heldout_gain": m("dads", "acc_heldout") - m(base, "acc_heldout"),
      "apo_accuracy_gain": m("apo", "acc_task") - m(base, "acc_task"),
  }


def plot(results: dict[str, Any], path: str | None = None):
  """Per arm (seeds as dots, mean as a bar): lengths of correct and incorrect responses; entropy curves;
  task accuracy against held-out-task accuracy."""
  plt = cli.pyplot(path)
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
  f, s = results["families"], results["start"]
  names = list(results["arms"])
  x = np.arange(len(names))
  for j, (key, label) in enumerate((("correct_len", "correct"), ("wrong_len", "incorrect"))):
    vals = [results["arms"][n][key] for n in names]
    axes[0].bar(x + (j - 0.5) * 0.38, [_nanmean(v) for v in vals], 0.38, label=label, alpha=0.7)
    for i, v in enumerate(vals):
      axes[0].plot(np.full(len(v), x[i] + (j - 0.5) * 0.38), v, "k.", ms=4)
    axes[0].axhline(s[key], ls="--", lw=1, color=f"C{j}", label=f"{label}, SFT start")
  axes[0].set_xticks(x, names)
  axes[0].set(ylabel="response length (tokens)", title=f"held-out {f['task']}: length by correctness")
  axes[2].plot(s["acc_task"], s["acc_heldout"], "k*", ms=12, label="SFT start")
  for i, name in enumerate(names):
    arm = results["arms"][name]
    c = arm["curves"]
    cli.median_band(axes[1], c["step"][0], c["entropy"], label=name, color=f"C{i}")
    axes[2].plot(arm["acc_task"], arm["acc_heldout"], "o", color=f"C{i}", alpha=0.35)
    axes[2].plot(np.mean(arm["acc_task"]), np.mean(arm["acc_heldout"]), "o", ms=10, color=f"C{i}", label=name)
  axes[1].set(xlabel="RL step", ylabel="rollout entropy (nats/token)", title="policy entropy")
  axes[2].set(xlabel=f"{f['task']} held-out mean@k", ylabel=f"held-out task {f['heldout']} mean@k",
              title="trained task vs held-out task")
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  return cli.finish_figure(fig, path, title="APO: STCR and DADS against GRPO + KL (3 seeds)")
