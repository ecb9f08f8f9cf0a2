"""SEC, Self-Evolving Curriculum (Chen, Lu, Kim, Zhang, Tang, Piché, Gontier, Bengio, Kamalloo 2025; arXiv 2505.14970).

The question: does a curriculum that learns, during RL, which problem category to draw from (a Boltzmann bandit
over categories whose reward is the mean |advantage| the category just produced, updated by TD(0)) train a
policy that generalises to harder problems better than a random curriculum, and does it rediscover the
easy-to-hard order by itself? The paper reports it does, on Countdown, Zebra, ARC-1D and MATH with Qwen2.5
(largest gains on harder, out-of-distribution splits), and that a reverse (hard-to-easy) curriculum can collapse.

Part A (this module): GRPO on the analytic skill chain (`rljax.theory.curricula.chain_rl`, every curriculum
under one compile by `rljax.theory.curricula.compare`): a problem of depth d
is solved when d sequential steps succeed, step s with probability σ(θ_s), θ ∈ R^12 at 0 (P = 2^-d). Arms
(categories) are depths 1..8; the OOD test split is depths 9..12 (exact success probabilities, no sampling
noise). G = 8 rollouts per prompt, B = 32 prompts per step, Adam lr 0.05, 400 steps, every curriculum run on the
same seeds (vmapped). Curricula:

    uniform        every depth with probability 1/8
    easy_to_hard   all mass on depth ⌊t·8/T⌋ + 1 (rljax.curricula.fixed, total_steps = T)
    hard_to_easy   the reverse order
    sec_t0.2       SEC, α = 0.5, τ = 0.2 (the paper's 2-D runs), absent arms decay (reference code)
    sec_t1         SEC, α = 0.5, τ = 1.0 (the paper's Countdown runs)

and the stationary toy (spec §1.3): five arms with fixed success probabilities (0.02, 0.2, 0.5, 0.8, 0.98),
16 prompts × 8 Bernoulli rollouts per step, SEC at τ = 0.2 for 300 steps; how often it ends with its largest
probability on the p = 0.5 arm. Part B (cpu and gpu presets): the same comparison on the toy-suite transformer
(`rljax.training.curriculum_testbed`).

Measured (means over seeds): OOD success (mean over depths 9..12) at the end and averaged over all steps (equal
steps for every curriculum), the training-depth success, the fraction of zero-advantage groups, and the mean
depth under SEC's distribution early (first 10 % of steps) and late (last 10 %).

    python -m rljax.run --config configs/sec.py:cpu --workdir results/sec
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from experiments import cli
from rljax import curricula
from rljax.curricula import sec  # noqa: F401  (registers "sec")
from rljax.theory.curricula import compare, stationary
from rljax.training import curriculum_testbed as ct

WINDOW = 0.1  # the early / late fraction of steps for the depth drift


SGD = "+sgd"  # the suffix of the arms trained with SGD instead of Adam


def arm_names(cfg) -> tuple[str, ...]:
  return tuple(cfg.baselines) + tuple(f"sec_t{t:g}" for t in cfg.sec_temperatures)


def _same_optimizer(names, name) -> list[str]:
  return [n for n in names if n.endswith(SGD) == name.endswith(SGD)]


def make_curriculum(cfg, name: str) -> curricula.Curriculum:
  k = len(cfg.chain.train_depths)
  if name.startswith("sec_t"):
    return curricula.make("sec", k, alpha=cfg.sec_alpha, temperature=float(name[len("sec_t"):]),
                          absent=cfg.sec_absent)
  return curricula.make(name, k, **({} if name == "uniform" else {"total_steps": int(cfg.chain.steps)}))


def _check(cfg) -> None:
  missing = [d for d in cfg.ood_depths if d not in tuple(cfg.chain.eval_depths)]
  if missing:
    raise ValueError(f"`ood_depths` {missing} are not among chain.eval_depths {tuple(cfg.chain.eval_depths)}.")
  if not cfg.sec_temperatures or any(t <= 0 for t in cfg.sec_temperatures):
    raise ValueError(f"`sec_temperatures` must be positive, got {cfg.sec_temperatures}.")
  if any(b not in ("uniform", "easy_to_hard", "hard_to_easy") for b in cfg.baselines):
    raise ValueError(f"`baselines` must be among uniform, easy_to_hard, hard_to_easy; got {cfg.baselines}.")


def run(cfg) -> dict[str, Any]:
  """Per arm `[seeds, T, ...]` records of `chain_rl` (success at every eval depth, probs, zero_adv, depth) and
  the stationary toy's distributions `[seeds, steps + 1, 5]`."""
  _check(cfg)
  curricula_ = {name: make_curriculum(cfg, name) for name in arm_names(cfg)}  # option errors before computing
  seeds = range(int(cfg.seed), int(cfg.seed) + int(cfg.seeds))
  arms, names = {}, []
  for opt in ("adam",) + (("sgd",) if cfg.sgd_lr else ()):
    chain = cfg.chain.copy_and_resolve_references()
    if opt == "sgd":
      chain.update(optimizer="sgd", lr=float(cfg.sgd_lr))
    out = compare.run_curricula(chain, curricula_, seeds)  # one compile for every curriculum
    suffix = SGD if opt == "sgd" else ""
    arms |= {name + suffix: {k: o["records"][k] for k in ("success", "probs", "zero_adv", "depth", "reward")}
             for name, o in out.items()}
    names += [name + suffix for name in out]
  st = cfg.stationary
  toy = curricula.make("sec", len(st.success_probs), alpha=cfg.sec_alpha, temperature=st.temperature,
                       absent=cfg.sec_absent)
  run_toy = stationary.make_run(toy, st.success_probs, steps=st.steps, prompts=st.prompts, group_size=st.group_size)
  keys = np.stack([np.asarray(jax.random.PRNGKey(s)) for s in range(int(st.seeds))])
  toy_probs = np.asarray(jax.jit(jax.vmap(run_toy))(keys))
  return {"transformer": ct.run_transformer(cfg), "arms": arms, "names": tuple(names),
          "eval_depths": np.asarray(cfg.chain.eval_depths),
          "train_depths": np.asarray(cfg.chain.train_depths), "ood_depths": np.asarray(cfg.ood_depths),
          "stationary_probs": toy_probs, "stationary_p": np.asarray(st.success_probs)}


def _ood(results, name) -> np.ndarray:
  """`[seeds, T]` mean success over the OOD depths."""
  cols = np.isin(results["eval_depths"], results["ood_depths"])
  return results["arms"][name]["success"][..., cols].mean(-1)


def _train(results, name) -> np.ndarray:
  cols = np.isin(results["eval_depths"], results["train_depths"])
  return results["arms"][name]["success"][..., cols].mean(-1)


def _prob_depth(results, name) -> tuple[float, float]:
  """Mean depth under the curriculum's distribution, early and late (first / last WINDOW of steps)."""
  d = results["arms"][name]["probs"] @ results["train_depths"]  # [seeds, T]
  w = max(1, int(round(WINDOW * d.shape[1])))
  return float(d[:, :w].mean()), float(d[:, -w:].mean())


def rows(results) -> list[dict[str, Any]]:
  out = []
  n = results["arms"][results["names"][0]]["success"].shape[0]
  for name in results["names"]:
    ood, tr = _ood(results, name), _train(results, name)
    early, late = _prob_depth(results, name)
    out.append({"arm": name, "ood_final": ood[:, -1].mean(), "ood_final_se": ood[:, -1].std() / np.sqrt(n),
                "ood_auc": ood.mean(), "ood_auc_se": ood.mean(1).std() / np.sqrt(n),
                "train_final": tr[:, -1].mean(), "train_auc": tr.mean(),
                "zero_adv": results["arms"][name]["zero_adv"].mean(), "depth_early": early, "depth_late": late})
  return out


def arm_names_of(results) -> list[str]:
  return [n for n in results["names"] if not n.endswith(SGD)]


def pick_rate(results) -> float:
  p = results["stationary_p"]
  return float(np.mean(np.argmax(results["stationary_probs"][:, -1], -1) == np.argmin(np.abs(p - 0.5))))


def tables(results) -> list[cli.Table]:
  t = results["arms"][results["names"][0]]["success"].shape[1]
  main = cli.Table(rows(results), {
      "curriculum": "{arm}",
      f"OOD success (d 9–12) at step {t} ± se": "{ood_final:.4f} ± {ood_final_se:.4f}",
      f"OOD success, mean over {t} steps ± se": "{ood_auc:.4f} ± {ood_auc_se:.4f}",
      "train success (d 1–8), final": "{train_final:.3f}",
      "train success, mean over steps": "{train_auc:.3f}",
      "zero-advantage groups": "{zero_adv:.3f}",
      "mean depth of π, first 10 % → last 10 %": "{depth_early:.2f} → {depth_late:.2f}",
  }, title="Skill chain, GRPO (G = 8, B = 32; Adam 0.05, and SGD for the +sgd arms), train depths 1–8, OOD depths "
     "9–12", name="chain")
  final = results["stationary_probs"][:, -1]
  toy = cli.Table([{"p": p, "mean_prob": final[:, i].mean(), "argmax": np.mean(np.argmax(final, -1) == i)}
                   for i, p in enumerate(results["stationary_p"])], {
      "arm success prob p": "{p:.2f}", "final π (mean over seeds)": "{mean_prob:.3f}",
      "fraction of seeds with argmax π here": "{argmax:.3f}",
  }, title=f"Stationary toy, SEC τ = 0.2, {final.shape[0]} seeds", name="stationary")
  out = [main, toy]
  title = ("Toy-suite transformer, GRPO from one SFT start: final held-out mean@k "
           "(± sd over seeds)")
  out += [cli.Table(**a) for a in ct.table_args(results.get("transformer"), title)]
  return out


def headline(results) -> dict[str, float]:
  """OOD gains of SEC over uniform (mean OOD success over all steps, seed means), hard→easy's gap to the slowest
  other curriculum, SEC's (τ = lowest) drift of mean depth under π, and the stationary toy's pick rate."""
  r = {row["arm"]: row["ood_auc"] for row in rows(results)}
  gain = lambda name, base="uniform": r.get(name, np.nan) - r.get(base, np.nan)
  secs = [n for n in results["names"] if n.startswith("sec_t") and not n.endswith(SGD)]
  lowest = min(secs, key=lambda n: float(n[len("sec_t"):]))
  early, late = _prob_depth(results, lowest)
  h2e = lambda h: r.get(h, np.nan) - min((r[n] for n in _same_optimizer(results["names"], h) if n != h),
                                         default=np.nan)
  return {
      "sec_ood_gain_tau02": gain("sec_t0.2"),
      "sec_ood_gain_tau1": gain("sec_t1"),
      "hard_to_easy_gap": h2e("hard_to_easy"),
      "sec_depth_drift": late - early,
      "stationary_pick_rate": pick_rate(results),
      "sec_ood_gain_tau02_sgd": gain("sec_t0.2" + SGD, "uniform" + SGD),
      "hard_to_easy_gap_sgd": h2e("hard_to_easy" + SGD),
  } | _transformer_headline(results.get("transformer"))


def _transformer_headline(tr) -> dict[str, float]:
  """SEC minus uniform on the transformer (all levels; the harder-than-trained level), hard→easy minus the lowest
  other curriculum, and the drift of SEC's mean level."""
  if not tr:
    return {}
  others = [a for a in tr["arms"] if a != "hard_to_easy"]
  return {"tf_sec_gain": ct.gain(tr, "sec", "uniform"), "tf_sec_harder_gain": ct.gain(tr, "sec", "uniform", "harder"),
          "tf_hard_to_easy_gap": max(ct.gain(tr, "hard_to_easy", a) for a in others),
          "tf_sec_level_drift": ct.mean_depth_drift(tr, "sec")}


def plot(results, path: str | None = None):
  """OOD success vs step per curriculum (median and quartiles over seeds); training-depth success; SEC's mean
  distribution over depths vs step (heat-maps, one per τ); the stationary toy's mean distribution vs step."""
  plt = cli.pyplot(path)
  secs = [n for n in results["names"] if n.startswith("sec_t") and not n.endswith(SGD)]
  tr = results.get("transformer")
  n = 3 + len(secs) + (2 if tr else 0)
  fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.8))
  if tr:
    ct.plot_accuracy(axes[-2], tr)
    ct.plot_probs(axes[-1], tr, "sec")
    axes = axes[:-2]
  steps = np.arange(1, results["arms"][results["names"][0]]["success"].shape[1] + 1)
  for i, name in enumerate(results["names"]):
    kw = dict(label=name, color=f"C{i % len(arm_names_of(results))}", ls="--" if name.endswith(SGD) else "-")
    cli.median_band(axes[0], steps, _ood(results, name), **kw)
    cli.median_band(axes[1], steps, _train(results, name), **kw)
  axes[0].set(xlabel="step", ylabel="OOD success (depths 9–12)", title="OOD success")
  axes[1].set(xlabel="step", ylabel="success, depths 1–8", title="training depths")
  axes[0].legend(fontsize=8)
  depths = results["train_depths"]
  for ax, name in zip(axes[2:], secs):
    p = results["arms"][name]["probs"].mean(0).T  # [K, T]
    im = ax.imshow(p, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest",
                   extent=(0.5, steps[-1] + 0.5, depths[0] - 0.5, depths[-1] + 0.5))
    ax.set(xlabel="step", ylabel="depth (arm)", title=f"SEC π over depths, τ = {name[len('sec_t'):]}")
    fig.colorbar(im, ax=ax, fraction=0.046)
  ax = axes[-1]
  toy = results["stationary_probs"].mean(0)
  for i, p in enumerate(results["stationary_p"]):
    ax.plot(np.arange(toy.shape[0]), toy[:, i], label=f"p = {p:g}")
  ax.set(xlabel="step", ylabel="π (mean over seeds)", title="stationary toy, SEC τ = 0.2")
  ax.legend(fontsize=8)
  return cli.finish_figure(fig, path, title="SEC on the skill chain: OOD success, and where its mass goes")
