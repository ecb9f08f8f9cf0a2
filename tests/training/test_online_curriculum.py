"""A curriculum inside the online loop: arms drawn per step, feedback, filter refills, GHPO hint stages, reward
shaping by the curriculum's state, and exact resume of the curriculum state."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import curricula
from rljax.training import MetricsWriter, read_metrics
from rljax.training import testbed as tb_lib

# A reward that varies within groups (parity of the response length): the untrained smoke policy is rarely right.
PARITY = lambda tokens, mask: (mask.sum(-1) % 2).astype(jnp.float32)


def _bed(tmp_path, hint=False, steps=3):
  cfg = tb_lib.testbed_config("smoke")
  cfg.out_dir = str(tmp_path)
  cfg.rl.steps = steps
  cfg.rl.eval_every = steps
  return tb_lib.Testbed(cfg, hint=hint)


def _records(bed, phase):
  return [m for m in read_metrics(bed.workdir, phase=phase) if "curriculum/p0" in m]


def test_arms_come_from_the_curriculum_and_its_probs_are_logged(tmp_path):
  bed = _bed(tmp_path)
  only = 2
  c = curricula.make("uniform", len(bed.arms), arms=(only,))
  seen = []
  base_fn = bed.arm_prompt_fn(0)

  def prompt_fn(pos, arm_ids, omega=0.0):
    seen.append(np.asarray(arm_ids))
    return base_fn(pos, arm_ids, omega)

  writer = MetricsWriter(bed.workdir, tensorboard=False)
  state = bed.run_arm(writer, "one_arm", "grpo", seed=0, params=None, prompt_fn=prompt_fn,
                      algo=bed.online("grpo", reward_fn=PARITY, curriculum=c))
  writer.close()
  assert seen and all(np.all(a == only) for a in seen)
  recs = _records(bed, "one_arm/seed0")
  assert len(recs) == bed.cfg.rl.steps and all(r[f"curriculum/p{only}"] == 1.0 for r in recs)
  assert int(state.extra["curriculum"]["step"]) == bed.cfg.rl.steps  # one update per iteration


def test_sec_style_feedback_matches_the_batch():
  # The feedback the loop builds: arm ids, rewards and the token-mean advantage of each response.
  from rljax.training.streams import curriculum_feedback
  batch = {"arm_ids": jnp.array([1, 0]), "rewards": jnp.array([1.0, 0.0, 0.0, 0.0]),
           "advantages": jnp.array([[2.0, 2.0, 0.0], [1.0, 3.0, 5.0], [0.0, 0.0, 0.0], [4.0, 0.0, 0.0]]),
           "mask": jnp.array([[1, 1, 0], [1, 1, 1], [0, 0, 0], [1, 0, 0]], bool), "keep": jnp.array([1, 1, 0, 0], bool)}
  fb = curriculum_feedback(batch, 2)
  np.testing.assert_allclose(fb.advantages, [[2.0, 3.0], [0.0, 4.0]])
  np.testing.assert_allclose(fb.lengths, [[2, 3], [0, 1]])
  np.testing.assert_array_equal(fb.valid, [True, False])
  np.testing.assert_array_equal(fb.rewards, [[1, 0], [0, 0]])


def test_a_filter_masks_dropped_groups_and_refills(tmp_path):
  bed = _bed(tmp_path)
  # Keep only groups whose parity rewards are not all equal: dropped groups must be refilled.
  keep = lambda r: jnp.any(r > 0, axis=1) & jnp.any(r == 0, axis=1)
  c = curricula.make("uniform", len(bed.arms))._replace(keep=keep, config={"max_draws": 6})
  writer = MetricsWriter(bed.workdir, tensorboard=False)
  bed.run_arm(writer, "filtered", "grpo", seed=0, params=None,
              algo=bed.online("grpo", reward_fn=PARITY, curriculum=c))
  writer.close()
  recs = _records(bed, "filtered/seed0")
  assert all(r["informative_groups"] == bed.cfg.rl.prompts or r["gen_batches"] == 6 for r in recs)
  assert max(r["gen_batches"] for r in recs) >= 1


def test_hint_stages_resample_failing_groups_from_hinted_prompts(tmp_path):
  bed = _bed(tmp_path, hint=True, steps=2)
  widths = []
  base_fn = bed.arm_prompt_fn(0)

  def prompt_fn(pos, arm_ids, omega=0.0):
    out = base_fn(pos, arm_ids, omega)
    widths.append((omega, out[0].shape[1]))
    return out

  c = curricula.make("ghpo", len(bed.arms), omegas=(0.5, 1.0))
  writer = MetricsWriter(bed.workdir, tensorboard=False)
  # The verifier: an untrained policy fails every group, so every stage runs.
  bed.run_arm(writer, "ghpo", "grpo", seed=0, params=None, prompt_fn=prompt_fn,
              algo=bed.online("grpo", curriculum=c))
  writer.close()
  assert {o for o, _ in widths} == {0.0, 0.5, 1.0} and len({w for _, w in widths}) == 1
  recs = [m for m in read_metrics(bed.workdir, phase="ghpo/seed0") if "ghpo/stage0" in m]
  assert recs and all(abs(sum(r[f"ghpo/stage{k}"] for k in range(3)) - 1) < 1e-9 for r in recs)


def test_shape_rewards_sees_the_curriculum_state(tmp_path):
  bed = _bed(tmp_path, steps=2)
  # A shaped reward = the curriculum's step count: rewards are 0 at iteration 0, 1 at iteration 1.
  c = curricula.make("uniform", len(bed.arms))._replace(
      shape_rewards=lambda state, rewards, lengths, ok: jnp.full_like(rewards, state["step"]))
  writer = MetricsWriter(bed.workdir, tensorboard=False)
  bed.run_arm(writer, "shaped", "grpo", seed=0, params=None, algo=bed.online("grpo", curriculum=c))
  writer.close()
  recs = _records(bed, "shaped/seed0")
  assert [r["reward_mean"] for r in recs] == [0.0, 1.0]


def test_resume_restores_the_curriculum_state_exactly(tmp_path):
  # DUMP: a ring buffer, counts and pointers in the state (donated by every train step, restored exactly).
  sec_like = curricula.make("dump", 4, window=5)
  straight = _bed(tmp_path / "a", steps=4)
  w = MetricsWriter(straight.workdir, tensorboard=False)
  s1 = straight.run_arm(w, "x", "grpo", seed=0, params=None, algo=straight.online("grpo", reward_fn=PARITY,
                                                                                     curriculum=sec_like))
  w.close()
  broken = _bed(tmp_path / "b", steps=2)
  w = MetricsWriter(broken.workdir, tensorboard=False)
  broken.run_arm(w, "x", "grpo", seed=0, params=None, algo=broken.online("grpo", reward_fn=PARITY,
                                                                          curriculum=sec_like))
  broken.cfg.rl.steps = 4
  s2 = broken.run_arm(w, "x", "grpo", seed=0, params=None, algo=broken.online("grpo", reward_fn=PARITY,
                                                                                curriculum=sec_like))
  w.close()
  jax.tree.map(np.testing.assert_array_equal, s1.extra["curriculum"], s2.extra["curriculum"])
  jax.tree.map(np.testing.assert_array_equal, s1.params, s2.params)


def test_curriculum_misuse_raises(tmp_path):
  bed = _bed(tmp_path)
  with pytest.raises(ValueError, match="arms"):
    bed.run_arm(None, "bad", "grpo", seed=0, params=None, curriculum=curricula.make("uniform", 3))
  with pytest.raises(ValueError, match="overlap"):
    bed.online("grpo", curriculum=curricula.make("uniform", 6), overlap=True)
  with pytest.raises(ValueError, match="hint"):
    bed.arm_prompt_fn(0)(0, jnp.array([0]), 0.5)
