"""From a rollout to parameter updates: values and GAE for the whole batch, minibatch layout, the loss, the epochs.

    prepare_batch: Transition [T, N] -> Batch [T, N]      normalise, one unroll of the policy for V(s_t) and V(s'_t),
                                                          reward normalisation, GAE
    to_samples:    Batch [T, N] -> Samples                single steps [T*N] (feed-forward policies) or whole
                                                          environment sequences [N, T] (recurrent policies)
    fit:           epochs of shuffled minibatches of the samples, each scored by `minibatch_loss`

Written once for every policy (see `purejaxppo.models.policies`): a recurrent policy replays each sequence from the
carry it started the rollout with and the reset flags the rollout recorded, so the loss sees exactly what acting saw
(with the current parameters). `make_train` and `PPOTrainer` both learn through `fit`.

Host pools with NEXT_STEP resets add `valid` flags (`rollout.Transition.valid`): the loss, the advantage
standardisation, its diagnostics and the normalisation statistics then leave the reset steps out (weighted means).
GAE needs no change: the done flag of the step before a reset step already stops the recursion, so a reset step's
(meaningless) advantage never reaches a valid one. Without the flags (every JAX environment) nothing changes.

An asynchronous pool's rollout (`rollout.Transition.env_id`) interleaves environments within each step: GAE and the
reward normaliser's discounted return then run along each environment's own rows (`core.per_env`); everything else
treats the rows as independent samples, as it always does.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxppo.core.gae import gae_advantages
from purejaxppo.core.losses import LossInfo, ppo_loss
from purejaxppo.core.normalize import (
    RewardNormState, RunningStats, normalize_obs, normalize_rewards, scale_rewards, update_stats,
)
from purejaxppo.core.per_env import EnvOrder, env_major, per_env_gae, per_env_returns
from purejaxppo.core.optim import UpdateInfo, run_epochs
from purejaxppo.models.policies import Policy


class Batch(NamedTuple):
    """What the loss needs per step. Leaves share their leading axes: ``[T, N]`` as prepared, ``[T*N]`` or ``[N, T]``
    once laid out as samples.

    obs [.., *obs_shape] (normalised), reset [..] bool (the policy's memory restarted before obs), action [..] or
    [.., A], log_prob [..] (the rollout's policy), value [..] (the rollout's critic), advantage [..], target [..],
    action_mask [.., A] bool or None, valid [..] bool (the sample enters the loss) or None (all do).
    """

    obs: jax.Array
    reset: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array
    action_mask: Any
    valid: Any = None


class Samples(NamedTuple):
    """A batch laid out for minibatching: axis 0 of every leaf indexes samples, and `optim.run_epochs` shuffles it.

    steps: a `Batch` with leaves ``[T*N, ...]`` (single steps) or ``[N, T, ...]`` (whole sequences, environment-major,
      so a minibatch never splits one).
    initial_carry: the policy's carry at the start of each sequence, ``[N, ...]`` (empty for single steps).
    """

    steps: Batch
    initial_carry: Any


def normalize_rollout(hp, transition, obs_stats: RunningStats, reward_state: RewardNormState, axis_name=None,
                      order: EnvOrder | None = None):
    """The rollout's rewards [T, N] (scaled when hp.normalize_rewards) and the statistics updated from this rollout.

    `order`: an asynchronous pool's `per_env.EnvOrder` (each environment's discounted return follows its own rows).
    Observations are normalised by the caller with the statistics as they were *before* this update.
    Returns ``(rewards, obs_stats, reward_state)``.
    """
    rewards, valid = transition.reward, transition.valid
    if hp.normalize_rewards:
        dones = transition.terminated | transition.truncated
        if order is None:
            reward_state, rewards = normalize_rewards(reward_state, rewards, dones, hp.gamma, hp.reward_clip,
                                                      axis_name, valid)
        else:  # an asynchronous pool: each environment's discounted return along its own rows
            returns, carried = per_env_returns(order, rewards, dones, reward_state.discounted_return, hp.gamma)
            stats, rewards = scale_rewards(reward_state.stats, returns, rewards, hp.reward_clip, axis_name, valid)
            reward_state = RewardNormState(stats, carried)
    if hp.normalize_observations:
        obs_stats = update_stats(obs_stats, transition.obs.reshape((-1, *transition.obs.shape[2:])), axis_name,
                                 None if valid is None else valid.reshape(-1))
    return rewards, obs_stats, reward_state


def prepare_batch(policy: Policy, params, hp, transition, start_carry, obs_stats: RunningStats,
                  reward_state: RewardNormState, axis_name=None) -> tuple[Batch, RunningStats, RewardNormState]:
    """Normalise, value the rollout in one pass of the policy, and compute GAE.

    Args:
      transition: the rollout [T, N]; start_carry: the policy's carry when the rollout began.
    Returns:
      ``(Batch [T, N], obs_stats, reward_state)`` with the statistics updated from this rollout (from every device's
      rollout, with `axis_name`).
    """
    obs = normalize_obs(obs_stats, transition.obs, hp.obs_clip, hp.normalize_observations)
    final_obs = normalize_obs(obs_stats, transition.final_obs, hp.obs_clip, hp.normalize_observations)
    _, hidden = policy.unroll(params, start_carry, obs, transition.reset)
    values, next_values = batch_values(policy, params, hidden, final_obs, hp.num_minibatches)
    order = None if transition.env_id is None else env_major(transition.env_id)
    rewards, obs_stats, reward_state = normalize_rollout(hp, transition, obs_stats, reward_state, axis_name, order)
    gae = gae_advantages if order is None else functools.partial(per_env_gae, order)
    advantages, targets = gae(
        rewards, values, next_values, transition.terminated, transition.truncated, hp.gamma, hp.gae_lambda
    )
    batch = Batch(obs, transition.reset, transition.action, transition.log_prob, values, advantages, targets,
                  transition.action_mask, transition.valid)
    return batch, obs_stats, reward_state


def batch_values(policy: Policy, params, hidden, final_obs, blocks: int) -> tuple[jax.Array, jax.Array]:
    """``(V(s_t), V(s'_t))``, each ``[T, N]``, computed over ``gcd(T, blocks)`` blocks of consecutive steps in turn.

    Valuing the whole rollout at once holds the critic's activations for all T*N samples, for both passes at the
    same time, and that was the largest memory of a whole run: 4 x [T*N, width] floats, 0.5 MiB per seed with the
    default config, the buffer that limited how many seeds fit on a GPU. A block of ``T / blocks`` steps, with
    ``blocks = num_minibatches``, holds no more activations than a minibatch does: XLA's memory analysis of the
    default config's whole run gives 0.23 instead of 0.55 MiB of temporary memory per seed, at the same speed.
    """
    num_blocks = math.gcd(hidden.shape[0], blocks)

    def values(block):
        h, f = block
        return policy.heads(params, h, None)[1], policy.successor_value(params, h, f)

    if num_blocks == 1:
        return values((hidden, final_obs))
    split = lambda x: x.reshape((num_blocks, x.shape[0] // num_blocks, *x.shape[1:]))  # noqa: E731
    merge = lambda x: x.reshape((-1, *x.shape[2:]))  # noqa: E731
    v, nv = jax.lax.map(values, (split(hidden), split(final_obs)))
    return merge(v), merge(nv)


def to_samples(batch: Batch, initial_carry, sequences: bool) -> Samples:
    """Lay a ``[T, N]`` batch out for minibatching: whole sequences ``[N, T]`` or single steps ``[T*N]``."""
    if sequences:
        return Samples(jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), batch), initial_carry)
    return Samples(jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), batch), initial_carry)


def minibatch_loss(params, policy: Policy, minibatch: Samples, hp, axis_name=None) -> tuple[jax.Array, LossInfo]:
    """`losses.ppo_loss` on a minibatch: the policy unrolled over its samples (sequences time-major, from their
    initial carry), its heads read with the rollout's action masks, every step weighted equally (every valid step,
    when the batch has `valid` flags)."""
    steps = minibatch.steps
    if policy.recurrent:  # [M, T, ...] -> time-major [T, M, ...]
        steps = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), steps)
    _, hidden = policy.unroll(params, minibatch.initial_carry, steps.obs, steps.reset)
    pi, values = policy.heads(params, hidden, steps.action_mask)
    flat = lambda x: x.reshape(-1)  # noqa: E731
    return ppo_loss(
        flat(pi.log_prob(steps.action)), flat(steps.log_prob), flat(steps.advantage), flat(values),
        flat(steps.value), flat(steps.target), flat(pi.entropy()),
        clip_eps=hp.clip_param, vf_coeff=hp.vf_coeff, entropy_coeff=hp.entropy_coeff,
        normalize_advantages=hp.normalize_advantages, clip_value_loss=hp.clip_value_loss,
        objective=hp.policy_objective, axis_name=axis_name,
        weights=None if steps.valid is None else flat(steps.valid),
    )


def fit(policy: Policy, params, opt_state, samples: Samples, key: jax.Array, hp, tx: optax.GradientTransformation,
        axis_name=None) -> tuple[Any, Any, UpdateInfo]:
    """``hp.update_epochs`` epochs of ``hp.num_minibatches`` shuffled minibatches: loss, gradients, clipping, `tx`.

    Returns ``(params, opt_state, UpdateInfo)``; `key` is this update's shuffle key (epoch e: ``fold_in(key, e)``).
    """
    return run_epochs(
        params, opt_state, samples, key, lambda p, mb: minibatch_loss(p, policy, mb, hp, axis_name), tx,
        epochs=hp.update_epochs, num_minibatches=hp.num_minibatches, max_grad_norm=hp.max_grad_norm,
        axis_name=axis_name,
    )
