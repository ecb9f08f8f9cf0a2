"""SFT a tiny Llama on the embedded review task, then DPO / cDPO / rDPO on 30%-flipped labels.

    python -m rljax.run --config configs/sentiment_dpo.py --workdir results/sentiment_dpo
    python -m rljax.run --config configs/sentiment_dpo.py:smoke --workdir /tmp/sentiment_dpo --config.dpo.steps=20
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.out_dir = "results/sentiment_dpo"
  c.model = ml_collections.ConfigDict(dict(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=192,
                                           max_positions=64))
  # `pack`: several sequences per row (rljax.data.packing), about `batch` examples (pairs) per step.
  c.sft = ml_collections.ConfigDict(dict(n_examples=8192, batch=64, steps=500, lr=3e-3, max_len=32,
                                         schedule="constant", pack=False))
  c.pairs = ml_collections.ConfigDict(dict(n_prompts=8192, max_new_tokens=28, temperature=1.0, flip_rate=0.3))
  c.dpo = ml_collections.ConfigDict(dict(losses=("dpo", "cdpo", "rdpo"), beta=0.1, epsilon=0.3, steps=150,
                                         batch=64, lr=1e-3, schedule="constant", pack=False))
  c.eval = ml_collections.ConfigDict(dict(n_prompts=1024))
  c.log_every = 10
  c.ckpt_every = 100
  if preset == "smoke":
    c.out_dir = "results/sentiment_dpo_smoke"
    c.sft.update(n_examples=512, steps=30, batch=32)
    c.pairs.update(n_prompts=128, max_new_tokens=16)
    c.dpo.update(steps=10, batch=32)
    c.eval.n_prompts = 64
    c.log_every = 5
  elif preset != "cpu":
    raise ValueError(f"unknown preset {preset!r}; use cpu or smoke")
  return c
