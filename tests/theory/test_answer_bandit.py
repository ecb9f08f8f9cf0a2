"""The softmax answer bandit driven through the RLVR kernels: the five reproductions at small size."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rljax import losses
from rljax.theory.pg import answer_bandit as bp

N = 4  # group size


def _env(dim=6, seed=0):
  env = bp.make_answer_bandit(jax.random.PRNGKey(seed), n_prompts=8, n_answers=5, dim=dim, logit_mean=0.0)
  return jax.tree.map(lambda a: a.astype(jnp.float64), env)


def test_sampler_and_closed_forms(x64):
  env = _env()
  theta = jnp.linspace(-1, 1, 6)
  g = bp.sample_groups(jax.random.PRNGKey(1), theta, env, 50_000 // 8)
  pi = jax.nn.softmax(bp.logits(theta, env), -1)
  counts = np.bincount(np.asarray(g.prompt * 5 + g.answer), minlength=40).reshape(8, 5) / (50_000 // 8)
  np.testing.assert_allclose(counts, pi, atol=0.03)
  np.testing.assert_allclose(np.mean(g.reward), bp.expected_reward(theta, env), atol=0.01)
  np.testing.assert_allclose(bp.analytic_gradient(theta, env), jax.grad(bp.expected_reward)(theta, env), atol=1e-12)
  tabular = bp.make_answer_bandit(jax.random.PRNGKey(2), n_prompts=3, n_answers=4)
  assert tabular.features.shape == (3, 4, 12)
  np.testing.assert_allclose(bp.mean_entropy(jnp.zeros(12), tabular), np.log(4), rtol=1e-6)


@pytest.mark.parametrize("estimator, factor", [("rloo", 1.0), ("dr_grpo", (N - 1) / N)])
def test_group_estimators_average_to_the_policy_gradient(estimator, factor, x64):
  """(a) RLOO is unbiased; the Dr.GRPO (scale="none") group mean includes the sample itself, so its
  estimate averages to (n−1)/n times the policy gradient."""
  env = _env()
  theta = 0.5 * jax.random.normal(jax.random.PRNGKey(3), (6,), jnp.float64)
  adv_fn = {"rloo": functools.partial(losses.rloo_advantages, group_size=N),
            "dr_grpo": functools.partial(losses.grpo_advantages, group_size=N, scale="none")}[estimator]

  moments = functools.partial(bp.gradient_estimate_moments, group_size=N, n_batches=20_000,
                              advantage_fn=adv_fn, loss_fn=losses.ppo_clip_loss)
  mean, se = jax.jit(moments)(jax.random.PRNGKey(4), theta, env)
  target = factor * bp.analytic_gradient(theta, env)
  assert np.all(np.abs(mean - target) < 4.5 * se + 1e-6), (mean, target, se)
  if factor != 1.0:  # the bias is resolvable: the unscaled gradient is rejected
    assert np.max(np.abs(mean - bp.analytic_gradient(theta, env)) / se) > 4.5


def test_entropy_change_under_small_natural_and_vanilla_pg_steps(x64):
  """(b) ΔH = −η·Cov_π(log π, A) + O(η²) for NPG (Δz = ηA), −η·Cov_π(log π, π·A) for vanilla PG."""
  env = bp.make_answer_bandit(jax.random.PRNGKey(5), n_prompts=3, n_answers=6, logit_mean=0.0)
  z = 1.5 * jax.random.normal(jax.random.PRNGKey(6), (3, 6), jnp.float64)
  pi = jax.nn.softmax(z, -1)
  adv = env.success - jnp.sum(pi * env.success, -1, keepdims=True)
  entropy = lambda logits: -jnp.sum(jax.nn.softmax(logits, -1) * jax.nn.log_softmax(logits, -1), -1)
  # The vanilla step through the kernel: exact expectation by enumerating every answer as a token
  # weighted by π (advantages pre-multiplied by π, summed): −∇_z loss = π ⊙ A.
  answers = jnp.arange(6)
  tokens = lambda logits: jax.nn.log_softmax(logits, -1)[:, answers].reshape(-1, 1)
  old = tokens(z)
  weighted = jax.lax.stop_gradient(jnp.exp(old) * adv.reshape(-1, 1))
  mask = jnp.ones_like(old, dtype=bool)
  pg_step = -jax.grad(lambda l: losses.ppo_clip_loss(tokens(l), old, weighted, mask, agg="token-sum")[0])(z)
  np.testing.assert_allclose(pg_step, pi * adv, atol=1e-12)
  for direction in (adv, pg_step):  # natural PG, vanilla PG
    errors = []
    for eta in (1e-2, 1e-3):
      exact = entropy(z + eta * direction) - entropy(z)
      predicted = losses.predicted_entropy_change(z, eta * direction)
      errors.append(np.max(np.abs(exact - predicted)))
      np.testing.assert_allclose(exact, predicted, rtol=0.05, atol=1e-7)
    assert errors[1] < errors[0] / 50  # second-order remainder
  cov = jnp.sum(pi * jnp.log(pi) * adv, -1) - jnp.sum(pi * jnp.log(pi), -1) * jnp.sum(pi * adv, -1)
  np.testing.assert_allclose(losses.predicted_entropy_change(z, adv), -cov, atol=1e-12)


def test_nft_gradient_equals_grpo_on_policy(x64):
  """(d) Strictly on-policy, NFT (ω = √((1−r̂)/r̂)) has GRPO's gradient (population std, ε = 0)."""
  env = _env()
  theta = 0.3 * jnp.ones(6, jnp.float64)
  groups = bp.sample_groups(jax.random.PRNGKey(7), theta, env, 8)
  acc = jnp.repeat(groups.reward.reshape(-1, 8).mean(1), 8)
  informative = (acc > 0) & (acc < 1)  # NFT clamps r̂; all-0/all-1 groups carry no GRPO signal
  assert informative.sum() >= 16
  old = bp.token_logps(theta, env, groups)
  mask = informative[:, None]
  adv = losses.grpo_advantages(groups.reward, group_size=8, std_ddof=0, eps=0.0)
  grpo = jax.grad(lambda t: losses.ppo_clip_loss(bp.token_logps(t, env, groups), old, adv[:, None], mask)[0])(theta)
  nft = jax.grad(lambda t: losses.nft_loss(bp.token_logps(t, env, groups), old, mask, groups.reward, acc,
                                           weighting="grpo", agg="token-mean")[0])(theta)
  np.testing.assert_allclose(nft, grpo, atol=1e-12)
  assert np.linalg.norm(grpo) > 1e-3


def test_kdrl_without_kl_is_grpo(x64):
  """(e) KDRL with KL coefficient 0 trains exactly like GRPO (same trajectory)."""
  env = _env()
  adv_fn = functools.partial(losses.grpo_advantages, group_size=N)
  teacher = jnp.log(jnp.full((8 * N, 1), 0.2, jnp.float64))

  def kdrl(logp, old, adv, mask):
    return losses.kdrl_loss(logp, old, teacher, adv, mask, kl_coef=0.0)

  common = dict(steps=5, group_size=N, optimizer=optax.sgd(0.5), advantage_fn=adv_fn, updates_per_batch=2)
  theta0 = jnp.zeros(6, jnp.float64)
  th_g, tr_g = jax.jit(bp.make_train(env, loss_fn=losses.ppo_clip_loss, **common))(jax.random.PRNGKey(8), theta0)
  th_k, tr_k = jax.jit(bp.make_train(env, loss_fn=kdrl, **common))(jax.random.PRNGKey(8), theta0)
  np.testing.assert_allclose(th_k, th_g, atol=1e-12)
  np.testing.assert_allclose(tr_k.reward, tr_g.reward, atol=1e-12)
  assert np.linalg.norm(th_g) > 1e-2


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
  """experiments/bandit_pg_checks at the smoke preset, once, through the experiment template."""
  from configs.bandit_pg_checks import get_config
  from experiments import bandit_pg_checks as ex
  from experiments import cli

  cfg = get_config("smoke")
  cfg.out_dir = str(tmp_path_factory.mktemp("bandit_pg_checks"))
  return cli.execute(ex, cfg, figure=False)


def test_checks_experiment_smoke(checks):
  results, summary = checks
  assert summary["paper"] is None and summary["status"] is None and not summary["measured"]  # not a paper
  metrics = summary["metrics"]
  est = {r["estimator"]: r for r in metrics["estimators"]}
  for r in est.values():
    assert r["max_resid_se"] < 4.5, r  # every estimate points along ∇J
    if r["predicted"] is not None:  # RLOO unbiased, Dr.GRPO (n−1)/n
      assert abs(r["scale"] - r["predicted"]) < 2 * r["ci"], r
  assert abs(est["grpo, scale=none (Dr.GRPO)"]["scale"] - 1.0) > 2 * est["grpo, scale=none (Dr.GRPO)"]["ci"]
  for r in metrics["entropy_step"]:  # ΔH = −η·Cov + O(η²)
    assert abs(r["slope"] - 2.0) < 0.05, r
  nft, kdrl, norm = (r["value"] for r in metrics["equivalences"])
  assert nft < 1e-12 and kdrl < 1e-12 and norm > 1e-2, metrics["equivalences"]
  assert results["entropy"]["natural PG"].shape == (len(results["entropy"]["eta"]),)
