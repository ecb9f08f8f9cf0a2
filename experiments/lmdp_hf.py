"""Latent MDPs: regret vs K, variance dependence and horizon-freeness (Zhou, Wang & Du, 2023).

Predicted (theory spec §16): regret Õ(√(Var* M Γ S A K)), i.e. log–log slope 0.5 in K; smaller on
near-deterministic LMDPs (small Var*) than on noisy ones; only polylogarithmic in H when the total
reward is ≤ 1, so the regret at H = 5 is within 1.5× of H = 3. Each seed draws one random LMDP per
variant (the same transitions and last-step rewards for every H); the two variants share one batch.

    python -m experiments.lmdp_hf [--config=configs/lmdp_hf.py:full] [--config.seeds=8]
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.envs import lmdp
from rljax.theory.kernels.slopes import fit_slope
from rljax.theory.tabular import lmdp_hf as lh
from experiments import cli
from experiments.cli import load_results, save_results  # noqa: F401  (notebook and tests)

_run = jax.jit(lh.run, static_argnums=(1, 3))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _random_lmdps(keys, sizes: tuple, variants: tuple) -> lmdp.LMDPParams:
  per_variant = [jax.vmap(lambda k, v=v: lmdp.random_lmdp(k, *sizes, variant=v))(keys) for v in variants]
  return jax.tree.map(lambda *xs: jnp.concatenate(xs), *per_variant)


def make_envs(cfg, horizon: int) -> lmdp.LMDPParams:
  """`[variants·seeds]` random LMDPs; the keys do not depend on H, so H only deepens the episode."""
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed + 1), cfg.seeds)
  return _random_lmdps(keys, (cfg.n_contexts, cfg.n_states, cfg.n_actions, horizon), tuple(cfg.variants))


def run(cfg) -> dict[str, Any]:
  """Regret and switches `[H, variant, seeds, checkpoints]`, V* `[H, variant, seeds]`."""
  V, S = len(cfg.variants), cfg.seeds
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), S)
  out = {"regret": [], "switches": [], "v_star": []}
  for H in cfg.horizons:
    lcfg = lh.LmdpConfig(cfg.n_contexts, cfg.n_states, cfg.n_actions, H, cfg.n_episodes, delta=cfg.delta,
                         bonus_scale=cfg.bonus_scale)
    trace = jax.device_get(_run(jnp.concatenate([keys] * V), lcfg, make_envs(cfg, H), cfg.n_checkpoints))
    out["regret"].append(np.asarray(trace.regret).reshape(V, S, -1))
    out["switches"].append(np.asarray(trace.switches).reshape(V, S, -1))
    out["v_star"].append(np.asarray(trace.v_star).reshape(V, S))
  return {"k": np.asarray(trace.episodes), "horizons": tuple(cfg.horizons), "variants": tuple(cfg.variants),
          "compare_at": cfg.compare_at, **{key: np.stack(v) for key, v in out.items()}}


def _at(results, K):
  return int(np.searchsorted(results["k"], min(K, results["k"][-1])))


def trend_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Per (H, variant): regret slope (last 1.5 decades, and over all K ≥ 100), regret at compare_at,
  its ratio to the noisy variant at the same H and to the smallest H for the same variant,
  mean V* and mean V*(1 − V*) (the return variance of π* for 0/1 returns), switches at K."""
  k, j = results["k"], _at(results, results["compare_at"])
  idx = np.unique(np.searchsorted(k, np.logspace(2, np.log10(k[-1]), 30)).clip(0, k.size - 1))
  noisy = results["variants"].index("noisy") if "noisy" in results["variants"] else 0
  rows = []
  for h, H in enumerate(results["horizons"]):
    for v, name in enumerate(results["variants"]):
      reg = np.maximum(results["regret"][h, v][:, idx], 1e-9)
      fit = fit_slope(k[idx], reg)
      at = float(np.median(results["regret"][h, v][:, j]))
      vs = results["v_star"][h, v]
      rows.append({
          "H": H, "variant": name, "slope": fit.slope, "slope_lo": fit.ci_low, "slope_hi": fit.ci_high,
          "slope_whole": fit_slope(k[idx], reg, last_decades=None).slope, "regret_cmp": at,
          "ratio_to_noisy": at / float(np.median(results["regret"][h, noisy][:, j])),
          "ratio_to_H0": at / float(np.median(results["regret"][0, v][:, j])),
          "v_star": float(vs.mean()), "var_star": float(np.mean(vs * (1 - vs))),
          "switches": float(np.median(results["switches"][h, v][:, -1])),
      })
  return rows


def format_table(rows: list[dict[str, Any]], k_cmp: int) -> str:
  head = (f"| H | variant | regret slope, last 1.5 dec. [95% CI] | slope, K ≥ 100 | regret at K={k_cmp} "
          f"| ÷ noisy (same H) | ÷ smallest H | mean V* | mean V*(1−V*) | switches |\n"
          "|---|---|---|---|---|---|---|---|---|---|")
  body = [f"| {r['H']} | {r['variant']} | {r['slope']:.3f} [{r['slope_lo']:.3f}, {r['slope_hi']:.3f}] "
          f"| {r['slope_whole']:.3f} | {r['regret_cmp']:.1f} | {r['ratio_to_noisy']:.2f} | {r['ratio_to_H0']:.2f} "
          f"| {r['v_star']:.3f} | {r['var_star']:.3f} | {r['switches']:.1f} |" for r in rows]
  return "\n".join([head, *body])


def plot(results: dict[str, Any], path: str | None = None):
  """Left: regret vs K (log–log) per (H, variant) with a √K guide; right: regret at compare_at."""
  plt = cli.pyplot(path)

  k, j = results["k"], _at(results, results["compare_at"])
  fig, (ax_r, ax_b) = plt.subplots(1, 2, figsize=(11, 4.2))
  styles = ["-", "--", ":", "-."]
  for h, H in enumerate(results["horizons"]):
    for v, name in enumerate(results["variants"]):
      y = results["regret"][h, v]
      lo, med, hi = np.quantile(y, [0.25, 0.5, 0.75], axis=0)
      ax_r.plot(k, med, styles[h % 4], color=f"C{v}", label=f"{name}, H={H}")
      ax_r.fill_between(k, lo, hi, color=f"C{v}", alpha=0.1)
  anchor = np.median(results["regret"][-1, -1][:, 0])
  ax_r.plot(k, anchor * np.sqrt(k / k[0]), "k-", lw=0.8, label="∝ √K")
  ax_r.set(xscale="log", yscale="log", xlabel="episodes K", ylabel="regret Σ_k (V* − V^π_k)",
           title="Latent MDP (M=2): regret (median, IQR)")
  width = 0.8 / len(results["horizons"])
  for h, H in enumerate(results["horizons"]):
    med = [np.median(results["regret"][h, v][:, j]) for v in range(len(results["variants"]))]
    ax_b.bar(np.arange(len(med)) + h * width, med, width, label=f"H={H}")
  ax_b.set_xticks(np.arange(len(results["variants"])) + width * (len(results["horizons"]) - 1) / 2,
                  results["variants"])
  ax_b.set(ylabel=f"regret at K={k[j]}", title="variance dependence and horizon-freeness")
  for ax in (ax_r, ax_b):
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  return cli.finish_figure(fig, path)


def main(cfg) -> None:
  cli.prepare(cfg)
  print(f"LMDP M={cfg.n_contexts} S={cfg.n_states} A={cfg.n_actions} H={tuple(cfg.horizons)} K={cfg.n_episodes} "
        f"seeds={cfg.seeds} bonus_scale={cfg.bonus_scale}")
  results = run(cfg)
  table = format_table(trend_rows(results), int(results["k"][_at(results, cfg.compare_at)]))
  save_results(results, os.path.join(cfg.out_dir, "results.npz"))
  cli.report(cfg.out_dir, table, table_file="trends.md", figure_file="lmdp_hf.png",
             plot_fn=lambda path: plot(results, path))


if __name__ == "__main__":
  cli.launch(main, "lmdp_hf.py", "cpu (default), full or smoke")
