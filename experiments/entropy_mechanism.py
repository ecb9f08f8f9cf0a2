"""Entropy collapse under GRPO and the Clip-Cov / KL-Cov interventions (Cui et al. 2025).

Cui et al., "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models" (arXiv
2505.22617). The questions: does RL with a verifiable reward trade policy entropy H for accuracy R along
R = −a·e^H + b (so the end is predictable from the start), is each update's entropy change driven by the
covariance of log-probability and advantage (ΔH ≈ −η·Cov(log π, A)), and do Clip-Cov / KL-Cov, which restrict
the few highest-covariance tokens, keep the entropy higher and end with higher accuracy?

Part B (the headline): the toy-suite transformer (`rljax.training.testbed`). A small Llama-style decoder is SFT'd
on reference traces with 30 % wrong answers (the noisy start: right about 43 % of the time when sampled, 77 %
greedy), then each arm runs `rl.steps` online iterations per seed from that start (`rl.prompts` prompts ×
`rl.group_size` samples, `epochs` × `minibatches` updates per rollout):

    grpo         the authors' baseline recipe: GRPO advantages, PPO-clip ε = 0.2, token-mean, no KL
    clip_higher  the same with ε_high = 0.28 (DAPO; gpu preset)
    clip_cov     preset `clip_cov` (ε_low = ε_high = 1), r = `clip_cov.ratio`, Cov band = percentiles of the token
                 covariances of the first rollouts from the SFT start
    kl_cov       preset `kl_cov`: unclipped, β·|log r| on the top κ = `kl_cov.ratio` tokens by Cov

Every update is probed (`rljax.training.entropy_probe`): the exact entropy of its batch's states, the batch
Cov(log π, A), and the entropy change ΔH the update made on the same states. Measured per arm (means over seeds):
the entropy of the rollouts per step; the held-out accuracy R (mean@k at temperature 1) every `rl.eval_every` steps
and at the SFT start; R = −a·e^H + b fitted by least squares in (a, b) to GRPO's seed-mean (H, R) points (all of
them; and the first `fit_fraction`, extrapolated to GRPO's final entropy); the correlation of ΔH with −Cov over the
first update of every GRPO iteration (one step from the sampling policy: the theory's setting) and the fraction of
iterations where they have opposite signs.

Part A: the softmax answer bandit with shared features (`rljax.theory.pg.answer_bandit`), trained through the
same kernels; everything exact, every arm vmapped over seeds (30 s).

    python -m rljax.run --config configs/entropy_mechanism.py:cpu --workdir results/entropy_mechanism
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments import cli
from rljax import algorithms, losses
from rljax.theory.pg import answer_bandit as bp
from rljax.training.entropy_probe import with_entropy_probe
from rljax.training.metrics import MetricsWriter, read_metrics
from rljax.training.step import make_optimizer
from rljax.training.testbed import Testbed, accuracy, mean_sd

ARMS = ("grpo", "clip_higher", "clip_cov", "kl_cov")
INTERVENTIONS = ("clip_cov", "kl_cov")
# Per-step series read back from the loop's metrics: the first update of an iteration is on-policy (θ sampled the
# batch), so its probe is the theory's single policy-gradient step from π.
SERIES = {"entropy": "first_probe_entropy", "entropy_change": "first_probe_entropy_change",
          "covariance": "first_probe_cov", "reward": "reward_mean", "length": "response_length"}


# --------------------------------------------------------------------------------------------- config


def validate(cfg) -> None:
  """Bad values fail here, before any computation."""
  names = tuple(cfg.arm_names)
  unknown = [n for n in names if n not in ARMS]
  if unknown or len(set(names)) != len(names):
    raise ValueError(f"`arm_names` must be distinct names among {ARMS}, got {names}.")
  missing = [n for n in ("grpo", *INTERVENTIONS) if n not in names]
  if missing:
    raise ValueError(f"`arm_names` must include {missing}: the headline compares the interventions with GRPO.")
  for name, value in (("clip_cov.ratio", cfg.clip_cov.ratio), ("kl_cov.ratio", cfg.kl_cov.ratio)):
    if not 0 < value <= 1:
      raise ValueError(f"`{name}` must be in (0, 1], got {value}.")
  lo, hi = cfg.clip_cov.percentiles
  if not 0 <= lo < hi <= 100:
    raise ValueError(f"`clip_cov.percentiles` must be 0 <= lo < hi <= 100, got {(lo, hi)}.")
  if cfg.kl_cov.coef < 0 or cfg.clip_high < 0:
    raise ValueError(f"`kl_cov.coef` and `clip_high` must be >= 0, got {cfg.kl_cov.coef}, {cfg.clip_high}.")
  if not 0 < cfg.fit_fraction < 1:
    raise ValueError(f"`fit_fraction` must be in (0, 1), got {cfg.fit_fraction}.")
  mb, prompts = cfg.minibatches, cfg.rl.prompts
  if not isinstance(mb, int) or mb < 1 or prompts % mb:
    raise ValueError(f"`minibatches` must be a positive int dividing rl.prompts={prompts}, got {mb!r}.")
  if not isinstance(cfg.epochs, int) or cfg.epochs < 1 or cfg.epochs * mb < 2:
    raise ValueError(f"`epochs` × `minibatches` must be >= 2 (KL-Cov's penalty is inert at a rollout's first "
                     f"update), got {cfg.epochs!r} × {mb}.")
  if cfg.rl.steps < 3 * cfg.rl.eval_every:
    raise ValueError(f"`rl.steps` ({cfg.rl.steps}) must cover at least 3 evaluations (rl.eval_every = "
                     f"{cfg.rl.eval_every}) for the R(H) fit.")
  if not cfg.rl.seeds:
    raise ValueError("`rl.seeds` must name at least one seed.")
  if cfg.log_every != 1:
    raise ValueError(f"`log_every` must be 1 (the per-step entropy and covariance series), got {cfg.log_every}.")
  for name in ("grpo", *INTERVENTIONS, "grpo_sgd"):
    if name not in cfg.bandit.arm_names:
      raise ValueError(f"`bandit.arm_names` must include {name!r} (the headline reads it).")
  for name in cfg.bandit.arm_names:
    losses.get(cfg.bandit.arms[name].loss)  # a KeyError names a bad loss


def arm_preset(name: str, cfg, cov_band: tuple[float, float]):
  """The algorithm preset of arm `name` (see the module docstring); `cov_band` = Clip-Cov's (ω_lb, ω_ub)."""
  if name in ("grpo", "clip_higher"):
    p = algorithms.get("grpo")
    p.agg = "token-mean"  # the authors' recipes: token-mean, no KL (the grpo preset is DeepSeekMath's)
    p.kl.update(coef=0.0, where="none")
    if name == "clip_higher":
      p.loss_kwargs.clip_high = float(cfg.clip_high)
  elif name == "clip_cov":
    p = algorithms.get("clip_cov")
    p.loss_kwargs.update(clip_ratio=float(cfg.clip_cov.ratio), cov_lb=cov_band[0], cov_ub=cov_band[1])
  else:
    p = algorithms.get("kl_cov")
    p.loss_kwargs.update(kl_ratio=float(cfg.kl_cov.ratio), kl_coef=float(cfg.kl_cov.coef))
  return p


# ------------------------------------------------------------------------------------ part B: transformer


def covariance_band(tb: Testbed, algo, params, percentiles) -> tuple[float, float]:
  """Percentiles of the token covariances Cov_i(log π, A) of each seed's first rollout from `params`, pooled."""
  model = tb.model(0)
  nnx.update(model, params)
  _, state = algo.init_state(model, make_optimizer(1e-3), rng=jax.random.PRNGKey(0))
  covs = []
  for seed in tb.cfg.rl.seeds:
    ids, mask, _, _ = tb.prompt_fn(seed)(0)
    b = algo.collect(state, ids, mask, jax.random.fold_in(jax.random.PRNGKey(seed), 0))
    cov = losses.token_covariance(b["old_logp"], b["advantages"], b["mask"])
    covs.append(np.asarray(cov)[np.asarray(b["mask"])])
  lo, hi = np.percentile(np.concatenate(covs), percentiles)
  return float(lo), float(hi)


def _arm_curves(workdir: str, name: str, seeds, k: int) -> dict[str, Any]:
  """Per-step series `[seeds, steps]` (SERIES), evaluation steps and held-out mean@k `[seeds, evals]`, and the
  final evaluation (mean@k, pass@k, greedy, length) per seed, read from the work directory's metrics."""
  out = {key: [] for key in SERIES} | {"eval_acc": [], "final": []}
  for seed in seeds:
    rows = read_metrics(workdir, phase=f"{name}/seed{seed}")
    logged = [r for r in rows if SERIES["entropy"] in r]
    for key, metric in SERIES.items():
      out[key].append([r[metric] for r in logged])
    evals = [r for r in rows if f"eval/acc/all/mean@{k}" in r]
    out["eval_acc"].append([r[f"eval/acc/all/mean@{k}"] for r in evals])
    out["final"].append(accuracy(evals[-1], k))
  out["steps"] = np.asarray([r["step"] for r in logged])
  out["eval_steps"] = np.asarray([r["step"] for r in evals])
  return {key: (np.asarray(v) if key != "final" else v) for key, v in out.items()}


def run_transformer(cfg) -> dict[str, Any]:
  """Part B: SFT once, then every arm × seed from that start (resumed from the work directory's checkpoints)."""
  tb = Testbed(cfg)
  writer = MetricsWriter(cfg.out_dir, tensorboard=False)
  start = tb.sft(writer)
  k = int(cfg.eval.k)
  start_eval = accuracy(jax.device_get(tb.eval_fn(start)), k)
  graphdef = tb.graphdef()
  updates = dict(epochs=int(cfg.epochs), minibatches=int(cfg.minibatches))
  grpo = tb.online(arm_preset("grpo", cfg, (0.0, 1.0)), **updates)
  band = covariance_band(tb, grpo, start, tuple(cfg.clip_cov.percentiles))
  arms = {}
  for name in cfg.arm_names:
    preset = arm_preset(name, cfg, band)
    algo = with_entropy_probe(grpo if name == "grpo" else tb.online(preset, **updates), graphdef)
    for seed in cfg.rl.seeds:
      tb.run_arm(writer, name, preset, seed=seed, params=start, algo=algo)
    arms[name] = _arm_curves(cfg.out_dir, name, cfg.rl.seeds, k)
  writer.close()
  return {"arms": arms, "start": start_eval, "cov_band": band, "k": k, "eval_every": int(cfg.rl.eval_every),
          "fit_fraction": float(cfg.fit_fraction)}


def policy_entropy_at_evals(arm: dict[str, Any], window: int) -> np.ndarray:
  """Seed-mean entropy of the policy evaluated at each evaluation step (0 = the SFT start, then `eval_steps`).

  The rollout of step j is drawn from θ_{j−1}, so the entropy of θ_i is read at step i + 1; an evaluation at step t
  gets the mean over the `window` policies θ_{t−window+1..t} (the last step's policy has no rollout of its own:
  the window stops at θ_{S−1})."""
  h = arm["entropy"].mean(0)  # h[j − 1] = H(θ_{j−1}) for logged steps j = 1..S
  steps = np.concatenate([[0], arm["eval_steps"]])
  return np.asarray([h[max(0, min(t, len(h) - 1) - window + 1):min(t, len(h) - 1) + 1].mean() for t in steps])


def law_fit(h: np.ndarray, r: np.ndarray, fit_fraction: float) -> dict[str, float]:
  """R = −a·e^H + b on all points (a, b, R²) and on the first `fit_fraction` of them (at least 3), whose
  extrapolation to the last point's entropy predicts the last R."""
  full = losses.entropy_performance_fit(jnp.asarray(h), jnp.asarray(r))
  cut = max(3, int(len(h) * fit_fraction))
  early = losses.entropy_performance_fit(jnp.asarray(h[:cut]), jnp.asarray(r[:cut]))
  predicted = float(-early["a"] * np.exp(h[-1]) + early["b"])
  return {"a": float(full["a"]), "b": float(full["b"]), "r2": float(full["r2"]), "ceiling": float(full["ceiling"]),
          "predicted_final": predicted, "final": float(r[-1]), "fit_points": cut}


def _corr(x: np.ndarray, y: np.ndarray) -> float:
  x, y = np.ravel(x), np.ravel(y)
  return float(np.corrcoef(x, y)[0, 1]) if x.size > 2 and x.std() > 0 and y.std() > 0 else float("nan")


def transformer_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per arm: entropy at the start, 1/4 and end (seed-mean windowed, as at the evaluations), held-out accuracy at
  the start and end (mean ± sd over seeds), greedy accuracy at the end, the mean batch Cov and the fraction of
  iterations with Cov > 0; over all iterations' first updates, corr(ΔH, −Cov), the fraction where ΔH and Cov have
  opposite signs and the least-squares slope η of ΔH = −η·Cov; and the R(H) law on the arm's points."""
  tr = results["transformer"]
  start = tr["start"]
  rows = []
  for name, arm in tr["arms"].items():
    h = policy_entropy_at_evals(arm, tr["eval_every"])
    r = np.concatenate([[start["mean"]], arm["eval_acc"].mean(0)])
    dh, cov = arm["entropy_change"], arm["covariance"]
    acc_end = mean_sd([f["mean"] for f in arm["final"]])
    rows.append({
        "arm": name, "H_start": float(h[0]), "H_quarter": float(h[len(h) // 4]), "H_end": float(h[-1]),
        "acc_start": start["mean"], "acc_end": acc_end[0], "acc_end_sd": acc_end[1],
        "greedy_end": mean_sd([f["greedy"] for f in arm["final"]])[0], "greedy_start": start["greedy"],
        "cov_mean": float(cov.mean()), "cov_positive": float((cov > 0).mean()), "dh_cov_corr": _corr(dh, -cov),
        "dh_sign": float(np.mean(dh * cov < 0)),
        "eta": float(np.sum(-cov * dh) / max(np.sum(cov * cov), 1e-30)), **law_fit(h, r, tr["fit_fraction"]),
    })
  return rows


# -------------------------------------------------------------------------------------- part A: bandit


def run_bandit(b, seed: int) -> dict[str, Any]:
  """Part A: traces `[seeds, steps]` per arm (entropy, reward, covariance, entropy change) on the answer bandit."""
  k_env, k_train = jax.random.split(jax.random.PRNGKey(seed))
  env = bp.make_answer_bandit(k_env, n_prompts=b.n_prompts, n_answers=b.n_answers, dim=b.dim)
  advantage_fn = functools.partial(losses.grpo_advantages, group_size=b.group_size)
  theta0 = jnp.zeros(env.features.shape[-1])
  keys = jax.random.split(k_train, b.seeds)  # the same seeds for every arm
  out = {}
  for name in b.arm_names:
    arm = dict(b.arms[name])
    sgd_lr = arm.pop("sgd_lr", None)  # SGD with this step and one update per batch; else Adam, `updates_per_batch`
    loss_fn = functools.partial(losses.get(arm.pop("loss")), **arm)
    optimizer = optax.adam(b.lr) if sgd_lr is None else optax.sgd(sgd_lr)
    train = bp.make_train(env, steps=b.steps, group_size=b.group_size, optimizer=optimizer, advantage_fn=advantage_fn,
                          loss_fn=loss_fn, updates_per_batch=b.updates_per_batch if sgd_lr is None else 1)
    _, trace = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, theta0)
    out[name] = {key: np.asarray(v) for key, v in trace._asdict().items()}
  return out


def bandit_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per bandit arm, on the seed-mean curves: entropy at the start, 1/4, 1/2 and end, the final reward, the mean
  batch Cov, corr(ΔH, −Cov) over all updates and the fraction where they have opposite signs, and the
  R = −a·e^H + b fit (all steps; the first third → the end)."""
  rows = []
  for name, tr in results["bandit"].items():
    h, r = tr["entropy"].mean(0), tr["reward"].mean(0)
    rows.append({"arm": name, "H_start": float(h[0]), "H_quarter": float(h[len(h) // 4]),
                 "H_mid": float(h[len(h) // 2]), "H_end": float(h[-1]), "R_start": float(r[0]),
                 "R_end": float(r[-1]), "cov_mean": float(tr["covariance"][:, 1:].mean()),
                 "dh_cov_corr": _corr(tr["entropy_change"], -tr["covariance"]),
                 "dh_sign": float(np.mean(tr["entropy_change"] * tr["covariance"] < 0)),
                 **law_fit(h, r, results["fit_fraction"])})
  return rows


# ---------------------------------------------------------------------------------- the template


def run(cfg) -> dict[str, Any]:
  """Part A then part B (`run_bandit`, `run_transformer`); every config value is checked first."""
  validate(cfg)
  bandit = run_bandit(cfg.bandit, cfg.seed)
  return {"bandit": bandit, "transformer": run_transformer(cfg), "fit_fraction": float(cfg.fit_fraction)}


def tables(results: dict[str, Any]) -> list[cli.Table]:
  tr = results["transformer"]
  k = tr["k"]
  return [
      cli.Table(transformer_rows(results), {
          "arm": "{arm}", "H start": "{H_start:.3f}", "H at 1/4": "{H_quarter:.3f}", "H end": "{H_end:.3f}",
          f"held-out mean@{k} start → end (± sd)": "{acc_start:.3f} → {acc_end:.3f} ± {acc_end_sd:.3f}",
          "greedy start → end": "{greedy_start:.3f} → {greedy_end:.3f}",
          "mean Cov(log π, A), frac > 0": "{cov_mean:+.4f}, {cov_positive:.2f}",
          "corr(ΔH, −Cov); sign agreement; η": "{dh_cov_corr:.3f}; {dh_sign:.2f}; {eta:.3f}",
          "R = −a·e^H + b: a, b, R²": "{a:.3f}, {b:.3f}, {r2:.3f}",
          "R end: predicted from first third / measured": "{predicted_final:.3f} / {final:.3f}"},
          title=(f"B. Toy-suite transformer (seed means; Clip-Cov band [{tr['cov_band'][0]:.3f}, "
                 f"{tr['cov_band'][1]:.3f}])"), name="transformer"),
      cli.Table(bandit_rows(results), {
          "arm": "{arm}", "H start": "{H_start:.3f}", "H at 1/4": "{H_quarter:.3f}", "H at 1/2": "{H_mid:.3f}",
          "H end": "{H_end:.3f}", "R end": "{R_end:.4f}", "mean Cov(log π, A)": "{cov_mean:+.4f}",
          "corr(ΔH, −Cov); sign agreement": "{dh_cov_corr:.3f}; {dh_sign:.2f}",
          "R = −a·e^H + b: a, b, R²": "{a:.4f}, {b:.4f}, {r2:.3f}",
          "R end predicted from first third": "{predicted_final:.4f}"},
          title="A. Softmax answer bandit (seed means)", name="bandit"),
  ]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """Part B: GRPO's final ÷ initial entropy; R² of R = −a·e^H + b on GRPO's (H, accuracy) points and the error of
  its first-third extrapolation of the final accuracy; corr(ΔH, −Cov) over GRPO's updates and the fraction of its
  steps with Cov > 0; the smaller of Clip-Cov's and KL-Cov's final entropy ÷ GRPO's; the smaller of their final
  accuracies minus GRPO's. Part A (`bandit_`): the collapse, entropy ratio, reward gain and R² of the Adam arms, and
  corr(ΔH, −Cov) of GRPO with SGD and one on-policy update per batch (the theory's setting)."""
  b = {r["arm"]: r for r in transformer_rows(results)}
  a = {r["arm"]: r for r in bandit_rows(results)}
  return {
      "grpo_entropy_collapse": b["grpo"]["H_end"] / b["grpo"]["H_start"],
      "grpo_law_r2": b["grpo"]["r2"],
      "law_prediction_error": abs(b["grpo"]["predicted_final"] - b["grpo"]["final"]),
      "entropy_change_cov_corr": b["grpo"]["dh_cov_corr"],
      "grpo_cov_positive": b["grpo"]["cov_positive"],
      "intervention_entropy_ratio": min(b[n]["H_end"] / b["grpo"]["H_end"] for n in INTERVENTIONS),
      "intervention_accuracy_gain": min(b[n]["acc_end"] - b["grpo"]["acc_end"] for n in INTERVENTIONS),
      "bandit_grpo_entropy_collapse": a["grpo"]["H_end"] / a["grpo"]["H_start"],
      "bandit_intervention_entropy_ratio": min(a[n]["H_end"] / a["grpo"]["H_end"] for n in INTERVENTIONS),
      "bandit_intervention_reward_gain": min(a[n]["R_end"] - a["grpo"]["R_end"] for n in INTERVENTIONS),
      "bandit_grpo_law_r2": a["grpo"]["r2"],
      "bandit_entropy_change_cov_corr": a["grpo_sgd"]["dh_cov_corr"],
  }


def plot(results: dict[str, Any], path: str | None = None):
  """Top (B, transformer): entropy of the rollouts and held-out accuracy against step per arm, R against H with
  GRPO's fit. Bottom: B's per-iteration ΔH against −Cov (GRPO), and A's entropy and R(H) on the bandit."""
  plt = cli.pyplot(path)
  tr = results["transformer"]
  fig, axes = plt.subplots(2, 3, figsize=(15, 8.4))
  for name, arm in tr["arms"].items():
    cli.median_band(axes[0, 0], arm["steps"], arm["entropy"], label=name)
    steps = np.concatenate([[0], arm["eval_steps"]])
    acc = np.concatenate([np.full((arm["eval_acc"].shape[0], 1), tr["start"]["mean"]), arm["eval_acc"]], 1)
    cli.median_band(axes[0, 1], steps, acc, label=name)
    h = policy_entropy_at_evals(arm, tr["eval_every"])
    axes[0, 2].plot(h, acc.mean(0), "o-", ms=3, label=name)
  grpo = tr["arms"]["grpo"]
  h = policy_entropy_at_evals(grpo, tr["eval_every"])
  r = np.concatenate([[tr["start"]["mean"]], grpo["eval_acc"].mean(0)])
  fit = law_fit(h, r, tr["fit_fraction"])
  hs = np.linspace(h.min() * 0.9, h.max() * 1.05, 100)
  axes[0, 2].plot(hs, -fit["a"] * np.exp(hs) + fit["b"], "k--", lw=1, label=f"GRPO fit, R²={fit['r2']:.2f}")
  axes[1, 0].plot(-grpo["covariance"].ravel(), grpo["entropy_change"].ravel(), ".", ms=3, alpha=0.6)
  row = {r["arm"]: r for r in transformer_rows(results)}["grpo"]
  xs = np.linspace(-grpo["covariance"].max(), 0, 10)
  axes[1, 0].plot(xs, row["eta"] * xs, "k--", lw=1,
                  label=f"ΔH = −η·Cov, η={row['eta']:.2f}, ρ={row['dh_cov_corr']:.2f}")
  for name, arm in results["bandit"].items():
    hb, rb = arm["entropy"].mean(0), arm["reward"].mean(0)
    axes[1, 1].plot(np.arange(len(hb)), hb, label=name)
    axes[1, 2].plot(hb, rb, ".", ms=2, label=name)
  axes[0, 0].set(xlabel="RL step", ylabel="entropy of the rollouts (nats/token)", title="B: entropy")
  axes[0, 1].set(xlabel="RL step", ylabel=f"held-out mean@{tr['k']}", title="B: accuracy")
  axes[0, 2].set(xlabel="H", ylabel="held-out accuracy R", title="B: R = −a·e^H + b")
  axes[1, 0].set(xlabel="−Cov(log π, A) of the batch", ylabel="ΔH of the update",
                 title="B: GRPO, first update of each step")
  axes[1, 1].set(xlabel="step", ylabel="H", title="A (bandit): entropy")
  axes[1, 2].set(xlabel="H", ylabel="expected reward R", title="A (bandit): R against H")
  for ax in axes.ravel():
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  return cli.finish_figure(fig, path, title="Entropy mechanism: GRPO and the interventions (medians over seeds)")
