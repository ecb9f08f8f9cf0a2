"""Demonstration-regularised RL in finite-horizon tabular MDPs.

Tiapkin, Belomestny, Calandriello, Moulines, Munos, Naumov, Perrault, Valko, Ménard,
"Demonstration-Regularized RL", ICLR 2024 (arXiv 2310.17303).

The learner first clones a policy π^BC from N^E expert demonstrations, then solves the
KL-regularised problem  max_π V^π − λ·E_π Σ_h KL(π_h(·|s_h) ‖ π^BC_h(·|s_h))  with optimistic
KL-regularised value iteration. Since V* − V^{π*_λ} ≤ λ·KL(π^E ‖ π^BC) and KL(π^E ‖ π^BC) = Õ(1/N^E),
λ can grow ∝ ε·N^E, and the fast 1/(λε) rate of regularised RL gives Õ(Poly/(ε²N^E)) episodes.
The RLHF variant replaces the reward by a Bradley–Terry MLE fitted on preferences between π^BC
trajectories and plans towards π^BC without any pessimism bonus.

This module holds the random MDP generator with pure `reset`/`step`, trajectory sampling,
`behavior_cloning`, `kl_regularized_value_iteration`, the online learners `ucbvi` and
`demo_regularized_rl` (one episode loop, a `lax.scan`, vmappable over seeds and λ), `bt_reward_mle`
and `demo_regularized_rlhf`. The Bellman and occupancy kernels live in `rljax.theory.kernels`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax.theory.kernels import vi
from rljax.theory.kernels.vi import soft_value_iteration as kl_regularized_value_iteration
from rljax.theory.kernels.ridge import logistic_mle

__all__ = [
    "TabularMDP", "EnvState", "Trajectory", "random_mdp", "reset", "step", "rollout", "sample_trajectories",
    "visit_counts", "behavior_cloning", "kl_regularized_value_iteration", "optimal_value", "policy_return",
    "hoeffding_bonus", "ucbvi", "demo_regularized_rl", "episodes_to_epsilon", "trajectory_features",
    "sample_preferences", "bt_reward_mle", "demo_regularized_rlhf",
]


# ----------------------------------------------------------------------------- environment


class TabularMDP(NamedTuple):
  """`P: f[S,A,S]` stationary transitions, `r: f[H,S,A]` mean rewards in [0, 1] (H = r.shape[0]),
  `s0: f[S]` initial distribution."""

  P: jax.Array
  r: jax.Array
  s0: jax.Array


class EnvState(NamedTuple):
  s: jax.Array  # i[]
  h: jax.Array  # i[]


class Trajectory(NamedTuple):
  states: jax.Array  # i[H]
  actions: jax.Array  # i[H]
  next_states: jax.Array  # i[H]
  rewards: jax.Array  # f[H]


def random_mdp(key, n_states: int, n_actions: int, horizon: int, *, concentration: float = 1.0,
               reward_density: float = 1.0) -> TabularMDP:
  """P(·|s,a) ~ Dirichlet(concentration·1_S); r_h(s,a) = u·z with u ~ U[0,1], z ~ Bernoulli(reward_density)
  i.i.d.; s0 = δ_0 (a fixed start state, so that V*(s0) is one number). Small `concentration` gives
  near-deterministic transitions and a small `reward_density` sparse rewards: both make myopic play
  poor, so that exploration matters."""
  if min(n_states, n_actions, horizon) < 1:
    raise ValueError(f"n_states, n_actions, horizon must be >= 1, got {(n_states, n_actions, horizon)}.")
  if concentration <= 0:
    raise ValueError(f"`concentration` must be positive, got {concentration}.")
  if not 0 < reward_density <= 1:
    raise ValueError(f"`reward_density` must lie in (0, 1], got {reward_density}.")
  kp, kr, kz = jax.random.split(key, 3)
  P = jax.random.dirichlet(kp, jnp.full((n_states,), concentration), (n_states, n_actions))
  z = jax.random.bernoulli(kz, reward_density, (horizon, n_states, n_actions))
  r = jax.random.uniform(kr, (horizon, n_states, n_actions)) * z
  return TabularMDP(P, r, jax.nn.one_hot(0, n_states, dtype=r.dtype))


def reset(key, params: TabularMDP) -> tuple[EnvState, jax.Array]:
  """s_0 ~ s0, h = 0; the observation is the state index."""
  s = jax.random.categorical(key, jnp.log(params.s0))
  return EnvState(s, jnp.zeros((), jnp.int32)), s


def step(key, params: TabularMDP, state: EnvState, action):
  """Reward r_h(s,a), next state s' ~ P(·|s,a); done once h + 1 = H. Returns
  (state, obs, reward, done, info) with info = {"state": s, "action": a}."""
  reward = params.r[state.h, state.s, action]
  s_next = jax.random.categorical(key, jnp.log(params.P[state.s, action]))
  h = state.h + 1
  return EnvState(s_next, h), s_next, reward, h >= params.r.shape[0], {"state": state.s, "action": action}


def rollout(key, params: TabularMDP, log_pi) -> Trajectory:
  """One episode of the policy `log_pi: f[H,S,A]` with `reset`/`step` (a scan over the H steps)."""
  H = params.r.shape[0]
  k0, ks = jax.random.split(key)
  state, _ = reset(k0, params)

  def one(state, k):
    ka, ks = jax.random.split(k)
    a = jax.random.categorical(ka, log_pi[state.h, state.s])
    new, s_next, rew, _, info = step(ks, params, state, a)
    return new, Trajectory(info["state"], a, s_next, rew)

  _, traj = jax.lax.scan(one, state, jax.random.split(ks, H))
  return traj


def sample_trajectories(key, params: TabularMDP, log_pi, n: int) -> Trajectory:
  """n i.i.d. episodes of `log_pi`; leaves are `[n, H]`."""
  return jax.vmap(rollout, in_axes=(0, None, None))(jax.random.split(key, n), params, log_pi)


def visit_counts(traj: Trajectory, n_states: int, n_actions: int) -> jax.Array:
  """n_h(s,a) = #{i : (s^i_h, a^i_h) = (s,a)} over trajectories `[n, H]` (or one `[H]`); f[H,S,A]."""
  s = jax.nn.one_hot(traj.states, n_states)
  a = jax.nn.one_hot(traj.actions, n_actions)
  return jnp.einsum("...hs,...ha->hsa", s, a)


# ----------------------------------------------------------------------------- behaviour cloning and values


def behavior_cloning(counts, *, kappa: float = 1.0) -> jax.Array:
  """Regularised-MLE behaviour cloning on the demonstrations' counts `n_h(s,a): f[H,S,A]`:

      π^BC_h(·|s) = argmax_π Σ_a n_h(s,a) log π(a) + κ Σ_a log π(a) = (n_h(s,a) + κ) / (n_h(s) + κA).

  The log-barrier term keeps every action's probability ≥ κ/(n_h(s) + κA), which is what makes
  KL(π^E ‖ π^BC) finite and Õ(SAH/N^E). κ = 0 is the plain MLE (empirical frequencies; uniform at
  unvisited states). Returns log π^BC: f[H,S,A].
  """
  counts = jnp.asarray(counts)
  if counts.ndim != 3:
    raise ValueError(f"`counts` must be [H,S,A], got {counts.shape}.")
  if kappa < 0:
    raise ValueError(f"`kappa` must be non-negative, got {kappa}.")
  smoothed = counts + kappa
  total = smoothed.sum(-1, keepdims=True)
  uniform = jnp.full_like(smoothed, -jnp.log(counts.shape[-1]))
  return jnp.where(total > 0, jnp.log(smoothed) - jnp.log(jnp.where(total > 0, total, 1.0)), uniform)


def optimal_value(mdp: TabularMDP, log_prior=None, lam=None) -> jax.Array:
  """V*(s0) = s0·V*_0, or the regularised optimum V*_λ(s0) = max_π V^π − λ KL(π ‖ prior) when a prior
  and λ > 0 are given."""
  if log_prior is None:
    return mdp.s0 @ vi.value_iteration(mdp.P, mdp.r).v[0]
  return mdp.s0 @ kl_regularized_value_iteration(mdp.P, mdp.r, log_prior, lam).v[0]


def policy_return(mdp: TabularMDP, log_pi, log_prior=None, lam=0.0) -> jax.Array:
  """J(π) = s0·V^π_0, KL-regularised towards `log_prior` when λ > 0 (see vi.policy_evaluation)."""
  return mdp.s0 @ vi.policy_evaluation(mdp.P, mdp.r, log_pi, log_prior=log_prior, lam=lam)[1][0]


# ----------------------------------------------------------------------------- online learners


def hoeffding_bonus(n_sa, horizon: int, scale) -> jax.Array:
  """UCBVI's Hoeffding bonus b(s,a) = scale·H/√max(n(s,a), 1) (the log(SAHT/δ) factor folded into `scale`)."""
  return scale * horizon / jnp.sqrt(jnp.maximum(n_sa, 1.0))


def _online(key, mdp: TabularMDP, log_prior, lam, *, episodes: int, bonus_scale, soft: bool):
  """The episode loop shared by UCBVI (soft=False) and demonstration-regularised RL (soft=True).

  Before episode t the learner holds transition counts n(s,a,s') from t episodes and the plug-in
  model P̂ = n/n(s,a) (zero rows where unvisited). It plays the optimistic policy of
      Q_h = min(r_h + b + P̂ V_{h+1}, H − h),   b(s,a) = bonus_scale·H/√max(n(s,a), 1),
  (greedy, or π ∝ π^BC exp(Q/λ) with soft V), and recommends the bonus-free plug-in policy, whose
  exact gap V*(s0) − V^π̂(s0) (and regularised gap V*_λ − V^π̂_λ) is recorded. Returns metrics [episodes].
  """
  S, A = mdp.P.shape[:2]
  H = mdp.r.shape[0]
  q_max = (H - jnp.arange(H)).astype(mdp.r.dtype)
  v_star = optimal_value(mdp)
  v_star_lam = optimal_value(mdp, log_prior, lam) if soft else v_star

  def plan(p_hat, bonus):
    if soft:
      return kl_regularized_value_iteration(p_hat, mdp.r, log_prior, lam, bonus=bonus, q_max=q_max).log_pi
    return vi.deterministic_log_policy(vi.value_iteration(p_hat, mdp.r, bonus=bonus, q_max=q_max).policy, A)

  def episode(counts, k):
    n_sa = counts.sum(-1)
    p_hat = counts / jnp.maximum(n_sa, 1.0)[..., None]
    bonus = hoeffding_bonus(n_sa, H, bonus_scale)
    # One batched backward pass: the optimistic (exploration) and bonus-free (recommended) policies.
    explore, recommend = jax.vmap(plan, in_axes=(None, 0))(p_hat, jnp.stack([bonus, jnp.zeros_like(bonus)]))
    if soft:  # plain and regularised returns of the recommendation in one batched evaluation
      ret, ret_lam = jax.vmap(lambda l: policy_return(mdp, recommend, log_prior, l))(jnp.stack([0.0 * lam, lam]))
      metrics = {"gap": v_star - ret, "reg_gap": v_star_lam - ret_lam}
    else:
      metrics = {"gap": v_star - policy_return(mdp, recommend)}
    traj = rollout(k, mdp, explore)
    counts = counts.at[traj.states, traj.actions, traj.next_states].add(1.0)
    return counts, metrics

  counts0 = jnp.zeros((S, A, S), mdp.r.dtype)
  _, metrics = jax.lax.scan(episode, counts0, jax.random.split(key, episodes))
  return metrics


def ucbvi(key, mdp: TabularMDP, episodes: int, *, bonus_scale=0.1) -> dict[str, jax.Array]:
  """UCBVI (Azar et al. 2017, Hoeffding bonus with its log factor folded into `bonus_scale`): greedy
  optimistic value iteration on the empirical model, no demonstrations. Returns {"gap": f[episodes]},
  the exact suboptimality of the plug-in greedy policy after t episodes."""
  return _online(key, mdp, None, None, episodes=episodes, bonus_scale=bonus_scale, soft=False)


def demo_regularized_rl(key, mdp: TabularMDP, demos, *, lam, episodes: int, kappa: float = 1.0,
                        bonus_scale=0.1) -> dict[str, jax.Array]:
  """Demonstration-regularised RL: π^BC = behavior_cloning(demos, κ), then optimistic KL-regularised
  value iteration towards π^BC,

      V_h(s) = λ log Σ_a π^BC_h(a|s) exp(Q_h(s,a)/λ),   π_h(a|s) ∝ π^BC_h(a|s) exp(Q_h(s,a)/λ),

  with Q as in UCBVI. `demos: f[H,S,A]` are the demonstrations' visit counts. Returns per-episode
  {"gap": V*(s0) − V^π̂(s0), "reg_gap": V*_λ(s0) − V^π̂_λ(s0)}; vmappable over keys and λ.
  """
  log_bc = behavior_cloning(demos, kappa=kappa)
  return _online(key, mdp, log_bc, lam, episodes=episodes, bonus_scale=bonus_scale, soft=True)


def episodes_to_epsilon(gaps, eps) -> jax.Array:
  """The first t after which the recommended policy stays ε-optimal: 1 + max{t : gap_t > ε} (0 if it
  always was, len(gaps) if it never settled). `gaps: f[..., T]` over episodes on the last axis."""
  gaps = jnp.asarray(gaps)
  t = jnp.arange(gaps.shape[-1])
  return jnp.max(jnp.where(gaps > jnp.expand_dims(jnp.asarray(eps), -1), t, -1), axis=-1) + 1


# ----------------------------------------------------------------------------- RLHF variant


def trajectory_features(traj: Trajectory, n_states: int, n_actions: int) -> jax.Array:
  """φ(τ) = Σ_h e_{(h, s_h, a_h)}: per-step one-hot visits, flattened to f[..., H·S·A], so that the
  trajectory reward Σ_h r_h(s_h,a_h) = θᵀφ(τ) with θ = vec(r)."""
  s = jax.nn.one_hot(traj.states, n_states)
  a = jax.nn.one_hot(traj.actions, n_actions)
  phi = s[..., :, None] * a[..., None, :]
  return phi.reshape(*phi.shape[:-3], -1)


def sample_preferences(key, mdp: TabularMDP, log_pi, n_pairs: int):
  """n_pairs pairs of independent trajectories of `log_pi` with Bradley–Terry labels
  o ~ Bernoulli(σ(R(τ^a) − R(τ^b))), R = Σ_h r_h(s_h,a_h). Returns (φ(τ^a), φ(τ^b), o ∈ {0,1})."""
  kt, ko = jax.random.split(key)
  S, A = mdp.P.shape[:2]
  traj = sample_trajectories(kt, mdp, log_pi, 2 * n_pairs)  # one sampler call: halves a and b
  ret = traj.rewards.sum(-1)
  o = jax.random.bernoulli(ko, jax.nn.sigmoid(ret[:n_pairs] - ret[n_pairs:])).astype(mdp.r.dtype)
  phi = trajectory_features(traj, S, A)
  return phi[:n_pairs], phi[n_pairs:], o


def bt_reward_mle(traj_feats_a, traj_feats_b, outcomes, *, lam, mask=None) -> jax.Array:
  """Bradley–Terry reward MLE on trajectory features (ridge λ > 0, Newton's method):

      θ̂ = argmin_θ Σ_i m_i[−o_i log σ(θᵀΔφ_i) − (1 − o_i) log σ(−θᵀΔφ_i)] + (λ/2)‖θ‖²,
      Δφ_i = φ^a_i − φ^b_i,

  `outcomes` o_i ∈ {0, 1} (1: τ^a preferred), `mask` m_i selects rows (default all). With
  `trajectory_features`, θ̂ = vec(r̂): f[H·S·A]. Only reward differences between trajectories are
  identified; the ridge picks the minimum-norm r̂.
  """
  fa, fb, o = jnp.asarray(traj_feats_a), jnp.asarray(traj_feats_b), jnp.asarray(outcomes)
  if fa.shape != fb.shape or fa.ndim != 2 or o.shape != fa.shape[:1]:
    raise ValueError(f"features must be two [n, d] arrays and outcomes [n]; got {fa.shape}, {fb.shape}, {o.shape}.")
  theta, _ = logistic_mle(fa - fb, 2.0 * o - 1.0, lam=lam, mask=mask)
  return theta


def demo_regularized_rlhf(key, mdp: TabularMDP, demos, *, n_pairs: int, lam, kappa: float = 1.0,
                          ridge: float = 1.0, n_used=None) -> dict[str, jax.Array]:
  """RLHF with demonstrations: π^BC from `demos`, preferences between π^BC trajectory pairs, BT reward
  r̂ = bt_reward_mle(...), then KL-regularised planning towards π^BC on r̂ with no pessimism
  (transitions known, so that only the reward is learned):

      π̂ = argmax_π V^π(r̂) − λ KL(π ‖ π^BC),   compared with greedy planning argmax_π V^π(r̂).

  `n_pairs` pairs are drawn; the fit uses the first `n_used` (default all; may be traced, so one
  compile serves every m). Returns exact gaps under the true reward: {"reg", "greedy", "bc"}.
  """
  S, A = mdp.P.shape[:2]
  H = mdp.r.shape[0]
  log_bc = behavior_cloning(demos, kappa=kappa)
  fa, fb, o = sample_preferences(key, mdp, log_bc, n_pairs)
  mask = None if n_used is None else jnp.arange(n_pairs) < n_used
  r_hat = bt_reward_mle(fa, fb, o, lam=ridge, mask=mask).reshape(H, S, A)
  v_star = optimal_value(mdp)
  reg = kl_regularized_value_iteration(mdp.P, r_hat, log_bc, lam).log_pi
  greedy = vi.deterministic_log_policy(vi.value_iteration(mdp.P, r_hat).policy, A)
  return {"reg": v_star - policy_return(mdp, reg), "greedy": v_star - policy_return(mdp, greedy),
          "bc": v_star - policy_return(mdp, log_bc)}
