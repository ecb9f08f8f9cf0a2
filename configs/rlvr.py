"""RL with verifiable rewards on reasoning-gym tasks: SFT a small decoder, then GRPO-family RL.

    python -m rljax.run --config configs/rlvr.py:quickstart --workdir results/quickstart   # the main job
    python -m rljax.run --config configs/rlvr.py:cpu --workdir results/rlvr               # the table
    python -m rljax.run --config configs/rlvr.py:gpu --workdir results/rlvr_gpu

Presets: `quickstart` (one family, GRPO, one seed; about 3 minutes on 2 cores), `cpu` (seven
algorithms × 3 seeds from one SFT start), `gpu` (a ≥ 100M-parameter decoder in bfloat16 on a mesh),
`smoke` (the tests).
"""

import ml_collections

ALGORITHMS = ("grpo", "dr_grpo", "dapo", "gspo", "rloo", "reinforce_pp", "ppo")


def get_config(preset: str = "quickstart") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.out_dir = "results/rlvr"
  # Tasks: the SFT corpus covers `families`; RL trains and evaluates on `rl_families`.
  c.task = ml_collections.ConfigDict(dict(families=("chain_sum",), rl_families=("chain_sum",), difficulties=(0, 1),
                                          train_size=3000, heldout_size=128, think=True))
  c.tokenizer = ml_collections.ConfigDict(dict(vocab_size=512))
  # `mesh`: place the model and batches on a ("data", "fsdp", "tensor") mesh of `mesh_shape` (always on under
  # jax.distributed; one -1 entry takes the remaining devices). See the README's Multi-host section.
  c.model = ml_collections.ConfigDict(dict(d_model=128, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=384,
                                           max_positions=96, dtype="float32", mesh=False, mesh_shape=(-1, 1, 1)))
  # A `noise` fraction of the SFT rows answer wrongly without working (the spec's noisy SFT start).
  # `pack`: several examples per `max_len` row (rljax.data.packing), about `batch` examples per step: at
  # quickstart size half the rows of the padded batch (padding 55% -> 9%), about 2x faster SFT steps on 2 cores.
  c.sft = ml_collections.ConfigDict(dict(steps=600, batch=64, lr=3e-3, max_len=64, schedule="cosine", warmup_steps=20,
                                         noise=0.5, pack=True))
  c.rl = ml_collections.ConfigDict(dict(algorithms=("grpo",), seeds=(0,), steps=40, prompts=16, group_size=8,
                                        max_new_tokens=28, max_prompt_len=40, temperature=1.0, lr=1e-4,
                                        optimizer="adamw",
                                        eval_every=10, overlap=False))
  # `rl.overlap`: sample each step's batch while the previous step trains (one step off-policy; the host
  # verifiers then run during the updates). See rljax.training.online.
  # LoRA for the RL phase (rljax.models.lora): rank-`rank` adapters with scale alpha / rank on `targets` of the
  # SFT model, which stays frozen; RL then trains, checkpoints and references the adapters only.
  c.lora = ml_collections.ConfigDict(dict(enabled=False, rank=8, alpha=16.0, dropout=0.0, use_rslora=False,
                                          targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                   "down_proj")))
  c.eval = ml_collections.ConfigDict(dict(k=4, n_prompts=128))
  c.reward = ml_collections.ConfigDict(dict(workers=2, timeout=10.0))
  c.log_every = 1
  c.ckpt_every = 10
  if preset == "quickstart":
    c.out_dir = "results/quickstart"
  elif preset == "smoke":
    c.out_dir = "results/rlvr_smoke"
    c.task.update(train_size=400, heldout_size=16, difficulties=(0,))
    c.tokenizer.vocab_size = 320
    c.model.update(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64)
    c.sft.update(steps=8, batch=16, warmup_steps=0)
    c.rl.update(algorithms=("dapo",), steps=2, prompts=4, group_size=4, max_new_tokens=16, eval_every=2)
    c.eval.update(k=2, n_prompts=16)
    c.reward.workers = 1
    c.ckpt_every = 1
  elif preset == "cpu":
    c.task.update(families=("chain_sum", "simple_equations"), rl_families=("chain_sum", "simple_equations"),
                  train_size=6000)
    c.sft.steps = 800
    c.rl.update(algorithms=ALGORITHMS, seeds=(0, 1, 2))
  elif preset == "gpu":
    c.out_dir = "results/rlvr_gpu"
    c.task.update(families=("chain_sum", "simple_equations", "basic_arithmetic", "number_sorting"),
                  rl_families=("chain_sum", "simple_equations", "basic_arithmetic", "number_sorting"),
                  difficulties=(0, 1, 2), train_size=40000, heldout_size=512)
    c.tokenizer.vocab_size = 4096
    c.model.update(d_model=768, n_layers=12, n_heads=12, n_kv_heads=4, d_ff=3072, max_positions=256,
                   dtype="bfloat16", mesh=True)
    c.sft.update(steps=2000, batch=128, lr=5e-4, max_len=128, warmup_steps=100)
    c.rl.update(algorithms=ALGORITHMS, seeds=(0, 1, 2), steps=200, prompts=64, group_size=16, max_new_tokens=64,
                max_prompt_len=64, lr=1e-5, eval_every=20)
    c.eval.update(k=8, n_prompts=512)
    c.reward.workers = 8
  else:
    raise ValueError(f"unknown preset {preset!r}; use quickstart, smoke, cpu or gpu")
  return c
