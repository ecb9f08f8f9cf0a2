"""Off-policy evaluation under realizability only: LSTD, FQE and the misalignment factor, in linear form.

Zanette, "When is Realizability Sufficient for Off-Policy Reinforcement Learning?", ICML 2023. With
Q^π = Φθ* realizable but the class not closed under the Bellman operator, the TD fixed point is still
θ* at the population level, for any behaviour μ with A_μ invertible; the finite-sample error is
‖θ̂ − θ*‖ ≈ ‖A_μ^{-1}‖·O(√(d/n)), where σ_min(A_μ) shrinks as the misalignment E = P^πΦ − ΦM_μ grows.

Conventions: finite S, A; features `phi: f[S, A, d]`; transitions `P: f[S, A, S]`; target policy
`pi: f[S, A]`; behaviour `mu: f[S, A]` (a distribution over pairs). The next-pair operator is
P^π[(s,a),(s',a')] = P(s'|s,a)π(a'|s'). Data are tuples (s, a, r, s') with (s, a) ~ μ, s' ~ P(·|s,a), and
both estimators use the expected next feature ψ(s') = Σ_a' π(a'|s')φ(s', a').
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax.theory.kernels.ridge import ridge_solve


class Data(NamedTuple):
  s: jax.Array  # int[n]
  a: jax.Array  # int[n]
  r: jax.Array  # f[n]
  s_next: jax.Array  # int[n]


class Instance(NamedTuple):
  phi: jax.Array  # f[S, A, d]
  P: jax.Array  # f[S, A, S]
  pi: jax.Array  # f[S, A]
  r: jax.Array  # f[S, A], chosen so that Q^π = Φθ*
  mu: jax.Array  # f[S, A]
  theta_star: jax.Array  # f[d]
  gamma: float


class AlignmentStats(NamedTuple):
  sigma_min_A: jax.Array  # σ_min(A_μ)
  a_inv_norm: jax.Array  # ‖A_μ^{-1}‖_2
  e_norm: jax.Array  # ‖E‖_D = (tr EᵀDE)^{1/2}
  concentrability: jax.Array  # max_{s,a} d^π_γ(s,a)/μ(s,a)
  fqe_radius: jax.Array  # ρ(γ(ΦᵀDΦ)^{-1}ΦᵀDP^πΦ): FQE converges iff < 1


def _check(phi, pi, mu=None):
  phi, pi = jnp.asarray(phi), jnp.asarray(pi)
  if phi.ndim != 3 or pi.shape != phi.shape[:2]:
    raise ValueError(f"`phi` must be [S, A, d] and `pi` [S, A]; got {phi.shape} and {pi.shape}.")
  for name, p in (("pi", pi), ("mu", mu)):
    if p is None or isinstance(p, jax.core.Tracer):
      continue
    p = np.asarray(p)  # concrete: check on the host, so that this also works inside a jit trace
    total = p.sum(-1) if name == "pi" else p.sum()
    if np.any(p < 0) or not np.allclose(total, 1.0, atol=1e-6):
      raise ValueError(f"`{name}` must be a probability table (rows of pi, all of mu summing to 1).")
  return phi, pi


@jax.jit
def next_pair_operator(P, pi) -> jax.Array:
  """P^π[(s,a),(s',a')] = P(s'|s,a) π(a'|s') as an [SA, SA] matrix."""
  S, A = pi.shape
  return (jnp.asarray(P)[..., None] * pi[None, None]).reshape(S * A, S * A)


def realizable_reward(phi, P, pi, theta_star, gamma) -> jax.Array:
  """r = Φθ* − γP^πΦθ*, so that Q^π = Φθ* solves Q = r + γP^πQ exactly. Returns f[S, A]."""
  q = jnp.asarray(phi) @ theta_star
  return q - gamma * jnp.einsum("sat,tb,tb->sa", P, pi, q)


@jax.jit
def population_lstd(inst: Instance) -> jax.Array:
  """θ_TD = A_μ^{-1}b with A_μ = ΦᵀD(Φ − γP^πΦ), b = ΦᵀDr; equals θ* whenever Q^π = Φθ*."""
  S, A, d = inst.phi.shape
  Phi, D = inst.phi.reshape(S * A, d), jnp.diag(inst.mu.ravel())
  a_mat = Phi.T @ D @ (Phi - inst.gamma * next_pair_operator(inst.P, inst.pi) @ Phi)
  return jnp.linalg.solve(a_mat, Phi.T @ D @ inst.r.ravel())


def _features(data: Data, phi, pi):
  x = phi[data.s, data.a]  # [n, d]
  psi = jnp.einsum("nb,nbd->nd", pi[data.s_next], phi[data.s_next])  # ψ(s') = Σ_a' π(a'|s')φ(s',a')
  return x, psi


def lstd(data: Data, phi, pi, gamma, *, weights=None) -> jax.Array:
  """LSTD(0): θ̂ = Â^{-1}b̂ with Â = Σ_i w_i φ_i(φ_i − γψ(s'_i))ᵀ, b̂ = Σ_i w_i φ_i r_i (w_i = 1 by default;
  a 0/1 prefix mask evaluates on the first n samples without recompiling). Solved in the input dtype
  (run in float64)."""
  phi, pi = _check(phi, pi)
  x, psi = _features(data, phi, pi)
  w = jnp.ones(x.shape[0], x.dtype) if weights is None else weights
  a_hat = jnp.einsum("n,ni,nj->ij", w, x, x - gamma * psi)
  return jnp.linalg.solve(a_hat, jnp.einsum("n,ni,n->i", w, x, data.r))


def fqe(data: Data, phi, pi, gamma, iters: int, *, lam=1e-8, weights=None) -> jax.Array:
  """Fitted Q evaluation: θ_{k+1} = argmin_θ Σ_i w_i(φ_iᵀθ − r_i − γψ(s'_i)ᵀθ_k)² + λ‖θ‖² (ridge kernel),
  from θ_0 = 0; returns the iterates `f[iters + 1, d]`. Its fixed point (λ → 0) is the LSTD solution;
  it converges iff ρ(γΣ̂^{-1}Σ_i w_i φ_iψ_iᵀ) < 1."""
  phi, pi = _check(phi, pi)
  if iters < 1:
    raise ValueError(f"`iters` must be positive, got {iters}.")
  x, psi = _features(data, phi, pi)

  def step(theta, _):
    new = ridge_solve(x, data.r + gamma * psi @ theta, lam, weights=weights)
    return new, new

  theta0 = jnp.zeros(x.shape[1], x.dtype)
  _, path = jax.lax.scan(step, theta0, None, length=iters)
  return jnp.concatenate([theta0[None], path])


@jax.jit
def alignment_stats(P_pi, Phi, mu, gamma, *, rho=None) -> AlignmentStats:
  """Linear form of the paper's three factors for `P_pi: [SA, SA]`, `Phi: [SA, d]`, `mu: [SA]`:
  A_μ = ΦᵀD(Φ − γP^πΦ); M_μ = (ΦᵀDΦ)^{-1}ΦᵀDP^πΦ and E = P^πΦ − ΦM_μ (E = 0 iff Bellman complete);
  concentrability max d^π_γ/μ with d^π_γ = (1 − γ)ρᵀ(I − γP^π)^{-1} (ρ uniform over pairs by default);
  FQE spectral radius ρ(γ(ΦᵀDΦ)^{-1}ΦᵀDP^πΦ) = ρ(γM_μ)."""
  P_pi, Phi, mu = jnp.asarray(P_pi), jnp.asarray(Phi), jnp.asarray(mu)
  n = Phi.shape[0]
  if P_pi.shape != (n, n) or mu.shape != (n,):
    raise ValueError(f"`P_pi` must be [{n}, {n}] and `mu` [{n}]; got {P_pi.shape} and {mu.shape}.")
  D = jnp.diag(mu)
  a_mat = Phi.T @ D @ (Phi - gamma * P_pi @ Phi)
  sv = jnp.linalg.svd(a_mat, compute_uv=False)
  m_mu = jnp.linalg.solve(Phi.T @ D @ Phi, Phi.T @ D @ P_pi @ Phi)
  E = P_pi @ Phi - Phi @ m_mu
  rho = jnp.full((n,), 1.0 / n) if rho is None else jnp.asarray(rho)
  occ = (1 - gamma) * jnp.linalg.solve((jnp.eye(n) - gamma * P_pi).T, rho)
  return AlignmentStats(
      sv[-1], 1.0 / sv[-1], jnp.sqrt(jnp.trace(E.T @ D @ E)), jnp.max(occ / mu),
      jnp.max(jnp.abs(jnp.linalg.eigvals(gamma * m_mu))))


@jax.jit
def td_noise_covariance(inst: Instance) -> jax.Array:
  """Σ = E_μ[φφᵀ δ²], δ = r + γψ(s')ᵀθ* − φᵀθ*; √n(θ̂ − θ*) → N(0, A_μ^{-1}ΣA_μ^{-T}) (sandwich form)."""
  psi = jnp.einsum("tb,tbd->td", inst.pi, inst.phi)
  delta = inst.r[..., None] + inst.gamma * (psi @ inst.theta_star)[None, None] - (inst.phi @ inst.theta_star)[..., None]
  w = inst.mu[..., None] * inst.P * delta**2  # [S, A, S']
  return jnp.einsum("sat,sai,saj->ij", w, inst.phi, inst.phi)


def make_family(key: jax.Array, alpha, *, n_states: int = 6, n_actions: int = 2, dim: int = 3, gamma: float = 0.9,
                mu_concentration: float = 0.5) -> Instance:
  """The reproduction family: P_α = (1 − α)P_complete + αP_rand with r re-solved so Q^π = Φθ* for all α.

  P_complete is lumpable: states fall in `dim` blocks g(s) = s mod dim, pairs in blocks b(s,a) =
  (g(s) + a) mod dim, φ(s,a) = Cᵀe_{b(s,a)}, and π(·|s) depends on g(s) only. The mass P_complete puts on
  state block j depends on b(s,a) only, so P^πΦ = ΦM (complete). P_rand has Dirichlet(1) rows;
  μ ~ Dirichlet(mu_concentration) over pairs (off-policy). The key fixes the instance across α.
  """
  if not 0.0 <= float(alpha) <= 1.0:
    raise ValueError(f"`alpha` must be in [0, 1], got {alpha}.")
  return _make_family(key, alpha, n_states, n_actions, dim, gamma, mu_concentration)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _make_family(key, alpha, n_states, n_actions, dim, gamma, mu_concentration) -> Instance:
  ks = jax.random.split(key, 7)
  S, A, d = n_states, n_actions, dim
  g = jnp.arange(S) % d
  b = (g[:, None] + jnp.arange(A)[None]) % d  # [S, A]
  C = jnp.eye(d) + 0.5 * jax.random.normal(ks[0], (d, d))
  phi = C.T[b]  # φ(s,a) = Cᵀe_{b(s,a)}
  pi = jax.random.dirichlet(ks[1], jnp.ones(A), (d,))[g]  # state-block dependent
  K = jax.random.dirichlet(ks[2], jnp.ones(d), (d,))  # block-to-block masses
  within = jax.random.dirichlet(ks[3], jnp.ones(S), (S, A))  # how each row spreads inside a block
  in_block = jax.nn.one_hot(g, d).T  # [d, S]
  spread = within[:, :, None, :] * in_block[None, None]  # [S, A, d, S]
  spread = spread / spread.sum(-1, keepdims=True)
  P_complete = jnp.einsum("saj,sajt->sat", K[b], spread)
  P_rand = jax.random.dirichlet(ks[4], jnp.ones(S), (S, A))
  P = (1 - alpha) * P_complete + alpha * P_rand
  theta_star = jax.random.normal(ks[5], (d,))
  mu = jax.random.dirichlet(ks[6], jnp.full((S * A,), mu_concentration)).reshape(S, A)
  return Instance(phi, P, pi, realizable_reward(phi, P, pi, theta_star, gamma), mu, theta_star, gamma)


def sample_data(key: jax.Array, inst: Instance, n: int, reward_noise: float = 0.0) -> Data:
  """n i.i.d. tuples: (s, a) ~ μ, s' ~ P(·|s, a), r = r(s, a) + N(0, reward_noise²)."""
  k1, k2, k3 = jax.random.split(key, 3)
  S, A = inst.mu.shape
  idx = jax.random.categorical(k1, jnp.log(inst.mu.ravel()), shape=(n,))
  s, a = idx // A, idx % A
  s_next = jax.random.categorical(k2, jnp.log(inst.P[s, a]))
  r = inst.r[s, a] + reward_noise * jax.random.normal(k3, (n,), inst.r.dtype)
  return Data(s, a, r, s_next)
