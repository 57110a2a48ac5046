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


def test_nature_cnn_is_mnih_et_al_s_torso_shared_by_both_heads_on_uint8_frames():
    """Against a hand-written lax.conv forward pass: 8x8/4, 4x4/2, 3x3/1 'VALID' convolutions (32, 64, 64), a dense
    layer of 512, ReLU throughout, uint8 frames scaled by 1/255; one set of torso parameters for actor and critic."""
    from purejaxppo.models.networks import ActorCritic

    frames = jax.random.randint(jax.random.key(0), (3, 84, 84, 4), 0, 256).astype(jnp.uint8)
    net = ActorCritic(discrete=True, num_actions=6, torso="nature_cnn", obs_rank=3)
    params = net.init(jax.random.key(1), frames)
    assert sorted(params["params"]) == ["policy_head", "torso_module", "value_head"]
    torso = params["params"]["torso_module"]
    x = frames.astype(jnp.float32) / 255.0
    for i, stride in enumerate((4, 2, 1)):
        conv = torso[f"Conv_{i}"]
        x = jax.nn.relu(jax.lax.conv_general_dilated(
            x, conv["kernel"], (stride, stride), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=jax.lax.Precision.HIGHEST) + conv["bias"])
    assert x.shape == (3, 7, 7, 64)
    features = jax.nn.relu(x.reshape(3, -1) @ torso["Dense_0"]["kernel"] + torso["Dense_0"]["bias"])
    value_head = params["params"]["value_head"]
    pi, value = net.apply(params, frames)
    np.testing.assert_allclose(value, (features @ value_head["kernel"] + value_head["bias"])[:, 0], rtol=1e-4,
                               atol=1e-5)
    _, value_float = net.apply(params, frames.astype(jnp.float32) / 255.0)  # floats are used as they are
    np.testing.assert_allclose(value, value_float, rtol=1e-6, atol=1e-6)
    assert pi.logits.shape == (3, 6)


def test_image_frames_get_the_nature_cnn_and_it_needs_images():
    from purejaxppo import PPOConfig
    from purejaxppo.envs import EnvSpec
    from purejaxppo.models.policies import make_policy

    frames = EnvSpec((84, 84, 4), True, 6, None, None, False, 1000, np.uint8)
    policy = make_policy(PPOConfig(), frames)  # network "mlp" (the default) on uint8 frames: the Nature CNN
    assert policy.module.torso == "nature_cnn"
    minatar = EnvSpec((10, 10, 4), True, 6, None, None, False, 1000)  # float images keep the config's network
    assert make_policy(PPOConfig(), minatar).module.torso == "mlp"
    with pytest.raises(ValueError, match=r"network='nature_cnn' needs image observations \[H, W, C\]"):
        make_policy(PPOConfig(network="nature_cnn"), EnvSpec((4,), True, 2, None, None, False, 500))
    with pytest.raises(ValueError, match="network='nature_cnn' needs images of at least 36x36"):
        make_policy(PPOConfig(network="nature_cnn"), minatar)


def test_the_patch_convolution_is_flax_conv_with_the_same_parameters():
    """`PatchConv` (the Nature CNN's convolutions on the CPU) against `nn.Conv`: the same parameter tree from the same
    key, and the same outputs to float rounding, for each of the torso's three shapes."""
    import flax.linen as nn

    from purejaxppo.models.networks import PatchConv

    for features, size, stride, shape in ((32, 8, 4, (2, 84, 84, 4)), (64, 4, 2, (2, 20, 20, 32)),
                                          (64, 3, 1, (2, 9, 9, 64))):
        x = jax.random.normal(jax.random.key(size), shape)
        conv = nn.Conv(features, (size, size), (stride, stride), padding="VALID",
                       kernel_init=nn.initializers.orthogonal(np.sqrt(2)), bias_init=nn.initializers.zeros)
        patch = PatchConv(features, size, stride)
        p_conv, p_patch = conv.init(jax.random.key(0), x), patch.init(jax.random.key(0), x)
        assert jax.tree.structure(p_conv) == jax.tree.structure(p_patch)
        for a, b in zip(jax.tree.leaves(p_conv), jax.tree.leaves(p_patch)):
            np.testing.assert_array_equal(a, b)
        p_conv = jax.tree.map(lambda v: v + 0.1, p_conv)  # a non-zero bias too
        np.testing.assert_allclose(patch.apply(p_conv, x), conv.apply(p_conv, x), rtol=1e-4, atol=1e-4)
