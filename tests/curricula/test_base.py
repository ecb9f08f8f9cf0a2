"""The curriculum interface, the registry, the shared bandit helpers and the fixed curricula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import curricula
from rljax.curricula import bandit, ghpo


def test_registry_builds_by_name_or_config_and_rejects_unknowns():
  assert {"uniform", "easy_to_hard", "hard_to_easy", "ghpo"} <= set(curricula.names())
  c = curricula.make({"name": "easy_to_hard", "total_steps": 10}, 5)
  assert c.name == "easy_to_hard" and c.num_arms == 5
  with pytest.raises(ValueError, match="unknown curriculum"):
    curricula.make("no_such", 3)
  with pytest.raises(ValueError, match="name"):
    curricula.make({"total_steps": 3}, 3)
  with pytest.raises(ValueError, match="num_arms"):
    curricula.make("uniform", 0)
  with pytest.raises(ValueError, match="already registered"):
    curricula.register("uniform", curricula.fixed.uniform)


def test_uniform_samples_its_arms_uniformly():
  c = curricula.make("uniform", 6, arms=(1, 3, 4))
  arms = np.asarray(c.sample(c.init(), jax.random.PRNGKey(0), 30000))
  assert set(np.unique(arms)) == {1, 3, 4}
  np.testing.assert_allclose(np.bincount(arms, minlength=6)[[1, 3, 4]] / 30000, 1 / 3, atol=0.015)


@pytest.mark.parametrize("name, first, last", [("easy_to_hard", 0, 2), ("hard_to_easy", 2, 0)])
def test_ordered_curricula_move_through_the_levels_in_equal_phases(name, first, last):
  levels = (0, 1, 2, 0, 1, 2)  # two families × three levels
  c = curricula.make(name, 6, total_steps=9, levels=levels)
  state, seen = c.init(), []
  for _ in range(10):
    p = np.asarray(c.probs(state))
    lv = {levels[a] for a in np.flatnonzero(p)}
    assert len(lv) == 1 and np.allclose(p[p > 0], 0.5)
    seen.append(lv.pop())
    state = c.update(state, None)
  assert seen[:3] == [first] * 3 and seen[3:6] == [1] * 3 and seen[6:] == [last] * 4


def test_feedback_checks_shapes():
  fb = curricula.Feedback.of(jnp.array([0, 1]), jnp.ones((2, 4)))
  assert fb.valid.all() and fb.advantages.shape == (2, 4)
  with pytest.raises(ValueError, match="arm_ids"):
    curricula.Feedback.of(jnp.array([0]), jnp.ones((2, 4)))
  with pytest.raises(ValueError, match="advantages"):
    curricula.Feedback.of(jnp.array([0, 1]), jnp.ones((2, 4)), advantages=jnp.ones((2, 3)))


def test_scatter_mean_matches_a_loop_and_reports_empty_arms():
  rng = np.random.default_rng(0)
  v, a, w = rng.normal(size=50), rng.integers(0, 5, 50), rng.integers(0, 2, 50)
  a[a == 3] = 4  # arm 3 empty
  mean, count = bandit.scatter_mean(jnp.asarray(v), jnp.asarray(a), 5, weights=jnp.asarray(w))
  for k in range(5):
    sel = (a == k) & (w == 1)
    assert count[k] == sel.sum()
    np.testing.assert_allclose(mean[k], v[sel].mean() if sel.any() else 0.0, rtol=1e-5, atol=1e-6)


def test_boltzmann_and_sampling():
  p = bandit.boltzmann_probs(jnp.array([0.0, 1.0, 2.0]), 0.5)
  np.testing.assert_allclose(p, np.exp([0, 2, 4]) / np.exp([0, 2, 4]).sum(), rtol=1e-6)
  arms = bandit.sample_arms(jax.random.PRNGKey(1), jnp.array([0.0, 0.25, 0.75]), 20000)
  np.testing.assert_allclose(np.bincount(np.asarray(arms), minlength=3) / 20000, [0, 0.25, 0.75], atol=0.015)
  with pytest.raises(ValueError, match="temperature"):
    bandit.boltzmann_probs(jnp.zeros(2), 0.0)


def test_ghpo_stage_is_the_first_success_or_the_last():
  any_success = jnp.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 1], [0, 0, 0, 1]], bool)  # [stages, B]
  np.testing.assert_array_equal(ghpo.first_success_stage(any_success), [0, 1, 3, 2])
  with pytest.raises(ValueError, match="omegas"):
    curricula.make("ghpo", 3, omegas=(0.5, 0.25))
