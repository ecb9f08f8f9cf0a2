"""PR-LSVI: preference-based RL in linear MDPs with randomised exploration and active queries.

Wu & Sun, "Making RL with Preference-based Feedback Efficient via Randomization", ICLR 2024
(arXiv 2310.14554). The Bradley–Terry reward MLE is `kernels.ridge.logistic_mle`. Holds the Gaussian perturbation
of the reward (`perturb`), the uncertainty-gated query rule (`should_query`), randomised
least-squares value iteration (`lsvi`), pure linear-MDP environments (a linear dueling bandit is the
H = 1, one-state case) with an exact oracle (`kernels.vi` backward induction), and the full learner `run_pr_lsvi` (a `lax.scan` over
rounds, vmappable over seeds and ε).

Model: features φ(s,a) ∈ R^d, unknown reward r(s,a) = θ*ᵀφ(s,a), trajectory feature
φ(τ) = Σ_h φ(s_h,a_h), preference P(τ¹ ≻ τ⁰) = σ(θ*ᵀ(φ(τ¹) − φ(τ⁰))); transitions are unknown
and learned by ridge regression on φ(s,a) (a linear MDP; one-hot features give a tabular MDP).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rljax.theory.kernels import ridge, vi
from rljax.theory.kernels.ridge import logistic_mle


# ----------------------------------------------------------------------------- environments


class LinearMDP(NamedTuple):
  """Finite linear MDP: `features f[S,A,d]`, `transitions f[S,A,S]`, `init f[S]`, `theta_star f[d]`
  (reward r = φᵀθ*) and `horizon i[]` (H; the scan length is the static `PRConfig.horizon`)."""

  features: jax.Array
  transitions: jax.Array
  init: jax.Array
  theta_star: jax.Array
  horizon: jax.Array


class EnvState(NamedTuple):
  s: jax.Array
  h: jax.Array


def make_dueling_bandit(key, n_arms: int, dim: int, theta_norm: float) -> LinearMDP:
  """H = 1 linear dueling bandit: one state, `n_arms` arms uniform on the unit sphere of R^d,
  ‖θ*‖ = theta_norm, so P(arm i ≻ arm j) = σ(θ*ᵀ(x_i − x_j))."""
  if n_arms < 2 or dim < 1 or theta_norm <= 0:
    raise ValueError(f"need n_arms >= 2, dim >= 1, theta_norm > 0; got {n_arms}, {dim}, {theta_norm}.")
  k_x, k_t = jax.random.split(key)
  x = jax.random.normal(k_x, (n_arms, dim))
  theta = jax.random.normal(k_t, (dim,))
  return LinearMDP(
      features=(x / jnp.linalg.norm(x, axis=-1, keepdims=True))[None],
      transitions=jnp.ones((1, n_arms, 1)),
      init=jnp.ones((1,)),
      theta_star=theta_norm * theta / jnp.linalg.norm(theta),
      horizon=jnp.asarray(1),
  )


def make_tabular_mdp(key, n_states: int, n_actions: int, horizon: int, *, concentration: float = 1.0) -> LinearMDP:
  """Random tabular MDP as a linear MDP with one-hot features φ(s,a) = e_{sA+a} (d = S·A):
  P(·|s,a) ~ Dirichlet(concentration), rewards θ* ~ U[0,1]^{SA}, initial state uniform."""
  if n_states < 1 or n_actions < 2 or horizon < 1 or concentration <= 0:
    raise ValueError(f"bad MDP sizes: S={n_states}, A={n_actions}, H={horizon}, concentration={concentration}.")
  k_p, k_r = jax.random.split(key)
  d = n_states * n_actions
  p = jax.random.dirichlet(k_p, jnp.full((n_states,), concentration), (n_states, n_actions))
  return LinearMDP(
      features=jnp.eye(d).reshape(n_states, n_actions, d),
      transitions=p,
      init=jnp.full((n_states,), 1.0 / n_states),
      theta_star=jax.random.uniform(k_r, (d,)),
      horizon=jnp.asarray(horizon),
  )


def reset(key, params: LinearMDP) -> tuple[EnvState, jax.Array]:
  """s_0 ~ init; the observation is the state index."""
  s = jax.random.categorical(key, jnp.log(params.init))
  return EnvState(s, jnp.zeros((), jnp.int32)), s


def step(key, params: LinearMDP, state: EnvState, action):
  """s' ~ P(·|s,a); reward θ*ᵀφ(s,a) (hidden from the learner, which only sees preferences);
  `info` holds φ(s,a) and s'."""
  phi = params.features[state.s, action]
  s_next = jax.random.categorical(key, jnp.log(params.transitions[state.s, action]))
  h = state.h + 1
  info = {"phi": phi, "next_state": s_next}
  return EnvState(s_next, h), s_next, phi @ params.theta_star, h >= params.horizon, info


def policy_value(params: LinearMDP, horizon: int, policy=None) -> jax.Array:
  """Exact E_{s_0 ~ init} V_0^π(s_0) under the true model (V* when `policy` is None; else the
  deterministic `policy: i[H,S]`), by backward induction: the regret oracle."""
  r = params.features @ params.theta_star
  if policy is None:
    v = vi.value_iteration(params.transitions, r, horizon=horizon).v
  else:
    log_pi = vi.deterministic_log_policy(policy, r.shape[-1])
    v = vi.policy_evaluation(params.transitions, r, log_pi, horizon=horizon)[1]
  return params.init @ v[0]


def rollout(key, params: LinearMDP, policy: jax.Array, horizon: int):
  """Runs the deterministic `policy: i[H,S]` for one episode with `reset`/`step`. Returns
  (φ(τ) = Σ_h φ(s_h,a_h) f[d], visited features f[H,d], next states i[H], return f[])."""
  k0, *ks = jax.random.split(key, horizon + 1)
  state, _ = reset(k0, params)

  def one(state, k):
    a = policy[state.h, state.s]
    state, _, rew, _, info = step(k, params, state, a)
    return state, (info["phi"], info["next_state"], rew)

  _, (phis, s_next, rews) = jax.lax.scan(one, state, jnp.stack(ks))
  return phis.sum(0), phis, s_next, rews.sum()


# ----------------------------------------------------------------------------- learner pieces


def perturb(key, theta, sigma_mat, sigma) -> jax.Array:
  """Randomised reward θ̃ = θ̂ + ξ, ξ ~ N(0, σ²Σ^{-1}): with Σ = LLᵀ (Cholesky), ξ = σ L^{-ᵀ}z, z ~ N(0, I)."""
  chol = jnp.linalg.cholesky(sigma_mat)
  z = jax.random.normal(key, theta.shape, theta.dtype)
  return theta + sigma * jax.scipy.linalg.solve_triangular(chol.T, z, lower=False)


def should_query(dphi, sigma_inv, eps) -> jax.Array:
  """Active query rule: ask for a label iff ‖φ(τ¹) − φ(τ⁰)‖_{Σ^{-1}} > ε (with `sigma_inv` = Σ^{-1}).
  ε = 0 queries every distinct pair; larger ε skips pairs whose outcome the model already predicts."""
  return ridge.elliptical_bonus(dphi, sigma_inv) > eps


class TransitionStats(NamedTuple):
  """Ridge statistics of the transition regression: Λ = λI + Σ φφᵀ and M = Σ φ e_{s'}ᵀ (f[d,S]),
  so that for any V the least-squares weights are Λ^{-1} Σ_i φ_i V(s'_i) = Λ^{-1} M V."""

  gram: jax.Array
  next_counts: jax.Array


def transition_stats_init(dim: int, n_states: int, lam, dtype=None) -> TransitionStats:
  dtype = dtype or jnp.result_type(float)
  return TransitionStats(lam * jnp.eye(dim, dtype=dtype), jnp.zeros((dim, n_states), dtype))


def transition_stats_add(stats: TransitionStats, phis, next_states) -> TransitionStats:
  """Adds one episode's transitions (φ(s_h,a_h), s_{h+1}), `phis: [H, d]`, `next_states: i[H]`:
  Λ += Σ_h φ_hφ_hᵀ, M += Σ_h φ_h e_{s_{h+1}}ᵀ (the dynamics are stationary, so all layers pool)."""
  onehot = jax.nn.one_hot(next_states, stats.next_counts.shape[1], dtype=phis.dtype)
  return TransitionStats(stats.gram + phis.T @ phis, stats.next_counts + phis.T @ onehot)


def lsvi(features, stats: TransitionStats, reward_theta, *, horizon: int, key=None, sigma_p=0.0) -> jax.Array:
  """(Randomised) least-squares value iteration for a linear MDP, backwards from V_H = 0:

      w_h = Λ^{-1} M V_{h+1} + ξ_h,  ξ_h ~ N(0, σ_p² Λ^{-1})  (RLSVI-style perturbation),
      Q_h(s,a) = φ(s,a)ᵀ(θ + w_h),   V_h(s) = max_a Q_h(s,a).

  `features: [S,A,d]`, `reward_theta: [d]`. The last step has no transition regression, so it is
  not perturbed (the reward randomisation covers it). With one-hot features and λ → 0 this is value
  iteration on the empirical model P̂. Returns Q: [H,S,A].
  """
  lam_inv = jnp.linalg.inv(stats.gram)
  lam_inv = 0.5 * (lam_inv + lam_inv.T)
  chol = jnp.linalg.cholesky(lam_inv)
  r = features @ reward_theta
  keys = jax.random.split(jax.random.PRNGKey(0) if key is None else key, horizon)
  scale = 0.0 if key is None else sigma_p

  def backup(v_next, xs):
    h, k = xs
    noise = jnp.where(h < horizon - 1, scale, 0.0) * chol @ jax.random.normal(k, reward_theta.shape, r.dtype)
    q = r + features @ (lam_inv @ (stats.next_counts @ v_next) + noise)
    return q.max(-1), q

  _, q = jax.lax.scan(backup, jnp.zeros(r.shape[0], r.dtype), (jnp.arange(horizon), keys), reverse=True)
  return q


# ----------------------------------------------------------------------------- the algorithm


@dataclasses.dataclass(frozen=True)
class PRConfig:
  """Static PR-LSVI settings. `baseline`: "reference" compares τ_t with a trajectory of the uniformly
  random policy (regret counts π_t only); "independent" draws a second perturbed model and compares the
  two greedy trajectories (regret is their average, and agreeing models give Δφ ≈ 0, hence no query).
  The noise scales are multiplied by `run_pr_lsvi`'s traced `noise_scale`; 0 is the greedy MLE."""

  rounds: int
  horizon: int
  lam: float = 1.0
  sigma_r: float = 1.0
  sigma_p: float = 0.5
  baseline: str = "independent"
  newton_iters: int = 1

  def __post_init__(self):
    if self.rounds < 1 or self.horizon < 1 or self.newton_iters < 1:
      raise ValueError(f"`rounds`, `horizon`, `newton_iters` must be >= 1: {self}.")
    if self.lam <= 0 or self.sigma_r < 0 or self.sigma_p < 0:
      raise ValueError(f"need lam > 0 and sigma_r, sigma_p >= 0: {self}.")
    if self.baseline not in ("reference", "independent"):
      raise ValueError(f"`baseline` must be 'reference' or 'independent', got {self.baseline!r}.")


class PRState(NamedTuple):
  prefs: ridge.Buffer  # Δφ rows, outcomes ±1
  theta: jax.Array  # θ̂_t
  design: ridge.RidgeState  # Σ_t = λI + Σ ΔφΔφᵀ and Σ_t^{-1}
  dynamics: TransitionStats


def _greedy_policy(key, env: LinearMDP, state: PRState, cfg: PRConfig, noise_scale) -> jax.Array:
  k_r, k_p = jax.random.split(key)
  theta = perturb(k_r, state.theta, state.design.v, noise_scale * cfg.sigma_r)
  q = lsvi(env.features, state.dynamics, theta, horizon=cfg.horizon, key=k_p, sigma_p=noise_scale * cfg.sigma_p)
  return jnp.argmax(q, -1)


def run_pr_lsvi(key, env: LinearMDP, cfg: PRConfig, eps, noise_scale=1.0) -> dict[str, jax.Array]:
  """PR-LSVI for `cfg.rounds` episodes (one `lax.scan`; vmap over `key`/`env` for seeds and over the
  traced `eps` / `noise_scale`, which multiplies σ_r and σ_p: 0 gives the greedy-MLE baseline):

    1. θ̃_t = θ̂_t + N(0, σ_r² Σ_t^{-1});  Q_t = LSVI(θ̃_t) with N(0, σ_p² Λ^{-1}) value noise;
    2. play π_t = argmax Q_t → τ¹_t; baseline trajectory τ⁰_t (reference policy or a 2nd sample);
    3. if ‖φ(τ¹) − φ(τ⁰)‖_{Σ_t^{-1}} > ε: draw o_t ~ BT(θ*), store (Δφ, o_t), Σ_{t+1} = Σ_t + ΔφΔφᵀ;
    4. θ̂_{t+1}: warm-started Newton steps on the stored comparisons; the dynamics regression adds
       both trajectories' transitions.

  Returns per-round `regret` (exact V* − V^{π_t}, averaged over the two policies in "independent"
  mode), `queries` (0/1) and the final `theta_error` ‖θ̂_T − θ*‖ (with one-hot MDP features every Δφ
  sums to 0, so θ* is identified only up to a constant shift and this error does not vanish there).
  """
  n_states, n_actions, d = env.features.shape
  dtype = env.features.dtype
  v_star = policy_value(env, cfg.horizon)
  init = PRState(
      prefs=ridge.buffer_init(cfg.rounds, d, dtype),
      theta=jnp.zeros(d, dtype),
      design=ridge.ridge_init(d, cfg.lam, dtype),
      dynamics=transition_stats_init(d, n_states, cfg.lam, dtype),
  )

  def round_(state: PRState, k):
    k1, k0, k_roll1, k_roll0, k_label = jax.random.split(k, 5)
    pi1 = _greedy_policy(k1, env, state, cfg, noise_scale)
    if cfg.baseline == "independent":
      pi0 = _greedy_policy(k0, env, state, cfg, noise_scale)
      regret = v_star - 0.5 * (policy_value(env, cfg.horizon, pi1) + policy_value(env, cfg.horizon, pi0))
    else:
      pi0 = jax.random.randint(k0, (cfg.horizon, n_states), 0, n_actions)
      regret = v_star - policy_value(env, cfg.horizon, pi1)
    f1, phis1, next1, _ = rollout(k_roll1, env, pi1, cfg.horizon)
    f0, phis0, next0, _ = rollout(k_roll0, env, pi0, cfg.horizon)
    dphi = f1 - f0
    query = should_query(dphi, state.design.v_inv, eps) & (state.prefs.count < cfg.rounds)
    label = jnp.where(jax.random.bernoulli(k_label, jax.nn.sigmoid(env.theta_star @ dphi)), 1.0, -1.0)
    prefs = ridge.buffer_add(state.prefs, dphi, label, query)
    theta, _ = logistic_mle(prefs.x, prefs.y, lam=cfg.lam, mask=prefs.mask, theta0=state.theta,
                            iters=cfg.newton_iters)
    dynamics = transition_stats_add(transition_stats_add(state.dynamics, phis1, next1), phis0, next0)
    new = PRState(prefs, theta, ridge.ridge_update(state.design, dphi, valid=query), dynamics)
    return new, (regret, query.astype(jnp.int32))

  final, (regret, queries) = jax.lax.scan(round_, init, jax.random.split(key, cfg.rounds))
  return {"regret": regret, "queries": queries, "theta_error": jnp.linalg.norm(final.theta - env.theta_star)}
