"""Lite PPO and the tricks it keeps, on the toy suite + small decoder (Liu, Wang et al. 2025).

Liu, Wang et al., "Part I: Tricks or Traps? A Deep Dive into RL for LLM Reasoning" (arXiv 2508.08221)
test each RLVR trick in isolation and keep two: group-mean / batch-std advantage normalisation and
token-level loss aggregation on a critic-free vanilla PPO loss ("Lite PPO"), which they find beats GRPO
and DAPO. The question here: on the testbed (`rljax.training.testbed`: a small decoder SFT'd on the toy
suite's add and modchain traces with 30% wrong answers), which trick helps where, and is Lite PPO best?

The sweep (`cfg.sweep`): from one SFT start, per difficulty tier (training and held-out problems of one
level of every family), per reward scale ({0, 1} and 2r − 1 ∈ {−1, 1}), per advantage normalisation
(`NORMS`: group mean + std = GRPO, batch mean + std, group mean only = Dr. GRPO, group mean + batch std
= Lite PPO), the lite_ppo preset (PPO-clip ε = 0.2, token-mean, no KL) with that normalisation; then, per
tier, Lite PPO with seq-mean-token-mean instead of token-mean (the second trick). Each arm reports its
held-out accuracy gain over the SFT start and its largest pre-clip gradient norm (the paper: group-std
advantages spike on easy data, where σ_g → 0).

The comparison (`cfg.compare`): the lite_ppo, grpo (group std, seq-mean-token-mean, k3 KL β = 0.04) and
ppo (GAE + a value head on the policy's backbone, `online.ActorCritic`) presets of `rljax.algorithms`
on all training arms, several seeds.

Two exact facts shape the reading. (1) Every normalisation that divides by a std is invariant to
r → a·r + b (a > 0): the {−1, 1} arms of group, batch and lite see the same advantages as the {0, 1}
ones (up to eps), so their scale cells differ only by sampling noise; group-mean-only advantages double.
(2) With 0/1 rewards a mixed group of n has std_g ≥ ~1/√n, so group-std advantages are bounded by
(n − 1)/√n (2.47 at n = 8), whereas batch-std ones grow as the batch pass rate nears 0 or 1.

    python -m rljax.run --config configs/lite_ppo.py:cpu --workdir results/lite_ppo
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from typing import Any

import jax
import numpy as np

from experiments import cli
from rljax import algorithms
from rljax.losses import aggregation
from rljax.training.metrics import MetricsWriter, read_metrics
from rljax.training.testbed import Testbed, mean_sd

NORMS = {  # keyword arguments of the grpo estimator (rljax.losses.advantages.grpo_advantages)
    "group": dict(center="group", scale="group"),  # GRPO
    "batch": dict(center="batch", scale="batch"),  # batch-level (REINFORCE++-style)
    "group_mean": dict(center="group", scale="none"),  # Dr. GRPO
    "lite": dict(center="group", scale="batch"),  # Lite PPO
}
SCALES = {"01": (1.0, 0.0), "pm1": (2.0, -1.0)}  # reward = a·r + b of the suite's 0/1 verifier
COMPARED = ("lite_ppo", "grpo", "ppo")  # the headline's presets


def _validate(cfg) -> None:
  """Fails on a bad sweep or comparison setting before any computation."""
  s, c = cfg.sweep, cfg.compare
  for field, values, known in (("norms", s.norms, NORMS), ("scales", s.scales, SCALES),
                               ("aggs", s.aggs, aggregation.MODES)):
    bad = [v for v in values if v not in known]
    if bad or not values:
      raise ValueError(f"`sweep.{field}` must be non-empty names in {tuple(known)}, got {tuple(values)}.")
  for need, have, field in ((("group", "batch", "lite"), s.norms, "sweep.norms"), (("01",), s.scales, "sweep.scales"),
                            (COMPARED, c.algorithms, "compare.algorithms")):
    if missing := [n for n in need if n not in have]:
      raise ValueError(f"`{field}` must include {missing}: the paper's claims compare them.")
  for name in c.algorithms:
    algorithms.get(name)  # KeyError listing the presets
  d = int(cfg.task.difficulties)
  if len(s.tiers) != len(s.levels) or not s.tiers or any(not 0 <= lv < d for lv in s.levels):
    raise ValueError(f"`sweep.tiers` {tuple(s.tiers)} and `sweep.levels` {tuple(s.levels)} must pair up, with "
                     f"levels in [0, {d}).")
  for field, v in (("sweep.steps", s.steps), ("compare.steps", c.steps), ("compare.eval_every", c.eval_every),
                   ("rl_log_every", cfg.rl_log_every)):
    if int(v) < 1:
      raise ValueError(f"`{field}` must be >= 1, got {v}.")
  if not s.seeds or not c.seeds or s.tie_se < 0:
    raise ValueError("`sweep.seeds` and `compare.seeds` must be non-empty and `sweep.tie_se` >= 0.")


def _compile_cache() -> None:
  """Arms that differ only in advantage kwargs, reward scale or seed share most XLA programs (sampler,
  update step, evaluator), but each `run_arm` jits them anew: a persistent compilation cache (unless one
  is configured already) compiles each program once."""
  if not jax.config.jax_compilation_cache_dir:
    jax.config.update("jax_compilation_cache_dir", os.path.join(tempfile.gettempdir(), "rljax-xla-cache"))


def _tier_acc(metrics: dict, families, level: int, k: int, metric: str | None = None) -> float:
  """Held-out accuracy (mean@k by default) on one level, averaged over the families."""
  metric = metric or f"mean@{k}"
  return float(np.mean([metrics[f"eval/acc/{f}/d{level}/{metric}"] for f in families]))


def _phase(workdir: str, phase: str, k: int) -> dict[str, Any]:
  """The logged curves of one RL phase: per-step gradient norm, reward and length, and its last evaluation."""
  m = read_metrics(workdir, phase=phase)
  evals = [x for x in m if f"eval/acc/all/mean@{k}" in x]
  grad = [x["grad_norm"] for x in m if "grad_norm" in x]
  return {"eval": {key: v for key, v in evals[-1].items() if key.startswith("eval/")}, "grad_norm": grad,
          "max_grad_norm": float(np.max(grad)), "first_grad_norm": float(grad[0]),
          "reward": [x["reward_mean"] for x in m if "reward_mean" in x],
          "accuracy": [(x["step"], x[f"eval/acc/all/mean@{k}"]) for x in evals]}


def run(cfg) -> dict[str, Any]:
  """SFT once; the sweep arms (one per tier × scale × normalisation, then the aggregation arms) and the
  compared presets from that start. Each phase resumes from its checkpoint."""
  _validate(cfg)
  _compile_cache()
  t0 = time.perf_counter()
  writer = MetricsWriter(cfg.out_dir)
  tb = Testbed(cfg)
  start = tb.sft(writer)
  rl_cfg = copy.deepcopy(cfg)
  rl_cfg.log_every = int(cfg.rl_log_every)
  bed = Testbed(rl_cfg)
  eval_fn, k, fams = tb.eval_fn, int(cfg.eval.k), tb.suite.families
  sft_eval = {key: float(v) for key, v in eval_fn(start).items()}
  t_sft = time.perf_counter() - t0
  s, c = cfg.sweep, cfg.compare

  sweep = []
  cells = [(t, lv, sc, nm, s.aggs[0]) for t, lv in zip(s.tiers, s.levels) for sc in s.scales for nm in s.norms]
  cells += [(t, lv, s.scales[0], "lite", agg) for t, lv in zip(s.tiers, s.levels) for agg in s.aggs[1:]]
  for tier, level, scale, norm, agg in cells:
    preset = algorithms.get("lite_ppo")
    preset.advantage_kwargs.update(NORMS[norm])
    preset.agg = agg
    a, b = SCALES[scale]
    algo = bed.online(preset, reward_fn=lambda tokens, mask, a=a, b=b: a * bed.suite.reward_fn(tokens, mask) + b)
    arms = tuple(bed.suite.arm(f, level) for f in fams)
    name = f"sweep/{tier}/{scale}/{norm}/{agg}"
    for seed in s.seeds:
      bed.run_arm(writer, name, preset, algo=algo, seed=seed, params=start, steps=int(s.steps),
                  prompt_fn=bed.prompt_fn(seed, arms=arms), eval_fn=eval_fn, eval_every=int(s.steps))
      ph = _phase(cfg.out_dir, f"{name}/seed{seed}", k)
      sweep.append(dict(tier=tier, level=level, scale=scale, norm=norm, agg=agg, seed=seed,
                        acc=_tier_acc(ph["eval"], fams, level, k), **ph))
  t_sweep = time.perf_counter() - t0 - t_sft

  compare = []
  for name in c.algorithms:  # ppo trains an online.ActorCritic (the testbed adds the value head)
    algo = bed.online(name)
    for seed in c.seeds:
      bed.run_arm(writer, f"compare/{name}", name, algo=algo, seed=seed, steps=int(c.steps), params=start,
                  eval_fn=eval_fn, eval_every=int(c.eval_every))
      ph = _phase(cfg.out_dir, f"compare/{name}/seed{seed}", k)
      compare.append(dict(algorithm=name, seed=seed, acc=float(ph["eval"][f"eval/acc/all/mean@{k}"]),
                          greedy=float(ph["eval"]["eval/acc/all/greedy"]),
                          tiers={t: _tier_acc(ph["eval"], fams, lv, k) for t, lv in zip(s.tiers, s.levels)}, **ph))
  writer.close()
  wall = time.perf_counter() - t0
  print(f"wall time {wall:.0f} s (SFT {t_sft:.0f} s, sweep {t_sweep:.0f} s, comparison "
        f"{wall - t_sft - t_sweep:.0f} s)")
  return {"sweep": sweep, "compare": compare, "k": k, "families": list(fams), "tiers": list(s.tiers),
          "levels": [int(lv) for lv in s.levels], "scales": list(s.scales), "norms": list(s.norms),
          "aggs": list(s.aggs), "algorithms": list(c.algorithms), "tie_se": float(s.tie_se),
          "n_eval": int(cfg.eval.per_arm) * len(fams) * k, "group_size": int(cfg.rl.group_size),
          "sft": {"acc": sft_eval[f"eval/acc/all/mean@{k}"], "greedy": sft_eval["eval/acc/all/greedy"],
                  "tiers": {t: _tier_acc(sft_eval, fams, lv, k) for t, lv in zip(s.tiers, s.levels)}},
          "wall_s": wall, "sft_s": t_sft, "sweep_s": t_sweep}


# ------------------------------------------------------------------------------------------- summaries


def _mean(rows, key="acc") -> float:
  return float(np.mean([r[key] for r in rows]))


def _arm(results, tier, scale, norm, agg=None) -> list[dict]:
  agg = agg or results["aggs"][0]
  return [r for r in results["sweep"] if (r["tier"], r["scale"], r["norm"], r["agg"]) == (tier, scale, norm, agg)]


def sweep_rows(results) -> list[dict[str, Any]]:
  """Per (tier, scale): the SFT accuracy of the tier, each normalisation's accuracy after RL (seed mean)
  and max gradient norm, the best normalisation, and whether Lite PPO is best or tied with it (within
  `tie_se` standard errors of the difference of two held-out means at the best arm's accuracy)."""
  out = []
  for tier in results["tiers"]:
    for scale in results["scales"]:
      acc = {n: _mean(_arm(results, tier, scale, n)) for n in results["norms"]}
      grad = {n: max(r["max_grad_norm"] for r in _arm(results, tier, scale, n)) for n in results["norms"]}
      best = max(acc, key=acc.get)
      seeds = len(_arm(results, tier, scale, best))
      se = float(np.sqrt(2 * acc[best] * (1 - acc[best]) / (results["n_eval"] * seeds)))
      out.append({"tier": tier, "scale": scale, "sft": results["sft"]["tiers"][tier], "best": best, "se": se,
                  "lite_ok": acc["lite"] >= acc[best] - results["tie_se"] * se,
                  **{f"acc_{n}": a for n, a in acc.items()}, **{f"grad_{n}": g for n, g in grad.items()},
                  **{f"d_{n}": acc[n] - acc["group"] for n in results["norms"]}})
  return out


def agg_rows(results) -> list[dict[str, Any]]:
  """Per tier: Lite PPO's accuracy with each aggregation (at the first scale) and the gain of the first."""
  scale, first = results["scales"][0], results["aggs"][0]
  out = []
  for tier in results["tiers"]:
    acc = {agg: _mean(_arm(results, tier, scale, "lite", agg)) for agg in results["aggs"]}
    for agg in results["aggs"][1:]:
      out.append({"tier": tier, "agg": agg, "first": first, "acc_first": acc[first], "acc": acc[agg],
                  "gain": acc[first] - acc[agg], "sft": results["sft"]["tiers"][tier]})
  return out


def compare_rows(results) -> list[dict[str, Any]]:
  """Per compared preset: held-out accuracy (mean ± sd over seeds) overall and per tier, greedy accuracy,
  the largest gradient norm of any seed."""
  out = []
  for name in results["algorithms"]:
    rows = [r for r in results["compare"] if r["algorithm"] == name]
    m, sd = mean_sd([r["acc"] for r in rows])
    out.append({"algorithm": name, "seeds": len(rows), "acc": m, "sd": sd, "greedy": _mean(rows, "greedy"),
                "max_grad": max(r["max_grad_norm"] for r in rows),
                "tiers": {t: float(np.mean([r["tiers"][t] for r in rows])) for t in results["tiers"]}})
  return out


def tables(results) -> list[cli.Table]:
  k, norms, tiers = results["k"], results["norms"], results["tiers"]
  deltas = {f"Δ {n}": (lambda n: lambda r: f"{r[f'd_{n}']:+.3f}")(n) for n in norms if n != "group"}
  sweep = cli.Table(sweep_rows(results), {
      "tier": "{tier}", "reward": lambda r: "{0,1}" if r["scale"] == "01" else "{−1,1}",
      f"SFT mean@{k}": "{sft:.3f}", "group (GRPO norm)": "{acc_group:.3f}", **deltas,
      "best": "{best}", "Lite best or tied": lambda r: f"{'yes' if r['lite_ok'] else 'no'} (SE {r['se']:.3f})"},
      title=f"which trick helps where: held-out mean@{k} on the tier after RL, Δ against group normalisation "
            "(lite_ppo preset with each advantage normalisation, token-mean)", name="sweep")
  grads = cli.Table(sweep_rows(results), {
      "tier": "{tier}", "reward": lambda r: "{0,1}" if r["scale"] == "01" else "{−1,1}",
      **{n: (lambda n: lambda r: f"{r[f'grad_{n}']:.2f}")(n) for n in norms}},
      title="max pre-clip gradient norm over the run, per normalisation", name="grad_norm")
  agg = cli.Table(agg_rows(results), {
      "tier": "{tier}", "token-mean": "{acc_first:.3f}", "other": "{agg}", "its accuracy": "{acc:.3f}",
      "token-mean gain": "{gain:+.3f}"}, title="loss aggregation (Lite PPO, {0,1} rewards)", name="aggregation")
  comp = cli.Table(compare_rows(results), {
      "algorithm": "{algorithm}", "seeds": "{seeds}", f"mean@{k}": "{acc:.3f} ± {sd:.3f}",
      "gain over SFT": lambda r: f"{r['acc'] - results['sft']['acc']:+.3f}",
      **{t: (lambda t: lambda r: f"{r['tiers'][t]:.3f}")(t) for t in tiers},
      "greedy": "{greedy:.3f}", "max grad norm": "{max_grad:.2f}"},
      title=f"Lite PPO against GRPO and PPO on all training arms (SFT start: mean@{k} "
            f"{results['sft']['acc']:.3f}, greedy {results['sft']['greedy']:.3f})", name="compare")
  return [sweep, grads, agg, comp]


def headline(results) -> dict[str, float]:
  """Lite PPO − GRPO and − PPO (overall mean@k); the fraction of sweep cells where Lite PPO is best or
  tied; batch − group accuracy on the easiest tier with {0,1} rewards; there, group-std's max gradient norm
  ÷ the largest of the other normalisations'; token-mean − seq-mean-token-mean (mean over tiers)."""
  comp = {r["algorithm"]: r["acc"] for r in compare_rows(results)}
  rows = sweep_rows(results)
  easy = next(r for r in rows if r["tier"] == results["tiers"][0] and r["scale"] == "01")
  others = max(easy[f"grad_{n}"] for n in results["norms"] if n != "group")
  return {"lite_minus_grpo": comp["lite_ppo"] - comp["grpo"], "lite_minus_ppo": comp["lite_ppo"] - comp["ppo"],
          "lite_best_or_tied_frac": float(np.mean([r["lite_ok"] for r in rows])),
          "batch_minus_group_easy": easy["acc_batch"] - easy["acc_group"],
          "group_std_gradnorm_spike_easy": easy["grad_group"] / others,
          "token_mean_gain": float(np.mean([r["gain"] for r in agg_rows(results)]))}


def plot(results, path: str | None = None):
  """Accuracy gain over SFT per sweep cell and normalisation; max gradient norm likewise (log scale);
  held-out accuracy of the compared presets against the RL step (seed mean)."""
  plt = cli.pyplot(path)
  rows = sweep_rows(results)
  norms = results["norms"]
  fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
  x = np.arange(len(rows))
  width = 0.8 / len(norms)
  labels = [f"{r['tier']}\n{'{0,1}' if r['scale'] == '01' else '{−1,1}'}" for r in rows]
  for i, n in enumerate(norms):
    axes[0].bar(x + i * width, [r[f"acc_{n}"] - r["sft"] for r in rows], width, label=n)
    axes[1].bar(x + i * width, [r[f"grad_{n}"] for r in rows], width, label=n)
  for ax, title, ylabel in ((axes[0], "accuracy gain over SFT (tier)", f"Δ mean@{results['k']}"),
                            (axes[1], "max pre-clip gradient norm", "‖g‖ max")):
    ax.set_xticks(x + 0.4 - width / 2, labels, fontsize=8)
    ax.set(title=title, ylabel=ylabel)
  axes[1].set_yscale("log")
  for name in results["algorithms"]:
    runs = [r["accuracy"] for r in results["compare"] if r["algorithm"] == name]
    steps = [0] + [s for s, _ in runs[0]]
    acc = np.mean([[results["sft"]["acc"]] + [a for _, a in run] for run in runs], axis=0)
    axes[2].plot(steps, acc, marker="o", label=f"{name} ({len(runs)} seeds)")
  axes[2].set(title="compared presets, all arms", xlabel="RL step", ylabel=f"held-out mean@{results['k']}")
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  return cli.finish_figure(fig, path, title="Lite PPO's tricks on the toy suite (Liu, Wang et al. 2025)")
