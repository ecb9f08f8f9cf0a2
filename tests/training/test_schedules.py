from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rljax import schedules

T = 200
t = np.arange(T)


def _values(sched, steps):
  return np.array([float(sched(s)) for s in steps])


def test_linear_decay_boundaries_and_warmup():
  s = schedules.linear_decay(2.0, 100, end_value=0.2)
  np.testing.assert_allclose(_values(s, [0, 50, 100, 150]), [2.0, 1.1, 0.2, 0.2], rtol=1e-6)
  s = schedules.linear_decay(1.0, 100, warmup_steps=10)
  np.testing.assert_allclose(_values(s, [0, 5, 10, 55, 100, 120]), [0.0, 0.5, 1.0, 0.5, 0.0, 0.0], atol=1e-6)
  assert np.all(np.diff(_values(s, range(10, 101))) < 0)


def test_cosine_boundaries_and_linear_below_cosine_bound():
  s = schedules.cosine(1.0, 100, warmup_steps=10, end_value=0.1)
  np.testing.assert_allclose(_values(s, [0, 5, 10, 55, 100, 130]), [0.0, 0.5, 1.0, 0.55, 0.1, 0.1], atol=1e-6)
  assert np.all(np.diff(_values(schedules.cosine(1.0, 100), range(101))) < 0)
  # Spec §6 oracle, T = 200, constant G: linear 0.1430 <= cosine 0.1468 at their best scale.
  G = np.ones(T)
  lin = schedules.last_iterate_bound(_values(schedules.linear_decay(1.0, T), t), G, best_scale=True)
  cos = schedules.last_iterate_bound(_values(schedules.cosine(1.0, T), t), G, best_scale=True)
  np.testing.assert_allclose([lin, cos], [0.1430, 0.1468], atol=6e-5)


def test_rex_closed_form_and_shape():
  s = schedules.rex(3.0, 120, end_value=0.3)
  for step in [0, 17, 40, 60, 90, 119, 120]:
    z = 1 - step / 120
    np.testing.assert_allclose(float(s(step)), 0.3 + 2.7 * 2 * z / (1 + z), rtol=1e-6)
  np.testing.assert_allclose(float(s(60)), 0.3 + 2.7 * 2 / 3, rtol=1e-6)
  np.testing.assert_allclose(float(s(500)), 0.3, rtol=1e-6)
  v = _values(schedules.rex(1.0, 100), range(101))
  assert np.all(np.diff(v) < 0) and np.all(np.diff(v, 2) < 0)  # strictly decreasing and concave
  lin = _values(schedules.linear_decay(1.0, 100), range(101))
  assert np.all(v[1:-1] > lin[1:-1]) and v[0] == lin[0] and v[-1] == lin[-1]
  np.testing.assert_allclose(_values(schedules.rex(1.0, 100, a=0.0), range(101)), lin, atol=1e-6)
  np.testing.assert_allclose(float(schedules.rex(1.0, 100, a=0.9)(50)), 0.5 / 0.55, rtol=1e-6)


def test_rex_warmup_and_sampling():
  s = schedules.rex(1.0, 110, warmup_steps=10)
  np.testing.assert_allclose(_values(s, [0, 5, 10, 60, 110]), [0.0, 0.5, 1.0, 2 / 3, 0.0], atol=1e-6)
  dense = schedules.rex(1.0, 100)
  coarse = schedules.rex(1.0, 100, num_samples=4)
  v = _values(coarse, range(100))
  assert len(np.unique(v)) == 4
  np.testing.assert_allclose(_values(coarse, [0, 25, 50, 75]), _values(dense, [0, 25, 50, 75]), rtol=1e-6)


def _rex_lr_reference(max_val, min_val, num_epochs, last_epoch):
  """NumPy port of IvanVassi/REX_LR `lr_scheduler.py` (`REX_LR.get_lr`), the a = 0.9 variant."""
  mod_iter = float(last_epoch % num_epochs)
  z = float(num_epochs - mod_iter) / num_epochs
  return min_val + float(max_val - min_val) * (z / (1 - 0.9 + 0.9 * z))


@pytest.mark.parametrize("a", [0.25, 0.5, 0.9])
def test_rex_family_above_linear_concave_and_reference_code_is_a_09(a):
  v = _values(schedules.rex(1.0, 100, a=a, end_value=0.1), range(101))
  lin = _values(schedules.linear_decay(1.0, 100, end_value=0.1), range(101))
  assert np.all(np.diff(v) < 0) and np.all(np.diff(v, 2) < 0)
  assert np.all(v[1:-1] > lin[1:-1]) and np.isclose(v[0], lin[0]) and np.isclose(v[-1], lin[-1])
  half = {0.25: 0.5 / 0.875, 0.5: 2 / 3, 0.9: 0.5 / 0.55}[a]  # f_a(½) = ½ / (1 − a/2)
  np.testing.assert_allclose(v[50], 0.1 + 0.9 * half, rtol=1e-6)
  ref = [_rex_lr_reference(5e-4, 1e-5, 100, t) for t in range(100)]  # REX_LR restarts at t = N; we clamp
  np.testing.assert_allclose(_values(schedules.rex(5e-4, 100, a=0.9, end_value=1e-5), range(100)), ref, rtol=1e-5)
  assert not np.allclose(_values(schedules.rex(5e-4, 100, end_value=1e-5), range(100)), ref, rtol=1e-3)


@pytest.mark.parametrize("T,S", [(100, 4), (97, 5), (40, 40), (10, 3)])
def test_sampled_holds_the_profile_between_sample_points(T, S):
  for dense in [schedules.linear_decay(1.0, T), schedules.cosine(1.0, T), schedules.rex(1.0, T)]:
    coarse = schedules.sampled(dense, T, S)
    v = _values(coarse, range(T))
    assert len(np.unique(v)) <= S and np.all(np.diff(v) <= 0)
    points = [k * T // S for k in range(S) if (k * T) % S == 0]
    np.testing.assert_allclose(_values(coarse, points), _values(dense, points), rtol=1e-6)
    steps = np.arange(T)
    held = np.floor(steps * S / T) * T / S  # the last sample point at or before each step
    np.testing.assert_allclose(v, [float(dense(h)) for h in held], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(_values(coarse, [-5, T, T + 9]), _values(dense, [0, T, T]), atol=1e-7)
  np.testing.assert_allclose(_values(schedules.sampled(schedules.rex(1.0, T), T, T), range(T + 1)),
                             _values(schedules.rex(1.0, T), range(T + 1)), rtol=1e-6)


def test_rex_sampling_is_the_generic_wrapper_after_warmup():
  s = schedules.rex(1.0, 110, warmup_steps=10, num_samples=5)
  v = _values(s, range(111))
  np.testing.assert_allclose(v[:11], np.arange(11) / 10, atol=1e-6)  # warm-up untouched
  assert len(np.unique(v[10:110])) == 5
  wrapped = schedules.sampled(schedules.rex(1.0, 100), 100, 5)
  np.testing.assert_allclose(v[10:], _values(wrapped, range(101)), rtol=1e-6)


def test_step_decay_levels_and_boundaries():
  s = schedules.step_decay(2.0, 100)
  np.testing.assert_allclose(_values(s, [0, 49, 50, 74, 75, 99, 100, 200]),
                             [2.0, 2.0, 0.2, 0.2, 0.02, 0.02, 0.02, 0.02], rtol=1e-6)
  s = schedules.step_decay(1.0, 60, warmup_steps=10, boundaries=(0.2,), factor=0.5)
  np.testing.assert_allclose(_values(s, [0, 5, 10, 19, 20, 60]), [0.0, 0.5, 1.0, 1.0, 0.5, 0.5], atol=1e-6)
  np.testing.assert_allclose(_values(schedules.make("step", 2.0, 100), range(101)),
                             _values(schedules.step_decay(2.0, 100), range(101)))
  steps = jnp.arange(-3, 110)
  np.testing.assert_allclose(jax.jit(jax.vmap(schedules.step_decay(1.0, 100)))(steps),
                             _values(schedules.step_decay(1.0, 100), list(range(-3, 110))), rtol=1e-6)


def test_refined_constant_norms_is_linear_decay():
  G = np.full(T, 3.7)
  np.testing.assert_allclose(schedules.refined_profile(G), 1 - t / T, atol=1e-12)
  np.testing.assert_allclose(schedules.refined_profile(G, drop_final_zero=False), (T - 1 - t) / (T - 1), atol=1e-12)
  np.testing.assert_allclose(schedules.refined_profile(G, norm="l1"), 1 - t / T, atol=1e-12)
  np.testing.assert_allclose(schedules.median_smooth(G), G)
  s = schedules.refined_schedule(0.5, G)
  np.testing.assert_allclose(_values(s, [-3, 0, 100, T - 1, T + 50]), 0.5 * np.array([1, 1, 0.5, 1 / T, 1 / T]),
                             rtol=1e-6)


@pytest.mark.parametrize("name,G,ref", [
    ("U", 1 + 4 * (t / T - 0.5) ** 2, (0.178, 0.196)),  # spec §6 numbers
    ("increasing", np.linspace(1, 2, T), None),
    ("decreasing", np.linspace(2, 1, T), None),
])
def test_refined_beats_linear_under_bound(name, G, ref):
  refined = schedules.refined_profile(G, smooth=0.0)
  b_ref = schedules.last_iterate_bound(refined, G, best_scale=True)
  b_lin = schedules.last_iterate_bound(1 - t / T, G, best_scale=True)
  assert b_ref < b_lin, (name, b_ref, b_lin)
  if ref is not None:
    np.testing.assert_allclose([b_ref, b_lin], ref, atol=6e-4)
  np.testing.assert_allclose(schedules.refined_profile(5 * G, smooth=0.0), refined, rtol=1e-12)


def test_refined_warmup_emerges_from_large_early_norms():
  G = 1 + 9 * np.exp(-t / 20)
  p = schedules.refined_profile(G)
  assert p[0] < 0.5 and 0 < np.argmax(p) < T // 2 and p.max() == 1.0


def test_schedules_jit_with_traced_step():
  for s in [schedules.linear_decay(1.0, 50, warmup_steps=5), schedules.cosine(1.0, 50, warmup_steps=5),
            schedules.rex(1.0, 50, warmup_steps=5), schedules.refined_schedule(1.0, np.linspace(2, 1, 50))]:
    steps = jnp.arange(-2, 60)
    np.testing.assert_allclose(jax.jit(jax.vmap(s))(steps), _values(s, list(range(-2, 60))), rtol=1e-6, atol=1e-7)


def test_usable_in_adamw():
  target = jnp.array([1.0, -2.0])
  for sched in [schedules.rex(0.1, 5, warmup_steps=1), schedules.refined_schedule(0.1, np.ones(5))]:
    opt = optax.adamw(learning_rate=sched, weight_decay=0.0)
    params = jnp.zeros(2)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
      grads = jax.grad(lambda p: jnp.sum((p - target) ** 2))(params)
      updates, state = opt.update(grads, state, params)
      return optax.apply_updates(params, updates), state

    for _ in range(5):
      params, state = step(params, state)
    assert float(jnp.sum((params - target) ** 2)) < 5.0 and np.all(np.isfinite(params))
    assert not np.allclose(params, 0.0)


@pytest.mark.parametrize("call", [
    lambda: schedules.linear_decay(0.0, 10),
    lambda: schedules.linear_decay(1.0, 0),
    lambda: schedules.cosine(1.0, 10, warmup_steps=10),
    lambda: schedules.cosine(1.0, 10, end_value=2.0),
    lambda: schedules.rex(1.0, 10, a=1.0),
    lambda: schedules.rex(1.0, 10, num_samples=0),
    lambda: schedules.rex(1.0, 10.5),
    lambda: schedules.sampled(schedules.rex(1.0, 10), 10, 0),
    lambda: schedules.sampled(schedules.rex(1.0, 10), 0, 2),
    lambda: schedules.step_decay(1.0, 10, boundaries=(0.75, 0.5)),
    lambda: schedules.step_decay(1.0, 10, factor=1.5),
    lambda: schedules.step_decay(1.0, 10, end_value=0.1),
    lambda: schedules.refined_profile(np.ones(10), norm="l3"),
    lambda: schedules.refined_profile(np.array([1.0, 0.0, 1.0])),
    lambda: schedules.refined_schedule(1.0, np.ones((2, 3))),
    lambda: schedules.median_smooth(np.ones(10), 1.5),
    lambda: schedules.last_iterate_bound(np.ones(4), np.ones(5)),
])
def test_bad_arguments_raise(call):
  with pytest.raises(ValueError):
    call()


@pytest.mark.parametrize("name", ["constant", "linear", "cosine", "rex"])
def test_make_builds_each_schedule_by_name_for_the_optimizer(name):
  """`schedules.make` returns the named factory's schedule, and `make_optimizer(schedule=name)` steps
  parameters by exactly that learning rate (SGD, no clipping): θ_{t+1} − θ_t = −η_t·g with g = 1."""
  from rljax.training import make_optimizer

  direct = {"constant": lambda: optax.constant_schedule(0.5), "linear": lambda: schedules.linear_decay(0.5, 10),
            "cosine": lambda: schedules.cosine(0.5, 10), "rex": lambda: schedules.rex(0.5, 10)}[name]()
  made = schedules.make(name, 0.5, 10)
  np.testing.assert_allclose(_values(made, range(12)), _values(direct, range(12)), rtol=1e-6)
  opt = make_optimizer(0.5, name="sgd", clip_norm=None, schedule=name, total_steps=10)
  params, state = jnp.zeros(()), None
  state = opt.init(params)
  for step in range(4):
    updates, state = opt.update(jnp.ones(()), state, params)
    np.testing.assert_allclose(updates, -float(direct(step)), rtol=1e-6)


def test_make_refined_and_bad_names():
  gnorms = np.linspace(2.0, 1.0, 50)
  np.testing.assert_allclose(_values(schedules.make("refined", 0.1, gnorms=gnorms), range(50)),
                             _values(schedules.refined_schedule(0.1, gnorms), range(50)))
  with pytest.raises(ValueError, match="unknown schedule"):
    schedules.make("exponential", 0.1, 10)
  with pytest.raises(ValueError, match="total_steps"):
    schedules.make("cosine", 0.1)
  with pytest.raises(ValueError, match="gnorms"):
    schedules.make("refined", 0.1, 10)
