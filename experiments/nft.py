"""NFT: maximum likelihood on positives and on an implicit negative policy, against GRPO, RFT and DAPO's
clip-higher, off-policy, on the toy suite (Chen et al. 2025).

Chen, Zheng, Zhu, Chen et al., "Bridging Supervised Learning and Reinforcement Learning in Math
Reasoning" (arXiv 2505.18116). Question: does Negative-aware Fine-Tuning (`rljax.losses.nft`), a
supervised likelihood objective on self-generated, verifier-labelled answers, match GRPO, and beat
rejection-sampling fine-tuning (RFT: the same objective without the negative term)?

Testbed (`rljax.training.testbed`): a small decoder SFT'd on the suite's traces with a fraction of wrong
answers; from that start, per seed, `rl.steps` iterations of each arm, every rollout batch split into
`minibatches` group-aligned minibatches with one update each (off-policy after the first):

  nft    the released NVlabs/NFT scripts' values: ω = 1 − r̂, λ⁻ = 1, ε⁻ = 1, groups with r̂ ∈ {0, 1} masked
  grpo   PPO-clip on group-std advantages, per-response token mean, no KL
  rft    NFT with λ⁻ = 0: likelihood on the correct answers only (the scripts' RFT)
  dapo   clip-higher (ε_high = 0.28), token-mean, dynamic sampling

Held-out accuracy, rollout entropy and length every `rl.eval_every` steps. Before training, the on-policy
identity on the decoder itself: on one rollout batch of the SFT start, the parameter gradients of NFT
with ω = sqrt((1 − r̂)/r̂) and of GRPO with population-std advantages (and of the default NFT, ω = 1 − r̂,
and Dr. GRPO) agree to float32 precision.

    python -m rljax.run --config configs/nft.py:cpu --workdir results/nft
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from experiments import cli
from experiments.kdrl import arm_rows, plot_curves, train_arms
from rljax import algorithms
from rljax.training import MetricsWriter
from rljax.training.step import make_optimizer
from rljax.training.testbed import Testbed, accuracy

HEADLINE_ARMS = ("nft", "grpo", "rft")  # what `headline` compares


def arm_preset(cfg, name: str) -> ml_collections.ConfigDict:
  """`cfg.arms[name]`: its preset with the overrides merged in, one prompt batch per step; validated."""
  if name not in cfg.arms:
    raise KeyError(f"unknown arm {name!r}; configured: {', '.join(cfg.arms)}")
  arm = cfg.arms[name]
  p = algorithms.get(arm.preset)
  algorithms.override(p, arm.overrides, where=f"arms.{name}.overrides")
  p.dynamic_sampling.max_num_gen_batches = 1
  algorithms.resolve(p)
  if p.loss == "nft":  # the kernel validates its keywords only when called: check them now
    from rljax.losses.nft import nft_loss
    z = jnp.zeros((2, 1))
    nft_loss(z, z, jnp.ones((2, 1), bool), jnp.array([0.0, 1.0]), jnp.full((2,), 0.5), **p.loss_kwargs.to_dict())
  return p


def identity_presets() -> dict[str, tuple[ml_collections.ConfigDict, ml_collections.ConfigDict]]:
  """Pairs of presets whose on-policy gradients are equal (spec §5): NFT with `weighting="grpo"` and GRPO
  with population-std advantages (eps 0), under one aggregation; the default NFT (ω = 1 − r̂) and Dr. GRPO.
  Both members mask the groups with r̂ ∈ {0, 1} (dynamic sampling), where NFT's clipped r̂ would
  otherwise leave a gradient and GRPO's advantages are 0."""
  def prep(name, **fields):
    p = algorithms.get(name)
    algorithms.override(p, dict(kl=dict(coef=0.0, where="none"),
                                dynamic_sampling=dict(enabled=True, max_num_gen_batches=1), **fields), where=name)
    return p

  nft_grpo = prep("nft", agg="token-mean", loss_kwargs=dict(weighting="grpo"))
  grpo = prep("grpo", agg="token-mean", advantage_kwargs=dict(eps=0.0, std_ddof=0))
  return {"nft(ω=√((1−r̂)/r̂)) vs grpo": (nft_grpo, grpo), "nft(ω=1−r̂) vs dr_grpo": (prep("nft"), prep("dr_grpo"))}


def identity_check(tb: Testbed, start, n_prompts: int, *, pairs=None, reward_fn=None) -> list[dict[str, Any]]:
  """On one rollout batch of `start` (θ = θ_old): ‖g_a − g_b‖ / ‖g_b‖ of the parameter gradients of each
  pair of presets (default `identity_presets()`), and the fraction of responses in informative groups.
  `reward_fn` replaces the suite's verifier (`Testbed.online`)."""
  g = int(tb.cfg.rl.group_size)
  prompts = tb.problems(jax.random.PRNGKey(12345), n_prompts)
  key = jax.random.PRNGKey(0)
  rows = []
  for label, pair in (identity_presets() if pairs is None else pairs).items():
    grads, keep = [], None
    for preset in pair:
      algo = tb.online(preset, reward_fn=reward_fn)
      model = tb.model(0)
      nnx.update(model, start)
      graphdef, state = algo.init_state(model, make_optimizer(1e-3), rng=key)
      batch = algo.collect(state, prompts.ids, prompts.mask, key)  # same parameters and key: same tokens
      f = lambda p, b: algo.loss_fn(nnx.merge(graphdef, p), b, key, state.extra)[0]
      grads.append(jax.jit(jax.grad(f))(state.params, batch))
      keep = batch["keep"]
    flat = [np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(gr)]) for gr in grads]
    rel = float(np.linalg.norm(flat[0] - flat[1]) / np.linalg.norm(flat[1]))
    rows.append({"pair": label, "rel_diff": rel, "grad_norm": float(np.linalg.norm(flat[1])),
                 "informative": float(jnp.mean(keep)), "responses": int(keep.size), "group_size": g})
  return rows


def run(cfg) -> dict[str, Any]:
  """SFT, the on-policy identity check, then every arm × seed off-policy from the SFT start."""
  t0 = time.perf_counter()
  missing = [a for a in HEADLINE_ARMS if a not in cfg.arm_names]
  if missing:
    raise ValueError(f"`arm_names` must include {missing}: the headline compares them.")
  presets = {name: arm_preset(cfg, name) for name in cfg.arm_names}  # fail before any compute
  for field in ("minibatches", "epochs", "identity_prompts"):
    if isinstance(cfg[field], bool) or not isinstance(cfg[field], int) or cfg[field] < 1:
      raise ValueError(f"`{field}` must be a positive int, got {cfg[field]!r}.")
  if int(cfg.rl.prompts) % cfg.minibatches:
    raise ValueError(f"`minibatches` ({cfg.minibatches}) must divide `rl.prompts` ({cfg.rl.prompts}).")
  tb = Testbed(cfg)
  writer = MetricsWriter(cfg.out_dir)
  start = tb.sft(writer)
  identity = identity_check(tb, start, int(cfg.identity_prompts))
  arms = {name: (p, {"minibatches": int(cfg.minibatches), "epochs": int(cfg.epochs)}) for name, p in presets.items()}
  curves = train_arms(tb, writer, start, arms, cfg.rl.seeds)
  writer.close()
  wall = time.perf_counter() - t0
  print(f"wall time {wall:.0f} s")
  k = int(cfg.eval.k)
  return {"arms": list(cfg.arm_names), "seeds": list(cfg.rl.seeds), "steps": int(cfg.rl.steps), "k": k,
          "curves": curves, "start": accuracy(tb.eval_fn(start), k), "identity": identity, "wall_s": wall}


def _entropy_drop(results, name: str) -> float:
  """Mean over seeds of the arm's last logged rollout entropy ÷ its first."""
  cs = [results["curves"][f"{name}/seed{s}"]["entropy"] for s in results["seeds"]]
  return float(np.mean([c[-1][1] / c[0][1] for c in cs]))


def tables(results: dict[str, Any]) -> list[cli.Table]:
  k, s = results["k"], results["start"]
  rows = [{**r, "entropy_drop": _entropy_drop(results, r["arm"])} for r in arm_rows(results)]
  main = cli.Table(rows, {
      "arm": "{arm}", "seeds": "{seeds}",
      f"held-out mean@{k}, final": "{final:.3f} ± {final_sd:.3f}",
      "early (first third)": "{early:.3f} ± {early_sd:.3f}",
      "greedy, final": "{greedy:.3f} ± {greedy_sd:.3f}",
      "rollout entropy, final": "{entropy:.3f} ± {entropy_sd:.3f}", "entropy final ÷ first": "{entropy_drop:.3f}",
      "length": "{length:.2f}", "rollout reward": "{reward:.3f}"},
      title=(f"held-out accuracy after {results['steps']} off-policy RL steps (mean ± sd over seeds); SFT start "
             f"mean@{k} {s['mean']:.3f}, greedy {s['greedy']:.3f}"))
  ident = cli.Table(results["identity"], {
      "pair": "{pair}", "‖g_a − g_b‖ / ‖g_b‖": "{rel_diff:.2e}", "‖g_b‖": "{grad_norm:.3e}",
      "informative responses": "{informative:.2f} of {responses}"},
      title="on-policy gradient identity on the decoder (one rollout batch of the SFT start, θ = θ_old)",
      name="identity")
  return [main, ident]


def headline(results: dict[str, Any]) -> dict[str, float]:
  """NFT − GRPO and NFT − RFT final held-out mean@k; RFT's entropy drop ÷ NFT's; the identity's worst
  relative gradient difference."""
  r = {row["arm"]: row for row in arm_rows(results)}
  return {
      "nft_minus_grpo": r["nft"]["final"] - r["grpo"]["final"],
      "nft_minus_rft": r["nft"]["final"] - r["rft"]["final"],
      "rft_entropy_drop_vs_nft": _entropy_drop(results, "rft") / _entropy_drop(results, "nft"),
      "onpolicy_grad_rel_diff": max(row["rel_diff"] for row in results["identity"]),
  }


def plot(results: dict[str, Any], path: str | None = None):
  return plot_curves(results, path, reference={"SFT start": results["start"]["mean"]},
                     title="NFT vs GRPO, RFT and DAPO, off-policy, on the toy suite (median over seeds)")
