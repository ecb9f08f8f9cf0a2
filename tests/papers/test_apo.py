"""APO (View-R1) on the toy-suite testbed: the notebook at the smoke preset, the arms' wiring and the statistics.

The kernels (DADS weights, STCR scale, weighted KL loss) are tested in tests/losses/test_apo.py. At the smoke size
accuracy does not move, so the fast tests check what the experiment adds: each arm's preset switches the right
half of APO on, with the configured base and β; the length statistics split by correctness exactly.
"""


import jax.numpy as jnp
import numpy as np
import pytest

from configs.apo import get_config
from experiments import apo as ex
from rljax import algorithms
from tests.helpers import assert_fails_before_compute, assert_smoke_claims


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_smoke_run_reports_every_arm_and_the_start(smoke):
  res, cfg = smoke.results, smoke.summary["config"]
  assert set(res["arms"]) == set(cfg["arm_names"])
  seeds = len(cfg["rl"]["seeds"])
  for arm in res["arms"].values():
    for key in ("acc_task", "acc_heldout", "entropy", "accuracy"):
      assert arm[key].shape == (seeds,) and np.all((arm[key] >= 0) & (arm[key] <= 3.5))
    steps = arm["curves"]["step"][0]
    assert steps[-1] == cfg["rl"]["steps"] and arm["curves"]["entropy"].shape == (seeds, len(steps))
  assert 0 < res["start"]["entropy"] and 1 <= res["start"]["stcr_scale"] < 2


def _batch(n=4):
  """Two groups of n: group 0 has correct answers of length 4 and wrong ones of lengths 4, 6, 9 ...; group 1 is
  all wrong."""
  rewards = jnp.asarray([1, 0, 1, 0, 0, 0, 0, 0], jnp.float32)
  lengths = jnp.asarray([4, 9, 4, 6, 5, 7, 3, 8])
  mask = jnp.arange(10)[None, :] < lengths[:, None]
  return {"rewards": rewards, "mask": mask}


def test_stcr_arm_pushes_longer_wrong_answers_down_with_the_configured_base():
  cfg = get_config("smoke")
  cfg.rl.group_size = 4
  base = ex.arm_preset(cfg, "grpo_kl")
  adv0 = np.asarray(algorithms.resolve(base)[0](_batch())["advantages"])
  for name in ("stcr", "apo"):
    adv = np.asarray(algorithms.resolve(ex.arm_preset(cfg, name))[0](_batch())["advantages"])
    # wrong answers of group 0 exceed the correct mean length 4 by 5 and 2 tokens: s = 2 − b^{−Δ}
    np.testing.assert_allclose(adv[[1, 3]], adv0[[1, 3]] * (2 - cfg.stcr_base ** -np.array([5.0, 2.0])), rtol=1e-5)
    np.testing.assert_allclose(adv[[0, 2, 4, 5, 6, 7]], adv0[[0, 2, 4, 5, 6, 7]], rtol=1e-6)
  np.testing.assert_allclose(algorithms.resolve(ex.arm_preset(cfg, "dads"))[0](_batch())["advantages"], adv0)


def test_dads_arm_weights_the_kl_of_correct_answers_only():
  cfg = get_config("smoke")
  cfg.rl.group_size = 4
  batch = _batch()
  rng = np.random.default_rng(0)
  batch["old_logp"] = jnp.asarray(-rng.uniform(0.5, 1.5, (8, 10)), jnp.float32)
  batch["ref_logp"] = batch["old_logp"] + jnp.asarray(rng.normal(0, 0.5, (8, 10)), jnp.float32)
  kl = {}
  for name in ("grpo_kl", "dads"):
    adv_fn, loss_fn = algorithms.resolve(ex.arm_preset(cfg, name))
    b = {**batch, **adv_fn(batch)}
    _, m = loss_fn(batch["old_logp"], b)
    kl[name] = float(m["kl_loss"])
    assert float(m["kl_coef"]) == cfg.beta
  assert kl["dads"] < kl["grpo_kl"]  # group 0 has d = 0.5: its two positives weigh f(0.5) ≈ 0.74


def test_length_stats_split_by_correctness():
  rewards = np.array([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 0]], float)
  lengths = np.array([[4, 7, 3, 6], [9, 9, 9, 9], [5, 5, 5, 5]], float)
  s = ex.length_stats(rewards, lengths)
  assert s["accuracy"] == pytest.approx(5 / 12)
  assert s["correct_len"] == pytest.approx((4 + 6 + 5 + 5 + 5) / 5)
  assert s["wrong_len"] == pytest.approx((7 + 3 + 4 * 9 + 5) / 7)
  # judged wrong answers (prompts with a correct one): 7 and 3 against 5, and 5 against 5: one is longer, by 2
  assert s["longer_wrong"] == pytest.approx(1 / 3) and s["excess"] == pytest.approx(2.0)
  with pytest.raises(ValueError, match="shape"):
    ex.length_stats(rewards, lengths[:, :3])


@pytest.mark.parametrize("edit, match", [
    (lambda c: setattr(c.arms, "stcr", {"stcr": 1, "dads": False}), "bool"),
    (lambda c: setattr(c, "stcr_base", 1.0), "stcr_base"),
    (lambda c: c.rl.update(steps=10, eval_every=4), "multiple"),
    (lambda c: setattr(c, "arm_names", ("grpo_kl", "stcr", "apo")), "dads"),
    (lambda c: setattr(c, "heldout_task", "sort"), "differ"),
    (lambda c: setattr(c, "heldout_task", "parity"), "family"),
    (lambda c: c.sft_weights.update(add=0), "sft_weights"),
    (lambda c: setattr(c, "heldout_sft_steps", -1), "heldout_sft_steps"),
])
def test_bad_config_fails_before_compute(tmp_path, edit, match):
  cfg = get_config("smoke")
  edit(cfg)
  assert_fails_before_compute(ex, cfg, tmp_path, ValueError, match)


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
