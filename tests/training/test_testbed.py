"""The toy-suite RLVR testbed: SFT start, prompt streams, held-out problems, RL arms (critic included), resume."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rljax.tasks import toy_suite
from rljax.training import MetricsWriter, read_metrics
from rljax.training import testbed as tb_lib


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
  cfg = tb_lib.testbed_config("smoke")
  cfg.out_dir = str(tmp_path_factory.mktemp("testbed"))
  cfg.sft.steps = 40
  return tb_lib.Testbed(cfg)


def test_prompt_stream_is_a_function_of_seed_and_position_and_respects_arms(bed):
  a, b = bed.prompt_fn(0)(3), bed.prompt_fn(0)(3)
  np.testing.assert_array_equal(a[0], b[0])
  assert not np.array_equal(a[0], bed.prompt_fn(1)(3)[0])
  assert not np.array_equal(a[0], bed.prompt_fn(0)(4)[0])
  assert a[2] is None and a[3] is None and a[0].shape[0] == bed.cfg.rl.prompts
  arm = bed.suite.arm("modchain", 1)
  key = jax.random.PRNGKey(0)
  batch = bed.problems(key, 32, arms=[arm])
  np.testing.assert_array_equal(np.asarray(bed.suite.arm_of(batch)), arm)
  ids, mask, _, (demo, demo_mask) = bed.prompt_fn(0, demos=True)(3)
  np.testing.assert_array_equal(ids, a[0])
  # The demonstrations are the reference completions: the verifier gives them full reward.
  reward = bed.suite.verify(bed.problems(jax.random.fold_in(jax.random.PRNGKey(0), 3), bed.cfg.rl.prompts),
                            demo[:, None], demo_mask[:, None])[0]
  np.testing.assert_array_equal(np.asarray(reward), 1.0)


def test_heldout_rows_match_their_problems(bed):
  batch, rows = bed.heldout()
  assert len(rows) == bed.suite.num_arms * bed.cfg.eval.per_arm
  np.testing.assert_array_equal(np.asarray(bed.suite.arm_of(batch)), [r["arm"] for r in rows])
  assert {r["family"] for r in rows} == set(bed.suite.families)
  np.testing.assert_array_equal(bed.heldout()[0].ids, batch.ids)  # fixed problems


def test_noisy_answers_change_the_given_fraction_of_answers_only(bed):
  batch = bed.problems(jax.random.PRNGKey(1), 2000)
  same = tb_lib._noisy_answers(batch, jax.random.PRNGKey(2), 0.0)
  np.testing.assert_array_equal(same.answer, batch.answer)
  noisy = tb_lib._noisy_answers(batch, jax.random.PRNGKey(2), 0.3)
  changed = np.any(np.asarray(noisy.answer) != np.asarray(batch.answer), axis=1)
  # A replaced answer keeps its length; it equals the original by chance with probability ~10^-len.
  assert 0.22 < changed.mean() < 0.32
  np.testing.assert_array_equal(noisy.answer_len, batch.answer_len)
  pad = lambda b: np.asarray(b.answer) == toy_suite.PAD_ID
  np.testing.assert_array_equal(pad(noisy), pad(batch))


def test_sft_lowers_the_loss_and_is_read_back_when_done(bed):
  writer = MetricsWriter(bed.workdir)
  params = bed.sft(writer)
  writer.close()
  losses = [m["loss"] for m in read_metrics(bed.workdir, phase="sft") if "loss" in m]
  assert losses[-1] < 0.7 * losses[0]
  again = bed.sft(None)  # the finished phase is restored from its checkpoint
  jax.tree.map(np.testing.assert_array_equal, params, again)


@pytest.mark.parametrize("preset", ["grpo", "ppo"])
def test_run_arm_trains_and_evaluates_the_policy(bed, preset):
  writer = MetricsWriter(bed.workdir)
  params = bed.sft(writer)
  # A reward that varies within every group (the parity of the response length): the smoke policy is rarely
  # right, and all-equal rewards would give GRPO nothing to learn from.
  algo = bed.online(preset, reward_fn=lambda tokens, mask: (mask.sum(-1) % 2).astype(jnp.float32))
  state = bed.run_arm(writer, preset, preset, seed=0, params=params, algo=algo)
  writer.close()
  assert int(state.step) == bed.cfg.rl.steps
  policy = state.params["policy"] if preset == "ppo" else state.params
  changed = jax.tree.leaves(jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), policy, params))
  assert all(changed)
  curves = bed.curves(f"{preset}/seed0")
  assert [s for s, _ in curves["accuracy"]] == [bed.cfg.rl.steps]  # the decoder's held-out accuracy
  assert len(curves["reward_mean"]) == bed.cfg.rl.steps
  k = bed.cfg.eval.k
  assert bed.last_eval(f"{preset}/seed0")[f"eval/acc/all/mean@{k}"] == curves["accuracy"][-1][1]


def test_curves_keep_the_last_point_per_step_and_last_eval_needs_one(tmp_path):
  cfg = tb_lib.testbed_config("smoke")
  cfg.out_dir = str(tmp_path)
  bed = tb_lib.Testbed(cfg)
  writer = MetricsWriter(cfg.out_dir, tensorboard=False)
  for step, value in ((1, 0.1), (2, 0.2), (2, 0.3), (3, 0.4)):  # step 2 logged twice (a rerun into one workdir)
    writer.write(step, {"reward_mean": value}, phase="p")
  writer.close()
  assert bed.curves("p", ("reward_mean",))["reward_mean"] == [(1, 0.1), (2, 0.3), (3, 0.4)]
  with pytest.raises(ValueError, match="no evaluation"):
    bed.last_eval("p")


def test_bad_arms_and_presets_raise():
  cfg = tb_lib.testbed_config("smoke")
  with pytest.raises(ValueError, match="arms"):
    tb_lib.Testbed(cfg, arms=[99])
  with pytest.raises(ValueError, match="eval_arms"):
    tb_lib.Testbed(cfg, eval_arms=[])
  with pytest.raises(ValueError, match="preset"):
    tb_lib.testbed_config("huge")


def test_sampler_draws_n_responses_per_problem_and_scores_them(bed):
  params = nnx.state(bed.model(0), nnx.Param)
  batch = bed.problems(jax.random.PRNGKey(5), 3)
  r = bed.sampler(4)(params, jax.random.PRNGKey(6), batch)
  np.testing.assert_array_equal(r["batch"].ids, np.repeat(np.asarray(batch.ids), 4, axis=0))
  np.testing.assert_array_equal(r["tokens"][:, batch.ids.shape[1]:], r["completion"])
  reward = bed.suite.verify(batch, r["completion"].reshape(3, 4, -1), r["completion_mask"].reshape(3, 4, -1))[0]
  np.testing.assert_array_equal(np.asarray(r["reward"]).reshape(3, 4), reward)
  assert np.all(np.asarray(r["logprobs"])[np.asarray(r["completion_mask"])] <= 0)
  with pytest.raises(ValueError, match="`n`"):
    bed.sampler(0)


def test_accuracy_reads_one_scope_and_mean_sd_is_the_population_sd():
  m = {"eval/acc/add/mean@4": 0.5, "eval/acc/add/pass@4": 0.75, "eval/acc/add/greedy": 1.0, "eval/acc/add/length": 7.0,
       "eval/acc/all/mean@4": 0.1}
  assert tb_lib.accuracy(m, 4, "add") == {"mean": 0.5, "pass": 0.75, "greedy": 1.0, "length": 7.0}
  a = tb_lib.accuracy(m, 4)
  assert a["mean"] == 0.1 and np.isnan(a["pass"]) and np.isnan(a["greedy"])
  assert tb_lib.mean_sd([1.0, 3.0]) == (2.0, 1.0)
