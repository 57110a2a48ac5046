"""Network building blocks against independent references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo.models.networks import Conv3x3

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("shape", [(5, 10, 10, 4), (2, 7, 3, 1)])
def test_conv3x3_equals_xla_convolution(shape):
    """The im2col matmul is the 'SAME' 3x3 convolution, value and gradient, for square and odd-shaped images."""
    x = jax.random.normal(jax.random.key(0), shape)
    conv = Conv3x3(6)
    params = conv.init(jax.random.key(1), x)
    kernel, bias = params["params"]["kernel"], params["params"]["bias"] + 0.5
    params = {"params": {"kernel": kernel, "bias": bias}}
    assert kernel.shape == (3, 3, shape[-1], 6)

    def reference(kernel, bias, x):
        out = jax.lax.conv_general_dilated(
            x, kernel, window_strides=(1, 1), padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=jax.lax.Precision.HIGHEST,
        )
        return out + bias

    np.testing.assert_allclose(conv.apply(params, x), reference(kernel, bias, x), rtol=1e-5, atol=1e-5)

    def loss(fn):
        return lambda k, b, x: jnp.sum(jnp.sin(fn(k, b, x)))

    ours = jax.grad(loss(lambda k, b, x: conv.apply({"params": {"kernel": k, "bias": b}}, x)), (0, 1, 2))
    theirs = jax.grad(loss(reference), (0, 1, 2))
    for a, b in zip(ours(kernel, bias, x), theirs(kernel, bias, x)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_conv3x3_kernel_is_orthogonal_like_a_conv():
    """The kernel, flattened to [9 * C_in, C_out], has orthonormal columns scaled by sqrt(2) (the PPO init)."""
    params = Conv3x3(16).init(jax.random.key(2), jnp.zeros((1, 10, 10, 4)))
    flat = params["params"]["kernel"].reshape(36, 16)
    np.testing.assert_allclose(flat.T @ flat, 2.0 * np.eye(16), atol=1e-5)
