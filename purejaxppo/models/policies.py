"""Policies: the one interface through which the pipeline uses a network, feed-forward or recurrent alike.

A policy carries state between steps, its *carry*: empty (``()``) for a feed-forward policy, the hidden state
``h [N, H]`` for the GRU. Every policy is read through the same two passes:

* **unroll** a sequence: ``(carry, hidden [T, B, ...]) = unroll(params, carry, obs [T, B, ...], resets bool[T, B])``.
  `hidden_t` is what the heads read at step t: the observation itself for a feed-forward policy; for the GRU, its
  state after reading obs_t, restarted from h_0 first where `resets_t`. The reset flag that comes with obs_t is
  ``done_{t-1}``: obs_t starts a new episode exactly when the previous step ended one (the environments auto-reset).
* **heads**: ``(pi, value) = heads(params, hidden [...], mask bool[..., A] | None)``, elementwise over leading axes.

One step of acting (`act`) is an unroll of length 1 followed by the heads. The values GAE needs come from the same
unroll: ``V(s_t)`` from the heads, and ``V(s'_t)`` of the pre-reset successor observation from `successor_value`,
which reads `final_obs_t` on top of `hidden_t` without a reset (for the GRU: ``V(GRU(h_t, final_obs_t))``; for a step
that did not end an episode this is exactly ``V_{t+1}``, for a truncated one the value of the cut episode's last
observation with the episode's own memory).

`Policy.recurrent` is the one property the rest of the code asks: a recurrent policy's minibatches hold whole
environment sequences (each replayed from its stored initial carry), a feed-forward policy's hold single steps.
`make_policy` is the only reader of ``config.network``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.config import PPOConfig
from purejaxppo.envs.make import make_env
from purejaxppo.envs.spec import EnvSpec
from purejaxppo.models.networks import NATURE_CNN_MIN_SIZE, ActorCritic, RecurrentActorCritic


class Policy(NamedTuple):
    """A policy's pure functions (see the module docstring for shapes and meaning).

    recurrent: whether the policy has memory (minibatches of whole sequences).
    init(key, obs [N, *obs_shape]) -> params.
    initial_carry(n) -> the carry of n environments at the start of an episode.
    unroll(params, carry, obs [T, B, *obs_shape], resets bool[T, B]) -> (carry, hidden [T, B, ...]).
    heads(params, hidden [...], mask bool[..., A] | None) -> (pi: a distrax distribution, batch [...]; value [...]).
    successor_value(params, hidden [T, B, ...], next_obs [T, B, *obs_shape]) -> [T, B].
    module: the flax module behind the functions (None for a policy built around a user's model).
    """

    recurrent: bool
    init: Callable
    initial_carry: Callable
    unroll: Callable
    heads: Callable
    successor_value: Callable
    module: Any = None


def act(policy: Policy, params, carry, obs: jax.Array, reset: jax.Array, mask=None) -> tuple[Any, Any]:
    """One step for N environments: obs [N, *obs_shape], reset bool[N], mask [N, A] | None -> ``(carry, pi [N])``."""
    carry, hidden = policy.unroll(params, carry, obs[None], reset[None])
    pi, _ = policy.heads(params, hidden[0], mask)
    return carry, pi


def with_flat_params(policy: Policy, unravel: Callable) -> Policy:
    """The same policy reading its parameters from one flat vector: ``unravel(flat) -> params`` (as returned by
    `jax.flatten_util.ravel_pytree`). Training steps the optimiser over that one buffer (see `train.learn`)."""
    return policy._replace(
        unroll=lambda flat, *args: policy.unroll(unravel(flat), *args),
        heads=lambda flat, *args: policy.heads(unravel(flat), *args),
        successor_value=lambda flat, *args: policy.successor_value(unravel(flat), *args),
    )


def feedforward_policy(heads: Callable, init: Callable | None = None, module: Any = None) -> Policy:
    """A policy without memory from ``heads(params, obs [...], mask) -> (pi, value)``: its carry is empty and its
    hidden state at step t is the observation itself."""

    def unroll(params, carry, obs, resets):
        return carry, obs

    def successor_value(params, hidden, next_obs):
        return heads(params, next_obs, None)[1]

    return Policy(False, init, lambda n: (), unroll, heads, successor_value, module)


def actor_critic_policy(module: ActorCritic) -> Policy:
    """The feed-forward `ActorCritic` (MLP or CNN torso) as a `Policy`."""
    return feedforward_policy(
        heads=lambda params, obs, mask: module.apply(params, obs, mask),
        init=lambda key, obs: module.init(key, obs[:1]),
        module=module,
    )


def recurrent_policy(module: RecurrentActorCritic) -> Policy:
    """The GRU `RecurrentActorCritic` as a `Policy`: carry h [N, H], reset to h_0 where the previous step was done."""

    def init(key, obs):
        return module.init(key, module.initial_carry(1), obs[None, :1], jnp.ones((1, 1), bool))

    def unroll(params, carry, obs, resets):
        return module.apply(params, carry, obs, resets, method="hidden_states")

    def heads(params, hidden, mask):
        return (module.apply(params, hidden, mask, method="policy_from_hidden"),
                module.apply(params, hidden, method="value_from_hidden"))

    def successor_value(params, hidden, next_obs):
        return module.apply(params, hidden, next_obs, method="successor_value")

    return Policy(True, init, module.initial_carry, unroll, heads, successor_value, module)


def make_policy(config: PPOConfig, spec: EnvSpec | None = None, *, env=None, env_params=None) -> Policy:
    """The policy `config.network` names, sized for the environment (`spec`, or built from `config` / `env`).

    This is the only place outside config validation that reads ``config.network``.
    """
    if spec is None:
        spec = make_env(config.env_name, config.env_kwargs_dict, env, env_params).spec
    obs_rank = len(spec.obs_shape)
    if config.network == "gru":
        return recurrent_policy(RecurrentActorCritic(
            discrete=spec.discrete, num_actions=spec.num_actions, hidden_sizes=config.hidden_sizes,
            activation=config.activation, gru_hidden_size=config.gru_hidden_size, obs_rank=obs_rank,
        ))
    torso = config.network
    if torso == "mlp" and obs_rank == 3 and np.dtype(spec.obs_dtype) == np.uint8:
        torso = "nature_cnn"  # uint8 image frames (a host pool's, e.g. EnvPool's Atari): the Nature CNN
    if torso in ("cnn", "nature_cnn") and obs_rank != 3:
        raise ValueError(
            f"PPOConfig.network={torso!r} needs image observations [H, W, C]; {config.env_name} gives shape "
            f"{spec.obs_shape}. Use network='mlp'."
        )
    if torso == "nature_cnn" and min(spec.obs_shape[:2]) < NATURE_CNN_MIN_SIZE:
        raise ValueError(
            f"PPOConfig.network='nature_cnn' needs images of at least {NATURE_CNN_MIN_SIZE}x{NATURE_CNN_MIN_SIZE}; "
            f"{config.env_name} gives shape {spec.obs_shape}. Use network='cnn' (3x3 'SAME' convolutions)."
        )
    return actor_critic_policy(ActorCritic(
        discrete=spec.discrete, num_actions=spec.num_actions, torso=torso, hidden_sizes=config.hidden_sizes,
        activation=config.activation, cnn_channels=config.cnn_channels, obs_rank=obs_rank,
    ))
