"""DUMP: distribution-level curriculum with UCB (Wang et al. 2025, arXiv 2504.09710; github.com/ZhentingWang/DUMP).

The arms are the K training-data distributions (sources × difficulty levels). For each distribution j:

    window_j   the last W absolute sequence advantages |A(o)| of responses o drawn from j (W = 300)
    L̂_j       = mean_{a ∈ window_j} a        (0 while the window is empty)        expected |advantage|
    n_j        = cumulative count of responses (or prompts, `count_unit`) from j, never windowed;  N = Σ_j n_j
    UCB_j      = L̂_j + c · sqrt(2 ln(N + 1) / (n_j + 1))                          (paper Eq. 3, c = 1)
    P_j        = softmax_j(UCB_j / τ)                                            (τ = 0.1)

and every prompt slot draws j ~ P, then a prompt of j uniformly. At init every UCB_j is 0, so P is uniform
(paper Algorithm 1, line 6; the reference sampler also starts from 1/K). L̂ favours distributions whose groups
are neither all-right nor all-wrong (for binary rewards, mean |A| ∝ sqrt(p̂(1 − p̂))); the bonus keeps every
n_j growing, since softmax never gives exactly 0.

Ring-buffer insertion without Python loops (M = B·G responses of one batch, `valid` prompts only): the rank
of response i within its arm is `cumsum(one_hot(arm), 0)[i, arm_i] − 1`; it is written at
`(ptr[arm] + rank) mod W`; values with `rank < m_arm − W` (overwritten within the same batch anyway) are
dropped, so no two writes share an index; then `ptr += m`, `filled = min(filled + m, W)`, `n += m` (mod W
for ptr). L̂ is a mean, so the order inside the window does not matter.

Checked against the reference code (`verl/utils/curriculum_learning.py`, `LearnabilityEstimator.update`,
`CurriculumController.compute_sampling_weights`; `verl/trainer/ppo/ray_trainer.py`, `fit`):
  * the window holds one value per *response*: the trainer loops over the batch after `batch.repeat(n)` and
    pushes each response's token-masked mean advantage; `mu = mean(|window|)`; W = 300.
  * count unit (the spec's open item): the released code counts *responses* — `n_samples += len(rewards)`
    with one entry per response — so n and N are G times the paper's Algorithm 1 count of batch items
    (prompts). The code is what the reported runs ran; rljax defaults to `count_unit="responses"`, and
    `"prompts"` gives Algorithm 1 (a bonus larger by about sqrt(G)).
  * exploration_weight = 1, temperature = 0.1, hard-coded; softmax with the max subtracted.
  * the code uses ln(max(1, N) + 1); this differs from ln(N + 1) only at N = 0, where every n_j = 0 and P is
    uniform either way (`scores` returns the spec's form).
  * the Beta success counts and reward rates the code keeps are logged only and do not enter P.
  * arms absent from a batch keep their window and count; every arm's P is recomputed after each step.
Not copied: the validation pass of the reference trainer also calls `update_weights` with each source's
validation mean *reward* as a stand-in advantage (and n_j += 1); rljax updates from training rollouts only.
The reference trainer's `_balance_batch` reorders responses before the push, which changes which values are
dropped only when an arm gets more than W responses in one step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from rljax.curricula import bandit, base

COUNT_UNITS = ("responses", "prompts")


def init_state(num_arms: int, window: int) -> dict[str, jax.Array]:
  """Empty windows, zero counts: `{window f32[K, W], filled i32[K], ptr i32[K], n i32[K], step i32[]}`."""
  zeros = lambda: jnp.zeros((num_arms,), jnp.int32)  # one buffer per leaf: a train step donates the state
  return {**base.step_state(), "window": jnp.zeros((num_arms, window), jnp.float32), "filled": zeros(),
          "ptr": zeros(), "n": zeros()}


def push(state: dict, arm_ids: jax.Array, values: jax.Array, valid: jax.Array | None = None) -> dict:
  """Appends `|values|` (`f[M]`) to the windows of their arms (`i32[M]`) in order, skipping entries with
  `valid` False, with the loop-free ring-buffer insertion of the module docstring. Updates `window`,
  `filled` and `ptr` only (the counts are `update`'s)."""
  win = state["window"]
  k, w = win.shape
  arm_ids = jnp.asarray(arm_ids, jnp.int32)
  values = jnp.abs(jnp.asarray(values, jnp.float32))
  if arm_ids.ndim != 1 or values.shape != arm_ids.shape:
    raise ValueError(f"`arm_ids` and `values` must both be [M], got {arm_ids.shape} and {values.shape}.")
  valid = jnp.ones(arm_ids.shape, bool) if valid is None else jnp.broadcast_to(jnp.asarray(valid, bool),
                                                                               arm_ids.shape)
  hot = (arm_ids[:, None] == jnp.arange(k)) & valid[:, None]                         # [M, K]
  cum = jnp.cumsum(hot.astype(jnp.int32), axis=0)
  m = cum[-1]                                                                        # pushes per arm
  arm = jnp.clip(arm_ids, 0, k - 1)
  rank = jnp.take_along_axis(cum, arm[:, None], axis=1)[:, 0] - 1
  write = valid & (rank >= m[arm] - w)  # the rest would be overwritten within this batch
  pos = (state["ptr"][arm] + rank) % w
  win = win.at[jnp.where(write, arm, k), pos].set(values, mode="drop")
  return {**state, "window": win, "ptr": (state["ptr"] + m) % w, "filled": jnp.minimum(state["filled"] + m, w)}


def scores(state: dict, cfg: Mapping[str, Any]) -> tuple[jax.Array, jax.Array, jax.Array]:
  """`(ucb, l_hat, bonus)`, each `f32[K]`: UCB_j = L̂_j + c·sqrt(2 ln(N + 1)/(n_j + 1)), c = `cfg["exploration"]`."""
  ftype = jnp.result_type(float)  # float64 under jax_enable_x64 (the window itself stays float32)
  win, filled = state["window"].astype(ftype), state["filled"]
  inside = jnp.arange(win.shape[1]) < filled[:, None]
  l_hat = jnp.sum(jnp.where(inside, win, 0.0), axis=1) / jnp.maximum(filled, 1).astype(ftype)
  n = state["n"].astype(ftype)
  bonus = float(cfg["exploration"]) * jnp.sqrt(2.0 * jnp.log(jnp.sum(n) + 1.0) / (n + 1.0))
  return l_hat + bonus, l_hat, bonus


def update(state: dict, fb: base.Feedback, cfg: Mapping[str, Any]) -> dict:
  """Pushes every valid prompt's per-response |sequence advantage| (`fb.advantages`, B·G values, row-major)
  into its arm's window and adds the arm's valid responses (or prompts, `count_unit="prompts"`) to n."""
  b, g = fb.advantages.shape
  arms = jnp.repeat(jnp.asarray(fb.arm_ids, jnp.int32), g)
  state = push(state, arms, fb.advantages.reshape(-1), jnp.repeat(fb.valid, g))
  k = state["n"].shape[0]
  per_prompt = g if cfg["count_unit"] == "responses" else 1
  added = jax.ops.segment_sum(jnp.where(fb.valid, per_prompt, 0).astype(jnp.int32), fb.arm_ids, k)
  return base.next_step({**state, "n": state["n"] + added})


def dump(num_arms: int, *, window: int = 300, temperature: float = 0.1, exploration: float = 1.0,
         count_unit: str = "responses") -> base.Curriculum:
  """DUMP over `num_arms` distributions (module docstring): window W, softmax temperature τ, UCB weight c and
  the unit of n (`"responses"`: the released code; `"prompts"`: the paper's Algorithm 1)."""
  if isinstance(window, bool) or not isinstance(window, int) or window < 1:
    raise ValueError(f"`window` must be a positive int, got {window!r}.")
  if not temperature > 0:
    raise ValueError(f"`temperature` must be > 0, got {temperature!r}.")
  if not exploration >= 0:
    raise ValueError(f"`exploration` must be >= 0, got {exploration!r}.")
  if count_unit not in COUNT_UNITS:
    raise ValueError(f"`count_unit` must be one of {COUNT_UNITS}, got {count_unit!r}.")
  cfg = {"window": window, "temperature": float(temperature), "exploration": float(exploration),
         "count_unit": count_unit}

  def probs(state):
    ucb = scores(state, cfg)[0]
    # Shifted by the max before the float32 softmax, so that its rounding acts on small logits (as the reference).
    return bandit.boltzmann_probs(ucb - jnp.max(ucb), cfg["temperature"])

  def upd(state, fb):
    if fb.advantages.ndim != 2 or fb.arm_ids.shape != fb.advantages.shape[:1]:
      raise ValueError(f"Feedback must carry arm_ids [B] and advantages [B, G], got {fb.arm_ids.shape} and "
                       f"{fb.advantages.shape}.")
    return update(state, fb, cfg)

  return base.Curriculum("dump", num_arms, cfg, lambda: init_state(num_arms, window), probs, upd)


base.register("dump", dump)
