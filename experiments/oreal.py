"""OREAL on the toy suite: behaviour cloning, reshaped negatives, the one-pair filter and a token-level RM.

Lyu, Gao, Gu, Zhang et al., "Exploring the Limit of Outcome Reward for Learning Mathematical Reasoning"
(arXiv 2502.06781). The paper's recipe for binary outcome rewards: behaviour cloning (BC) on correct
samples, which it proves learns the KL-regularised optimum because the best-of-N distribution is
π₀·exp(R/α)/Z; policy gradient on incorrect samples with reshaped (RLOO) advantages; one correct and one
incorrect response per prompt (`filter_trajectory`); and a token-level reward model (token RM), trained
only on outcomes, whose per-token weights concentrate the update on the tokens that matter.

Questions, on the shared testbed (`rljax.training.testbed`: a small decoder SFT'd on noisy reference traces of
`add` and `modchain`, then RL from that start, 3 seeds per arm):

  1. Held-out accuracy after RL: does OREAL (`oreal` preset: the released trainer's loss, RLOO before the
     one-pair filter) match or beat GRPO, and does GRPO beat RFT (BC on correct responses only)?
  2. Does the token RM (`rljax.training.token_rm`: a copy of the SFT policy with a scalar head, trained
     with BCE of σ(mean_t w_t) on the outcome, weights ω in the OREAL loss) add accuracy?
  3. Does it localise the first wrong step? On `modchain` every trace token x_1..x_k is a verifiable
     intermediate value, so the first wrong step of a wrong response is where it leaves the unique
     reference completion. Precision of the RM's most negative token score (and of the most weighted
     token ω) against a uniformly drawn token, the modal error position, and the untrained RM.
  4. Exact: the best-of-N distribution of a K-answer bandit, by exhaustive enumeration, against
     π₀·exp(R/α)/Z with the closed-form α(p, N) (`rljax.losses.oreal.bon_policy`, `bon_alpha`).

Arms (`cfg.arms`): `rft`, `grpo`, `oreal`, `oreal_rm`.

    python -m rljax.run --config configs/oreal.py:cpu --workdir results/oreal
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from experiments import cli
from rljax import algorithms
from rljax.losses import oreal
from rljax.tasks import toy_suite
from rljax.training import MetricsWriter, read_metrics, token_rm
from rljax.training.testbed import Testbed, accuracy, mean_sd

BASELINE = "grpo"
CLAIM_ARMS = ("rft", "grpo", "oreal", "oreal_rm")


# ------------------------------------------------------------------------------------------- configuration


def arm_presets(cfg) -> dict[str, tuple[ml_collections.ConfigDict, bool]]:
  """`{arm: (algorithm config, token_rm)}`, validated (names, override keys, resolution) before any compute."""
  if len(set(cfg.arm_names)) != len(cfg.arm_names) or not set(CLAIM_ARMS) <= set(cfg.arm_names):
    raise ValueError(f"`arm_names` must be distinct and include {CLAIM_ARMS} (the claims compare them), "
                     f"got {cfg.arm_names}.")
  out = {}
  for name in cfg.arm_names:
    if name not in cfg.arms:
      raise KeyError(f"arm {name!r} is not in `arms` ({', '.join(cfg.arms)}).")
    arm = cfg.arms[name]
    preset = algorithms.get(arm.preset)  # KeyError listing the presets
    algorithms.override(preset, arm.overrides, where=f"arms.{name}.overrides")
    algorithms.resolve(preset)  # bad values fail here
    if arm.token_rm and preset.loss != "oreal":
      raise ValueError(f"arm {name!r}: the token RM weights OREAL's loss, not {preset.loss!r}.")
    out[name] = (preset, bool(arm.token_rm))
  t = cfg.token_rm
  if (not t.lr > 0 or not 0 <= t.threshold < 1 or t.freeze_steps < 0 or t.freeze_steps >= cfg.rl.steps
      or t.rm_data not in token_rm.RM_DATA):
    raise ValueError(f"`token_rm` needs lr > 0, threshold in [0, 1), 0 <= freeze_steps < rl.steps and rm_data in "
                     f"{token_rm.RM_DATA}, got {t}.")
  if cfg.loc.family not in cfg.task.families or cfg.loc.k < 1:
    raise ValueError(f"`loc.family` must be one of {cfg.task.families} and `loc.k` >= 1, got {cfg.loc}.")
  b = cfg.bon
  if not 1 <= b.correct < b.answers or min(b.n) < 1:
    raise ValueError(f"`bon` needs 1 <= correct < answers and N >= 1, got {b}.")
  return out


# ---------------------------------------------------------------------------------------------- best of N


def bon_enumerated(pi0: np.ndarray, correct: np.ndarray, n: int) -> np.ndarray:
  """The best-of-`n` answer distribution by enumerating all K^n draws (float64): the best draw is a
  uniformly chosen correct one when there is one, else a uniformly chosen draw."""
  k = len(pi0)
  out = np.zeros(k)
  for draw in itertools.product(range(k), repeat=n):
    draw = np.asarray(draw)
    prob = np.prod(pi0[draw])
    pool = draw[correct[draw]] if correct[draw].any() else draw
    np.add.at(out, pool, prob / len(pool))
  return out


def bon_check(cfg) -> list[dict[str, float]]:
  """Per N: α(p, N), and the largest gaps of the closed form `oreal.bon_policy` from the enumeration
  (N ≤ `enum_max`) and from π₀·exp(R/α)/Z. A fixed π₀ with pass rate p over K answers, float64."""
  b = cfg.bon
  rng = np.random.default_rng(cfg.seed)
  pi0 = rng.dirichlet(np.ones(b.answers))
  correct = np.arange(b.answers) < b.correct
  rows = []
  with jax.enable_x64(True):
    for n in b.n:
      closed = np.asarray(oreal.bon_policy(jnp.asarray(pi0), jnp.asarray(correct, jnp.float64), n))
      alpha = float(oreal.bon_alpha(jnp.asarray(pi0[correct].sum()), n))
      tilt = pi0 * np.exp(correct / alpha if np.isfinite(alpha) else 0.0)
      tilt = tilt / tilt.sum()
      enum_err = np.abs(closed - bon_enumerated(pi0, correct, n)).max() if n <= b.enum_max else float("nan")
      rows.append({"n": n, "pass_rate": float(pi0[correct].sum()), "alpha": alpha,
                   "enum_err": float(enum_err), "tilt_err": float(np.abs(closed - tilt).max()),
                   "bon_pass": float(closed[correct].sum())})
  return rows


# --------------------------------------------------------------------------------------------------- run


def _final_eval(tb: Testbed, phase: str) -> dict[str, float]:
  """The last held-out evaluation logged in `phase`: overall and per family."""
  m, k = tb.last_eval(phase), int(tb.cfg.eval.k)
  return {f"{s}_{key}": v for s in ("all", *tb.suite.families) for key, v in accuracy(m, k, s).items()}


def _curves(tb: Testbed, phase: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
  m = read_metrics(tb.workdir, phase=phase)
  out = {}
  for key in keys:
    pts = [(x["step"], x[key]) for x in m if key in x]
    out[key] = np.asarray(pts, np.float64).reshape(-1, 2)
  return out


def run(cfg) -> dict[str, Any]:
  """Per arm and seed: the final held-out evaluation and training curves; per token-RM seed, localisation on
  held-out `loc.family` problems (trained RM and its untrained copy on the same responses); the BoN check."""
  arms = arm_presets(cfg)
  bon = bon_check(cfg)
  tb = Testbed(cfg)
  writer = MetricsWriter(cfg.out_dir)
  k = int(cfg.eval.k)
  start = tb.sft(writer)
  sft_metrics = jax.device_get(tb.eval_fn(start))
  sft = {f"{s}_{key}": v for s in ("all", *tb.suite.families) for key, v in accuracy(sft_metrics, k, s).items()}

  rm_graph = nnx.graphdef(token_rm.attach(tb.model(0)))
  rm_eval = tb.evaluator(rm_graph)
  d = tb.suite.difficulties
  fam = tb.suite.families.index(cfg.loc.family)
  loc_batch, _ = tb.heldout(range(fam * d, (fam + 1) * d))
  reference = tb.suite.sft_targets(loc_batch)["completion"]
  curve_keys = (f"eval/acc/all/mean@{k}", "reward_mean", "keep_frac", "informative_groups", "entropy",
                "rm_loss", "rm_acc", "token_weight_mean", "policy_on")
  out: dict[str, Any] = {}
  for name, (preset, with_rm) in arms.items():
    seeds = []
    for seed in cfg.rl.seeds:
      if with_rm:
        t = cfg.token_rm
        algo = token_rm.make_token_rm_rl(tb.online(preset, graphdef=rm_graph), rm_graph, lr=float(t.lr),
                                         threshold=float(t.threshold), freeze_steps=int(t.freeze_steps),
                                         rm_data=str(t.rm_data), weight_decay=float(t.weight_decay))
        state = tb.run_arm(writer, name, preset, seed=seed, params=start, algo=algo, eval_fn=rm_eval)
      else:
        state = tb.run_arm(writer, name, preset, seed=seed, params=start)
      phase = f"{name}/seed{seed}"
      row = {"seed": seed, "final": _final_eval(tb, phase), "curves": _curves(tb, phase, curve_keys)}
      if with_rm:
        control = nnx.state(token_rm.attach(nnx.merge(tb.graphdef(), start)), nnx.Param)
        row["loc"] = token_rm.localisation_eval(
            rm_graph, state.params, loc_batch.ids, loc_batch.mask, reference, tb.suite.reward_fn, k=int(cfg.loc.k),
            key=jax.random.PRNGKey(1000 + seed), max_new_tokens=tb.max_new_tokens, eos_token_id=toy_suite.EOS_ID,
            pad_token_id=toy_suite.PAD_ID, control_params=control, threshold=float(cfg.token_rm.threshold))
      seeds.append(row)
    out[name] = seeds
  writer.close()
  return {"arms": out, "sft": sft, "bon": bon, "k": k, "families": tb.suite.families,
          "loc_family": cfg.loc.family}


# ------------------------------------------------------------------------------------------------ report


def _stat(rows, key) -> tuple[float, float]:
  return mean_sd([r["final"][key] for r in rows])


def arm_rows(results) -> list[dict[str, Any]]:
  fams = results["families"]
  rows = [{"arm": "SFT start", **{f"{f}_mean": results["sft"][f"{f}_mean"] for f in ("all", *fams)},
           "all_mean_sd": 0.0, "all_greedy": results["sft"]["all_greedy"], "trained": float("nan"),
           "reward_end": float("nan")}]
  for name, seeds in results["arms"].items():
    row = {"arm": name}
    for f in ("all", *fams):
      row[f"{f}_mean"] = _stat(seeds, f"{f}_mean")[0]
    row["all_mean_sd"] = _stat(seeds, "all_mean")[1]
    row["all_greedy"] = _stat(seeds, "all_greedy")[0]
    # Fraction of the sampled responses that carry a gradient (1 without a filter).
    keep = [s["curves"]["keep_frac"][:, 1].mean() for s in seeds if len(s["curves"]["keep_frac"])]
    row["trained"] = float(np.mean(keep)) if keep else 1.0
    row["reward_end"] = float(np.mean([s["curves"]["reward_mean"][-3:, 1].mean() for s in seeds]))
    rows.append(row)
  return rows


def loc_rows(results) -> list[dict[str, Any]]:
  rows = []
  for name, seeds in results["arms"].items():
    for s in seeds:
      if "loc" not in s:
        continue
      loc = s["loc"]
      rm_acc = s["curves"]["rm_acc"]
      rows.append({"arm": name, "seed": s["seed"], "wrong": int(loc["score/count"]),
                   "precision": float(loc["score/precision"]), "weight_precision": float(loc["weight/precision"]),
                   "control": float(loc["control/score/precision"]), "uniform": float(loc["score/uniform"]),
                   "prior": float(loc["score/prior"]),
                   "rm_acc": float(rm_acc[-3:, 1].mean()) if len(rm_acc) else float("nan")})
  return rows


def tables(results) -> list[cli.Table]:
  fams = results["families"]
  k = results["k"]
  cols = {"arm": "{arm}", f"held-out mean@{k}": lambda r: f"{r['all_mean']:.3f} ± {r['all_mean_sd']:.3f}"}
  cols |= {f"{f} mean@{k}": f"{{{f}_mean:.3f}}" for f in fams}
  cols |= {"greedy": "{all_greedy:.3f}", "reward (last 3 logs)": "{reward_end:.3f}",
           "responses trained": "{trained:.2f}"}
  t1 = cli.Table(arm_rows(results), cols, title="Held-out accuracy after RL (mean ± sd over seeds)", name="arms")
  t2 = cli.Table(loc_rows(results), {
      "arm": "{arm}", "seed": "{seed}", f"wrong {results['loc_family']} responses": "{wrong}",
      "precision (argmin w_t)": "{precision:.3f}", "precision (argmax ω_t)": "{weight_precision:.3f}",
      "untrained RM": "{control:.3f}", "uniform token": "{uniform:.3f}", "modal position": "{prior:.3f}",
      "RM accuracy (end)": "{rm_acc:.3f}"},
      title="Token RM: does its most negative token hit the first wrong step?", name="localisation")
  t3 = cli.Table(results["bon"], {
      "N": "{n}", "pass rate p": "{pass_rate:.3f}", "α(p, N)": "{alpha:.4g}", "BoN pass rate": "{bon_pass:.4f}",
      "max |closed − enumerated|": "{enum_err:.1e}", "max |closed − π₀e^(R/α)/Z|": "{tilt_err:.1e}"},
      title="Best-of-N distribution = π₀·exp(R/α)/Z (float64)", name="bon")
  return [t1, t2, t3]


def headline(results) -> dict[str, float]:
  mean = lambda arm: float(np.mean([s["final"]["all_mean"] for s in results["arms"][arm]]))
  locs = [s["loc"] for s in results["arms"]["oreal_rm"]]
  bon = results["bon"]
  errs = [r["enum_err"] for r in bon if np.isfinite(r["enum_err"])] + [r["tilt_err"] for r in bon]
  return {
      "oreal_minus_grpo": mean("oreal") - mean(BASELINE),
      "grpo_minus_rft": mean(BASELINE) - mean("rft"),
      "token_rm_gain": mean("oreal_rm") - mean("oreal"),
      "loc_lift": float(np.mean([x["score/precision"] for x in locs]) / np.mean([x["score/uniform"] for x in locs])),
      "bon_max_err": float(max(errs)),
  }


def plot(results, path: str | None = None):
  plt = cli.pyplot(path)
  k = results["k"]
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  ax = axes[0]
  for name, seeds in results["arms"].items():
    curves = [s["curves"][f"eval/acc/all/mean@{k}"] for s in seeds]
    n = min(len(c) for c in curves)
    steps = np.r_[0, curves[0][:n, 0]]  # from the SFT start
    ys = np.stack([np.r_[results["sft"]["all_mean"], c[:n, 1]] for c in curves])
    ax.plot(steps, ys.mean(0), marker="o", ms=3, label=name)
    ax.fill_between(steps, ys.min(0), ys.max(0), alpha=0.15)
  ax.axhline(results["sft"]["all_mean"], color="gray", ls=":", label="SFT start")
  ax.set(xlabel="RL step", ylabel=f"held-out mean@{k}", title="Accuracy during RL (band: seed range)")
  ax.legend(fontsize=8)

  ax = axes[1]
  rows = loc_rows(results)
  labels = ["trained RM\nargmin w", "trained RM\nargmax ω", "untrained RM", "uniform\ntoken", "modal\nposition"]
  keys = ["precision", "weight_precision", "control", "uniform", "prior"]
  vals = np.array([[r[key] for key in keys] for r in rows])
  ax.bar(range(len(keys)), vals.mean(0), yerr=vals.std(0) if len(rows) > 1 else None, color="C3", alpha=0.7)
  ax.set_xticks(range(len(keys)), labels, fontsize=8)
  ax.set(ylabel="P(token hits the first wrong step)", title=f"Localisation on wrong {results['loc_family']} responses")

  ax = axes[2]
  for i, s in enumerate(results["arms"]["oreal_rm"]):
    c = s["curves"]
    ax.plot(c["rm_acc"][:, 0], c["rm_acc"][:, 1], color="C0", alpha=0.7, label=None if i else "RM accuracy")
    ax.plot(c["token_weight_mean"][:, 0], c["token_weight_mean"][:, 1], color="C1", alpha=0.7,
            label=None if i else "mean token weight ω")
  ax.set(xlabel="RL step", title="Token RM during OREAL training")
  ax.legend(fontsize=8)
  fig.tight_layout()
  if path is not None:
    fig.savefig(path, dpi=120)
  return fig
