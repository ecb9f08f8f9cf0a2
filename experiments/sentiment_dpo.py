"""DPO, cDPO and rDPO with 30% of preference labels flipped: does rDPO keep the quality that DPO loses?

Chowdhury, Kini & Natarajan, "Provably Robust DPO", ICML 2024, on the embedded review task
(`rljax.data.sentiment`) instead of IMDb:

  1. SFT a tiny Llama-style policy on a corpus of positive, negative and neutral reviews.
  2. Sample two completions per prompt from it with the KV-cache sampler; score them with the
     rule-based sentiment reward; order each pair by reward and flip 30% of the labels (ties dropped).
  3. From the same SFT start, train DPO, cDPO (label smoothing ε) and rDPO (ε) with the SFT model as
     the reference (its log-probs precomputed in one pass).
  4. Sample from each policy on held-out prompts (same keys for all) and report mean reward, win rate
     against the SFT policy's samples on the same prompts (ties count ½), and KL(π‖π_SFT) estimated
     on the policy's own samples.

    python -m rljax.run --config configs/sentiment_dpo.py --workdir results/sentiment_dpo
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rljax import sampling
from rljax import training as T
from rljax.data import packing
from rljax.data import sentiment as S
from experiments import cli
from rljax.models.config import DecoderConfig
from rljax.models.decoder import Decoder


def make_model(cfg) -> Decoder:
  m = cfg.model
  dc = DecoderConfig(family="llama", vocab_size=S.VOCAB_SIZE, d_model=m.d_model, n_layers=m.n_layers,
                     n_heads=m.n_heads, n_kv_heads=m.n_kv_heads, head_dim=m.d_model // m.n_heads, d_ff=m.d_ff,
                     max_positions=m.max_positions, norm_eps=1e-6, activation="silu", tie_word_embeddings=True,
                     qkv_bias=False, bos_token_id=S.BOS_ID, eos_token_id=S.EOS_ID, pad_token_id=S.PAD_ID)
  return Decoder(dc, rngs=nnx.Rngs(cfg.seed))


def _phase(cfg, workdir, writer, model, loss_fn, batch_fn, *, name, phase_cfg, tokens_fn):
  steps = phase_cfg.steps
  opt = T.make_optimizer(phase_cfg.lr, schedule=phase_cfg.schedule, total_steps=steps)
  graphdef, state = T.init_train_state(model, opt, rng=jax.random.PRNGKey(cfg.seed))
  step = T.make_train_step(graphdef, loss_fn, opt)
  t0 = time.perf_counter()
  state = T.train(state, step, batch_fn, num_steps=steps, writer=writer, phase=name,
                  checkpointer=T.Checkpointer(os.path.join(workdir, "ckpt", name)), log_every=cfg.log_every,
                  ckpt_every=cfg.ckpt_every, tokens_fn=tokens_fn)
  return nnx.merge(graphdef, state.params), time.perf_counter() - t0


def _tokens(batch):
  """Real tokens of a padded or packed (SFT or pair) batch, for tokens/s."""
  return sum(batch[k].sum() for k in ("mask", "chosen_mask", "rejected_mask") if k in batch)


def sft(cfg, workdir, writer):
  tokens, mask = S.sft_corpus(cfg.seed, cfg.sft.n_examples, max_len=cfg.sft.max_len)
  data = {"tokens": tokens, "mask": mask, "loss_mask": mask}
  n, b = cfg.sft.n_examples, cfg.sft.batch
  if cfg.sft.pack:  # several reviews per `max_len` row, about `batch` of them per step (rljax.data.packing)
    data, stats = packing.pack_padded(data, row_len=cfg.sft.max_len)
    n, b = stats["rows"], packing.rows_per_step(b, stats)
  data = {k: jnp.asarray(v) for k, v in data.items()}

  def batch_fn(pos):
    idx = np.random.default_rng([cfg.seed, pos]).choice(n, b, replace=False)
    return {k: v[idx] for k, v in data.items()}

  return _phase(cfg, workdir, writer, make_model(cfg), T.objectives.sft_loss(), batch_fn, name="sft",
                phase_cfg=cfg.sft, tokens_fn=_tokens)


def sample(model, prompt, key, cfg):
  r = sampling.generate(model, prompt[0], prompt[1], key=key, max_new_tokens=cfg.pairs.max_new_tokens,
                        temperature=cfg.pairs.temperature, eos_token_id=S.EOS_ID, pad_token_id=S.PAD_ID)
  return r, S.sentiment_reward(r.tokens, r.mask)


def _sequences(prompt, completion_tokens, completion_mask):
  tokens = jnp.concatenate([prompt[0], completion_tokens], 1)
  mask = jnp.concatenate([prompt[1], completion_mask], 1)
  loss_mask = jnp.concatenate([jnp.zeros_like(prompt[1]), completion_mask], 1)
  return tokens, mask, loss_mask


def preference_data(cfg, sft_model):
  """Pairs sampled from the SFT policy, ordered by reward, 30% flipped; ties dropped; reference
  log-probs of the SFT model precomputed."""
  prompt = S.prompts(cfg.pairs.n_prompts, seed=cfg.seed + 1)
  key = jax.random.PRNGKey(cfg.seed + 2)
  ka, kb, kf = jax.random.split(key, 3)
  ra, rew_a = sample(sft_model, prompt, ka, cfg)
  rb, rew_b = sample(sft_model, prompt, kb, cfg)
  pairs = S.preference_pairs(prompt[0], (ra.tokens, ra.mask), (rb.tokens, rb.mask), rew_a, rew_b,
                             flip_rate=cfg.pairs.flip_rate, key=kf)
  keep = np.nonzero(~np.asarray(pairs["tie"]))[0]
  data = {}
  for side in ("chosen", "rejected"):
    tokens, mask, loss_mask = _sequences(prompt, *pairs[side])
    data |= {f"{side}_tokens": tokens[keep], f"{side}_mask": mask[keep], f"{side}_loss_mask": loss_mask[keep]}
  ref_c, ref_r = jax.jit(lambda b: T.objectives.pair_logps(sft_model, b))(data)
  data |= {"ref_chosen_logps": ref_c, "ref_rejected_logps": ref_r}
  stats = {"pairs": int(keep.size), "ties_dropped": int(cfg.pairs.n_prompts - keep.size),
           "flip_fraction": float(np.asarray(pairs["flipped"])[keep].mean()),
           "sft_reward_mean": float(jnp.mean(jnp.concatenate([rew_a, rew_b])))}
  return data, stats


def preference_phase(cfg, workdir, writer, name, data, sft_params):
  kwargs = {"beta": cfg.dpo.beta}
  if name != "dpo":
    kwargs["epsilon"] = cfg.dpo.epsilon
  n, b = data["chosen_tokens"].shape[0], min(cfg.dpo.batch, data["chosen_tokens"].shape[0])
  pick = lambda pos: np.random.default_rng([cfg.seed, 7, pos]).choice(n, b, replace=False)
  batch_fn = lambda pos: jax.tree.map(lambda x: x[pick(pos)], data)
  if cfg.dpo.pack:
    # Each step's 2b responses packed into rows of twice the padded length; at least the rows the whole data
    # set needs per 2b responses plus 10% for batch-to-batch variation, so the shape rarely changes (a batch
    # that needs more rows compiles once more).
    host, length = jax.device_get(data), 2 * data["chosen_tokens"].shape[1]
    rows = int(np.ceil(1.1 * packing.rows_per_step(2 * b, packing.pack_pairs(host, row_len=length)[1])))
    batch_fn = lambda pos: packing.pack_pairs(jax.tree.map(lambda x: x[pick(pos)], host), row_len=length,
                                              min_rows=rows)[0]

  model = make_model(cfg)
  nnx.update(model, sft_params)
  return _phase(cfg, workdir, writer, model, T.objectives.preference_loss(name, **kwargs), batch_fn, name=name,
                phase_cfg=cfg.dpo, tokens_fn=_tokens)


def evaluate(cfg, policies: dict, sft_model) -> list[dict]:
  prompt = S.prompts(cfg.eval.n_prompts, seed=cfg.seed + 3)
  key = jax.random.PRNGKey(cfg.seed + 4)
  _, sft_reward = sample(sft_model, prompt, key, cfg)
  rows = []
  for name, model in policies.items():
    r, reward = sample(model, prompt, key, cfg)
    tokens, mask, loss_mask = _sequences(prompt, r.tokens, r.mask)
    ref = jax.jit(lambda t, m, lm: T.objectives.sequence_logps(sft_model, t, m, lm))(tokens, mask, loss_mask)
    kl = jnp.mean(jnp.sum(r.model_logprobs * r.mask, -1) - ref)
    win = jnp.mean((reward > sft_reward) + 0.5 * (reward == sft_reward))
    rows.append({"policy": name, "reward": float(jnp.mean(reward)),
                 "reward_se": float(jnp.std(reward) / np.sqrt(reward.size)), "win_rate": float(win),
                 "kl_to_sft": float(kl), "length": float(jnp.mean(r.lengths))})
  return rows


def tables(results) -> list:
  stats = results["stats"]
  title = (f"pairs {stats['pairs']} (ties dropped {stats['ties_dropped']}), realised flip fraction "
           f"{stats['flip_fraction']:.3f}")
  return [cli.Table(results["rows"], {
      "policy": "{policy}", "mean reward": "{reward:+.3f} ± {reward_se:.3f}", "win rate vs SFT": "{win_rate:.3f}",
      "KL(π‖π_SFT)": "{kl_to_sft:.2f}", "mean length": "{length:.1f}"}, title=title)]


def plot(results, path: str | None = None):
  """Left: each preference loss's training curve; right: held-out mean reward and win rate per policy."""
  plt = cli.pyplot(path)
  rows = results["rows"]
  fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
  for name, curve in results["curves"].items():
    a.plot(curve["step"], curve["loss"], label=name)
  a.set(xlabel="step", ylabel="training loss (noisy labels)", title="preference training")
  a.legend()
  names = [r["policy"] for r in rows]
  b.bar(names, [r["reward"] for r in rows], yerr=[2 * r["reward_se"] for r in rows], color="C0")
  for i, r in enumerate(rows):
    b.text(i, r["reward"], f"win {r['win_rate']:.2f}", ha="center", va="bottom", fontsize=8)
  b.set(ylabel="mean sentiment reward", title=f"held-out samples ({results['flip_rate']:.0%} flipped labels)")
  fig.tight_layout()
  return cli.finish_figure(fig, path)


def run(cfg) -> dict:
  """SFT, pair sampling, the preference phases (each resumed from its checkpoint when the work
  directory has one) and the evaluation; metrics.jsonl, TensorBoard events and checkpoints go to
  `cfg.out_dir`."""
  workdir = cfg.out_dir
  writer = T.MetricsWriter(workdir)
  t0 = time.perf_counter()
  sft_model, t_sft = sft(cfg, workdir, writer)
  data, stats = preference_data(cfg, sft_model)
  policies, times = {"sft": sft_model}, {"sft": t_sft}
  for name in cfg.dpo.losses:
    policies[name], times[name] = preference_phase(cfg, workdir, writer, name, data,
                                                     nnx.state(sft_model, nnx.Param))
  rows = evaluate(cfg, policies, sft_model)
  writer.close()
  print(f"wall time {time.perf_counter() - t0:.0f} s (SFT {times['sft']:.0f} s, "
        + ", ".join(f"{k} {v:.0f} s" for k, v in times.items() if k != "sft") + ")")
  curves = {}
  for name in cfg.dpo.losses:
    m = T.read_metrics(workdir, phase=name)
    curves[name] = {"step": [x["step"] for x in m], "loss": [x["loss"] for x in m]}
  return {"rows": rows, "stats": stats, "times": times, "curves": curves, "flip_rate": cfg.pairs.flip_rate}
