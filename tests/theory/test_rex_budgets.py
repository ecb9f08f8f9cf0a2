"""The budgeted-training kernel of the REX experiment (`rljax.theory.schedules.rex`); the schedules themselves
(REX's closed form, the a = 0.9 reference-code variant, sampling rates, step decay) are tested in
tests/training/test_schedules.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import schedules
from rljax.theory.schedules import rex as K

P = K.Problem(num_classes=4, dim=5, modes=2, centre_scale=1.5, n_train=256, n_eval=256, batch_size=16)
ARMS = [("rex", {}), ("linear", {}), ("step", {}), ("rex", {"a": 0.9})]


def test_lr_tables_are_the_schedules_zero_padded():
  tab = np.asarray(K.lr_tables(ARMS, (0.1, 0.3), 30, pad_to=50))
  assert tab.shape == (4, 2, 50) and np.all(tab[..., 30:] == 0)
  for i, (name, options) in enumerate(ARMS):
    for j, peak in enumerate((0.1, 0.3)):
      np.testing.assert_allclose(tab[i, j, :30], schedules.make(name, peak, 30, **options)(jnp.arange(30)), rtol=1e-6)
  with pytest.raises(ValueError, match="pad_to"):
    K.lr_tables(ARMS, (0.1,), 30, pad_to=20)


def test_mixture_draws_every_class_and_fixed_sizes():
  d = K.gaussian_mixture(jax.random.PRNGKey(0), P)
  assert d.x_train.shape == (256, 5) and d.y_test.shape == (256,)
  counts = np.bincount(np.asarray(d.y_train), minlength=4)
  assert counts.min() > 256 / 4 * 0.6  # uniform labels
  assert not np.allclose(d.x_val, d.x_test)


def test_zero_learning_rate_leaves_the_initialisation():
  """η = 0 never moves θ (momentum multiplies η), so the read-outs are those at initialisation: for zero-init
  logistic regression the loss is ln K exactly; the padded steps of a table are therefore inert."""
  data = K.gaussian_mixture(jax.random.PRNGKey(1), P)
  out = K.train(jax.random.PRNGKey(2), jnp.zeros(20), 20, data, P)
  np.testing.assert_allclose([out["val_loss"], out["test_loss"]], np.log(4), rtol=1e-6)


def test_padding_and_step_count_do_not_change_a_run():
  keys = jax.random.split(jax.random.PRNGKey(3), 3)
  short = K.sweep(keys, K.lr_tables(ARMS, (0.05,), 25), 25, P)
  padded = K.sweep(keys, K.lr_tables(ARMS, (0.05,), 25, pad_to=60), 25, P)
  extra = K.sweep(keys, K.lr_tables(ARMS, (0.05,), 25, pad_to=60), 60, P)  # 35 more steps at η = 0
  for k in short:
    assert short[k].shape == (3, 4, 1)
    np.testing.assert_allclose(padded[k], short[k], rtol=1e-5)
    np.testing.assert_allclose(extra[k], short[k], rtol=1e-5)


def test_training_learns_and_mlp_beats_logistic_on_a_multimodal_mixture():
  keys = jax.random.split(jax.random.PRNGKey(4), 4)
  mlp = P._replace(hidden=32)
  lin = K.sweep(keys, K.lr_tables([("linear", {})], (0.1,), 400), 400, P)
  deep = K.sweep(keys, K.lr_tables([("linear", {})], (0.1,), 400), 400, mlp)
  assert np.all(lin["test_loss"] < np.log(4) - 0.1) and np.all(lin["test_acc"] > 0.4)
  assert deep["test_loss"].mean() < lin["test_loss"].mean() - 0.05
  # a seed fixes the data and the minibatches: two identical tables give identical runs
  twin = K.sweep(keys, K.lr_tables([("linear", {}), ("linear", {})], (0.1,), 50), 50, P)
  np.testing.assert_array_equal(twin["test_loss"][:, 0], twin["test_loss"][:, 1])


def test_tune_picks_the_best_seed_mean_validation_loss():
  rng = np.random.default_rng(0)
  val = rng.normal(size=(5, 2, 3)) + np.array([[3.0, 1.0, 2.0], [0.0, 2.0, 1.0]])
  val[0, 1, 0] = np.nan  # a diverged run rules its peak out
  test = rng.normal(size=(5, 2, 3))
  best, (picked,) = K.tune(val, test)
  assert best.tolist() == [1, 2]
  np.testing.assert_array_equal(picked, np.stack([test[:, 0, 1], test[:, 1, 2]], 1))
  with pytest.raises(ValueError, match="shape"):
    K.tune(val, test[:, :, :2])


def test_paired_difference_is_mean_and_standard_error():
  a, b = np.array([1.0, 2.0, 4.0, 3.0]), np.array([0.5, 2.5, 3.0, 3.0])
  m, se = K.paired_difference(a, b)
  d = a - b
  np.testing.assert_allclose([m, se], [d.mean(), np.sqrt(np.sum((d - d.mean()) ** 2) / 3 / 4)])
  with pytest.raises(ValueError, match="per-seed"):
    K.paired_difference(a[:1], b[:1])


@pytest.mark.parametrize("field, value", [("hidden", -1), ("batch_size", 0), ("momentum", 1.0), ("centre_scale", 0.0)])
def test_bad_problem_raises(field, value):
  with pytest.raises(ValueError, match=field):
    K.check_problem(P._replace(**{field: value}))
