"""SEC (Chen et al. 2025): the invariants of spec §1.3 and parity with a NumPy port of the reference bandit."""

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from rljax import curricula
from rljax.curricula import bandit, sec
from rljax.losses import grpo_advantages
from rljax.theory.curricula import stationary
from rljax.training.checkpoint import Checkpointer


def _feedback(key, num_arms, b=24, g=8, arms=None, p=None, valid=None):
  """Random binary groups with GRPO advantages (verl: Bessel std, ε = 1e-6)."""
  k1, k2, k3 = jax.random.split(key, 3)
  if arms is None:
    arms = jax.random.randint(k1, (b,), 0, num_arms)
  arms = jnp.asarray(arms, jnp.int32)
  b = arms.shape[0]
  p = jax.random.uniform(k2, (b, 1)) if p is None else p
  rewards = jax.random.bernoulli(k3, p, (b, g)).astype(jnp.float32)
  adv = grpo_advantages(rewards.reshape(-1), group_size=g).reshape(b, g)
  return curricula.Feedback.of(arms, rewards, adv, valid=valid)


def _state(q):
  q = jnp.asarray(q, jnp.float32)
  return {**sec.init(q.shape[0]), "q": q}


def test_init_is_uniform_and_registered():
  c = curricula.make("sec", 8)
  p = c.probs(c.init())
  assert p.shape == (8,) and float(p.max() - p.min()) < 1e-7
  assert c.config == {"alpha": 0.5, "temperature": 1.0, "reward": "mean_abs_adv", "absent": "decay"}
  assert int(c.init()["step"]) == 0 and c.init()["counts"].dtype == jnp.int32


def test_absent_arm_decays_by_one_minus_alpha_or_is_kept_bit_for_bit():
  q0 = jnp.asarray([0.3, -0.7, 1.1, 0.25, 0.9], jnp.float32)
  fb = _feedback(jax.random.PRNGKey(0), 5, arms=jnp.asarray([0, 2, 2, 4, 0, 4]), p=0.5)
  for alpha in (0.3, 0.5, 0.77):
    decay = curricula.make("sec", 5, alpha=alpha).update(_state(q0), fb)["q"]
    keep = curricula.make("sec", 5, alpha=alpha, absent="keep").update(_state(q0), fb)["q"]
    absent = np.asarray([1, 3])
    np.testing.assert_array_equal(np.asarray(decay)[absent], np.float32(1 - alpha) * np.asarray(q0)[absent])
    np.testing.assert_array_equal(np.asarray(keep)[absent], np.asarray(q0)[absent])
    # Present arms move the same way under both rules.
    np.testing.assert_array_equal(np.asarray(decay)[[0, 2, 4]], np.asarray(keep)[[0, 2, 4]])


def test_alpha_one_sets_q_to_the_batch_reward_and_counts_present_arms():
  fb = _feedback(jax.random.PRNGKey(1), 6, b=40)
  state = sec.update(_state(jnp.linspace(-1, 1, 6)), fb, alpha=1.0, absent="keep")
  r, present = sec.arm_rewards(fb.advantages, fb.arm_ids, 6)
  assert bool(present.all())
  np.testing.assert_allclose(state["q"], r, rtol=1e-6)
  # r(c) by hand: the mean over arm c's prompts of each prompt's mean |A|.
  a, ids = np.asarray(fb.advantages), np.asarray(fb.arm_ids)
  np.testing.assert_allclose(r, [np.abs(a[ids == c]).mean() for c in range(6)], rtol=1e-5)
  np.testing.assert_array_equal(state["counts"], np.ones(6))
  assert int(state["step"]) == 1


def test_constant_reward_gives_the_closed_form():
  """With every prompt's |A| = r, Q_n = r·(1 − (1 − α)^n)."""
  r, alpha, n = 0.8, 0.3, 25
  adv = jnp.full((4, 2), r) * jnp.asarray([1.0, -1.0])
  fb = curricula.Feedback.of(jnp.asarray([0, 1, 2, 0]), jnp.zeros((4, 2)), adv)
  c = curricula.make("sec", 3, alpha=alpha)
  state = jax.lax.fori_loop(0, n, lambda i, s: c.update(s, fb), c.init())
  np.testing.assert_allclose(state["q"], r * (1 - (1 - alpha) ** n), atol=1e-6)
  np.testing.assert_array_equal(state["counts"], np.full(3, n))


def test_probs_shift_invariant_and_temperature_limits():
  q = jnp.asarray([0.1, 0.55, -0.3, 0.5], jnp.float32)
  np.testing.assert_allclose(sec.probs(_state(q + 3.7), 0.4), sec.probs(_state(q), 0.4), atol=1e-6)
  np.testing.assert_allclose(sec.probs(_state(q), 1e-4), np.eye(4)[1], atol=1e-6)
  np.testing.assert_allclose(sec.probs(_state(q), 1e6), np.full(4, 0.25), atol=1e-6)
  # ... and Boltzmann in between.
  e = np.exp(np.asarray(q, np.float64) / 0.4)
  np.testing.assert_allclose(sec.probs(_state(q), 0.4), e / e.sum(), rtol=1e-5)


def test_sample_frequencies_match_probs():
  c = curricula.make("sec", 5, temperature=0.3)
  state = _state([0.1, 0.6, 0.0, 0.35, -0.2])
  n = 100_000
  counts = np.bincount(np.asarray(c.sample(state, jax.random.PRNGKey(2), n)), minlength=5)
  p = np.asarray(c.probs(state), np.float64)
  assert stats.chisquare(counts, n * p / p.sum()).pvalue > 1e-3


def test_mean_abs_advantage_closed_form_for_every_binary_group():
  """(1/G) Σ_j |A_j| = 2·sqrt((G−1)/G)·sqrt(p̂(1−p̂)) for 0 < k < G (ε = 0), 0 for k ∈ {0, G}; through
  arm_rewards with one arm per k, and (1/G) Σ_j |r_j − r̄| = 2p̂(1−p̂) for the un-normalised reward."""
  for g in (2, 5, 8):
    k = np.arange(g + 1)
    rewards = (np.arange(g)[None, :] < k[:, None]).astype(np.float32)  # group k: k successes
    adv = grpo_advantages(jnp.asarray(rewards).reshape(-1), group_size=g, eps=0.0).reshape(g + 1, g)
    ph = k / g
    expected = np.where((k > 0) & (k < g), 2 * np.sqrt((g - 1) / g) * np.sqrt(ph * (1 - ph)), 0.0)
    np.testing.assert_allclose(bandit.mean_abs_advantage(adv), expected, atol=1e-5)
    r, present = sec.arm_rewards(adv, jnp.asarray(k), g + 1)
    np.testing.assert_allclose(r, expected, atol=1e-5)
    assert bool(present.all())
    fb = curricula.Feedback.of(k, rewards)
    np.testing.assert_allclose(sec.arm_rewards(sec.signal(fb, "mean_abs_adv_unnormalised"), k, g + 1)[0],
                               2 * ph * (1 - ph), atol=1e-6)


def test_invalid_prompts_are_left_out():
  fb = _feedback(jax.random.PRNGKey(3), 3, b=6, arms=[0, 0, 1, 1, 2, 2], p=0.5)
  valid = jnp.asarray([True, False, True, True, False, False])
  r, present = sec.arm_rewards(fb.advantages, fb.arm_ids, 3, valid)
  m = np.abs(np.asarray(fb.advantages)).mean(1)
  np.testing.assert_allclose(r, [m[0], (m[2] + m[3]) / 2, 0.0], rtol=1e-6)
  np.testing.assert_array_equal(present, [True, True, False])
  q = sec.update(_state([1.0, 1.0, 1.0]), fb._replace(valid=valid), alpha=0.5, absent="keep")["q"]
  assert float(q[2]) == 1.0  # an arm whose prompts are all invalid is absent


def _reference_bandit(num_arms, lr, batches):
  """NumPy port of the reference `BanditPriority.update` + `update_q_values` (Vincent-La/cofa,
  sec/verl/verl/utils/auto_curriculum/priority.py): per-response mean |adv| (every token valid), averaged per
  category over its responses; categories absent from the batch get new_q = 0; q ← (1 − lr)·q + lr·new_q."""
  q = np.zeros(num_arms)
  out = []
  for arms, obj in batches:
    groups = {}
    for arm, row in zip(arms, obj):
      for resp in row:  # one response: its token-masked mean |adv| is |adv| for a sequence-level advantage
        groups.setdefault(int(arm), []).append(abs(float(resp)))
    new_qs = np.zeros(num_arms)
    for arm, vals in groups.items():
      new_qs[arm] = np.mean(np.abs(vals))
    q = (1 - lr) * q + lr * new_qs
    out.append(q.copy())
  return np.asarray(out)


@pytest.mark.parametrize("reward", sec.REWARDS)
def test_decay_rule_matches_the_reference_bandit(reward):
  k, steps = 6, 30
  c = curricula.make("sec", k, alpha=0.5, reward=reward)
  fbs = [_feedback(jax.random.PRNGKey(10 + t), k, b=12) for t in range(steps)]  # some arms absent some steps
  state, qs, batches = c.init(), [], []
  for fb in fbs:
    state = c.update(state, fb)
    qs.append(np.asarray(state["q"]))
    batches.append((np.asarray(fb.arm_ids), np.asarray(sec.signal(fb, reward))))
  assert any(len(set(a.tolist())) < k for a, _ in batches)  # the absent-arm rule is exercised
  np.testing.assert_allclose(np.asarray(qs), _reference_bandit(k, 0.5, batches), atol=1e-6)
  # the un-normalised signal is r − mean_g r
  fb = fbs[0]
  r = np.asarray(fb.rewards)
  if reward == "mean_abs_adv_unnormalised":
    np.testing.assert_allclose(batches[0][1], r - r.mean(1, keepdims=True), atol=1e-7)


@pytest.mark.parametrize("absent", sec.ABSENT)
def test_stationary_toy_picks_the_half_success_arm(absent):
  """K = 5 arms with p = (0.02, 0.2, 0.5, 0.8, 0.98), G = 8, 16 prompts per step, α = 0.5, τ = 0.2, 300 steps:
  the p = 0.5 arm has the largest probability in ≥ 95 % of 64 seeds."""
  c = curricula.make("sec", 5, alpha=0.5, temperature=0.2, absent=absent)
  rate = stationary.pick_rate(c, (0.02, 0.2, 0.5, 0.8, 0.98), seeds=64, steps=300, prompts=16, group_size=8)
  assert rate >= 0.95, rate


def test_jit_equals_eager_and_vmaps_over_seeds():
  c = curricula.make("sec", 4, alpha=0.4, temperature=0.5)
  fb = _feedback(jax.random.PRNGKey(4), 4, b=10)
  state = _state([0.2, -0.1, 0.4, 0.0])
  eager, jitted = c.update(state, fb), jax.jit(c.update)(state, fb)
  jax.tree.map(np.testing.assert_array_equal, eager, jitted)
  np.testing.assert_array_equal(c.probs(state), jax.jit(c.probs)(state))
  states = jax.vmap(lambda _: c.init())(jnp.arange(3))
  fbs = jax.tree.map(lambda *x: jnp.stack(x), *[_feedback(jax.random.PRNGKey(20 + i), 4, b=10) for i in range(3)])
  out = jax.vmap(c.update)(states, fbs)
  np.testing.assert_array_equal(out["q"][1], c.update(c.init(), jax.tree.map(lambda x: x[1], fbs))["q"])


def test_checkpoint_round_trip_is_exact(tmp_path):
  c = curricula.make("sec", 5)
  state = c.init()
  for t in range(3):
    state = c.update(state, _feedback(jax.random.PRNGKey(30 + t), 5, b=8))
  ckpt = Checkpointer(str(tmp_path / "ckpt"))
  ckpt.save(3, state)
  step, restored = ckpt.restore_latest(jax.tree.map(jnp.zeros_like, c.init()))
  ckpt.close()
  assert step == 3
  jax.tree.map(np.testing.assert_array_equal, restored, state)
  jax.tree.map(np.testing.assert_array_equal, pickle.loads(pickle.dumps(jax.device_get(state))), state)


def test_bad_options_and_shapes_raise():
  for bad in (dict(alpha=0.0), dict(alpha=1.5), dict(temperature=0.0), dict(reward="adv"), dict(absent="zero")):
    with pytest.raises(ValueError):
      curricula.make("sec", 3, **bad)
  with pytest.raises(ValueError, match="arm_ids"):
    sec.arm_rewards(jnp.zeros((4, 8)), jnp.zeros((3,), jnp.int32), 3)
  with pytest.raises(ValueError, match="success_probs"):
    stationary.make_run(curricula.make("sec", 3), (0.5, 0.5), steps=2, prompts=2, group_size=2)



def test_switched_curricula_under_one_compile_equal_separate_runs():
  """`compare.run_curricula` (a traced index picks the curriculum) reproduces `chain_rl.run_seeds` per member."""
  from rljax.theory.curricula import chain_rl, compare

  cfg = chain_rl.chain_config(steps=12, prompts=8)
  members = {"uniform": curricula.make("uniform", 8), "sec": curricula.make("sec", 8, temperature=0.2)}
  together = compare.run_curricula(cfg, members, 2)
  for name, c in members.items():
    theta, state, rec = chain_rl.run_seeds(cfg, c, 2)
    np.testing.assert_allclose(together[name]["records"]["success"], rec["success"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(together[name]["records"]["probs"], rec["probs"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(together[name]["theta"], theta, rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), together[name]["state"], state)
  with pytest.raises(ValueError, match="keep"):
    compare.switched([members["uniform"], members["uniform"]._replace(keep=lambda r: r.sum(1) > 0)], 0)
