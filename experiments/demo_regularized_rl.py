"""Demonstration-regularised RL: episodes-to-ε against the number of demonstrations N^E
(Tiapkin et al., "Demonstration-Regularized RL", ICLR 2024, arXiv 2310.17303).

Predicted [abstract]: Õ(Poly(S,A,H)/(ε²N^E)) episodes, i.e. slope −1 of episodes-to-ε against N^E on
log–log axes, for demonstration-regularised RL (BC policy as the KL anchor of optimistic
KL-regularised VI, λ ∝ εN^E); UCBVI without demonstrations is flat in N^E; pure BC needs no
episodes but its suboptimality only shrinks with N^E. RLHF variant: a Bradley–Terry reward from m
preferences between π^BC trajectories plus KL-regularised planning stays near-optimal without any
pessimism, while greedy planning on the same reward does not. Every run is vmapped over seeds
(each seed its own random MDP, expert demonstrations and learner) and over N^E.

    python -m rljax.run --config configs/demo_regularized_rl.py:full --workdir results/demo_regularized_rl
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.tabular import demo_regularized_rl as tm
from rljax.theory.kernels import vi
from experiments.slopes import fit_slope
from experiments import cli


def demo_sizes(cfg) -> np.ndarray:
  return 2 ** np.arange(cfg.log2_demos_min, cfg.log2_demos_max + 1)


def lam_rule(eps, n_demos, cfg):
  """λ(N^E) = ε / (2·kl_constant·(A−1)SH/N^E): then λ·KL(π^E‖π^BC) ≤ ε/2 whenever the BC bound holds."""
  return eps * n_demos / (2.0 * cfg.kl_constant * (cfg.n_actions - 1) * cfg.n_states * cfg.horizon)


def _per_seed(key, cfg) -> dict[str, jax.Array]:
  S, A, H = cfg.n_states, cfg.n_actions, cfg.horizon
  sizes = jnp.asarray(demo_sizes(cfg))
  n_max = int(max(demo_sizes(cfg).max(), cfg.rlhf_demos))
  k_mdp, k_demo, k_rl, k_ucb, k_hf = jax.random.split(key, 5)
  mdp = tm.random_mdp(k_mdp, S, A, H, concentration=cfg.concentration, reward_density=cfg.reward_density)
  opt = vi.value_iteration(mdp.P, mdp.r)
  v_star = mdp.s0 @ opt.v[0]
  eps = cfg.eps_frac * v_star
  expert = vi.deterministic_log_policy(opt.policy, A)
  # One stream of expert demonstrations; N^E uses its first N^E episodes.
  per_demo = jax.vmap(lambda t: tm.visit_counts(t, S, A))(tm.sample_trajectories(k_demo, mdp, expert, n_max))

  def demos(n):
    return jnp.einsum("n,nhsa->hsa", (jnp.arange(n_max) < n).astype(per_demo.dtype), per_demo)

  def with_demos(n):
    lam = lam_rule(eps, n, cfg)
    m = tm.demo_regularized_rl(k_rl, mdp, demos(n), lam=lam, episodes=cfg.episodes, kappa=cfg.kappa,
                               bonus_scale=cfg.bonus_scale)
    log_bc = tm.behavior_cloning(demos(n), kappa=cfg.kappa)
    return {
        "episodes_demo": tm.episodes_to_epsilon(m["gap"], eps),
        "episodes_demo_certified": tm.episodes_to_epsilon(m["reg_gap"], eps / 2),
        "final_gap": m["gap"][-1],
        "bc_gap": v_star - tm.policy_return(mdp, log_bc),
        "lam": lam,
    }

  out = jax.vmap(with_demos)(sizes)
  u = tm.ucbvi(k_ucb, mdp, cfg.episodes, bonus_scale=cfg.bonus_scale)
  out["episodes_ucbvi"] = tm.episodes_to_epsilon(u["gap"], eps)
  hf_lam = lam_rule(cfg.rlhf_eps_frac * v_star, cfg.rlhf_demos, cfg)
  pairs = jnp.asarray(cfg.rlhf_pairs)
  hf = jax.vmap(lambda m: tm.demo_regularized_rlhf(k_hf, mdp, demos(cfg.rlhf_demos), n_pairs=int(max(cfg.rlhf_pairs)),
                                                   lam=hf_lam, kappa=cfg.kappa, ridge=cfg.rlhf_ridge, n_used=m))(pairs)
  out.update({f"rlhf_gap_{k}": v / v_star for k, v in hf.items()})
  out["eps"] = eps
  return out


def run(cfg) -> dict[str, Any]:
  """All seeds at once; returns numpy arrays with seeds on axis 0 (`[S, N]`, `[S]`, `[S, M]`)."""
  keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)
  res = jax.device_get(jax.jit(jax.vmap(lambda k: _per_seed(k, cfg)))(keys))
  out = {k: np.asarray(v) for k, v in res.items()}
  out.update(n_demos=demo_sizes(cfg), rlhf_pairs=np.asarray(cfg.rlhf_pairs), rlhf_demos=cfg.rlhf_demos,
             episodes=cfg.episodes, fit_decades=cfg.fit_decades)
  return out


def trend_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Log–log slopes against N^E (median over seeds, bootstrap 95% CI) and medians per N^E."""
  n = results["n_demos"]
  rows = []
  for name, key in (("demo-regularised RL", "episodes_demo"),
                    ("demo-reg. RL, certified (V*_λ gap ≤ ε/2)", "episodes_demo_certified"),
                    ("pure BC suboptimality", "bc_gap")):
    # one episode is the resolution of episodes-to-ε: "already ε-optimal" counts as 1
    y = np.maximum(results[key], 1e-12 if key == "bc_gap" else 1)
    fit = fit_slope(n, y, last_decades=results["fit_decades"])
    rows.append({"quantity": name, "slope": fit.slope, "lo": fit.ci_low, "hi": fit.ci_high,
                 "median": np.median(results[key], axis=0)})
  rows.append({"quantity": "UCBVI (no demos)", "slope": 0.0, "lo": 0.0, "hi": 0.0,
               "median": np.full(len(n), np.median(results["episodes_ucbvi"]))})
  return rows


def rlhf_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Median normalised gaps (V* − V^π)/V* of the RLHF variant per number of preference pairs m."""
  return [{"pairs": int(m), **{k: float(np.median(results[f"rlhf_gap_{k}"][:, i])) for k in ("reg", "greedy", "bc")}}
          for i, m in enumerate(results["rlhf_pairs"])]


def tables(results: dict[str, Any]) -> list[cli.Table]:
  """The slopes against N^E with the medians per N^E, and the RLHF variant's gaps per m."""
  n = results["n_demos"]
  rows = [{**{k: v for k, v in r.items() if k != "median"}, **{f"n{k}": float(v) for k, v in zip(n, r["median"])}}
          for r in trend_rows(results)]
  trends = cli.Table(rows, {"quantity": "{quantity}", "slope vs N^E [95% CI]": "{slope:+.2f} [{lo:+.2f}, {hi:+.2f}]",
                            **{f"N^E={k}": f"{{n{k}:.3g}}" for k in n}}, name="trends")
  rlhf = cli.Table(rlhf_rows(results), {
      "RLHF: pairs m": "{pairs}", "gap, KL-regularised planning": "{reg:.4f}",
      "gap, greedy planning": "{greedy:.4f}", "gap, π^BC": "{bc:.4f}"}, name="rlhf")
  return [trends, rlhf]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """The log–log slope of episodes-to-ε against N^E, and the RLHF variant's gap with KL-regularised
  planning ÷ with greedy planning on the same BT reward, at the largest number of pairs m."""
  last = rlhf_rows(results)[-1]
  return {"episodes_slope": trend_rows(results)[0]["slope"], "rlhf_reg_vs_greedy": last["reg"] / last["greedy"]}


def plot(results: dict[str, Any], path: str | None = None):
  """Left: episodes-to-ε against N^E (median, IQR) with a ∝ 1/N^E guide. Middle: pure-BC gap.
  Right: the RLHF variant's gaps against the number of preference pairs."""
  plt = cli.pyplot(path)

  n = results["n_demos"]
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
  ax = axes[0]
  for key, label, col in (("episodes_demo", "demo-regularised RL", "C0"),
                          ("episodes_demo_certified", "demo-reg. RL, certified", "C2"),
                          ("episodes_ucbvi", "UCBVI (no demos)", "C3")):
    y = results[key] if results[key].ndim == 2 else np.repeat(results[key][:, None], len(n), 1)
    cli.median_band(ax, n, np.maximum(y, 0.5), label=label, color=col, ls="o-")
  med = np.median(results["episodes_demo"], 0)
  cli.power_guide(ax, n, med[len(n) // 2] * n[len(n) // 2] / n[-1], -1.0, label=r"$\propto 1/N^E$", style="k--")
  ax.axhline(results["episodes"], color="gray", lw=0.8, ls=":", label="budget T (censored)")
  cli.loglog(ax, r"$N^E$ (expert demonstrations)", "episodes until ε-optimal")
  ax = axes[1]
  y = results["bc_gap"] / results["eps"][:, None]
  ax.plot(n, np.median(y, 0), "o-", label=r"$V^\star - V^{\pi^{BC}}$ (in units of ε)")
  ax.axhline(1.0, color="k", ls="--", lw=1, label="ε")
  cli.loglog(ax, r"$N^E$", "", title="pure behaviour cloning")
  ax = axes[2]
  m = results["rlhf_pairs"]
  for key, label in (("rlhf_gap_reg", "KL-regularised planning (no pessimism)"),
                     ("rlhf_gap_greedy", r"greedy planning on $\hat r$"), ("rlhf_gap_bc", r"$\pi^{BC}$")):
    ax.plot(m, np.median(results[key], 0), "o-", label=label)
  ax.set(xscale="log", xlabel="preference pairs m", ylabel=r"$(V^\star - V^\pi)/V^\star$",
         title=rf"RLHF variant ($N^E$ = {results['rlhf_demos']})")
  ax.legend(fontsize=8)
  return cli.finish_figure(fig, path, title="Demonstration-regularised RL on random tabular MDPs (median over seeds)")
