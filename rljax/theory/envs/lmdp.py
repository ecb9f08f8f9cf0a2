"""Latent MDPs: M hidden tabular MDPs sharing S, A, H; the context m ~ w is drawn at the start of each
episode, never observed during play and revealed when the episode ends.

Environment for Zhou, Wang & Du, "Horizon-Free and Variance-Dependent Reinforcement Learning for
Latent MDPs" (2023). Pure `reset` / `step`; the exact oracle (optimal history-dependent value by
history enumeration) lives with the planner in `rljax.theory.tabular.lmdp_hf`. The random family has
Γ = 2 next states per (m,s,a) and rewards only at the last step (total reward ≤ 1), in a
near-deterministic and a noisy variant.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class LMDPParams(NamedTuple):
  P: jax.Array  # f[M,S,A,S]
  r: jax.Array  # f[M,H,S,A], mean rewards in [0,1] (Bernoulli)
  w: jax.Array  # f[M], mixing weights
  rho: jax.Array  # f[S], initial-state distribution (shared by the contexts)


class EnvState(NamedTuple):
  context: jax.Array  # m, hidden
  s: jax.Array
  h: jax.Array


def check_lmdp(P, r, w, rho=None) -> LMDPParams:
  """Validates shapes and (on concrete input) the probability vectors; returns LMDPParams."""
  P, r, w = jnp.asarray(P), jnp.asarray(r), jnp.asarray(w)
  if P.ndim != 4 or P.shape[1] != P.shape[3]:
    raise ValueError(f"`P` must be [M,S,A,S], got {P.shape}.")
  M, S, A, _ = P.shape
  if r.ndim != 4 or r.shape[0] != M or r.shape[2:] != (S, A):
    raise ValueError(f"`r` must be [M,H,S,A] with (M,S,A) = {(M, S, A)}, got {r.shape}.")
  if w.shape != (M,):
    raise ValueError(f"`w` must be [M] = [{M}], got {w.shape}.")
  rho = jnp.full((S,), 1.0 / S, P.dtype) if rho is None else jnp.asarray(rho)
  if rho.shape != (S,):
    raise ValueError(f"`rho` must be [S] = [{S}], got {rho.shape}.")
  for name, x in (("P", P), ("w", w), ("rho", rho)):
    if not isinstance(x, jax.core.Tracer):
      x = np.asarray(x)
      if np.any(x < 0) or not np.allclose(x.sum(-1), 1.0, atol=1e-6):
        raise ValueError(f"`{name}` must hold probability vectors (non-negative, summing to 1).")
  return LMDPParams(P, r, w, rho)


def random_lmdp(key, n_contexts: int, n_states: int, n_actions: int, horizon: int, *,
                variant: str = "noisy", support: int = 2) -> LMDPParams:
  """Random LMDP: each P_m(·|s,a) has `support` (Γ) random next states; `variant="deterministic"`
  puts mass (0.95, 0.05) on them and draws last-step reward means in {0, 1}, `variant="noisy"`
  draws Dirichlet(1) masses and U[0,1] reward means. Rewards are zero before step H; w ~
  Dirichlet(1); the episode starts in state 0."""
  if variant not in ("deterministic", "noisy"):
    raise ValueError(f"`variant` must be 'deterministic' or 'noisy', got {variant!r}.")
  if not 1 <= support <= n_states:
    raise ValueError(f"`support` must lie in [1, n_states={n_states}], got {support}.")
  if min(n_contexts, n_actions, horizon) < 1:
    raise ValueError(f"`n_contexts`, `n_actions`, `horizon` must be >= 1, got {n_contexts}, {n_actions}, {horizon}.")
  M, S, A, H = n_contexts, n_states, n_actions, horizon
  # One uniform draw feeds every random quantity (one sampler to compile); Dirichlet(1) vectors are
  # normalised Exp(1) draws −log U.
  u = jax.random.uniform(key, (M * S * A * (S + support + 1) + M,), minval=1e-12)
  u_sa, u_w = u[:-M].reshape(M, S, A, S + support + 1), u[-M:]
  ranks = jnp.argsort(u_sa[..., :S], -1)[..., :support]  # distinct next states
  if variant == "deterministic":
    mass = jnp.asarray([0.95] + [0.05 / max(support - 1, 1)] * (support - 1))[:support]
    mass = jnp.broadcast_to(mass / mass.sum(), (M, S, A, support))
    r_last = (u_sa[..., -1] < 0.5).astype(mass.dtype)
  else:
    e = -jnp.log(u_sa[..., S:S + support])
    mass = e / e.sum(-1, keepdims=True)
    r_last = u_sa[..., -1]
  P = jnp.sum(jax.nn.one_hot(ranks, S, dtype=mass.dtype) * mass[..., None], -2)
  r = jnp.zeros((M, H, S, A), mass.dtype).at[:, H - 1].set(r_last)
  w = -jnp.log(u_w) / jnp.sum(-jnp.log(u_w))
  return LMDPParams(P, r, w, jax.nn.one_hot(0, S, dtype=mass.dtype))


def reset(key, params: LMDPParams) -> tuple[EnvState, jax.Array]:
  """m ~ w (hidden), s_0 ~ rho; the observation is s_0."""
  k_m, k_s = jax.random.split(key)
  m = jax.random.categorical(k_m, jnp.log(params.w))
  s = jax.random.categorical(k_s, jnp.log(params.rho))
  return EnvState(m, s, jnp.asarray(0)), s


def step(key, params: LMDPParams, state: EnvState, action):
  """s' ~ P_m(·|s,a), reward ~ Bernoulli(r_m,h(s,a)); done at h + 1 = H, when `info["context"]`
  reveals m (−1 before). `info["mean_reward"]` is r_m,h(s,a)."""
  H = params.r.shape[1]
  k_s, k_r = jax.random.split(key)
  m, s, h = state
  nxt = jax.random.categorical(k_s, jnp.log(params.P[m, s, action]))
  mean = params.r[m, jnp.minimum(h, H - 1), s, action]
  reward = jax.random.bernoulli(k_r, mean).astype(mean.dtype)
  done = h + 1 >= H
  info = {"mean_reward": mean, "context": jnp.where(done, m, -1)}
  return EnvState(m, nxt, h + 1), nxt, reward, done, info


# --- History enumeration -------------------------------------------------------------------------
# Layer h of the history tree holds N_h = S·(A·S)^h nodes x = (s_0, a_0, s_1, ..., a_{h−1}, s_h) in
# mixed radix, child(x, a, s') = (x·A + a)·S + s', current state s_h = x mod S. Layers have different
# sizes, so loops over h (H ≤ 6) unroll at trace time.


class PolicyTree(NamedTuple):
  policy: jax.Array  # i[Σ_h N_h], the action at every history, layers concatenated
  value: jax.Array  # V_0(s_0) f[S], per initial state (belief = w at the root)
  q: tuple  # Q_h f[N_h, A] per layer (belief-averaged, unnormalised by the history's mass)


def layer_offsets(n_states: int, n_actions: int, horizon: int) -> np.ndarray:
  """Start of layer h in the flat policy array: Σ_{h'<h} S·(AS)^{h'} (length H + 1)."""
  sizes = [n_states * (n_actions * n_states) ** h for h in range(horizon)]
  return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def history_masses(P, w, rho, horizon: int, policy=None) -> list[jax.Array]:
  """Joint masses α_h(x, m) = w_m ρ(s_0) Π_t π(a_t|x_t) P_m(s_{t+1}|s_t, a_t) for h < H, as a list of
  f[N_h, M]; the belief at x is b_h(m) = α_h(x,m)/Σ_m α_h(x,m). Without `policy` every action
  sequence gets weight 1 (the tree a planner maximises over); with a flat policy the masses are those
  of the histories it generates."""
  P = jnp.asarray(P)
  M, S, A, _ = P.shape
  P_t = jnp.moveaxis(P, 0, -1)  # [S, A, S', M]
  offsets = layer_offsets(S, A, horizon)
  alpha = rho[:, None] * w[None, :]
  out = [alpha]
  for h in range(horizon - 1):
    s = jnp.arange(alpha.shape[0]) % S
    nxt = alpha[:, None, None, :] * P_t[s]
    if policy is not None:
      nxt = nxt * jax.nn.one_hot(policy[offsets[h]:offsets[h + 1]], A, dtype=nxt.dtype)[:, :, None, None]
    alpha = nxt.reshape(-1, M)
    out.append(alpha)
  return out


def backward_histories(P, r, masses, *, bonus=None, v_max=1.0) -> PolicyTree:
  """Bellman recursion over histories, in unnormalised form W_h(x) = Σ_m α_h(x,m) V_h(x):

      Q_h(x,a) = Σ_m α_h(x,m) [r_m,h(s_x,a) + β_h(x,a,m)] + Σ_s' W_{h+1}((x·A + a)·S + s'),
      W_h(x) = min(v_max Σ_m α_h(x,m), max_a Q_h(x,a)),   W_H ≡ 0,

  i.e. V_h(x) = min(v_max, max_a Σ_m b_h(m) [r + β + Σ_s' P_m(s'|s,a) V_{h+1}(x a s')]) with the exact
  belief b_h. `bonus(h, s[N], v_next[N,A,S]) -> f[N,A,M]` adds an optimism bonus β (None: exact);
  v_max is the total-reward cap (horizon-free truncation). Returns PolicyTree."""
  M, S, A, _ = jnp.shape(P)
  H = len(masses)
  w_next = jnp.zeros((masses[-1].shape[0], A, S), masses[-1].dtype)
  mass_next = jnp.ones_like(w_next)
  policies, qs = [], []
  for h in reversed(range(H)):
    alpha = masses[h]
    s = jnp.arange(alpha.shape[0]) % S
    q = jnp.einsum("xm,mxa->xa", alpha, r[:, h][:, s]) + w_next.sum(-1)
    if bonus is not None:
      v_next = jnp.where(mass_next > 0, w_next / jnp.where(mass_next > 0, mass_next, 1.0), 0.0)
      q = q + jnp.einsum("xm,xam->xa", alpha, bonus(h, s, v_next))
    mass = alpha.sum(-1)
    w_now = jnp.minimum(jnp.where(mass > 0, v_max * mass, 0.0), q.max(-1))  # inf·0 would be nan
    policies.append(q.argmax(-1).astype(jnp.int32))
    qs.append(q)
    if h > 0:
      w_next, mass_next = w_now.reshape(-1, A, S), mass.reshape(-1, A, S)
  value = jnp.where(mass > 0, w_now / jnp.where(mass > 0, mass, 1.0), 0.0)
  return PolicyTree(jnp.concatenate(policies[::-1]), value, tuple(qs[::-1]))


def policy_value(params: LMDPParams, policy) -> jax.Array:
  """Exact expected return of a history-dependent policy: Σ_h Σ_x Σ_m α^π_h(x,m) r_m,h(s_x, π_h(x))."""
  M, S, A, _ = params.P.shape
  H = params.r.shape[1]
  offsets = layer_offsets(S, A, H)
  masses = history_masses(params.P, params.w, params.rho, H, policy)
  total = 0.0
  for h, alpha in enumerate(masses):
    x = jnp.arange(alpha.shape[0])
    act = policy[offsets[h]:offsets[h + 1]]
    total = total + jnp.einsum("xm,mx->", alpha, params.r[:, h][:, x % S, act])
  return total


def oracle(params: LMDPParams) -> tuple[jax.Array, PolicyTree]:
  """Optimal value of the LMDP over history-dependent policies, V* = Σ_s ρ(s) V_0(s), by exact
  history enumeration (cost O(M (SA)^H)); returns (V*, PolicyTree)."""
  H = params.r.shape[1]
  tree = backward_histories(params.P, params.r, history_masses(params.P, params.w, params.rho, H),
                            v_max=jnp.inf)
  return params.rho @ tree.value, tree
