"""Latent Space Policy Optimization (LSPO) on the cheap-talk game: Xu, Gu, Yu, Wu, Wang, "Learning
Strategic Language Agents in the Werewolf Game", ICML 2025.

One iteration: (1) the utterance policy proposes N candidates at each of S logged decisions; their
embeddings are clustered with k-means into K latent strategies; (2) the latent game (messages =
cluster ids, payoffs averaged over the candidates in each cluster) is solved with CFR+; (3) DPO
pairs rank candidates by how much the equilibrium wants their cluster, and the policy is fine-tuned
on them with `rljax.losses.dpo_loss`. Also: the direct policy-gradient baseline over all U
utterances against a best-responding receiver.

The "LLM" is a softmax over utterances per sender type with logits b[s, u] + ⟨w_s, e(u)⟩: a free
table (its prior is the pretrained model) plus a linear read-out of the embedding, through which an
update on a few utterances generalises to their semantic neighbours.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from rljax.theory.games import cfr
from rljax.theory.games import cheap_talk as ct
from rljax.theory.games import kmeans as km
from rljax import checks
from rljax.losses import dpo_loss


class LSPOConfig(NamedTuple):
  n_states: int = 64  # S logged sender decisions per iteration
  n_candidates: int = 8  # N candidate utterances proposed per decision
  n_clusters: int = 6  # K latent strategies
  kmeans_iters: int = 20
  cfr_iters: int = 300
  dpo_steps: int = 50
  dpo_lr: float = 0.05
  beta: float = 1.0
  margin: float = 0.1  # pairs whose cluster values differ by less are dropped
  value_floor: float = 1e-3  # keeps log σ finite for clusters CFR+ never plays


class LSPOState(NamedTuple):
  params: dict  # utterance policy {"b": f[T, U], "w": f[T, D]}
  seen: jax.Array  # bool[U], every utterance proposed so far: the pool the latent space is built on


class PreferencePairs(NamedTuple):
  state: jax.Array  # i[P] sender type of the decision
  chosen: jax.Array  # i[P] utterance ids
  rejected: jax.Array  # i[P]
  pref: jax.Array  # f[P] P(chosen ≻ rejected) = σ(v_w − v_l) ≥ 1/2
  mask: jax.Array  # bool[P] which of the S·N·N slots hold a pair


def init_params(game: ct.CheapTalkGame) -> dict:
  """Policy parameters at the pretrained prior: b = prior logits, w = 0."""
  n_types, dim = game.prior_logits.shape[0], game.utterance_emb.shape[1]
  return {"b": game.prior_logits, "w": jnp.zeros((n_types, dim), game.prior_logits.dtype)}


def policy_log_probs(params: dict, game: ct.CheapTalkGame) -> jax.Array:
  """log π(u | s) = log_softmax_u(b[s, u] + ⟨w_s, e(u)⟩): `f[T, U]`."""
  return jax.nn.log_softmax(params["b"] + params["w"] @ game.utterance_emb.T, axis=-1)


def build_preference_pairs(states: jax.Array, cand_ids: jax.Array, cluster_of: jax.Array,
                           cluster_value: jax.Array, *, margin: float) -> PreferencePairs:
  """All ordered candidate pairs (i, j) of each decision with v_i − v_j > margin, where
  v_n = cluster_value[s, cluster_of[cand_ids[s, n]]]; the higher-valued one is chosen, and
  P(chosen ≻ rejected) = σ(v_i − v_j). Ties within the margin yield no pair.

  Args: states `i[S]`, cand_ids `i[S, N]`, cluster_of `i[U]`, cluster_value `f[S, K]`, margin >= 0.
  Returns `PreferencePairs` of S·N·N slots with a mask.
  """
  if cand_ids.ndim != 2 or states.shape != cand_ids.shape[:1]:
    raise ValueError(f"`cand_ids` must be [S, N] with `states` [S], got {cand_ids.shape}, {states.shape}.")
  if cluster_value.shape[0] != cand_ids.shape[0]:
    raise ValueError(f"`cluster_value` must be [S={cand_ids.shape[0]}, K], got {cluster_value.shape}.")
  if margin < 0:
    raise ValueError(f"`margin` must be >= 0, got {margin}.")
  v = jnp.take_along_axis(cluster_value, cluster_of[cand_ids], axis=1)  # [S, N]
  diff = v[:, :, None] - v[:, None, :]
  s, n = cand_ids.shape
  chosen = jnp.broadcast_to(cand_ids[:, :, None], (s, n, n))
  rejected = jnp.broadcast_to(cand_ids[:, None, :], (s, n, n))
  state = jnp.broadcast_to(states[:, None, None], (s, n, n))
  return PreferencePairs(state.ravel(), chosen.ravel(), rejected.ravel(),
                         jax.nn.sigmoid(diff).ravel(), (diff > margin).ravel())


def preference_loss(params: dict, ref_logp: jax.Array, pairs: PreferencePairs, game: ct.CheapTalkGame,
                    beta: float) -> tuple[jax.Array, dict]:
  """DPO on soft labels: mean over pairs of p·ℓ_σ(βh) + (1 − p)·ℓ_σ(−βh) (both terms are
  `dpo_loss`, the second with chosen and rejected swapped), h the log-ratio margin. Its minimiser
  has β·(log π/π_ref)(y_w) − β·(log π/π_ref)(y_l) = v_w − v_l: the Bradley–Terry fit of the values.
  """
  logp = policy_log_probs(params, game)
  pc, pr = logp[pairs.state, pairs.chosen], logp[pairs.state, pairs.rejected]
  rc, rr = ref_logp[pairs.state, pairs.chosen], ref_logp[pairs.state, pairs.rejected]
  fwd, metrics = dpo_loss(pc, pr, rc, rr, beta=beta, reduction="none")
  bwd, _ = dpo_loss(pr, pc, rr, rc, beta=beta, reduction="none")
  w = pairs.mask.astype(fwd.dtype)
  per_pair = pairs.pref * fwd + (1 - pairs.pref) * bwd
  return jnp.sum(w * per_pair) / jnp.maximum(jnp.sum(w), 1.0), metrics


def _latent_game(game, cand_ids, states, cand_cluster, k):
  """Payoffs of the K-message latent game: the candidates' true outcomes averaged per (type, cluster)."""
  n_types = game.prior_logits.shape[0]
  true = ct.payoff_table(game.stakes, n_types)  # [T, T, C, 2]
  onehot_t = jax.nn.one_hot(states, n_types, dtype=true.dtype)  # [S, T]
  onehot_z = jax.nn.one_hot(cand_cluster, k, dtype=true.dtype)  # [S, N, K]
  outcome = true[states[:, None], :, game.semantics[cand_ids]]  # [S, N, T_r, 2]
  counts = jnp.einsum("st,snk->tk", onehot_t, onehot_z)
  sums = jnp.einsum("st,snk,snra->trka", onehot_t, onehot_z, outcome)
  payoffs = sums / jnp.maximum(counts, 1.0)[:, None, :, None]
  legal = counts > 0
  legal = jnp.where(jnp.any(legal, -1, keepdims=True), legal, True)  # a type never logged: all open
  return ct.signaling_game(ct.signaling_structure(n_types, k), payoffs, legal), legal


def lspo_iteration(key: jax.Array, state: LSPOState, game: ct.CheapTalkGame,
                   cfg: LSPOConfig) -> tuple[LSPOState, dict]:
  """One LSPO iteration (k-means → latent game → CFR+ → DPO pairs → DPO); returns the new state and
  metrics, among them `payoff` = min over receivers of the new policy's expected payoff.

  The latent space is rebuilt each iteration by k-means over the growing pool of distinct
  utterances proposed so far (each weighted once), so strategies the policy stops proposing keep
  their cluster and new ones expand the space; a type's legal latent messages are the clusters of
  its current candidates.

  Cluster value of latent strategy z at a type-s decision: v(s, z) = log(σ(z|s) + ε) −
  log(π_ref(z|s) + ε), with σ CFR+'s average strategy and π_ref(z|s) = Σ_{u∈z} π(u|s); at β = 1 the
  DPO optimum moves the policy's mass per cluster to σ(z|s), keeping its within-cluster shape.
  """
  k_state, k_cand, k_km = jax.random.split(key, 3)
  params = state.params
  ref_logp = policy_log_probs(params, game)
  n_types = ref_logp.shape[0]
  states = jax.random.randint(k_state, (cfg.n_states,), 0, n_types)
  cand = jax.random.categorical(k_cand, ref_logp[states], shape=(cfg.n_candidates, cfg.n_states)).T
  seen = state.seen.at[cand.ravel()].set(True)
  emb = game.utterance_emb
  clusters = km.kmeans(k_km, emb, cfg.n_clusters, iters=cfg.kmeans_iters, weights=seen.astype(emb.dtype))
  cluster_of = clusters.assignments
  latent, legal = _latent_game(game, cand, states, cluster_of[cand], cfg.n_clusters)
  sigma_all, expl = cfr.cfr_plus(latent, cfg.cfr_iters, track_exploitability=False)
  struct = ct.signaling_structure(n_types, cfg.n_clusters)
  sigma = sigma_all[struct.sender_infosets, : cfg.n_clusters]  # [T, K]
  ref_cluster = jnp.exp(ref_logp) @ jax.nn.one_hot(cluster_of, cfg.n_clusters, dtype=ref_logp.dtype)
  value = jnp.log(sigma + cfg.value_floor) - jnp.log(ref_cluster + cfg.value_floor)
  pairs = build_preference_pairs(states, cand, cluster_of, value[states], margin=cfg.margin)

  opt = optax.adam(cfg.dpo_lr)
  grad_fn = jax.value_and_grad(preference_loss, has_aux=True)

  def dpo_step(carry, _):
    p, o = carry
    (loss, _), g = grad_fn(p, ref_logp, pairs, game, cfg.beta)
    upd, o = opt.update(g, o, p)
    return (optax.apply_updates(p, upd), o), loss

  (new_params, _), losses = jax.lax.scan(dpo_step, (params, opt.init(params)), None, length=cfg.dpo_steps)
  # Purity over the pool: the fraction of seen utterances whose cluster's majority meaning is their own.
  n_cls = game.stakes.shape[0]
  onehot_z = jax.nn.one_hot(cluster_of, cfg.n_clusters) * seen[:, None]
  table = onehot_z.T @ jax.nn.one_hot(game.semantics, n_cls)  # [K, C]
  metrics = {
      "payoff": ct.payoff_vs_best_response(game, policy_log_probs(new_params, game)),
      "latent_value": cfr.game_value(latent, sigma_all),
      "latent_exploitability": expl[0],
      "n_pairs": jnp.sum(pairs.mask),
      "n_legal_latent": jnp.sum(legal),
      "dpo_loss_first": losses[0],
      "dpo_loss_last": losses[-1],
      "kmeans_inertia": clusters.inertia,
      "cluster_purity": jnp.sum(jnp.max(table, -1)) / jnp.sum(seen),
      "pool_size": jnp.sum(seen),
  }
  return LSPOState(new_params, seen), metrics


def run_lspo(key: jax.Array, game: ct.CheapTalkGame, cfg: LSPOConfig, n_iters: int) -> dict:
  """`n_iters` LSPO iterations from the prior (a `lax.scan`); metrics stacked `[n_iters]`, plus
  `payoff0`, the prior's payoff against a best-responding receiver."""
  params = init_params(game)
  state = LSPOState(params, jnp.zeros(game.semantics.shape, bool))

  def body(st, k):
    return lspo_iteration(k, st, game, cfg)

  _, metrics = jax.lax.scan(body, state, jax.random.split(key, n_iters))
  return {**metrics, "payoff0": ct.payoff_vs_best_response(game, policy_log_probs(params, game))}


def direct_policy_gradient(key: jax.Array, game: ct.CheapTalkGame, *, steps: int, batch: int,
                           lr: float, record_every: int) -> jax.Array:
  """REINFORCE over all U utterances against a receiver that best-responds to the current policy:
  deal (s, r), u ~ π(·|s), reward R = u_0(s, r, c(u), a*(r, c(u))) with
      a*(r, c) = argmin_a Σ_{s≠r} p(c|s) u_0(s, r, c, a),
  loss −mean((R − R̄_s)·log π(u|s)) with R̄_s the batch mean for type s (Adam). Returns the payoff
  against a best response every `record_every` steps: `f[steps // record_every]`.
  """
  if steps < record_every or record_every < 1 or batch < 1:
    raise ValueError(f"need 1 <= `record_every` <= `steps` and `batch` >= 1; got {record_every}, {steps}, {batch}.")
  checks.check_positive("lr", lr)  # may be traced (vmapped over a sweep)
  n_types = game.prior_logits.shape[0]
  true = ct.payoff_table(game.stakes, n_types)
  opt = optax.adam(lr)
  params = init_params(game)

  def loss_fn(p, k):
    logp = policy_log_probs(p, game)
    k_deal, k_u = jax.random.split(k)
    marg = jax.lax.stop_gradient(ct.class_marginals(game, logp))  # p(c|s): [T, C]
    exp_recv = jnp.einsum("sc,srca->rca", marg, true)  # receiver minimises the sender's payoff
    best = jnp.argmin(exp_recv, -1)  # [T_r, C]
    s = jax.random.randint(k_deal, (batch,), 0, n_types)
    r = (s + jax.random.randint(jax.random.fold_in(k_deal, 1), (batch,), 1, n_types)) % n_types
    u = jax.random.categorical(k_u, logp[s])
    c = game.semantics[u]
    reward = true[s, r, c, best[r, c]]
    onehot = jax.nn.one_hot(s, n_types, dtype=reward.dtype)
    base = (onehot.T @ reward / jnp.maximum(onehot.sum(0), 1.0))[s]
    return -jnp.mean(jax.lax.stop_gradient(reward - base) * logp[s, u])

  def step(carry, k):
    p, o = carry
    g = jax.grad(loss_fn)(p, k)
    upd, o = opt.update(g, o, p)
    p = optax.apply_updates(p, upd)
    return (p, o), ct.payoff_vs_best_response(game, policy_log_probs(p, game))

  _, payoff = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(key, steps))
  return payoff[record_every - 1 :: record_every]
