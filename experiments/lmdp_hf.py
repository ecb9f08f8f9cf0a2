"""Latent MDPs: regret vs K, variance dependence and horizon-freeness (Zhou, Wang & Du, 2023).

Predicted (theory spec §16): regret Õ(√(Var* M Γ S A K)), i.e. log–log slope 0.5 in K; smaller on
near-deterministic LMDPs (small Var*) than on noisy ones; only polylogarithmic in H when the total
reward is ≤ 1, so the regret at H = 5 is within 1.5× of H = 3. Each seed draws one random LMDP per
variant (the same transitions and last-step rewards for every H); the two variants share one batch.

    python -m rljax.run --config configs/lmdp_hf.py:full --workdir results/lmdp_hf [--config.seeds=8]
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.envs import lmdp
from rljax.theory.tabular import lmdp_hf as lh
from experiments import cli
from experiments.slopes import regret_slopes

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
  noisy = results["variants"].index("noisy") if "noisy" in results["variants"] else 0
  rows = []
  for h, H in enumerate(results["horizons"]):
    for v, name in enumerate(results["variants"]):
      fit, whole = regret_slopes(k, results["regret"][h, v], 100, 30)
      at = float(np.median(results["regret"][h, v][:, j]))
      vs = results["v_star"][h, v]
      rows.append({
          "H": H, "variant": name, "slope": fit.slope, "slope_lo": fit.ci_low, "slope_hi": fit.ci_high,
          "slope_whole": whole.slope, "regret_cmp": at,
          "ratio_to_noisy": at / float(np.median(results["regret"][h, noisy][:, j])),
          "ratio_to_H0": at / float(np.median(results["regret"][0, v][:, j])),
          "v_star": float(vs.mean()), "var_star": float(np.mean(vs * (1 - vs))),
          "switches": float(np.median(results["switches"][h, v][:, -1])),
      })
  return rows


def tables(results: dict[str, Any]) -> list[cli.Table]:
  k_cmp = int(results["k"][_at(results, results["compare_at"])])
  return [cli.Table(trend_rows(results), {
      "H": "{H}", "variant": "{variant}", "regret slope, last 1.5 dec. [95% CI]": "{slope:.3f} [{slope_lo:.3f}, {slope_hi:.3f}]",
      "slope, K ≥ 100": "{slope_whole:.3f}", f"regret at K={k_cmp}": "{regret_cmp:.1f}",
      "÷ noisy (same H)": "{ratio_to_noisy:.2f}", "÷ smallest H": "{ratio_to_H0:.2f}", "mean V*": "{v_star:.3f}",
      "mean V*(1−V*)": "{var_star:.3f}", "switches": "{switches:.1f}"}, name="trends")]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """At the longest horizon: the regret slope of each variant; over the horizons: the largest ratio of
  the deterministic variant's regret to the noisy one's, and the largest ratio of the regret at the
  longest horizon to the shortest one's (at compare_at)."""
  H = results["horizons"][-1]
  rows = {(r["H"], r["variant"]): r for r in trend_rows(results)}
  return {
      "regret_slope_noisy": rows[(H, "noisy")]["slope"],
      "regret_slope_deterministic": rows[(H, "deterministic")]["slope"],
      "deterministic_vs_noisy": max(rows[(h, "deterministic")]["ratio_to_noisy"] for h in results["horizons"]),
      "horizon_ratio": max(rows[(H, v)]["ratio_to_H0"] for v in results["variants"]),
  }


def plot(results: dict[str, Any], path: str | None = None):
  """Left: regret vs K (log–log) per (H, variant) with a √K guide; right: regret at compare_at."""
  plt = cli.pyplot(path)

  k, j = results["k"], _at(results, results["compare_at"])
  fig, (ax_r, ax_b) = plt.subplots(1, 2, figsize=(11, 4.2))
  styles = ["-", "--", ":", "-."]
  for h, H in enumerate(results["horizons"]):
    for v, name in enumerate(results["variants"]):
      cli.median_band(ax_r, k, results["regret"][h, v], label=f"{name}, H={H}", color=f"C{v}", ls=styles[h % 4])
  anchor = np.median(results["regret"][-1, -1][:, 0])
  cli.power_guide(ax_r, k, anchor * np.sqrt(k[-1] / k[0]), 0.5, label="∝ √K", style="k-")
  cli.loglog(ax_r, "episodes K", "regret Σ_k (V* − V^π_k)", title="Latent MDP (M=2): regret (median, IQR)")
  width = 0.8 / len(results["horizons"])
  for h, H in enumerate(results["horizons"]):
    med = [np.median(results["regret"][h, v][:, j]) for v in range(len(results["variants"]))]
    ax_b.bar(np.arange(len(med)) + h * width, med, width, label=f"H={H}")
  ax_b.set_xticks(np.arange(len(results["variants"])) + width * (len(results["horizons"]) - 1) / 2,
                  results["variants"])
  ax_b.set(ylabel=f"regret at K={k[j]}", title="variance dependence and horizon-freeness")
  ax_b.grid(True, alpha=0.3)
  ax_b.legend(fontsize=8)
  return cli.finish_figure(fig, path)
