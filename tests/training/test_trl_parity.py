"""One DPO (and one rDPO) update in rljax equals one update of TRL's `DPOTrainer` (trl 1.13,
loss_type="sigmoid", and loss_type="robust" with label_smoothing = ε).

DPO: Rafailov et al., "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
NeurIPS 2023, arXiv:2305.18290:  L = mean_pairs −log σ(β[(log π_θ(y_w|x) − log π_ref(y_w|x)) −
(log π_θ(y_l|x) − log π_ref(y_l|x))]),  log π(y|x) summed over completion tokens, then one SGD step
θ ← θ − η ∇L on both sides, from the same random float32 Qwen2 checkpoint and the same text pairs.

Conventions bridged (read from trl/trainer/dpo_trainer.py): TRL appends the EOS text to each
completion, tokenizes prompt and prompt+completion separately and keeps the suffix as the completion
(no BOS: the tokenizer has no post-processor); its collator right-pads chosen and rejected together to
one length and scores token t (t ≥ 1) iff `completion_mask[t]` — exactly rljax's `loss_mask`
convention (logit at t − 1 scores token t), so loss_mask = completion_mask. Both sum token log-probs
over the completion and average the loss over pairs. TRL's default reference is a fresh copy of the
policy checkpoint, evaluated on the fly; rljax's comes from `pair_logps` on the same checkpoint.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("trl")

from flax import nnx  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

from benchmarks.dpo_step import (ModelSpec, make_pairs, rljax_batch, rljax_setup, tokenize_pairs,  # noqa: E402
                                 trl_trainer, write_checkpoint)
from rljax.models import save_pretrained  # noqa: E402

SPEC = ModelSpec(vocab=97, d_model=48, layers=2, heads=3, kv_heads=1, d_ff=96)
LR, BETA = 1e-2, 0.1
PAIRS = make_pairs(4, vocab=SPEC.vocab, prompt_len=5, completion_len=8, seed=0)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
  root = tmp_path_factory.mktemp("qwen2")
  paths = str(root / "policy"), str(root / "other")
  for seed, path in enumerate(paths):
    write_checkpoint(path, SPEC, seed=seed)
  return paths


def _check_same_inputs(trainer, tokenized, batch):
  """rljax sees TRL's token ids (its own preprocessing) and TRL's collated ids and masks."""
  ds = trainer.train_dataset
  assert list(zip(ds["prompt_ids"], ds["chosen_ids"], ds["rejected_ids"])) == tokenized
  collated = trainer.data_collator([ds[i] for i in range(len(ds))])
  for ours, theirs in (("tokens", "input_ids"), ("mask", "attention_mask"), ("loss_mask", "completion_mask")):
    both = np.concatenate([batch[f"chosen_{ours}"], batch[f"rejected_{ours}"]])
    np.testing.assert_array_equal(both, collated[theirs].numpy(), err_msg=ours)


# rljax loss and kwargs -> TRL loss_type and label smoothing. rDPO (Chowdhury et al., ICML 2024):
# [(1−ε)ℓ_σ(βh) − εℓ_σ(−βh)]/(1−2ε), TRL's "robust".
LOSSES = [("dpo", {}, "sigmoid", 0.0), ("rdpo", {"epsilon": 0.3}, "robust", 0.3)]


@pytest.mark.parametrize("loss,loss_kwargs,loss_type,label_smoothing", LOSSES, ids=[x[0] for x in LOSSES])
def test_one_update_matches_trl(checkpoints, tmp_path, loss, loss_kwargs, loss_type, label_smoothing):
  policy, other = checkpoints
  tokenized = tokenize_pairs(policy, PAIRS)
  assert len({len(c) for _, c, _ in tokenized} | {len(r) for *_, r in tokenized}) > 1
  batch = rljax_batch(tokenized)
  init = load_file(f"{policy}/model.safetensors")
  step = None
  # TRL's default reference (a fresh copy of the policy checkpoint) makes every margin 0, so the
  # first loss is log 2 whatever the log-probs; a second checkpoint as reference makes it informative.
  for ref_path in (None, other):
    trainer = trl_trainer(policy, PAIRS, str(tmp_path / "trl"), lr=LR, beta=BETA, steps=1, ref_path=ref_path,
                          loss_type=loss_type, label_smoothing=label_smoothing)
    _check_same_inputs(trainer, tokenized, batch)
    trl_loss = trainer.train().training_loss
    trl_params = {k: v.detach().numpy() for k, v in trainer.model.state_dict().items()}

    graphdef, new_step, state, ref_batch = rljax_setup(policy, batch, lr=LR, beta=BETA, ref_path=ref_path,
                                                       loss=loss, loss_kwargs=loss_kwargs)
    # Reference log-probs are batch inputs, so the first compiled step serves both references.
    step = step or new_step
    state, metrics = step(state, ref_batch)
    save_pretrained(nnx.merge(graphdef, state.params), str(tmp_path / "rljax"))
    ours = load_file(str(tmp_path / "rljax" / "model.safetensors"))

    value = float(metrics["loss"])
    assert abs(value - trl_loss) <= 1e-5, (ref_path, value, trl_loss)
    assert (abs(value - math.log(2)) < 1e-6) if ref_path is None else (abs(value - math.log(2)) > 1e-2), value

    assert set(ours) <= set(trl_params) and "lm_head.weight" in ours
    step_size = max(np.max(np.abs(trl_params[k] - init[k])) for k in ours)
    step_err = max(np.max(np.abs((ours[k] - init[k]) - (trl_params[k] - init[k]))) for k in ours)
    param_err = max(np.max(np.abs(ours[k] - trl_params[k])) for k in ours)
    assert step_size > 1e-4, step_size  # the update is not vacuous
    assert param_err <= 1e-5, (ref_path, param_err)
    # The update θ1 − θ0 = −η∇L itself agrees to float32 accuracy (measured ~2e-5 relative), not
    # just θ1 to within a small step.
    assert step_err <= 1e-3 * step_size, (ref_path, step_err, step_size)
