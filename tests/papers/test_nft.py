"""NFT against GRPO, RFT and DAPO's clip-higher, off-policy, on the toy suite (Chen et al. 2025), and the
on-policy NFT ≡ GRPO gradient identity on the decoder.

The kernel (formulas, the clamps, the identity on a linear-softmax model, the released scripts' defaults)
is tested exactly in tests/losses/test_nft.py; this file runs the paper's notebook at the smoke preset.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs.nft import get_config
from experiments import nft as ex
from rljax.training import testbed
from tests.helpers import assert_fails_before_compute, assert_smoke_claims


def test_notebook_measures_the_predicted_claims(smoke):
  assert_smoke_claims(smoke)


def test_on_policy_identity_on_the_decoder(smoke):
  rows = smoke.results["identity"]
  assert len(rows) == 2
  for row in rows:
    assert 0 < row["informative"] < 1  # both informative and masked (all-equal) groups were present
    assert row["grad_norm"] > 0 and row["rel_diff"] < 1e-4


def test_identity_check_can_fail():
  """Off its pairing the check fails: GRPO with verl's unbiased-std advantages has a gradient
  sqrt((n−1)/n) times NFT(ω = √((1−r̂)/r̂))'s. A fresh decoder and a token-parity reward (mixed groups)."""
  cfg = get_config("smoke")
  nft_grpo, grpo = ex.identity_presets()["nft(ω=√((1−r̂)/r̂)) vs grpo"]
  assert grpo.advantage_kwargs.std_ddof == 0 and nft_grpo.loss_kwargs.weighting == "grpo"
  tb = testbed.Testbed(cfg)
  params = nnx.state(tb.model(0), nnx.Param)
  parity = lambda tokens, mask: (jnp.sum(jnp.where(mask, tokens, 0), -1) % 2).astype(jnp.float32)
  same = ex.identity_check(tb, params, 8, pairs={"p": (nft_grpo, grpo)}, reward_fn=parity)[0]
  assert 0 < same["informative"] and same["rel_diff"] < 1e-4
  grpo.advantage_kwargs.std_ddof = 1
  off = ex.identity_check(tb, params, 8, pairs={"p": (nft_grpo, grpo)}, reward_fn=parity)[0]
  n = cfg.rl.group_size  # g_grpo = sqrt((n−1)/n)·g_nft: ‖g_nft − g_grpo‖/‖g_grpo‖ = sqrt(n/(n−1)) − 1
  assert off["rel_diff"] == pytest.approx(np.sqrt(n / (n - 1)) - 1, rel=1e-3)


def test_arms_draw_one_batch_per_step_and_rft_drops_negatives():
  cfg = get_config("smoke")
  presets = {name: ex.arm_preset(cfg, name) for name in cfg.arm_names}
  assert all(p.dynamic_sampling.max_num_gen_batches == 1 for p in presets.values())
  assert all(p.kl.where == "none" for p in presets.values())
  assert presets["rft"].loss_kwargs.neg_weight == 0.0 and presets["nft"].loss_kwargs.neg_weight == 1.0
  assert presets["dapo"].loss_kwargs.clip_high == 0.28


@pytest.mark.parametrize("edit, error, match", [
    (lambda c: c.arms.rft.overrides.loss_kwargs.update(neg_weight=-1.0), ValueError, "neg_weight"),
    (lambda c: c.arms.nft.overrides.update(loss_kwargs={"weighting": "sqrt"}), ValueError, "weighting"),
    (lambda c: c.arms.grpo.overrides.update(lossy=1), KeyError, "lossy"),
    (lambda c: c.arms.grpo.update(preset="grpoo"), KeyError, "grpoo"),
    (lambda c: setattr(c, "arm_names", ("nft", "grpo")), ValueError, "arm_names"),
    (lambda c: setattr(c, "minibatches", 3), ValueError, "minibatches"),
    (lambda c: setattr(c, "minibatches", 0), ValueError, "minibatches"),
])
def test_bad_config_fails_before_compute(tmp_path, edit, error, match):
  cfg = get_config("smoke")
  edit(cfg)
  assert_fails_before_compute(ex, cfg, tmp_path, error, match)


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset"):
    get_config("huge")
