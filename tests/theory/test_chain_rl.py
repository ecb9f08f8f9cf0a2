"""GRPO on the skill chain with a curriculum: learning, the filter's refill, GHPO's hint stages."""

import jax.numpy as jnp
import numpy as np
import pytest

from rljax import curricula
from rljax.curricula import base
from rljax.theory.curricula import chain_rl


def _cfg(**kw):
  return chain_rl.chain_config(**{"steps": 60, "prompts": 16, "train_depths": (1, 2, 3, 4), "eval_depths": (1, 4, 6),
                                  **kw})


def test_grpo_learns_the_trained_depths_only():
  theta, _, rec = chain_rl.run_seeds(_cfg(), curricula.make("uniform", 4), 4)
  s = rec["success"]  # [seeds, T, E]
  assert s[:, -1, 1].mean() > s[:, 0, 1].mean() + 0.3  # depth 4 learned
  assert np.allclose(theta[:, 4:], 0.0)  # skills past depth 4 get no gradient
  np.testing.assert_allclose(rec["probs"], 0.25)
  assert np.all(rec["rollouts"] == 16 * 8)


def test_filter_refills_from_the_pool_and_counts_rollouts():
  # A filter keeping only groups with a success: each batch holds informative groups only.
  keep = lambda r: jnp.any(r > 0, axis=1) & jnp.any(r == 0, axis=1)
  c = curricula.make("uniform", 4)._replace(keep=keep)
  _, _, rec = chain_rl.run_seeds(_cfg(steps=20), c, 2)
  assert np.all(rec["zero_adv"] == 0.0)  # no all-equal group was trained on
  assert np.all(rec["rollouts"] >= 16 * 8) and np.all(rec["rollouts"] <= 64 * 8)
  assert rec["rollouts"].mean() > 16 * 8  # some candidates were dropped and refilled
  assert np.all((rec["kept"] > 0) & (rec["kept"] < 1))


def test_hints_rescue_all_fail_groups_and_record_their_stage():
  # θ = −4: P(solved | 6) = σ(−4)^6 ≈ 4e-9, every un-hinted group fails; ⌊0.85·6⌋ = 5 forced steps leave
  # one at σ(−4) ≈ 0.018 per rollout.
  cfg = _cfg(steps=15, theta0=-4.0, train_depths=(6,), eval_depths=(6,))
  _, _, plain = chain_rl.run_seeds(cfg, curricula.make("uniform", 1), 2)
  theta, _, hinted = chain_rl.run_seeds(cfg, curricula.make("ghpo", 1, omegas=(0.5, 0.85)), 2)
  assert np.all(plain["zero_adv"] == 1.0) and np.all(plain["success"] == plain["success"][:, :1])  # GRPO stalls
  np.testing.assert_allclose(hinted["stage_frac"].sum(-1), 1.0, rtol=1e-6)
  assert hinted["stage_frac"][:, 0, 0].mean() == 0.0  # no group succeeds un-hinted
  assert hinted["zero_adv"].mean() < 1.0  # some hinted groups carry a signal
  assert np.all(theta[:, 5] > -4.0 + 0.3)  # the step left after the hint is learned (15 Adam steps of 0.05)
  assert hinted["success"][:, -1, 0].mean() > plain["success"][:, -1, 0].mean()


def test_curriculum_and_depths_must_agree():
  with pytest.raises(ValueError, match="arms"):
    chain_rl.make_train(_cfg(), curricula.make("uniform", 3))
  with pytest.raises(ValueError, match="eval_depths"):
    chain_rl.make_train(_cfg(eval_depths=(13,)), curricula.make("uniform", 4))
  assert isinstance(curricula.make("uniform", 4), base.Curriculum)
