"""No-regret baselines and the regret-loss transformer (Park, Liu, Ozdaglar & Zhang, 2024).

Predicted: (1) with the tuned step η = √(8 ln K/T), Hedge and FTPL have regret O(√T) on every
sequence (log–log slope ≤ 0.5) and Hedge stays below √(T ln K/2), while FTL's regret on the
alternating sequence is T/2 − 1/4 (slope 1); (2) a single-layer linear self-attention (LSA) policy
trained on the unsupervised regret-loss implements FTRL: its logits point along −Σ_{s<t} ℓ_s
(cosine > 0.9). Regrets are vmapped over seeds, with one compile per sequence for all horizons;
LSA restarts are vmapped over seeds and the restart with the lowest held-out regret-loss is kept.

    python -m rljax.run --config configs/llm_regret.py:full --workdir results/llm_regret
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.experts import llm_regret as ol
from experiments.slopes import fit_slope
from experiments import cli

ALGOS = ("hedge", "ftpl", "ftl")


def horizons(cfg) -> np.ndarray:
  """T log-spaced on [10, 10^log10_t_max], rounded to integers."""
  return np.unique(np.round(np.logspace(1.0, cfg.log10_t_max, cfg.n_horizons)).astype(int))


def _n_actions(cfg, sequence: str) -> int:
  return 2 if sequence == "alternating" else cfg.n_actions


def _regrets(key, horizon, *, sequence: str, n_steps: int, n_actions: int, noise: str, n_samples: int):
  """Reg_T of Hedge, FTPL and FTL (tuned η for this T) on one sequence padded to n_steps: `[3]`."""
  k_seq, k_ftpl = jax.random.split(key)
  losses = ol.SEQUENCES[sequence](k_seq, n_steps, n_actions, horizon)
  eta = ol.tuned_eta(horizon, n_actions)
  plays = (ol.hedge(losses, eta), ol.ftpl(k_ftpl, losses, eta, noise=noise, n_samples=n_samples), ol.ftl(losses))
  return jnp.stack([ol.regret(losses, p) for p in plays])


def run_regret(cfg) -> np.ndarray:
  """Regrets `[algo, sequence, seed, T]`: one compile for every sequence and horizon (padded to
  T_max, `lax.map` over T, vmap over seeds); the same keys at every T, so random prefixes are shared."""
  ts = horizons(cfg)
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)
  per_sequence = [
      functools.partial(_regrets, sequence=s, n_steps=int(ts[-1]), n_actions=_n_actions(cfg, s),
                        noise=cfg.ftpl_noise, n_samples=cfg.ftpl_samples)
      for s in cfg.sequences
  ]
  one = lambda key, h: jnp.stack([f(key, h) for f in per_sequence], 1)  # [algo, sequence]
  per_t = jax.jit(lambda hs: jax.lax.map(lambda h: jax.vmap(one, in_axes=(0, None))(keys, h), hs))
  return np.asarray(per_t(jnp.asarray(ts, jnp.result_type(float)))).transpose(2, 3, 1, 0)


def run_lsa(cfg, n_actions: int) -> dict[str, np.ndarray]:
  """Trains `lsa_seeds` LSA restarts on the regret-loss (vmapped) and scores them on held-out
  i.i.d. sequences: cosine to FTRL, implied η̂, regret-loss and mean regret; Hedge (tuned η) and FTRL
  with each restart's η̂ are scored on the same sequences."""
  lsa_cfg = ol.LSAConfig(n_actions=n_actions, horizon=cfg.lsa_horizon, n_train=cfg.lsa_n_train,
                         steps=cfg.lsa_steps, lr=cfg.lsa_lr, k=cfg.lsa_k, init_scale=cfg.lsa_init_scale)
  k_train, k_test = jax.random.split(jax.random.PRNGKey(cfg.seed + n_actions))
  params, curve = jax.vmap(functools.partial(ol.train_lsa, cfg=lsa_cfg))(jax.random.split(k_train, cfg.lsa_seeds))
  test = ol.sample_sequences(k_test, cfg.lsa_n_test, cfg.lsa_horizon, n_actions)

  def score(p, test):
    loss = functools.partial(ol.regret_loss, losses=test, k=cfg.lsa_k)
    cos, eta = ol.ftrl_alignment(p, test)
    return {"cos": cos, "eta": eta, "loss": loss(p), "ftrl_loss": loss(ol.ftrl_lsa(n_actions, eta)),
            "regret": jnp.mean(jax.vmap(lambda seq: ol.regret(seq, ol.lsa_policy(p, seq)))(test))}

  hedge = ol.ftrl_lsa(n_actions, ol.tuned_eta(cfg.lsa_horizon, n_actions))
  with_hedge = jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), params, hedge)  # one compile for both
  res = jax.device_get(jax.jit(jax.vmap(score, in_axes=(0, None)))(with_hedge, test))
  return {**{k: np.asarray(v[:-1]) for k, v in res.items()}, "curve": np.asarray(curve),
          "hedge_loss": float(res["loss"][-1]), "hedge_regret": float(res["regret"][-1])}


def run(cfg) -> dict[str, Any]:
  """Plot 1 regrets and bounds, Plot 2 LSA scores per K (`lsa_*` arrays `[len(lsa_n_actions), seeds]`)."""
  for sequence in cfg.sequences:
    if sequence not in ol.SEQUENCES:
      raise ValueError(f"unknown sequence {sequence!r}; use {tuple(ol.SEQUENCES)}")
  ts = horizons(cfg)
  out: dict[str, Any] = {
      "T": ts, "algos": ALGOS, "sequences": tuple(cfg.sequences), "regret": run_regret(cfg),
      "bound": np.stack([np.asarray(ol.hedge_bound(ts, _n_actions(cfg, s))) for s in cfg.sequences]),
      "lsa_n_actions": tuple(cfg.lsa_n_actions),
  }
  lsa = [run_lsa(cfg, k) for k in cfg.lsa_n_actions]
  for key in lsa[0]:
    out[f"lsa_{key}"] = np.stack([np.asarray(r[key]) for r in lsa])
  return out


def _fit(ts, y):
  """Slope fit with a seed-bootstrap CI when every regret is positive; of the median curve alone
  (CI collapsed to the point) when only the median is; None when the median is not positive."""
  window = ts >= ts.max() * 10.0 ** -1.5
  if np.all(y[:, window] > 0):
    return fit_slope(ts, y)
  med = np.median(y, 0)
  return fit_slope(ts, med) if np.all(med[window] > 0) else None


def slope_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """One row per (sequence, algorithm): slope over the last 1.5 decades of T [seed-bootstrap CI],
  the prediction, the median regret at T_max and, for Hedge, the worst regret/bound ratio."""
  rows = []
  ts = results["T"]
  for q, sequence in enumerate(results["sequences"]):
    for a, algo in enumerate(results["algos"]):
      y = results["regret"][a, q]
      fit = _fit(ts, y)
      predicted = 1.0 if (algo == "ftl" and sequence == "alternating") else (0.5 if algo != "ftl" else None)
      rows.append({
          "sequence": sequence, "algo": algo, "predicted": predicted,
          "slope": fit.slope if fit else float("nan"), "slope_lo": fit.ci_low if fit else float("nan"),
          "slope_hi": fit.ci_high if fit else float("nan"),
          "regret_tmax": float(np.median(y[:, -1])),
          "bound_ratio": float(np.max(y / results["bound"][q])),
      })
  return rows


def lsa_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """One row per K: the restart with the lowest held-out regret-loss, and the spread over restarts."""
  rows = []
  for i, k in enumerate(results["lsa_n_actions"]):
    best = int(np.argmin(results["lsa_loss"][i]))
    rows.append({
        "n_actions": k, "best": best, "cos": float(results["lsa_cos"][i, best]),
        "cos_median": float(np.median(results["lsa_cos"][i])),
        "frac_ftrl": float(np.mean(results["lsa_cos"][i] > 0.9)),
        "eta": float(results["lsa_eta"][i, best]),
        "loss": float(results["lsa_loss"][i, best]), "ftrl_loss": float(results["lsa_ftrl_loss"][i, best]),
        "hedge_loss": float(results["lsa_hedge_loss"][i]),
        "regret_ratio": float(results["lsa_regret"][i, best] / results["lsa_hedge_regret"][i]),
    })
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  ts = results["T"]
  regret = cli.Table(slope_rows(results), {
      "sequence": "{sequence}", "algorithm": "{algo}",
      "predicted slope": lambda r: "—" if r["predicted"] is None else format(r["predicted"], ".1f"),
      f"slope of Reg_T, T={ts[0]}..{ts[-1]} (last 1.5 dec.) [95% CI]": "{slope:+.3f} [{slope_lo:+.3f}, {slope_hi:+.3f}]",
      f"Reg at T={ts[-1]}": "{regret_tmax:.2f}", "max Reg / Hedge bound √(T ln K/2)": "{bound_ratio:.2f}",
  }, name="regret")
  lsa = cli.Table(lsa_rows(results), {
      "K": "{n_actions}", "cos(LSA, −Σℓ) best restart": "{cos:.3f}", "median cos": "{cos_median:.3f}",
      "restarts with cos > 0.9": "{frac_ftrl:.2f}", "η̂": "{eta:.2f}", "regret-loss LSA": "{loss:.3f}",
      "FTRL(η̂)": "{ftrl_loss:.3f}", "Hedge (tuned η)": "{hedge_loss:.3f}",
      "mean regret LSA / Hedge": "{regret_ratio:.3f}",
  }, name="lsa")
  return [regret, lsa]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """On the alternating sequence (where Hedge's √T bound is tight and FTL's regret is T/2 − 1/4): the
  regret slopes of Hedge, FTPL and FTL; and the cosine between the regret-loss LSA's logits and −Σℓ
  (the restart with the lowest held-out regret-loss; the smaller over the numbers of actions K)."""
  rows = {(r["sequence"], r["algo"]): r for r in slope_rows(results)}
  return {
      **{f"{algo}_alternating_slope": rows[("alternating", algo)]["slope"] for algo in ALGOS},
      "lsa_ftrl_cosine": min(r["cos"] for r in lsa_rows(results)),
  }


def plot(results: dict[str, Any], path: str | None = None):
  """Regret vs T per sequence (median over seeds, IQR shaded, Hedge's bound dashed) and the LSA's
  regret-loss training curves per restart, coloured by whether it reached FTRL (cos > 0.9)."""
  plt = cli.pyplot(path)

  ts, seqs = results["T"], results["sequences"]
  n_k = len(results["lsa_n_actions"])
  fig, axes = plt.subplots(1, len(seqs) + n_k, figsize=(4.0 * (len(seqs) + n_k), 4.0), squeeze=False)
  axes = axes[0]
  colors = {"hedge": "C0", "ftpl": "C1", "ftl": "C3"}
  for q, sequence in enumerate(seqs):
    ax = axes[q]
    for a, algo in enumerate(results["algos"]):
      y = results["regret"][a, q]
      pos = np.median(y, 0) > 0  # a regret that stays ≤ 0 has no place on a log axis
      cli.median_band(ax, ts[pos], np.maximum(y[:, pos], 1e-3), label=algo, color=colors[algo])
    ax.plot(ts, results["bound"][q], "k--", lw=1, label="√(T ln K/2)")
    ax.plot(ts, ts / 2, "k:", lw=1, label="T/2")
    cli.loglog(ax, "T", "regret (median over seeds)" if q == 0 else "", title=sequence, legend=q == 0)
  for i, k in enumerate(results["lsa_n_actions"]):
    ax = axes[len(seqs) + i]
    for s, curve in enumerate(results["lsa_curve"][i]):
      ax.plot(curve, color="C0" if results["lsa_cos"][i, s] > 0.9 else "C3", lw=1)
    ax.axhline(results["lsa_hedge_loss"][i], color="k", ls="--", lw=1, label="Hedge, tuned η (held out)")
    ax.plot([], [], color="C0", label="restart with cos > 0.9")
    ax.plot([], [], color="C3", label="restart with cos ≤ 0.9")
    ax.set(xlabel="Adam step", ylabel="regret-loss (train)", title=f"LSA on regret-loss, K={k}, T=25")
    ax.legend(fontsize=8)
  return cli.finish_figure(fig, path, title="Hedge/FTPL are no-regret (slope 1/2), FTL is not (slope 1); the "
                           "regret-loss LSA learns FTRL")
