"""Every RLVR advantage estimator and aggregation mode from one SFT start, and GRPO's length bias.

Srivastava & Aggarwal, "A Technical Survey of Reinforcement Learning Techniques for Large Language
Models" (2025; arXiv 2507.04136), the anchor of the shared RLVR kernels (spec §1). The survey predicts
no numbers; its reproduction target (spec §1.4) is that every estimator learns, that they differ little
(DAPO ≥ GRPO by a few points), and that GRPO's per-response normalisation 1/|o_i| lets wrong answers
grow longer than under Dr. GRPO's constant normaliser (Liu et al. 2025, arXiv 2503.20783).

Question: from the same SFT start on the toy suite (add + modchain; `rljax.training.testbed`), does every
estimator raise held-out accuracy, how far apart do they end, and does the aggregation mode change the
length of the incorrect responses?

Arms (each × `rl.seeds`, `rl.steps` online steps, the testbed's prompts/group size/learning rate):
  * the algorithm presets grpo, dr_grpo, dapo, gspo, rloo, reinforce_pp, reinforce_pp_baseline, remax and
    ppo (GAE with a critic on the shared backbone), each with its own loss, clip, KL and aggregation;
  * `agg-<mode>`: the grpo preset (group-std advantages, PPO-clip) with its KL term off and each of the four
    aggregation modes token-mean, seq-mean-token-mean, seq-mean-token-sum, seq-mean-token-sum-norm.
Rewards go through `rljax.rewards.LengthSplit`, so every training batch logs the mean length of its correct
and incorrect responses. Held-out accuracy (mean@k at temperature 1, pass@k, greedy) is measured at the SFT
start and after the last step.

Length toy (`rljax.theory.pg.length_bandit`): answer bandit whose responses continue until <eos> with a
stop logit per (prompt, answer), trained with GRPO advantages and PPO-clip under GRPO's, Dr. GRPO's and
DAPO's aggregation; the exact E[L | wrong answer] over training shows the bias without sampling noise in
the measurement.

    python -m rljax.run --config configs/rl_survey.py:cpu --workdir results/rl_survey
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import ml_collections
import numpy as np
import optax

from experiments import cli
from rljax import algorithms, losses
from rljax.losses import aggregation
from rljax.rewards.length_split import LengthSplit
from rljax.theory.pg import length_bandit as lb
from rljax.training.metrics import MetricsWriter, read_metrics
from rljax.training.testbed import Testbed, accuracy, mean_sd

TOY_ARMS = {  # toy arm -> (grpo_advantages scale, aggregation mode)
    "grpo": ("group", "seq-mean-token-mean"),
    "dr_grpo": ("none", "seq-mean-token-sum-norm"),
    "token-mean": ("group", "token-mean"),
}
CURVE_KEYS = ("reward_mean", "response_length", "entropy", "length_correct", "length_incorrect", "n_correct",
              "n_incorrect")


def agg_arm(mode: str) -> str:
  return f"agg-{mode}"


def arm_configs(cfg) -> dict[str, ml_collections.ConfigDict]:
  """The preset of every arm, validated (`algorithms.resolve`) before any computation."""
  for name in ("grpo", "dr_grpo", "dapo"):
    if name not in cfg.estimators:
      raise ValueError(f"`estimators` must include {name!r} (the claims compare it), got {tuple(cfg.estimators)}.")
  if not {"seq-mean-token-mean", "seq-mean-token-sum-norm"} <= set(cfg.agg_modes):
    raise ValueError(f"`agg_modes` must include seq-mean-token-mean and seq-mean-token-sum-norm, got "
                     f"{tuple(cfg.agg_modes)}.")
  if not 0 < cfg.length_window <= 0.5:
    raise ValueError(f"`length_window` must be in (0, 0.5], got {cfg.length_window}.")
  if not 0 < cfg.dapo_cache_fraction < 1:
    raise ValueError(f"`dapo_cache_fraction` must be in (0, 1), got {cfg.dapo_cache_fraction}.")
  if int(cfg.rl.steps) < 2:
    raise ValueError(f"`rl.steps` must be >= 2 (a first and a last window), got {cfg.rl.steps}.")
  unknown = set(cfg.toy.arms) - set(TOY_ARMS)
  if unknown or not {"grpo", "dr_grpo"} <= set(cfg.toy.arms):
    raise ValueError(f"`toy.arms` must include grpo and dr_grpo, from {sorted(TOY_ARMS)}; got {tuple(cfg.toy.arms)}.")
  width = Testbed(cfg).max_new_tokens
  arms = {}
  for name in cfg.estimators:
    preset = algorithms.get(name)  # KeyError on an unknown name
    if name == "dapo" or preset.overlong.enabled:
      preset.overlong.update(max_len=width, cache_len=max(1, round(cfg.dapo_cache_fraction * width)))
    if preset.dynamic_sampling.enabled:
      preset.dynamic_sampling.max_num_gen_batches = int(cfg.dapo_max_gen_batches)
    arms[name] = preset
  for mode in cfg.agg_modes:
    if mode not in aggregation.MODES:
      raise ValueError(f"`agg_modes`: unknown mode {mode!r}; known: {', '.join(aggregation.MODES)}.")
    preset = algorithms.get(cfg.agg_estimator)
    preset.agg = mode
    preset.kl.update(coef=0.0, where="none")
    arms[agg_arm(mode)] = preset
  for preset in arms.values():
    preset.group_size = int(cfg.rl.group_size)
    algorithms.resolve(preset)
  return arms


def run_toy(cfg) -> dict[str, dict[str, np.ndarray]]:
  """Per toy arm, the `length_bandit.Trace` arrays `[seeds, steps]`."""
  t = cfg.toy
  k_env, k_train = jax.random.split(jax.random.PRNGKey(cfg.seed + 1))
  env = lb.make_length_bandit(k_env, n_prompts=t.n_prompts, n_answers=t.n_answers, width=t.width,
                              logit_scale=t.logit_scale, stop_prob=t.stop_prob)
  keys = jax.random.split(k_train, t.seeds)  # the same seeds for every arm
  out = {}
  for name in t.arms:
    scale, mode = TOY_ARMS[name]
    train = lb.make_train(env, steps=t.steps, group_size=t.group_size, optimizer=optax.adam(t.lr),
                          advantage_fn=functools.partial(losses.grpo_advantages, group_size=t.group_size, scale=scale),
                          loss_fn=functools.partial(losses.ppo_clip_loss, agg=mode))
    _, trace = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, lb.init_params(env))
    out[name] = {k: np.asarray(v) for k, v in trace._asdict().items()}
  return out


def run(cfg) -> dict[str, Any]:
  """SFT once, then every arm × seed from it. `arms[name]["seeds"][i]` holds the final held-out accuracy
  (`accuracy`) and the per-step curves (`CURVE_KEYS`, each `[(step, value), ...]`); `sft` the start's accuracy."""
  arms = arm_configs(cfg)
  k = int(cfg.eval.k)
  tb = Testbed(cfg)
  writer = MetricsWriter(cfg.out_dir, tensorboard=False)
  start = tb.sft(writer)
  sft_acc = accuracy(tb.eval_fn(start), k)
  reward = LengthSplit(tb.suite.reward_fn)
  results = {"sft": sft_acc, "arms": {}, "steps": int(cfg.rl.steps), "k": k, "length_window": float(cfg.length_window),
             "estimators": list(cfg.estimators), "agg_modes": list(cfg.agg_modes), "width": tb.max_new_tokens}
  for name, preset in arms.items():
    algo = tb.online(preset, reward_fn=reward)  # compiled once per arm, shared by its seeds
    for seed in cfg.rl.seeds:
      tb.run_arm(writer, name, preset, seed=int(seed), params=start, algo=algo)
  writer.close()
  rows = read_metrics(cfg.out_dir)
  for name in arms:
    per_seed = []
    for seed in cfg.rl.seeds:
      phase = [r for r in rows if r.get("phase") == f"{name}/seed{seed}"]
      evals = [r for r in phase if f"eval/acc/all/mean@{k}" in r]
      if not evals:
        raise RuntimeError(f"{name}/seed{seed}: no held-out evaluation logged in {cfg.out_dir}.")
      curves = {key: [(r["step"], r[key]) for r in phase if key in r] for key in CURVE_KEYS}
      per_seed.append({"accuracy": accuracy(evals[-1], k), "curves": curves})
    results["arms"][name] = {"seeds": per_seed}
  results["toy"] = run_toy(cfg)
  return results


# ------------------------------------------------------------------------------------------ analysis


def _window_mean(curves: dict, key: str, count: str, lo: int, hi: int) -> float:
  """Count-weighted mean of `curves[key]` over steps lo..hi (inclusive); NaN if no response counted."""
  vals = dict(curves[key])
  num = den = 0.0
  for step, n in curves[count]:
    if lo <= step <= hi:
      num += vals[step] * n
      den += n
  return num / den if den > 0 else float("nan")


def length_change(results: dict, name: str, which: str = "incorrect") -> tuple[float, float, float]:
  """`(start, end, growth)`: the mean length of the `which` training responses over the first and the last
  `length_window` of the steps (count-weighted, then averaged over seeds), and end − start."""
  steps = results["steps"]
  w = max(1, int(round(results["length_window"] * steps)))
  starts, ends = [], []
  for s in results["arms"][name]["seeds"]:
    c = s["curves"]
    starts.append(_window_mean(c, f"length_{which}", f"n_{which}", 1, w))
    ends.append(_window_mean(c, f"length_{which}", f"n_{which}", steps - w + 1, steps))
  starts, ends = np.asarray(starts), np.asarray(ends)
  both = np.isfinite(starts) & np.isfinite(ends)  # seeds with such responses in both windows
  if not both.any():
    return float("nan"), float("nan"), float("nan")
  return float(starts[both].mean()), float(ends[both].mean()), float((ends[both] - starts[both]).mean())


def summary_rows(results: dict) -> list[dict[str, Any]]:
  """One row per arm (the SFT start first): held-out accuracy over seeds and the training lengths."""
  sft = results["sft"]
  rows = [{"arm": "SFT start", "mean": sft["mean"], "sd": 0.0, "gain": 0.0, "greedy": sft["greedy"],
           "pass": sft["pass"], "length": sft["length"], "inc_start": float("nan"), "inc_end": float("nan"),
           "inc_growth": float("nan"), "cor_start": float("nan"), "cor_end": float("nan")}]
  for name, arm in results["arms"].items():
    acc = [s["accuracy"] for s in arm["seeds"]]
    mean, sd = mean_sd([a["mean"] for a in acc])
    inc = length_change(results, name, "incorrect")
    cor = length_change(results, name, "correct")
    rows.append({"arm": name, "mean": mean, "sd": sd, "gain": mean - sft["mean"],
                 "greedy": float(np.mean([a["greedy"] for a in acc])), "pass": float(np.mean([a["pass"] for a in acc])),
                 "length": float(np.mean([a["length"] for a in acc])), "inc_start": inc[0], "inc_end": inc[1],
                 "inc_growth": inc[2], "cor_start": cor[0], "cor_end": cor[1]})
  return rows


def toy_rows(results: dict) -> list[dict[str, Any]]:
  """Per toy arm (seed means): reward and the exact E[L | wrong], E[L | right] at the start and the end."""
  rows = []
  for name, tr in results["toy"].items():
    wrong, right = tr["length_wrong"].mean(0), tr["length_right"].mean(0)
    reward = tr["reward"].mean(0)
    rows.append({"arm": name, "agg": TOY_ARMS[name][1], "r_start": float(reward[0]), "r_end": float(reward[-1]),
                 "wrong_start": float(wrong[0]), "wrong_end": float(wrong[-1]), "right_end": float(right[-1]),
                 "growth": float(wrong[-1] - wrong[0])})
  return rows


def tables(results: dict) -> list[cli.Table]:
  k = results["k"]
  nan = lambda key, fmt: (lambda r: "–" if not np.isfinite(r[key]) else fmt.format(**r))
  main = cli.Table(summary_rows(results), {
      "arm": "{arm}", f"held-out mean@{k}": "{mean:.3f} ± {sd:.3f}", "gain over SFT": "{gain:+.3f}",
      "greedy": "{greedy:.3f}", f"pass@{k}": "{pass:.3f}", "held-out length": "{length:.2f}",
      "incorrect length, first → last quarter": nan("inc_growth",
                                                 "{inc_start:.2f} → {inc_end:.2f} ({inc_growth:+.2f})"),
      "correct length, first → last quarter": nan("cor_start", "{cor_start:.2f} → {cor_end:.2f}"),
  }, title=f"Held-out accuracy after {results['steps']} RL steps from one SFT start (mean ± sd over seeds); "
           "lengths of the training batches' responses", name="table")
  toy = cli.Table(toy_rows(results), {
      "toy arm": "{arm}", "aggregation": "{agg}", "reward start → end": "{r_start:.3f} → {r_end:.3f}",
      "E[L | wrong] start → end": "{wrong_start:.2f} → {wrong_end:.2f}", "growth": "{growth:+.2f}",
      "E[L | right] end": "{right_end:.2f}",
  }, title="Length toy (rljax.theory.pg.length_bandit): exact expected lengths, mean over seeds", name="toy")
  return [main, toy]


def headline(results: dict) -> dict[str, float]:
  """The smallest gain over SFT among the presets; the spread of their final accuracy; DAPO − GRPO; the
  incorrect-length growth of GRPO minus Dr. GRPO (presets), of seq-mean-token-mean minus
  seq-mean-token-sum-norm (aggregation arms), and of the toy's GRPO minus Dr. GRPO (exact E[L | wrong])."""
  rows = {r["arm"]: r for r in summary_rows(results)}
  est = [rows[name]["mean"] for name in results["estimators"]]
  growth = lambda name: rows[name]["inc_growth"]
  toy = {r["arm"]: r for r in toy_rows(results)}
  return {
      "min_gain_over_sft": min(rows[name]["gain"] for name in results["estimators"]),
      "estimator_spread": max(est) - min(est),
      "dapo_minus_grpo": rows["dapo"]["mean"] - rows["grpo"]["mean"],
      "lm_length_bias": growth("grpo") - growth("dr_grpo"),
      "lm_length_bias_agg": growth(agg_arm("seq-mean-token-mean")) - growth(agg_arm("seq-mean-token-sum-norm")),
      "toy_length_bias": toy["grpo"]["growth"] - toy["dr_grpo"]["growth"],
  }


# --------------------------------------------------------------------------------------------- figure


def _seed_curve(arm: dict, key: str, count: str | None = None, smooth: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """Seed-mean of a logged curve (count-weighted when `count` is given), then a moving average."""
  steps = np.array([s for s, _ in arm["seeds"][0]["curves"][key]])
  vals = np.array([[v for _, v in s["curves"][key]] for s in arm["seeds"]], float)
  if count is not None:
    w = np.array([[n for _, n in s["curves"][count]] for s in arm["seeds"]], float)
    vals = (vals * w).sum(0) / np.maximum(w.sum(0), 1)
  else:
    vals = vals.mean(0)
  if smooth > 1 and len(vals) >= smooth:
    vals = np.convolve(vals, np.ones(smooth) / smooth, mode="valid")
    steps = steps[smooth - 1:]
  return steps, vals


def plot(results: dict, path: str | None = None):
  """Held-out accuracy per arm; training reward; incorrect-response length for GRPO vs Dr. GRPO (presets and
  aggregation arms); the toy's exact E[L | wrong] and E[L | right]."""
  plt = cli.pyplot(path)
  fig, axes = plt.subplots(1, 4, figsize=(20, 4.4))
  rows = summary_rows(results)
  names = [r["arm"] for r in rows]
  ax = axes[0]
  ax.barh(names[1:], [r["mean"] for r in rows[1:]], xerr=[r["sd"] for r in rows[1:]], color="C0", alpha=0.7)
  ax.axvline(rows[0]["mean"], color="k", ls="--", lw=1, label="SFT start")
  ax.invert_yaxis()
  ax.set(xlabel=f"held-out mean@{results['k']}", title="held-out accuracy after RL")
  ax.legend(fontsize=8)
  smooth = max(1, results["steps"] // 8)
  for name in results["arms"]:
    axes[1].plot(*_seed_curve(results["arms"][name], "reward_mean", smooth=smooth), label=name, lw=1)
  axes[1].set(xlabel="step", ylabel="batch reward", title="training reward (moving average)")
  axes[1].legend(fontsize=6, ncol=2)
  pairs = [("grpo", "C3", "-"), ("dr_grpo", "C0", "-"), (agg_arm("seq-mean-token-mean"), "C3", ":"),
           (agg_arm("seq-mean-token-sum-norm"), "C0", ":")]
  for name, color, ls in pairs:
    if name in results["arms"]:
      axes[2].plot(*_seed_curve(results["arms"][name], "length_incorrect", "n_incorrect", smooth), ls, color=color,
                   label=name)
  axes[2].set(xlabel="step", ylabel="tokens", title="length of incorrect training responses")
  axes[2].legend(fontsize=8)
  for i, (name, tr) in enumerate(results["toy"].items()):
    steps = np.arange(tr["length_wrong"].shape[1])
    axes[3].plot(steps, tr["length_wrong"].mean(0), color=f"C{i}", label=f"{name}: wrong")
    axes[3].plot(steps, tr["length_right"].mean(0), color=f"C{i}", ls="--", label=f"{name}: right")
  axes[3].set(xlabel="step", ylabel="E[L]", title="length toy: exact E[L | answer]")
  axes[3].legend(fontsize=8)
  for a in axes[1:]:
    a.grid(alpha=0.3)
  return cli.finish_figure(fig, path, title="RLVR estimators and aggregation modes from one SFT start (toy suite)")
