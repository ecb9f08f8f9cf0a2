
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.losses.aggregation import aggregate
from rljax.losses.kl import kl_penalty
from rljax.losses.policy_gradient import ppo_clip_loss
from rljax.losses.grpo_d import grpo_d_kl_schedule, piecewise_linear

S = 100


def _eval(kind, steps, **kw):
  return np.array([float(grpo_d_kl_schedule(s, S, kind=kind, **kw)) for s in steps])


def test_piecewise_linear_hits_knots_and_interpolates():
  xs, ys = (0.0, 10.0, 30.0), (1.0, 3.0, 2.0)
  for x, y in zip(xs, ys):
    np.testing.assert_allclose(piecewise_linear(x, xs, ys), y, rtol=1e-6)
  np.testing.assert_allclose(piecewise_linear(5, xs, ys), 2.0, rtol=1e-6)
  np.testing.assert_allclose(piecewise_linear(20, xs, ys), 2.5, rtol=1e-6)
  # constant beyond the ends
  np.testing.assert_allclose(piecewise_linear(-7, xs, ys), 1.0)
  np.testing.assert_allclose(piecewise_linear(99, xs, ys), 2.0)


@pytest.mark.parametrize("kind", ["ramp", "ramp_then_decay"])
def test_schedule_continuous_bounded_and_equal_at_knots(kind):
  lo, hi, w = 0.01, 0.05, 0.3
  steps = np.arange(-5, S + 6)
  beta = _eval(kind, steps, beta_min=lo, beta_max=hi, warmup_frac=w)
  assert np.all(beta >= lo - 1e-7) and np.all(beta <= hi + 1e-7)
  # Lipschitz with the steepest slope (hi − lo)/(w·S): no jumps.
  assert np.max(np.abs(np.diff(beta))) <= (hi - lo) / (w * S) + 1e-6
  at = lambda s: float(grpo_d_kl_schedule(s, S, kind=kind, beta_min=lo, beta_max=hi, warmup_frac=w))
  np.testing.assert_allclose(at(0), lo, rtol=1e-6)
  np.testing.assert_allclose(at(30), hi, rtol=1e-6)
  np.testing.assert_allclose(at(S), hi if kind == "ramp" else lo, rtol=1e-6)


def test_ramp_formula():
  lo, hi, w = 0.0, 0.04, 0.3
  steps = np.array([0, 7, 15, 29, 30, 31, 80, 100])
  expected = lo + (hi - lo) * np.minimum(steps / (w * S), 1.0)
  np.testing.assert_allclose(_eval("ramp", steps), expected, rtol=1e-6, atol=1e-9)


def test_ramp_then_decay_is_linear_back_down():
  beta = _eval("ramp_then_decay", [15, 65], beta_min=0.0, beta_max=0.04, warmup_frac=0.3)
  np.testing.assert_allclose(beta, [0.02, 0.02], rtol=1e-6)


def test_constant_is_grpo():
  beta = _eval("constant", [0, 1, 50, 100, 1000], beta_max=0.04)
  np.testing.assert_allclose(beta, 0.04, rtol=1e-7)


def test_warmup_one_ramp_then_decay_is_ramp():
  steps = [0, 40, 100]
  np.testing.assert_allclose(
      _eval("ramp_then_decay", steps, warmup_frac=1.0), _eval("ramp", steps, warmup_frac=1.0), rtol=1e-7
  )


@pytest.mark.parametrize("kind", ["ramp", "ramp_then_decay", "constant"])
def test_jit_matches_eager_and_traced_step_does_not_retrace(kind):
  traces = []

  def f(step):
    traces.append(1)
    return grpo_d_kl_schedule(step, S, kind=kind)

  jf = jax.jit(f)
  for s in (0, 13, 57, 100):
    np.testing.assert_allclose(jf(jnp.int32(s)), grpo_d_kl_schedule(s, S, kind=kind), rtol=1e-6)
  assert len(traces) == 1
  vm = jax.vmap(lambda s: grpo_d_kl_schedule(s, S, kind=kind))(jnp.arange(0, 101, 25))
  np.testing.assert_allclose(vm, _eval(kind, range(0, 101, 25)), rtol=1e-6)


def _grpo_batch():
  rng = np.random.default_rng(0)
  logp = jnp.asarray(-rng.uniform(0.1, 2.0, (4, 5)), jnp.float32)
  old = logp + jnp.asarray(rng.normal(0, 0.1, (4, 5)), jnp.float32)
  ref = logp + jnp.asarray(rng.normal(0, 0.3, (4, 5)), jnp.float32)
  adv = jnp.asarray(rng.normal(size=(4,)), jnp.float32)
  mask = jnp.asarray(np.arange(5)[None] < np.array([5, 3, 1, 4])[:, None])
  return logp, old, ref, adv, mask


def test_grpo_d_loss_traced_beta_no_recompile_and_beta_zero_is_pure_ppo():
  logp, old, ref, adv, mask = _grpo_batch()
  traces = []

  def loss(lp, beta):
    traces.append(1)
    pg, _ = ppo_clip_loss(lp, old, adv, mask, agg="seq-mean-token-mean")
    return pg + beta * aggregate(kl_penalty(lp, ref, kind="k3"), mask, "seq-mean-token-mean")

  step_loss = jax.jit(jax.value_and_grad(loss))
  values = [step_loss(logp, grpo_d_kl_schedule(jnp.int32(s), S)) for s in (0, 10, 60)]
  assert len(traces) == 1
  pure_loss = lambda lp: ppo_clip_loss(lp, old, adv, mask, agg="seq-mean-token-mean")[0]
  pure, pure_grad = jax.jit(jax.value_and_grad(pure_loss))(logp)
  np.testing.assert_allclose(values[0][0], pure, rtol=1e-6)  # β(0) = β_min = 0
  np.testing.assert_allclose(values[0][1], pure_grad, rtol=1e-6, atol=1e-8)
  assert float(values[2][0]) > float(values[1][0]) > float(values[0][0])  # k3 > 0, β grows


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(kind="linear"), "kind"),
        (dict(beta_min=-0.1), "beta_min"),
        (dict(beta_min=0.1, beta_max=0.05), "beta_min"),
        (dict(warmup_frac=0.0), "warmup_frac"),
        (dict(warmup_frac=1.5), "warmup_frac"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=name):
    grpo_d_kl_schedule(3, S, **kwargs)


def test_bad_total_steps_and_knots_raise():
  with pytest.raises(ValueError, match="total_steps"):
    grpo_d_kl_schedule(3, 0)
  with pytest.raises(ValueError, match="knots_x"):
    piecewise_linear(1, (0.0, 0.0), (1.0, 2.0))
  with pytest.raises(ValueError, match="knots_x"):
    piecewise_linear(1, (0.0, 1.0), (1.0,))


def test_x64_dtype(x64):
  assert grpo_d_kl_schedule(jnp.int64(3), S, beta_max=jnp.float64(0.04)).dtype == jnp.float64
