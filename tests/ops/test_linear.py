"""`rljax.ops.linear`: values and reverse-mode gradients equal `jnp.einsum`'s for the decoder's equations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.ops.linear import linear

# (equation, x shape, w shape): the decoder's MLP, q/k/v and output projections.
CASES = [("btd,df->btf", (2, 5, 8), (8, 12)),
         ("btf,fd->btd", (2, 5, 12), (12, 8)),
         ("btd,dnh->btnh", (2, 5, 8), (8, 3, 4)),
         ("btnh,nhd->btd", (2, 5, 3, 4), (3, 4, 8))]


@pytest.mark.parametrize("eq,x_shape,w_shape", CASES)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_linear_matches_einsum_and_its_gradients(eq, x_shape, w_shape, dtype):
  kx, kw, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, x_shape, dtype)
  w = jax.random.normal(kw, w_shape, dtype)
  y, vjp = jax.vjp(lambda x, w: linear(eq, x, w), x, w)
  y_ref, vjp_ref = jax.vjp(lambda x, w: jnp.einsum(eq, x, w), x, w)
  g = jax.random.normal(kg, y.shape, dtype)
  tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == jnp.float32 else {"rtol": 2e-2, "atol": 2e-2}
  assert y.dtype == y_ref.dtype
  np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(y_ref, np.float32), **tol)
  for got, want in zip(jax.jit(vjp)(g), vjp_ref(g)):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32), **tol)


def test_linear_rejects_equations_that_are_not_a_linear_layer():
  x, w = jnp.ones((2, 3)), jnp.ones((3, 4))
  for eq in ("td,df", "...d,df->...f", "td,df->t"):
    with pytest.raises(ValueError, match="eq"):
      linear(eq, x, w)
