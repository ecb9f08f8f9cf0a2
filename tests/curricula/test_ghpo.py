"""GHPO (rljax.curricula.ghpo): difficulty detection, hint lengths, the staged resampling of all-wrong groups,
and the token prompts of `Suite.hinted` at GHPO's stages (spec §4.3)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import curricula
from rljax.curricula import ghpo
from rljax.tasks import skill_chain
from rljax.tasks import toy_suite as T

OMEGAS = (0.25, 0.5, 0.75)


def test_all_wrong_is_all_rewards_nonpositive():
  r = jax.random.choice(jax.random.PRNGKey(0), jnp.array([-0.5, 0.0, 0.5, 1.0]), (256, 8),
                        p=jnp.array([0.3, 0.6, 0.05, 0.05]))
  got = np.asarray(ghpo.all_wrong(r))
  np.testing.assert_array_equal(got, np.all(np.asarray(r) <= 0, axis=1))
  assert 0 < got.mean() < 1  # both kinds present
  np.testing.assert_array_equal(ghpo.all_wrong(jnp.array([[0.0, -1.0], [0.0, 1e-6]])), [True, False])
  with pytest.raises(ValueError, match="acc_rewards"):
    ghpo.all_wrong(jnp.zeros(8))


def test_hint_prefix_len_rounds_like_the_reference():
  """The reference slices `solution_hint[:round(len·ω)]` with Python's round (half to even)."""
  lens = np.arange(0, 41)
  for omega in (0.0, *OMEGAS, 0.3, 1.0):
    np.testing.assert_array_equal(ghpo.hint_prefix_len(lens, omega), [round(n * omega) for n in lens])
    np.testing.assert_array_equal(ghpo.hint_prefix_len(lens, omega, rounding="floor"),
                                  [math.floor(n * omega) for n in lens])
  # Half to even, not half up: the two conventions differ exactly on these.
  np.testing.assert_array_equal(ghpo.hint_prefix_len(np.array([2, 6, 10, 3]), np.array([0.75, 0.25, 0.25, 0.5])),
                                [2, 2, 2, 2])
  np.testing.assert_array_equal(ghpo.hint_prefix_len(lens, 0.0), 0)
  np.testing.assert_array_equal(ghpo.hint_prefix_len(lens, 1.0), lens)
  traced = jax.jit(lambda w: ghpo.hint_prefix_len(lens, w))(0.75)  # a traced ω (scan over stages)
  np.testing.assert_array_equal(traced, [round(n * 0.75) for n in lens])
  with pytest.raises(ValueError, match="omega"):
    ghpo.hint_prefix_len(lens, 1.5)
  with pytest.raises(ValueError, match="rounding"):
    ghpo.hint_prefix_len(lens, 0.5, rounding="ceil")


def test_first_success_stage_matches_a_loop_and_leaves_solved_groups_at_stage_zero():
  succ = np.asarray(jax.random.bernoulli(jax.random.PRNGKey(1), 0.3, (4, 500)))
  want = []
  for b in range(succ.shape[1]):
    hits = [k for k in range(4) if succ[k, b]]
    want.append(hits[0] if hits else 3)
  got = np.asarray(ghpo.first_success_stage(succ))
  np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(got[succ[0]], 0)  # solved before hinting: untouched
  assert set(np.unique(got)) == {0, 1, 2, 3}
  with pytest.raises(ValueError, match="any_success"):
    ghpo.first_success_stage(succ[0])


def test_merge_groups_replaces_rows():
  a = {"r": jnp.zeros((4, 3)), "tok": jnp.arange(8).reshape(4, 2)}
  b = {"r": jnp.ones((4, 3)), "tok": -jnp.arange(8).reshape(4, 2)}
  m = ghpo.merge_groups(a, b, jnp.array([True, False, False, True]))
  np.testing.assert_array_equal(m["r"][:, 0], [1, 0, 0, 1])
  np.testing.assert_array_equal(m["tok"], [[0, -1], [2, 3], [4, 5], [-6, -7]])
  with pytest.raises(ValueError, match="shape"):
    ghpo.merge_groups(a, {"r": jnp.ones((4, 3)), "tok": jnp.ones((4, 3))}, jnp.ones(4, bool))
  with pytest.raises(ValueError, match="replace"):
    ghpo.merge_groups(a, b, jnp.ones((4, 1), bool))


def _chain_sample(theta, depth, g):
  """The skill chain with GHPO hints: ω on a depth-d problem forces ⌊ω·d⌋ steps; aux = (logp, hint)."""
  def sample(key, omega):
    hint = ghpo.hint_prefix_len(depth, omega, rounding="floor")
    r, logp = skill_chain.sample_rollouts(key, theta, depth, g, hint)
    return r, (logp, hint)
  return sample


def test_staged_rollout_keeps_the_first_successful_stage():
  """The sequential loop (resample the still all-wrong groups, stage by stage) keeps, per group, the rollouts
  of `first_success_stage` of all stages drawn at once (the shortcut chain_rl takes); groups with a success
  before hinting come back bit-identical; only regenerated groups count as rollouts."""
  b, g = 512, 8
  theta = jnp.full(12, -0.5)
  depth = jax.random.randint(jax.random.PRNGKey(2), (b,), 1, 11)
  sample = _chain_sample(theta, depth, g)
  key = jax.random.PRNGKey(3)
  rewards, (logp, hint), stage, m = jax.jit(lambda k: ghpo.staged_rollout(k, sample, OMEGAS))(key)

  keys = jax.random.split(key, 4)
  stacked = [sample(k, jnp.float32(w)) for k, w in zip(keys, (0.0, *OMEGAS))]
  r_all = np.stack([np.asarray(s[0]) for s in stacked])
  want_stage = np.asarray(ghpo.first_success_stage(np.any(r_all > 0, axis=-1)))
  np.testing.assert_array_equal(stage, want_stage)
  rows = np.arange(b)
  np.testing.assert_array_equal(rewards, r_all[want_stage, rows])
  np.testing.assert_array_equal(logp, np.stack([np.asarray(s[1][0]) for s in stacked])[want_stage, rows])
  np.testing.assert_array_equal(hint, np.floor(np.array([0.0, *OMEGAS])[want_stage] * np.asarray(depth)))
  solved0 = r_all[0].max(1) > 0
  assert 0.2 < solved0.mean() < 0.8 and np.all(stage[~solved0] > 0)
  np.testing.assert_array_equal(rewards[solved0], r_all[0][solved0])  # untouched groups
  # Regenerated at stage k = all-wrong after stages < k.
  wrong_before = [np.all(r_all[0] <= 0, 1)]
  for k in (1, 2):
    wrong_before.append(wrong_before[-1] & np.all(r_all[k] <= 0, 1))
  np.testing.assert_allclose(m["hinted"], [w.mean() for w in wrong_before], rtol=1e-6)
  assert m["hinted"][0] > m["hinted"][1] > m["hinted"][2] > 0
  np.testing.assert_allclose(m["still_wrong"], np.mean(np.all(np.asarray(rewards) <= 0, 1)))
  np.testing.assert_allclose(m["rollouts"], g * (b + sum(w.sum() for w in wrong_before)))


def test_stub_policy_solving_from_60_percent_ends_every_hard_group_at_075():
  """Spec §4.3: a policy that succeeds iff the hint covers ≥ 60 % of the solution ends every hard group at stage
  ω = 0.75 with frac_still_wrong = 0; easy groups stay at stage 0; hints off (start_hint_step) keep stage 0."""
  b, g = 240, 4
  # Solutions of 4..123 tokens, and 3, the one length where round(0.5·n) = 2 already covers 60 %.
  sol_len = jnp.concatenate([jnp.array([3, 3]), jnp.arange(b - 2) // 2 + 4])
  easy = jnp.arange(b) % 2 == 0

  def sample(key, omega):
    h = ghpo.hint_prefix_len(sol_len, omega)
    ok = easy | (h >= 0.6 * sol_len)
    return jnp.broadcast_to(ok[:, None], (b, g)).astype(jnp.float32), h

  rewards, h, stage, m = jax.jit(lambda: ghpo.staged_rollout(jax.random.PRNGKey(0), sample, OMEGAS))()
  n = np.asarray(sol_len)
  np.testing.assert_array_equal(stage, np.where(easy, 0, np.where(n == 3, 2, 3)))
  np.testing.assert_array_equal(h, np.where(easy, 0, [round((0.5 if k == 3 else 0.75) * k) for k in n]))
  assert float(m["still_wrong"]) == 0.0 and np.all(np.asarray(rewards) == 1)
  np.testing.assert_allclose(m["hinted"], [0.5, 0.5, 0.5 - 1 / b], rtol=1e-6)
  np.testing.assert_allclose(m["rollouts"], g * (b + 3 * b / 2 - 1), rtol=1e-6)
  off = ghpo.staged_rollout(jax.random.PRNGKey(0), sample, OMEGAS, enabled=jnp.asarray(False))
  np.testing.assert_array_equal(off[2], 0)
  np.testing.assert_allclose(off[3]["still_wrong"], 0.5)
  np.testing.assert_allclose(off[3]["rollouts"], g * b)
  with pytest.raises(ValueError, match="omegas"):
    ghpo.staged_rollout(jax.random.PRNGKey(0), sample, (0.5, 0.25))


def test_hinted_token_prompts_at_ghpo_stages():
  """`Suite.hinted` at each stage: static width P + 1 + S; the prompt is the original one, then <think> and
  exactly ⌊ω·trace_len⌋ trace tokens (`hint_prefix_len(..., rounding="floor")`: the suite floors where the
  reference rounds); ω = 0 leaves the prompt unchanged, ω = 1 reveals the whole trace. Through
  `staged_rollout` with a stub that solves from 60 % of the trace, each group keeps its stage's prompt."""
  suite = T.make_suite(("add", "modchain", "sort"), 4)
  batch = suite.sample(jax.random.PRNGKey(4), jnp.tile(jnp.arange(suite.num_arms), 4))
  B, P = batch.ids.shape
  S = batch.trace.shape[1]
  n_prompt = np.asarray(batch.mask).sum(1)
  trace, trace_len = np.asarray(batch.trace), np.asarray(batch.trace_len)
  for omega in (0.0, *OMEGAS, 1.0):
    hinted = suite.hinted(batch, omega)
    ids = np.asarray(hinted.ids)
    assert ids.shape == (B, P + 1 + S)
    h = np.asarray(ghpo.hint_prefix_len(batch.trace_len, omega, rounding="floor"))
    np.testing.assert_array_equal(np.asarray(hinted.mask).sum(1), n_prompt + (h > 0) + h)
    for i in range(B):
      row = ids[i][ids[i] != T.PAD_ID]
      np.testing.assert_array_equal(row[:n_prompt[i]], np.asarray(batch.ids[i])[-n_prompt[i]:])
      tail = row[n_prompt[i]:]
      want = np.concatenate([[T.THINK_ID], trace[i, :h[i]]]) if h[i] else np.zeros(0, int)
      np.testing.assert_array_equal(tail, want)
    if omega == 0.0:
      np.testing.assert_array_equal(h, 0)
    if omega == 1.0:
      np.testing.assert_array_equal(h, trace_len)

  def sample(key, omega):
    hinted = suite.hinted(batch, omega)
    h = hinted.mask.sum(1) - batch.mask.sum(1) - (hinted.mask.sum(1) > batch.mask.sum(1))
    ok = h >= 0.6 * batch.trace_len
    return jnp.broadcast_to(ok[:, None], (B, 2)).astype(jnp.float32), hinted.ids

  _, ids, stage, m = jax.jit(lambda k: ghpo.staged_rollout(k, sample, OMEGAS))(jax.random.PRNGKey(5))
  floors = np.stack([np.floor(w * trace_len) >= 0.6 * trace_len for w in OMEGAS])
  want_stage = np.where(floors.any(0), np.argmax(floors, 0) + 1, 3)
  np.testing.assert_array_equal(stage, want_stage)
  assert np.all(want_stage[trace_len >= 3] == 3)  # with ≥ 3 trace tokens ⌊0.75·len⌋ ≥ 0.6·len
  np.testing.assert_allclose(m["still_wrong"], np.mean(~floors.any(0)))
  for k, w in enumerate((0.0, *OMEGAS)):
    sel = np.asarray(stage) == k
    np.testing.assert_array_equal(np.asarray(ids)[sel], np.asarray(suite.hinted(batch, w).ids)[sel])


def test_curriculum_carries_the_stages():
  c = curricula.make("ghpo", 5)
  assert c.hints == OMEGAS and c.config["omegas"] == OMEGAS
  np.testing.assert_allclose(c.probs(c.init()), np.full(5, 0.2))
  with pytest.raises(ValueError, match="omegas"):
    curricula.make("ghpo", 5, omegas=(0.0, 0.5))
