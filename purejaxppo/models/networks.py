"""Actor-critic networks (flax linen) and their policy distributions (distrax). The pipeline reaches them only
through `purejaxppo.models.policies`.

`ActorCritic.apply(params, obs, mask=None) -> (pi, value)`:

* obs ``[..., *obs_shape]`` (leading batch axes are free; the MLP flattens the last `obs_rank` axes itself), mask
  ``bool[..., num_actions]`` or None;
* pi: `distrax.Categorical` over the legal actions (illegal logits set to -1e9, so they have probability 0), or a
  diagonal Gaussian ``MultivariateNormalDiag(mean, exp(log_std))`` with a learned, state-independent log-std;
* value ``[...]``.

The actor and the critic have separate torsos (an MLP, or a small CNN for image observations), initialised
orthogonally as in PPO's reference implementations: gain sqrt(2) for hidden layers, 0.01 for the policy head and
1.0 for the value head (Andrychowicz et al., 2021, arXiv 2006.05990). The Nature CNN (``torso="nature_cnn"``, Mnih et
al., 2015, for Atari frames) is one torso shared by both heads, as in the PPO paper's Atari runs. uint8 observations
(host pools' image frames) are scaled by 1/255 inside the network; others are used as they are.

`RecurrentActorCritic` (``network="gru"``) reads a time-major sequence:

    x_t = act(Dense(obs_t))                                    embedding, width hidden_sizes[0]
    h_t = GRU(reset_t ? h_0 : h_{t-1}, x_t)                    h_0 = 0, width gru_hidden_size
    pi_t = PolicyHead(MLP(h_t)),  V_t = Dense(MLP(h_t))        separate heads, MLP widths hidden_sizes[1:]
"""

from __future__ import annotations

from collections.abc import Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

MASKED_LOGIT = -1e9  # finite, so entropies stay finite (0 * -1e9 = 0) where -inf would give NaN

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu, "silu": nn.silu}


def _dense(features: int, gain: float) -> nn.Dense:
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(gain), bias_init=nn.initializers.zeros)


def as_float(obs: jax.Array) -> jax.Array:
    """uint8 observations (image frames, kept uint8 through the rollout) as float32 in [0, 1]; others unchanged."""
    return obs.astype(jnp.float32) / 255.0 if obs.dtype == jnp.uint8 else obs


def flatten_obs(obs: jax.Array, obs_rank: int) -> jax.Array:
    """``[..., *obs_shape] -> [..., prod(obs_shape)]`` where ``len(obs_shape) == obs_rank``."""
    return obs if obs_rank == 1 else obs.reshape((*obs.shape[: obs.ndim - obs_rank], -1))


class MLPTorso(nn.Module):
    hidden_sizes: Sequence[int]
    activation: str

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for width in self.hidden_sizes:
            x = act(_dense(width, np.sqrt(2))(x))
        return x


class Conv3x3(nn.Module):
    """A 3x3 'SAME' convolution written as one matmul over image patches (im2col).

    ``[B, H, W, C_in] -> [B, H, W, features]``. The kernel has the usual ``[3, 3, C_in, features]`` layout and the
    result equals ``jax.lax.conv_general_dilated`` (tests/models/test_networks.py checks it). On XLA:CPU a convolution's
    gradient inside `lax.scan` (the minibatch loop) ran 4.4x slower than this matmul form, which made MinAtar
    training 3.9x faster end to end; on accelerators the two compile to comparable code.
    """

    features: int

    @nn.compact
    def __call__(self, x):
        h, w, c_in = x.shape[-3:]
        kernel = self.param("kernel", nn.initializers.orthogonal(np.sqrt(2)), (3, 3, c_in, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        # Patch feature order (dy, dx, c_in) matches kernel.reshape(9 * c_in, features).
        patches = jnp.concatenate([padded[:, dy : dy + h, dx : dx + w, :] for dy in range(3) for dx in range(3)], -1)
        return patches @ kernel.reshape(9 * c_in, self.features) + bias


class CNNTorso(nn.Module):
    """3x3 'SAME' convolutions, then a dense layer: the MinAtar baseline network (Young & Tian, 2019)."""

    channels: Sequence[int]
    hidden_sizes: Sequence[int]
    activation: str

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        batch_shape = x.shape[:-3]
        x = x.reshape((-1, *x.shape[-3:]))
        for i, c in enumerate(self.channels):
            x = nn.relu(Conv3x3(c, name=f"Conv_{i}")(x))  # nn.Conv's parameter names and shapes
        x = x.reshape((*batch_shape, -1))
        return MLPTorso(self.hidden_sizes, self.activation)(x) if self.hidden_sizes else act(x)


def conv_patches(x: jax.Array, size: int, stride: int) -> jax.Array:
    """``[B, H, W, C] -> [B, H', W', size * size * C]``: the 'VALID' patches of a size x size convolution of stride
    `stride`, features in (dy, dx, c) order, as ``kernel.reshape(-1, features)`` of an ``[size, size, C, F]`` kernel
    reads them."""
    h, w = x.shape[-3:-1]
    oh, ow = (h - size) // stride + 1, (w - size) // stride + 1
    return jnp.concatenate([x[:, dy: dy + stride * (oh - 1) + 1: stride, dx: dx + stride * (ow - 1) + 1: stride, :]
                            for dy in range(size) for dx in range(size)], -1)


class PatchConv(nn.Module):
    """A 'VALID' convolution as one matrix product over its patches (`conv_patches`): `nn.Conv`'s parameters (the
    same names, shapes and initialiser, so the same values from the same key) and its outputs up to float rounding.

    On the CPU it is the faster form by far: XLA:CPU ran the Nature CNN's convolution gradients inside the minibatch
    scan at 13 environment steps per second on Pong against 230 for this form (benchmarks/results/pools-cpu-2core.md,
    part (c)); GPUs keep `nn.Conv` (cuDNN)."""

    features: int
    size: int
    stride: int

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.orthogonal(np.sqrt(2)),
                            (self.size, self.size, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return conv_patches(x, self.size, self.stride) @ kernel.reshape(-1, self.features) + bias


class NatureCNNTorso(nn.Module):
    """Mnih et al. (2015)'s Atari torso: ``[..., H, W, C] -> [..., 512]`` by 8x8/4, 4x4/2 and 3x3/1 'VALID'
    convolutions of 32, 64 and 64 channels and a dense layer of 512, all ReLU (H and W at least 36; 84 for Atari).
    The convolutions (`conv`): "auto", `PatchConv` when the program is traced for the CPU and `nn.Conv` elsewhere;
    "patch" or "xla" for one of them everywhere. The parameters are the same either way, so a checkpoint moves
    between them."""

    conv: str = "auto"

    @nn.compact
    def __call__(self, x):
        batch_shape = x.shape[:-3]
        x = x.reshape((-1, *x.shape[-3:]))
        patch = self.conv == "patch" or (self.conv == "auto" and jax.default_backend() == "cpu")
        for i, (features, size, stride) in enumerate(((32, 8, 4), (64, 4, 2), (64, 3, 1))):
            conv = (PatchConv(features, size, stride, name=f"Conv_{i}") if patch else
                    nn.Conv(features, (size, size), (stride, stride), padding="VALID", name=f"Conv_{i}",
                            kernel_init=nn.initializers.orthogonal(np.sqrt(2)), bias_init=nn.initializers.zeros))
            x = nn.relu(conv(x))
        return nn.relu(_dense(512, np.sqrt(2))(x.reshape((*batch_shape, -1))))


NATURE_CNN_MIN_SIZE = 36  # the smallest height and width its three 'VALID' convolutions take


def masked_logits(logits: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Logits with illegal actions (``mask == False``) set to MASKED_LOGIT; unchanged when mask is None."""
    return logits if mask is None else jnp.where(mask, logits, MASKED_LOGIT)


class PolicyHead(nn.Module):
    """Maps torso features to a distrax distribution."""

    discrete: bool
    num_actions: int

    @nn.compact
    def __call__(self, x, mask=None):
        out = _dense(self.num_actions, 0.01)(x)
        if self.discrete:
            return distrax.Categorical(logits=masked_logits(out, mask))
        log_std = self.param("log_std", nn.initializers.zeros, (self.num_actions,))
        return distrax.MultivariateNormalDiag(out, jnp.broadcast_to(jnp.exp(log_std), out.shape))


class ActorCritic(nn.Module):
    """Separate actor and critic torsos; `__call__` returns ``(pi, value)``.

    obs_rank: how many trailing axes of the input are the observation (the MLP flattens them; the CNN reads
    ``[H, W, C]`` images).
    """

    discrete: bool
    num_actions: int
    torso: str = "mlp"  # "mlp", "cnn" or "nature_cnn" (one torso shared by the actor and the critic)
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    cnn_channels: Sequence[int] = (16,)
    obs_rank: int = 1

    def setup(self):
        if self.torso == "nature_cnn":
            self.torso_module = NatureCNNTorso()  # shared: `critic_torso` is `actor_torso`
        else:
            if self.torso == "cnn":
                make = lambda: CNNTorso(self.cnn_channels, self.hidden_sizes, self.activation)  # noqa: E731
            else:
                make = lambda: MLPTorso(self.hidden_sizes, self.activation)  # noqa: E731
            self.actor_torso = make()
            self.critic_torso = make()
        self.policy_head = PolicyHead(self.discrete, self.num_actions)
        self.value_head = _dense(1, 1.0)

    def __call__(self, obs, mask=None):
        if self.torso == "nature_cnn":  # one pass of the shared torso for both heads
            features = self.torso_module(self._torso_input(obs))
            return self.policy_head(features, mask), self.value_head(features)[..., 0]
        return self.policy(obs, mask), self.value(obs)

    def _torso_input(self, obs):
        obs = as_float(obs)
        return obs if self.torso in ("cnn", "nature_cnn") else flatten_obs(obs, self.obs_rank)

    def _torsos(self):
        if self.torso == "nature_cnn":
            return self.torso_module, self.torso_module
        return self.actor_torso, self.critic_torso

    def actor_features(self, obs) -> jax.Array:
        """The actor torso's output, what the policy head reads (``[..., features]``)."""
        return self._torsos()[0](self._torso_input(obs))

    def policy(self, obs, mask=None) -> distrax.Distribution:
        """The action distribution only."""
        return self.policy_head(self.actor_features(obs), mask)

    def value(self, obs) -> jax.Array:
        """V(obs), shape ``obs.shape[:-obs_rank]``."""
        return self.value_head(self._torsos()[1](self._torso_input(obs)))[..., 0]


# ------------------------------------------------------------------------------------------------------- recurrent
class GRUStep(nn.Module):
    """One GRU step with a reset: ``carry [B, H], (x [B, E], reset bool[B]) -> (h [B, H], h [B, H])``; rows where
    `reset` restart from h_0 = 0 before reading x.

    `RecurrentActorCritic` scans it over time (its parameters live under ``"gru"``); `RecurrentActorCritic.step` runs
    it once on those parameters.
    """

    features: int

    @nn.compact
    def __call__(self, carry, inputs):
        x, reset = inputs
        carry = jnp.where(reset[:, None], jnp.zeros_like(carry), carry)
        cell = nn.GRUCell(
            self.features,
            kernel_init=nn.initializers.orthogonal(1.0),
            recurrent_kernel_init=nn.initializers.orthogonal(1.0),
            bias_init=nn.initializers.zeros,
        )
        h, _ = cell(carry, x)
        return h, h


# The GRU over time: params shared across steps, inputs and outputs time-major.
_ScannedGRU = nn.scan(
    GRUStep, variable_broadcast="params", split_rngs={"params": False}, in_axes=0, out_axes=0
)


class RecurrentActorCritic(nn.Module):
    """Dense embedding -> GRU -> separate actor and critic heads (orthogonal init as in `ActorCritic`).

    Time-major throughout: obs ``[T, B, *obs_shape]`` (flattened over its last `obs_rank` axes), resets ``bool[T, B]``,
    carry ``[B, H]``. `__call__` returns ``(carry_T, pi [T, B], value [T, B])``; the other methods are the pieces
    `policies.recurrent_policy` uses, and `step` (one step without the scan) is what `purejaxppo.runs.export` traces.
    """

    discrete: bool
    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    gru_hidden_size: int = 128
    obs_rank: int = 1

    def setup(self):
        self.embed = _dense(self.hidden_sizes[0], np.sqrt(2))
        self.gru = _ScannedGRU(self.gru_hidden_size)
        self.actor_torso = MLPTorso(tuple(self.hidden_sizes[1:]), self.activation)
        self.critic_torso = MLPTorso(tuple(self.hidden_sizes[1:]), self.activation)
        self.policy_head = PolicyHead(self.discrete, self.num_actions)
        self.value_out = _dense(1, 1.0)

    def __call__(self, carry, obs, resets, mask=None):
        carry, hidden = self.hidden_states(carry, obs, resets)
        return carry, self.policy_from_hidden(hidden, mask), self.value_from_hidden(hidden)

    def initial_carry(self, batch_size: int) -> jax.Array:
        """h_0, zeros ``[batch_size, H]``."""
        return jnp.zeros((batch_size, self.gru_hidden_size), jnp.float32)

    def embedding(self, obs) -> jax.Array:
        """x = act(Dense(obs)), the GRU's input: obs ``[..., *obs_shape]`` -> ``[..., hidden_sizes[0]]``."""
        return ACTIVATIONS[self.activation](self.embed(flatten_obs(as_float(obs), self.obs_rank)))

    def hidden_states(self, carry, obs, resets) -> tuple[jax.Array, jax.Array]:
        """``(h_{T-1} [B, H], h [T, B, H])``: h_t is the GRU state after reading obs_t (reset first where resets_t)."""
        return self.gru(carry, (self.embedding(obs), resets))

    def step(self, carry, obs, reset) -> jax.Array:
        """One step: carry ``[B, H]``, obs ``[B, *obs_shape]``, reset ``bool[B]`` -> h ``[B, H]``, the GRU state after
        reading obs (reset first where `reset`). It is `hidden_states` of a one-step sequence on the same parameters,
        without flax's `nn.scan` (one `GRUStep` on the ``"gru"`` parameters), which jax2onnx cannot trace.
        """
        if self.is_initializing():  # the parameters do not exist yet: create them as the scan does
            return self.hidden_states(carry, obs[None], reset[None])[0]
        gru = GRUStep(self.gru_hidden_size, parent=None)
        return gru.apply({"params": self.variables["params"]["gru"]}, carry, (self.embedding(obs), reset))[0]

    def policy_from_hidden(self, hidden, mask=None) -> distrax.Distribution:
        """The action distribution for hidden states ``[..., H]`` (batch shape ``[...]``)."""
        return self.policy_head(self.actor_torso(hidden), mask)

    def value_from_hidden(self, hidden) -> jax.Array:
        """V for hidden states ``[..., H]``, shape ``[...]``."""
        return self.value_out(self.critic_torso(hidden))[..., 0]

    def successor_value(self, hidden, next_obs) -> jax.Array:
        """``V(GRU(h, next_obs))`` with no reset, elementwise over leading axes: hidden [..., H], next_obs
        [..., *obs_shape]."""
        batch_shape = hidden.shape[:-1]
        flat_h = hidden.reshape((-1, hidden.shape[-1]))
        flat_obs = next_obs.reshape((1, flat_h.shape[0], *next_obs.shape[len(batch_shape):]))
        h, _ = self.hidden_states(flat_h, flat_obs, jnp.zeros((1, flat_h.shape[0]), bool))
        return self.value_from_hidden(h).reshape(batch_shape)
