"""LSPO (Xu, Gu, Yu, Wu, Wang, "Learning Strategic Language Agents in the Werewolf Game", ICML 2025)
at CPU scale: its solver on Kuhn poker and its loop on a cheap-talk game over 200 utterances.

Predicted: (1) CFR+ drives the exploitability of its linear average to 0 on Kuhn poker at about
1/T (log–log slope ≈ −1), with game value −1/18 for player 0; (2) on the cheap-talk game the
utterance policy's payoff against a best-responding receiver rises with every LSPO iteration
towards the equilibrium value and beats direct policy gradient over all utterances at the same
number of sampled games. Everything per seed is one jitted function, vmapped over seeds.

    python -m rljax.run --config configs/lspo.py:full --workdir results/lspo
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from rljax.theory.games import cfr, kuhn, lspo
from rljax.theory.games import cheap_talk as ct
from experiments.slopes import fit_slope
from experiments import cli


def lspo_config(cfg) -> lspo.LSPOConfig:
  return lspo.LSPOConfig(
      n_states=cfg.n_states, n_candidates=cfg.n_candidates, n_clusters=cfg.n_clusters,
      kmeans_iters=cfg.kmeans_iters, cfr_iters=cfg.cfr_iters, dpo_steps=cfg.dpo_steps,
      dpo_lr=cfg.dpo_lr, beta=cfg.beta, margin=cfg.margin,
  )


def games_per_iteration(cfg) -> int:
  """Sampled games LSPO evaluates per iteration: every candidate vs each receiver card and action."""
  return cfg.n_states * cfg.n_candidates * (cfg.n_types - 1) * 2


def _one_seed(key, cfg):
  k_game, k_lspo, k_rl = jax.random.split(key, 3)
  game, _, _ = ct.make_cheap_talk_game(k_game, cfg.n_utterances, cfg.n_types, cfg.emb_dim)
  metrics = lspo.run_lspo(k_lspo, game, lspo_config(cfg), cfg.lspo_iters)
  rl = jax.vmap(lambda lr: lspo.direct_policy_gradient(
      k_rl, game, steps=cfg.lspo_iters * cfg.rl_steps_per_iter,
      batch=max(games_per_iteration(cfg) // cfg.rl_steps_per_iter, 1), lr=lr,
      record_every=cfg.rl_steps_per_iter,
  ))(jax.numpy.asarray(cfg.rl_lrs, game.stakes.dtype))
  return metrics, rl


def run(cfg) -> dict[str, Any]:
  """Kuhn CFR+ curve, the cheap-talk equilibrium value, LSPO payoffs `[S, I+1]` and direct RL
  payoffs `[S, L, I+1]` (one per learning rate in `cfg.rl_lrs`)."""
  kuhn_avg, kuhn_curve = jax.jit(cfr.cfr_plus, static_argnums=1)(kuhn.make_kuhn_poker(), cfg.kuhn_iters)
  kuhn_value = cfr.game_value(kuhn.make_kuhn_poker(), kuhn_avg)

  game0, _, _ = ct.make_cheap_talk_game(jax.random.PRNGKey(0), cfg.n_utterances, cfg.n_types, cfg.emb_dim)
  true_efg, _ = ct.true_game(game0)  # the meaning-level game does not depend on the embeddings
  eq_avg, eq_curve = jax.jit(cfr.cfr_plus, static_argnums=1)(true_efg, cfg.equilibrium_cfr_iters)

  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)
  metrics, rl = jax.device_get(jax.jit(jax.vmap(lambda k: _one_seed(k, cfg)))(keys))
  start = np.asarray(metrics.pop("payoff0"))[:, None]
  return {
      "kuhn_iters": np.arange(1, cfg.kuhn_iters + 1),
      "kuhn_exploitability": np.asarray(kuhn_curve),
      "kuhn_value": float(kuhn_value),
      "equilibrium_value": float(cfr.game_value(true_efg, eq_avg)),
      "equilibrium_exploitability": float(eq_curve[-1]),
      "iteration": np.arange(cfg.lspo_iters + 1),
      "games": np.arange(cfg.lspo_iters + 1) * games_per_iteration(cfg),
      "lspo_payoff": np.concatenate([start, np.asarray(metrics.pop("payoff"))], 1),
      "rl_lrs": tuple(cfg.rl_lrs),
      "rl_payoff": np.concatenate([np.repeat(start[:, None], len(cfg.rl_lrs), 1), np.asarray(rl)], 2),
      **{f"lspo_{k}": np.asarray(v) for k, v in metrics.items()},
  }


def slope_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """The CFR+ exploitability slope on Kuhn poker (last 1.5 decades), its final value, the game value and
  the cheap-talk game's equilibrium value."""
  x, y = results["kuhn_iters"], results["kuhn_exploitability"]
  fit = fit_slope(x, y)
  return [{"predicted_slope": -1.0, "slope": fit.slope, "final": float(y[-1]), "iters": int(x[-1]),
           "value": results["kuhn_value"], "predicted_value": kuhn.GAME_VALUE,
           "equilibrium_value": results["equilibrium_value"]}]


def trend_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per iteration: median (and IQR) over seeds of the payoff vs a best response for LSPO and each
  direct-RL learning rate, and the fraction of seeds where LSPO beats every learning rate."""
  rows = []
  best_rl = np.max(results["rl_payoff"], axis=1)  # [S, I+1]: the best learning rate, seed by seed
  for i, g in zip(results["iteration"], results["games"]):
    row = {"iteration": int(i), "games": int(g)}
    curves = {"lspo": results["lspo_payoff"][:, i]}
    curves.update({f"rl_{lr:g}": results["rl_payoff"][:, j, i] for j, lr in enumerate(results["rl_lrs"])})
    for name, y in curves.items():
      row[name], row[f"{name}_q25"], row[f"{name}_q75"] = np.median(y), *np.quantile(y, [0.25, 0.75])
    row["lspo_beats_rl"] = float(np.mean(results["lspo_payoff"][:, i] > best_rl[:, i]))
    rows.append(row)
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  iters = int(results["kuhn_iters"][-1])
  solver = cli.Table(slope_rows(results), {
      f"Kuhn CFR+ exploitability slope (last 1.5 decades of T ≤ {iters}), predicted −1": "{slope:+.3f}",
      f"Kuhn exploitability at T = {iters}, predicted < 1e-3": "{final:.2e}",
      "Kuhn value of the average strategy (player 0)": "{value:+.5f}", "predicted value": "{predicted_value:+.5f}",
      "cheap-talk equilibrium value (sender)": "{equilibrium_value:+.4f}"}, name="solver")
  curve = lambda n: lambda r: f"{r[n]:+.4f} [{r[n + '_q25']:+.4f}, {r[n + '_q75']:+.4f}]"
  columns = {"LSPO iteration": "{iteration}", "sampled games": "{games}", "LSPO [IQR]": curve("lspo")}
  columns.update({f"direct RL, lr {lr:g} [IQR]": curve(f"rl_{lr:g}") for lr in results["rl_lrs"]})
  columns["P(LSPO > best RL)"] = "{lspo_beats_rl:.2f}"
  return [solver, cli.Table(trend_rows(results), columns, name="payoff")]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """Kuhn CFR+'s value and final exploitability; the smallest per-iteration change of LSPO's median
  payoff; the fraction of seeds where LSPO beats direct RL's best learning rate at the last iteration."""
  med = np.median(results["lspo_payoff"], 0)
  return {
      "kuhn_value": results["kuhn_value"],
      "kuhn_exploitability": float(results["kuhn_exploitability"][-1]),
      "lspo_min_step": float(np.min(np.diff(med))),
      "lspo_beats_rl": trend_rows(results)[-1]["lspo_beats_rl"],
  }


def plot(results: dict[str, Any], path: str | None = None):
  """Left: Kuhn CFR+ exploitability vs T (log–log, 1/T guide). Right: payoff vs a best response per
  iteration, LSPO vs direct RL (median, IQR), with the equilibrium value."""
  plt = cli.pyplot(path)

  fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 4.2))
  x, y = results["kuhn_iters"], results["kuhn_exploitability"]
  a0.plot(x, y, label="CFR+ (linear average)")
  cli.power_guide(a0, x, y[-1], -1.0, label="∝ 1/T", style="k--")
  a0.axhline(1e-3, color="gray", lw=0.8, ls=":")
  cli.loglog(a0, "CFR+ iterations T", "exploitability (NashConv / 2)", title="Kuhn poker")
  it = results["iteration"]
  curves = [(results["lspo_payoff"], "LSPO (k-means → CFR+ → DPO)", "C0")]
  curves += [(results["rl_payoff"][:, j], f"direct policy gradient, lr {lr:g}", f"C{3 + j}")
             for j, lr in enumerate(results["rl_lrs"])]
  for p, label, col in curves:
    cli.median_band(a1, it, p, label=label, color=col, ls="o-")
  a1.axhline(results["equilibrium_value"], color="k", ls="--", lw=1, label="equilibrium value")
  a1.set(xlabel=f"iteration ({results['games'][1]} sampled games each)",
         ylabel="payoff vs best-responding receiver", title="Cheap-talk game, 200 utterances")
  a1.legend(fontsize=8)
  a1.grid(True, alpha=0.3)
  return cli.finish_figure(fig, path)
