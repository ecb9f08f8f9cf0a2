"""Online regression with intersecting groups, the synthetic setting of "Oracle Efficient Algorithms for
Groupwise Regret" (Acharya, Arunachaleswaran, Kannan, Roth, Ziani, 2023).

An individual has three binary attributes z ∈ {0, 1}³ (the first three coordinates of x ∈ R^d) and
d − 3 continuous features uniform on [−1, 1]. The groups are the always-on group plus {z_j = 0} and
{z_j = 1} for j = 1, 2, 3 (m = 7 intersecting groups). The label is

    y = clip(⟨β_{c(z)}, x⟩ + σ ε, −1, 1),   ε ~ N(0, 1),

with one coefficient vector per cell c(z) ∈ {0..7}, so no single linear model fits every group. Pure
`reset`/`step`: the observation is (x, group mask); the action is a prediction ŷ, the reward −(ŷ − y)².
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

N_ATTRIBUTES = 3
N_GROUPS = 1 + 2 * N_ATTRIBUTES


class GroupsParams(NamedTuple):
  beta: jax.Array  # [8, d] one linear model per attribute cell
  noise: jax.Array  # σ


class Sample(NamedTuple):
  x: jax.Array  # [d]
  groups: jax.Array  # bool[7]
  y: jax.Array  # scalar label


def make_params(key: jax.Array, *, dim: int = 10, scale=1.0, noise=0.1) -> GroupsParams:
  """β_c ~ N(0, scale²/d · I) per cell: the signal ⟨β_c, x⟩ has standard deviation ≈ 0.5·scale."""
  if dim <= N_ATTRIBUTES:
    raise ValueError(f"`dim` must exceed {N_ATTRIBUTES}, got {dim}.")
  if noise < 0:
    raise ValueError(f"`noise` must be non-negative, got {noise}.")
  dtype = jnp.result_type(float)
  beta = scale * jax.random.normal(key, (2**N_ATTRIBUTES, dim), dtype) / jnp.sqrt(dim)
  return GroupsParams(beta, jnp.asarray(noise, dtype))


def group_mask(z: jax.Array) -> jax.Array:
  """[always, z₁=0, z₁=1, z₂=0, z₂=1, z₃=0, z₃=1] membership for attributes z ∈ {0,1}³."""
  z = jnp.asarray(z, bool)
  pairs = jnp.stack([~z, z], -1).reshape(z.shape[:-1] + (2 * N_ATTRIBUTES,))
  return jnp.concatenate([jnp.ones(z.shape[:-1] + (1,), bool), pairs], -1)


def cell(z: jax.Array) -> jax.Array:
  """Cell index Σ_j z_j 2^j."""
  return jnp.sum(jnp.asarray(z, jnp.int32) * 2 ** jnp.arange(N_ATTRIBUTES), -1)


def sample(key: jax.Array, params: GroupsParams) -> Sample:
  kz, kx, ke = jax.random.split(key, 3)
  dim = params.beta.shape[1]
  dtype = params.beta.dtype
  z = jax.random.bernoulli(kz, 0.5, (N_ATTRIBUTES,))
  x = jnp.concatenate([z.astype(dtype), jax.random.uniform(kx, (dim - N_ATTRIBUTES,), dtype, -1.0, 1.0)])
  mean = params.beta[cell(z)] @ x
  y = jnp.clip(mean + params.noise * jax.random.normal(ke, (), dtype), -1.0, 1.0)
  return Sample(x, group_mask(z), y)


def reset(key: jax.Array, params: GroupsParams) -> tuple[Sample, tuple[jax.Array, jax.Array]]:
  s = sample(key, params)
  return s, (s.x, s.groups)


def step(key: jax.Array, params: GroupsParams, state: Sample, action):
  """Scores the prediction `action` for the current individual; reward −(ŷ − y)², info holds y."""
  nxt = sample(key, params)
  return nxt, (nxt.x, nxt.groups), -(action - state.y) ** 2, jnp.asarray(False), {"y": state.y}
