"""Tabular finite-horizon kernels: VI against brute force, soft VI, policy evaluation, occupancies."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.theory.kernels import occupancy as occ
from rljax.theory.kernels import vi

# Jitted once per module: eager calls would re-trace the layer scan on every call.
VI = jax.jit(vi.value_iteration, static_argnames="horizon")
SOFT = jax.jit(vi.soft_value_iteration, static_argnames="horizon")
EVAL = jax.jit(vi.policy_evaluation, static_argnames="horizon")
OCC = jax.jit(occ.occupancy, static_argnames="horizon")

def _mdp(seed, S=3, A=2, H=3, stationary=True):
  rng = np.random.default_rng(seed)
  shape = (S, A) if stationary else (H, S, A)
  return jnp.asarray(rng.dirichlet(np.ones(S), shape)), jnp.asarray(rng.uniform(size=(H, S, A))), \
      jnp.asarray(rng.dirichlet(np.ones(S)))


def _random_log_policy(key, H, S, A):
  return jax.nn.log_softmax(2.0 * jax.random.normal(key, (H, S, A)), -1)


def test_vi_matches_brute_force_enumeration(x64, maybe_jit):
  S, A, H = 2, 2, 3
  P, r, _ = _mdp(0, S, A, H)
  res = maybe_jit(vi.value_iteration)(P, r)
  tables = np.array(list(itertools.product(range(A), repeat=H * S))).reshape(-1, H, S)  # all A^(HS) policies
  evaluate = jax.vmap(lambda pol: EVAL(P, r, vi.deterministic_log_policy(pol, A))[1][0])
  values = np.asarray(evaluate(jnp.asarray(tables)))  # [A^(HS), S]
  np.testing.assert_allclose(res.v[0], values.max(0), atol=1e-12)  # optimal from every start state at once
  greedy = EVAL(P, r, vi.deterministic_log_policy(res.policy, A))[1]
  np.testing.assert_allclose(greedy, res.v, atol=1e-12)
  assert res.q.shape == (H, S, A) and res.v.shape == (H + 1, S) and np.all(res.v[H] == 0)


def test_stationary_and_layered_models_agree(x64):
  P, r, _ = _mdp(1)
  a = VI(P, r)
  b = VI(jnp.broadcast_to(P, (3, *P.shape)), r)
  np.testing.assert_allclose(a.v, b.v, atol=1e-12)
  c = VI(P, r[0], horizon=3)  # stationary reward, H given explicitly
  d = VI(P, jnp.broadcast_to(r[0], r.shape))
  np.testing.assert_allclose(c.v, d.v, atol=1e-12)


def test_occupancy_sums_to_one_and_gives_the_return(x64):
  S, A, H = 4, 3, 5
  P, r, s0 = _mdp(2, S, A, H, stationary=False)
  log_pi = _random_log_policy(jax.random.PRNGKey(3), H, S, A)
  q = OCC(P, log_pi, s0)
  np.testing.assert_allclose(q.sum((1, 2)), np.ones(H), atol=1e-12)
  np.testing.assert_allclose(q[0].sum(-1), s0, atol=1e-12)
  _, v = EVAL(P, r, log_pi)
  np.testing.assert_allclose(occ.expected_return(q, r), s0 @ v[0], atol=1e-12)
  # with the optimal policy, the occupancy return is VI's value
  opt = VI(P, r)
  q_opt = OCC(P, vi.deterministic_log_policy(opt.policy, A), s0)
  np.testing.assert_allclose(occ.expected_return(q_opt, r), s0 @ opt.v[0], atol=1e-12)


def test_feature_covariance_and_mean_features(x64):
  S, A, H = 3, 2, 4
  P, _, s0 = _mdp(4, S, A, H)
  q = OCC(P, _random_log_policy(jax.random.PRNGKey(5), H, S, A), s0)
  onehot = jnp.eye(S * A).reshape(S, A, S * A)
  cov = occ.feature_covariance(q, onehot)  # one-hot features: Σ_h = diag(q_h)
  np.testing.assert_allclose(cov, jax.vmap(jnp.diag)(q.reshape(H, -1)), atol=1e-12)
  phi = jax.random.normal(jax.random.PRNGKey(6), (H, S, A, 2))
  mean = occ.mean_features(q, phi)
  cov = occ.feature_covariance(q, phi)
  np.testing.assert_allclose(mean, np.einsum("hsa,hsai->hi", q, phi), atol=1e-12)
  assert np.all(np.linalg.eigvalsh(np.asarray(cov) - np.einsum("hi,hj->hij", mean, mean)) > -1e-12)  # Cov ⪰ 0


@pytest.mark.parametrize("prior", ["uniform", "random"])
def test_soft_vi_tends_to_hard_vi(x64, prior):
  S, A, H = 3, 3, 4
  P, r, _ = _mdp(7, S, A, H)
  log_prior = (jnp.full((H, S, A), -jnp.log(A)) if prior == "uniform"
               else _random_log_policy(jax.random.PRNGKey(8), H, S, A))
  hard = VI(P, r)
  errs = []
  for lam in (1.0, 1e-1, 1e-2, 1e-3, 1e-4):
    soft = SOFT(P, r, log_prior, lam)
    assert np.all(soft.v[0] <= hard.v[0] + 1e-12)  # −λKL ≤ 0
    errs.append(float(np.max(hard.v[0] - soft.v[0])))
  assert errs[-1] < 1e-2 * errs[0] and errs[-1] < 5e-3
  if prior == "uniform":  # V* − λH log A ≤ V_λ ≤ V*
    assert errs[0] <= H * np.log(A) + 1e-12
  np.testing.assert_array_equal(soft.log_pi.argmax(-1), hard.policy)


def test_soft_vi_policy_and_bellman_consistency(x64):
  S, A, H, lam = 4, 3, 5, 0.3
  P, r, s0 = _mdp(9, S, A, H)
  log_prior = _random_log_policy(jax.random.PRNGKey(10), H, S, A)
  soft = jax.jit(vi.soft_value_iteration)(P, r, log_prior, lam)
  pi_ref = np.exp(np.asarray(log_prior))
  unnorm = pi_ref * np.exp(np.asarray(soft.q) / lam)
  np.testing.assert_allclose(np.exp(soft.log_pi), unnorm / unnorm.sum(-1, keepdims=True), atol=1e-12)
  pi = np.exp(np.asarray(soft.log_pi))
  kl = np.sum(pi * (np.asarray(soft.log_pi) - np.asarray(log_prior)), -1)
  np.testing.assert_allclose(soft.v[:H], np.sum(pi * soft.q, -1) - lam * kl, atol=1e-10)  # V = E_π Q − λ KL
  _, v_eval = EVAL(P, r, soft.log_pi, log_prior=log_prior, lam=lam)
  np.testing.assert_allclose(v_eval, soft.v, atol=1e-10)
  # the soft policy maximises the regularised value: any perturbation does worse
  other = jax.nn.log_softmax(soft.log_pi + 0.3 * jax.random.normal(jax.random.PRNGKey(11), soft.log_pi.shape), -1)
  _, v_other = EVAL(P, r, other, log_prior=log_prior, lam=lam)
  assert np.all(v_other[0] < soft.v[0])


def test_zero_reward_gives_the_prior(x64):
  S, A, H = 3, 4, 3
  P, _, _ = _mdp(12, S, A, H)
  log_prior = _random_log_policy(jax.random.PRNGKey(13), H, S, A)
  soft = SOFT(P, jnp.zeros((H, S, A)), log_prior, 0.5)
  np.testing.assert_allclose(soft.log_pi, log_prior, atol=1e-12)
  np.testing.assert_allclose(soft.v, 0.0, atol=1e-12)


def test_bonus_and_cap(x64):
  P, r, _ = _mdp(14, H=4)
  base = VI(P, r)
  big = VI(P, r, bonus=10.0, q_max=4 - jnp.arange(4.0))
  np.testing.assert_allclose(big.v[:4], (4 - np.arange(4.0))[:, None] * np.ones((1, 3)))  # capped at H − h
  assert np.all(VI(P, r, bonus=0.1).v >= base.v)


def test_vmap_over_mdps_matches_loop(x64):
  Ps, rs, _ = (jnp.stack(x) for x in zip(*(_mdp(15 + i) for i in range(5))))
  batched = jax.jit(jax.vmap(lambda P, r: SOFT(P, r, jnp.full((3, 2), -jnp.log(2.0)), 0.2).v))(Ps, rs)
  for i in range(5):
    np.testing.assert_allclose(batched[i], SOFT(Ps[i], rs[i], jnp.full((3, 2), -jnp.log(2.0)), 0.2).v,
                               atol=1e-12)


def test_bad_inputs_raise(x64):
  P, r, s0 = _mdp(16)
  with pytest.raises(ValueError, match="P"):
    vi.value_iteration(P * 2.0, r)
  with pytest.raises(ValueError, match="r"):
    vi.value_iteration(P, r[:, :2])
  with pytest.raises(ValueError, match="horizon"):
    vi.value_iteration(P, r[0])
  with pytest.raises(ValueError, match="lam"):
    vi.soft_value_iteration(P, r, jnp.zeros((3, 2)) - jnp.log(2.0), 0.0)
  with pytest.raises(ValueError, match="log_prior"):
    vi.soft_value_iteration(P, r, jnp.zeros((3, 2)), 1.0)
  with pytest.raises(ValueError, match="s0"):
    occ.occupancy(P, jnp.zeros((3, 3, 2)) - jnp.log(2.0), 2 * s0)
  with pytest.raises(ValueError, match="phi"):
    occ.feature_covariance(jnp.ones((3, 3, 2)), jnp.ones((3, 3, 4)))
