"""Rollout: `num_steps` vectorised environment steps in one `lax.scan`, recorded as a time-major `Transition`.

The rollout only samples actions. Values are computed afterwards for the whole batch at once (`train.prepare_batch`):
``V(obs_t)`` and ``V(final_obs_t)``, where `final_obs_t` is the pre-reset successor of `obs_t` (the same array as
``obs_{t+1}`` unless the episode ended at t). One batched critic pass replaces T small ones, and it gives GAE exactly
what it needs, including the value of the last observation before a time-limit reset.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import distrax
import jax
import jax.numpy as jnp

from purejaxppo import envs as envs_lib
from purejaxppo.normalize import normalize


class Transition(NamedTuple):
    """One rollout, time-major. T = num_steps, N = num_envs, A = number of actions (or action dimension).

    obs:            [T, N, *obs_shape]  raw observation the agent acted on (normalised later, in one batch)
    action:         [T, N] int32, or [T, N, A] float32 (the unclipped Gaussian sample)
    log_prob:       [T, N] log pi_old(action | obs)
    reward:         [T, N] the environment's reward (the terminal reward on a done step)
    terminated:     [T, N] bool, the episode ended in a terminal state: no bootstrap
    truncated:      [T, N] bool, the episode was cut by a time limit: bootstrap from V(final_obs)
    final_obs:      [T, N, *obs_shape] raw pre-reset successor observation (== obs[t + 1] unless done)
    action_mask:    [T, N, A] bool legal actions at obs, or None when the environment defines no mask
    episode_return: [T, N] running return incl. this step; the finished episode's return where done
    episode_length: [T, N] running length incl. this step; the finished episode's length where done
    """

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array
    action_mask: Any
    episode_return: jax.Array
    episode_length: jax.Array


class EnvStep(NamedTuple):
    """The result of stepping N environments."""

    obs: jax.Array  # [N, *obs_shape], already the next episode's first observation where done
    env_state: Any
    reward: jax.Array  # [N]
    terminated: jax.Array  # [N]
    truncated: jax.Array  # [N]
    final_obs: jax.Array  # [N, *obs_shape]
    episode_return: jax.Array  # [N]
    episode_length: jax.Array  # [N]


def split_per_env(key: jax.Array, num_envs: int, axis_name=None) -> jax.Array:
    """``split(key, N)``: environment i's key. [N] keys.

    With `axis_name` (inside `shard_map` over the environments, N of them per device), this device's slice
    ``split(key, N * num_devices)[d * N:(d + 1) * N]``, so a data-parallel run draws exactly the one-device keys.
    """
    if axis_name is None:
        return jax.random.split(key, num_envs)
    keys = jax.random.split(key, num_envs * jax.lax.psum(1, axis_name))
    return jax.lax.dynamic_slice_in_dim(keys, jax.lax.axis_index(axis_name) * num_envs, num_envs)


def reset_envs(env, env_params, key: jax.Array, num_envs: int, axis_name=None):
    """Reset `num_envs` environments with independent keys. Returns ``(obs [N, ...], env_state)``."""
    return jax.vmap(env.reset, in_axes=(0, None))(split_per_env(key, num_envs, axis_name), env_params)


def step_envs(env, env_params, env_state, action: jax.Array, key: jax.Array, axis_name=None) -> EnvStep:
    """Step N environments (auto-resetting those that finish) with independent keys ``split_per_env(key, N)``."""
    return step_envs_keyed(env, env_params, env_state, action, split_per_env(key, action.shape[0], axis_name))


def step_envs_keyed(env, env_params, env_state, action: jax.Array, keys: jax.Array) -> EnvStep:
    """Step N environments with the given per-environment keys [N]."""
    obs, env_state, reward, terminated, truncated, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
        keys, env_state, action, env_params
    )
    return EnvStep(
        obs, env_state, reward, terminated, truncated, info["final_observation"],
        info["episode_return"], info["episode_length"],
    )


def batch_action_mask(env, env_params, env_state, has_mask: bool):
    """``bool[N, A]`` legal actions for each environment's current state, or None."""
    if not has_mask:
        return None
    return jax.vmap(envs_lib.action_mask, in_axes=(None, 0, None))(env, env_state, env_params).astype(bool)


class StepNoise(NamedTuple):
    """The random numbers of rollout steps, drawn in one batch before the scan (leading [T] axis in a rollout).

    action: [N, A] Gumbel noise (discrete: ``argmax(logits + noise)`` samples the categorical) or standard normal noise
      (continuous: ``mean + std * noise``), drawn with environment i's action key ``split_per_env(action_key_t, N)[i]``.
    env_keys: [N] environment i's key for its transition, ``split_per_env(env_key_t, N)[i]``.
    """

    action: jax.Array
    env_keys: jax.Array


def draw_noise(spec, action_key: jax.Array, env_key: jax.Array, num_envs: int, axis_name=None) -> StepNoise:
    """One step's `StepNoise` for N environments. Per-environment keys make environment i's draws independent of
    how many environments share a device, so a run split across devices samples exactly what one device samples."""
    draw = jax.random.gumbel if spec.discrete else jax.random.normal
    action_keys = split_per_env(action_key, num_envs, axis_name)
    noise = jax.vmap(lambda k: draw(k, (spec.num_actions,)))(action_keys)
    return StepNoise(noise, split_per_env(env_key, num_envs, axis_name))


def draw_rollout_noise(spec, action_key, env_key, num_steps: int, num_envs: int, axis_name=None) -> StepNoise:
    """`StepNoise` for steps ``t = 0..T-1`` (keys ``fold_in(action_key, t)``, ``fold_in(env_key, t)``): [T, N, ...].

    Drawing all of a rollout's random numbers in one batched call, rather than a few tiny ones per step inside the
    scan, made the CPU rollout about 1.3x faster.
    """
    fold = lambda key: jax.vmap(lambda t: jax.random.fold_in(key, t))(jnp.arange(num_steps))  # noqa: E731
    return jax.vmap(lambda a, e: draw_noise(spec, a, e, num_envs, axis_name))(fold(action_key), fold(env_key))


def sample_with_noise(pi, noise: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(action, log_prob)`` from a batch distribution and its pre-drawn `StepNoise.action`."""
    if isinstance(pi, distrax.Categorical):
        action = jnp.argmax(pi.logits + noise, axis=-1)  # the Gumbel-max trick
    elif isinstance(pi, distrax.MultivariateNormalDiag):
        action = pi.loc + pi.scale_diag * noise
    else:
        raise TypeError(f"sampling supports Categorical and MultivariateNormalDiag, got {type(pi).__name__}")
    return action, pi.log_prob(action)


def observe(config, obs_stats, obs: jax.Array) -> jax.Array:
    """What the network sees: `obs` normalised with the running statistics when enabled, else unchanged."""
    if not config.normalize_observations:
        return obs
    return normalize(obs_stats, obs, config.obs_clip)


def collect(
    policy_fn, env, env_params, config, spec, obs_stats, env_state, obs: jax.Array,
    action_key: jax.Array, env_key: jax.Array, axis_name=None,
) -> tuple[Transition, Any, jax.Array]:
    """Run `config.num_steps` steps of N environments.

    Args:
      policy_fn: ``(obs [N, ...], mask [N, A] | None) -> distrax distribution`` (batch shape [N]).
      env, env_params, spec: from `envs.make_env`.
      obs_stats: observation statistics, frozen for the rollout (ignored unless normalize_observations).
      env_state, obs: the environments' state and current raw observation [N, ...].
      action_key, env_key: this rollout's keys for action sampling and for the environments' transitions;
        step t uses ``fold_in(action_key, t)`` and ``fold_in(env_key, t)``.
      axis_name: None, or the `shard_map` axis the environments are split over (keys as in `split_per_env`).

    Returns:
      ``(transition [T, N], env_state, obs)`` with the environments' state and raw observation after the last step.
    """

    def step(carry, noise: StepNoise):
        env_state, obs = carry
        mask = batch_action_mask(env, env_params, env_state, spec.has_action_mask)
        pi = policy_fn(observe(config, obs_stats, obs), mask)
        action, log_prob = sample_with_noise(pi, noise.action)
        out = step_envs_keyed(env, env_params, env_state, action, noise.env_keys)
        transition = Transition(
            obs, action, log_prob, out.reward, out.terminated, out.truncated, out.final_obs, mask,
            out.episode_return, out.episode_length,
        )
        return (out.env_state, out.obs), transition

    noise = draw_rollout_noise(spec, action_key, env_key, config.num_steps, obs.shape[0], axis_name)
    (env_state, obs), transition = jax.lax.scan(step, (env_state, obs), noise)
    return transition, env_state, obs
