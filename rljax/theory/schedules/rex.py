"""Budgeted training (Chen, Wolfe & Kyrillidis, "REX: Revisiting Budgeted Training with an Improved Schedule",
MLSys 2022, arXiv 2107.04197): a small classification problem trained by SGD + momentum for a budget of
T steps under a learning-rate schedule from `rljax.schedules`, every schedule × peak rate × seed in one
compiled program.

The schedules themselves live in `rljax.schedules` (`rex`, `linear_decay`, `cosine`, `step_decay`,
`sampled`); with z = 1 − t/T the REX profile is f_a(z) = z / ((1 − a) + a·z), a = ½ the paper's 2z/(1 + z)
**[V]**, a = 0.9 the IvanVassi/REX_LR code's z/(0.1 + 0.9·z) **[V code]** (its `get_lr` uses
z = (N − t mod N)/N, so it restarts after N = `num_epochs` calls instead of holding η_min; the stored
README's example calls it once per epoch), a = 0 linear decay.

The problem. A Gaussian mixture with K classes, each the union of M modes in R^d:

    y ~ U{0..K−1},  m ~ U{0..M−1},  x = c_{y,m} + ε,  c_{k,m} ~ N(0, σ_c² I_d),  ε ~ N(0, I_d),

with fresh centres per seed and fixed train / validation / test draws. With M > 1 the classes are not
linearly separable: multinomial logistic regression (`hidden = 0`, zero init) has a higher floor than a
2-layer ReLU MLP (`hidden = H`, LeCun-normal init, zero biases).

Training. T steps of minibatch SGD with heavy-ball momentum (`optax.sgd(η_t, momentum=β)`: v ← g + β·v,
θ ← θ − η_t·v) on the mean cross-entropy of B examples drawn uniformly with replacement from the training
set; η_t is entry t of a learning-rate table built from `rljax.schedules.make(name, peak, T)`, zero-padded
to the longest budget. Tables and T are traced inputs, so one compile per problem covers every budget,
every schedule and peak (vmapped) and every seed (vmapped outside). A seed fixes the data, the
initialisation and the minibatch sequence, so every schedule and peak sees the same randomness (paired
comparisons). Read-outs at step T: validation loss, test loss and test accuracy.

Tuning (`tune`): for each schedule the peak is the one with the lowest seed-mean validation loss on the
shared grid (a diverged run counts as +∞); the reported per-seed test numbers are those at that peak.
"""

from __future__ import annotations

import functools
from typing import Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rljax import schedules


class Data(NamedTuple):
  x_train: jax.Array  # [n_train, d]
  y_train: jax.Array  # [n_train]
  x_val: jax.Array
  y_val: jax.Array
  x_test: jax.Array
  y_test: jax.Array


class Problem(NamedTuple):
  """The mixture (static under jit) and the learner."""

  num_classes: int = 10
  dim: int = 20
  modes: int = 3
  centre_scale: float = 0.5  # σ_c
  n_train: int = 2048
  n_eval: int = 2048  # each of validation and test
  hidden: int = 0  # 0: logistic regression, H > 0: 2-layer ReLU MLP with H units
  batch_size: int = 32
  momentum: float = 0.9


def check_problem(p: Problem) -> None:
  ints = {"num_classes": 2, "dim": 1, "modes": 1, "n_train": 1, "n_eval": 1, "hidden": 0, "batch_size": 1}
  for name, low in ints.items():
    v = getattr(p, name)
    if not isinstance(v, (int, np.integer)) or v < low:
      raise ValueError(f"`{name}` must be an integer >= {low}, got {v!r}.")
  if not p.centre_scale > 0:
    raise ValueError(f"`centre_scale` must be > 0, got {p.centre_scale!r}.")
  if not 0 <= p.momentum < 1:
    raise ValueError(f"`momentum` must be in [0, 1), got {p.momentum!r}.")


def gaussian_mixture(key: jax.Array, p: Problem) -> Data:
  """One draw of the mixture: centres c ~ N(0, σ_c²)[K, M, d], then train / validation / test sets."""
  k_c, *ks = jax.random.split(key, 4)
  centres = p.centre_scale * jax.random.normal(k_c, (p.num_classes, p.modes, p.dim))

  def draw(key, n):
    k_y, k_m, k_e = jax.random.split(key, 3)
    y = jax.random.randint(k_y, (n,), 0, p.num_classes)
    m = jax.random.randint(k_m, (n,), 0, p.modes)
    return centres[y, m] + jax.random.normal(k_e, (n, p.dim)), y

  return Data(*draw(ks[0], p.n_train), *draw(ks[1], p.n_eval), *draw(ks[2], p.n_eval))


def init_params(key: jax.Array, p: Problem) -> dict[str, jax.Array]:
  """Logistic regression: W = 0 [d, K], b = 0. MLP: W1 ~ N(0, 1/d) [d, H], W2 ~ N(0, 1/H) [H, K], zero biases."""
  if p.hidden == 0:
    return {"w": jnp.zeros((p.dim, p.num_classes)), "b": jnp.zeros(p.num_classes)}
  k1, k2 = jax.random.split(key)
  return {"w1": jax.random.normal(k1, (p.dim, p.hidden)) / np.sqrt(p.dim), "b1": jnp.zeros(p.hidden),
          "w2": jax.random.normal(k2, (p.hidden, p.num_classes)) / np.sqrt(p.hidden), "b2": jnp.zeros(p.num_classes)}


def logits(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
  if "w" in params:
    return x @ params["w"] + params["b"]
  return jax.nn.relu(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def cross_entropy(params, x, y) -> jax.Array:
  return optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y).mean()


def lr_tables(arms: Sequence[tuple[str, Mapping]], peaks: Sequence[float], total_steps: int, *,
              pad_to: int | None = None) -> jax.Array:
  """η_t of every (arm, peak), `schedules.make(name, peak, T, **options)` for arm = (name, options) at
  t = 0..T−1, zero-padded to `pad_to` steps (η = 0 leaves the parameters where they are): `[S, L, pad_to or T]`."""
  pad_to = total_steps if pad_to is None else pad_to
  if pad_to < total_steps:
    raise ValueError(f"`pad_to` = {pad_to} is shorter than `total_steps` = {total_steps}.")
  steps = jnp.arange(pad_to)  # one shape for every budget: the eager schedule ops compile once
  live = steps < total_steps
  return jnp.stack([jnp.stack([jnp.where(live, schedules.make(name, float(pk), total_steps, **options)(steps), 0.0)
                               for pk in peaks]) for name, options in arms]).astype(jnp.float32)


def train(key: jax.Array, lr_table: jax.Array, num_steps: jax.Array, data: Data, p: Problem) -> dict[str, jax.Array]:
  """`num_steps` (traced, ≤ len(lr_table)) steps of SGD + momentum with η_t = lr_table[t]; read-outs after them.

  A `fori_loop` with a traced trip count rather than a `scan` of static length: one compile serves every
  budget (the tables are padded to the longest), and each budget runs only its own steps."""
  k_init, k_batch = jax.random.split(key)
  params = init_params(k_init, p)
  opt = optax.sgd(lambda count: lr_table[count], momentum=p.momentum)
  n = data.x_train.shape[0]

  def step(t, carry):
    params, state = carry
    idx = jax.random.randint(jax.random.fold_in(k_batch, t), (p.batch_size,), 0, n)
    grads = jax.grad(cross_entropy)(params, data.x_train[idx], data.y_train[idx])
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  params, _ = jax.lax.fori_loop(0, num_steps, step, (params, opt.init(params)))
  correct = jnp.argmax(logits(params, data.x_test), -1) == data.y_test
  return {"val_loss": cross_entropy(params, data.x_val, data.y_val),
          "test_loss": cross_entropy(params, data.x_test, data.y_test), "test_acc": correct.mean()}


@functools.partial(jax.jit, static_argnames="p")
def sweep(keys: jax.Array, tables: jax.Array, num_steps: jax.Array, p: Problem) -> dict[str, jax.Array]:
  """Every seed × learning-rate table, `num_steps` steps each: read-outs `[seeds, *tables.shape[:-1]]`. Seed i
  draws its data from keys[i] and trains every table from the same initialisation and minibatch sequence."""
  rows = tables.reshape(-1, tables.shape[-1])

  def one_seed(key):
    k_data, k_run = jax.random.split(key)
    data = gaussian_mixture(k_data, p)
    return jax.vmap(lambda table: train(k_run, table, num_steps, data, p))(rows)

  out = jax.vmap(one_seed)(keys)
  return jax.tree.map(lambda v: v.reshape(keys.shape[:1] + tables.shape[:-1]), out)


def tune(val_loss: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
  """Best peak per schedule by seed-mean validation loss (non-finite = +∞) from `[seeds, S, L]` read-outs:
  the index `[S]`, and each of `others` at it, `[seeds, S]`."""
  val = np.where(np.isfinite(val_loss), val_loss, np.inf)
  if val.ndim != 3 or any(o.shape != val.shape for o in others):
    raise ValueError(f"read-outs must share one [seeds, S, L] shape, got {[val.shape] + [o.shape for o in others]}.")
  best = np.argmin(val.mean(0), axis=-1)
  pick = lambda a: np.take_along_axis(a, best[None, :, None], axis=-1)[..., 0]
  return best, tuple(pick(o) for o in others)


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
  """Seed mean of a − b and its standard error (sample std / √n) over the leading (seed) axis."""
  d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  if d.ndim != 1 or d.shape[0] < 2:
    raise ValueError(f"need per-seed values [n >= 2], got shape {d.shape}.")
  return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.shape[0]))
