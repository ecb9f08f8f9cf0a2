"""The skill chain: success probabilities in closed form, the score-function gradient, hints."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.tasks import skill_chain as sc


def test_success_frequency_matches_the_closed_form_with_hints():
  theta = jnp.linspace(-1.0, 2.0, 12)
  depth, hint = jnp.array([1, 3, 6, 6, 12]), jnp.array([0, 0, 0, 3, 11])
  reward, _ = sc.sample_rollouts(jax.random.PRNGKey(0), theta, depth, 40000, hint)
  np.testing.assert_allclose(reward.mean(1), sc.success_prob(theta, depth, hint), atol=0.01)
  expect = [np.prod(jax.nn.sigmoid(theta[h:d])) for d, h in zip(depth, hint)]
  np.testing.assert_allclose(sc.success_prob(theta, depth, hint), expect, rtol=1e-5)


def test_logp_is_the_log_probability_of_the_sampled_path():
  theta = jnp.array([0.5, -0.3, 1.2, 0.0])
  reward, logp = sc.sample_rollouts(jax.random.PRNGKey(3), theta, jnp.array([3]), 64)
  ls, lf = np.asarray(jax.nn.log_sigmoid(theta)), np.asarray(jax.nn.log_sigmoid(-theta))
  paths = {1.0: ls[:3].sum()} | {("fail", s): ls[:s].sum() + lf[s] for s in range(3)}
  for r, lp in zip(np.asarray(reward[0]), np.asarray(logp[0])):
    if r == 1:
      np.testing.assert_allclose(lp, paths[1.0], rtol=1e-6)
    else:
      assert min(abs(lp - paths[("fail", s)]) for s in range(3)) < 1e-5


def test_score_function_gradient_estimates_the_gradient_of_the_success_probability():
  theta = jnp.full((6,), 0.3)
  key = jax.random.PRNGKey(1)

  def surrogate(th):
    r, lp = sc.sample_rollouts(key, th, jnp.array([4]), 50000)
    return jnp.mean(jax.lax.stop_gradient(r) * lp)

  exact = jax.grad(lambda th: sc.success_prob(th, jnp.array(4)))(theta)
  np.testing.assert_allclose(jax.grad(surrogate)(theta), exact, atol=8e-3)
  assert float(exact[5]) == 0.0  # steps past the depth do not matter


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="theta"):
    sc.sample_rollouts(jax.random.PRNGKey(0), jnp.zeros((2, 3)), jnp.array([1]), 4)
  with pytest.raises(ValueError, match="group_size"):
    sc.sample_rollouts(jax.random.PRNGKey(0), jnp.zeros(3), jnp.array([1]), 0)
