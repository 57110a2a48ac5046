"""The optimisation phase: epochs of shuffled minibatches, gradient clipping by global norm, Adam (optax).

`run_epochs` is generic over what a "sample" is: it shuffles axis 0 of every array in the batch. Feed-forward
networks pass a flat batch ``[N*T, ...]``; the GRU passes whole environment sequences ``[N, T, ...]`` so a minibatch
never splits a sequence. `PPOTrainer` and `make_train` both run through here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxppo.losses import LossInfo


class Batch(NamedTuple):
    """What the loss needs per sample; every field has the same leading sample axis [B, ...].

    obs [B, *obs_shape] (normalised), action [B] or [B, A], log_prob [B] (old policy), value [B] (old critic),
    advantage [B], target [B], action_mask [B, A] bool or None.
    """

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array
    action_mask: Any


class UpdateInfo(NamedTuple):
    """`LossInfo` averaged over all minibatches of all epochs, plus the mean pre-clip gradient norm."""

    loss: LossInfo
    grad_norm: jax.Array


def learning_rate_at(config, update: jax.Array) -> jax.Array:
    """The learning rate used during update `update` (0-based): linear decay to 0 when `anneal_lr`."""
    if not config.anneal_lr:
        return jnp.asarray(config.learning_rate, jnp.float32)
    return config.learning_rate * (1.0 - update / config.num_updates)


def make_optimizer(config) -> optax.GradientTransformation:
    """Adam with PPO's epsilon, and the linear learning-rate decay when `config.anneal_lr`.

    Gradient clipping is not part of it: `clip_by_global_norm` runs first, so the norm can be reported.
    The optimiser's step count lives in its state, so a restored state resumes the schedule exactly.
    """
    steps_per_update = config.update_epochs * config.num_minibatches

    def schedule(count):
        return learning_rate_at(config, count // steps_per_update)

    return optax.chain(optax.scale_by_adam(eps=config.adam_eps), optax.scale_by_learning_rate(schedule))


def clip_by_global_norm(grads, max_norm) -> tuple[Any, jax.Array]:
    """Scale `grads` so their global L2 norm is at most `max_norm`. Returns ``(clipped, norm before clipping)``.

    (optax.clip clips element-wise; PPO's max_grad_norm means this.)
    """
    norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(grads)))
    scale = jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12))
    return jax.tree.map(lambda g: g * scale.astype(g.dtype), grads), norm


def gradient_step(params, opt_state, tx, grads, max_grad_norm, axis_name=None):
    """Clip, then apply one optimiser step. Returns ``(params, opt_state, grad_norm)``.

    With `axis_name` (data parallelism), the gradients are first averaged over the devices (`lax.pmean`).
    """
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
    grads, grad_norm = clip_by_global_norm(grads, max_grad_norm)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, grad_norm


def shuffle_into_minibatches(batch, key: jax.Array, num_minibatches: int):
    """Permute axis 0 of every leaf and cut it into ``[num_minibatches, B // num_minibatches, ...]``."""
    size = jax.tree.leaves(batch)[0].shape[0]
    permutation = jax.random.permutation(key, size)
    return jax.tree.map(
        lambda x: jnp.take(x, permutation, axis=0).reshape((num_minibatches, size // num_minibatches, *x.shape[1:])),
        batch,
    )


def run_epochs(
    params,
    opt_state,
    batch,
    key: jax.Array,
    loss_fn: Callable[[Any, Any], tuple[jax.Array, LossInfo]],
    tx: optax.GradientTransformation,
    config,
    axis_name=None,
) -> tuple[Any, Any, UpdateInfo]:
    """`config.update_epochs` passes over `batch`, each shuffled (key ``fold_in(key, epoch)``) into minibatches.

    Args:
      params, opt_state: the network's parameters and `tx`'s state.
      batch: a pytree whose leaves share the leading sample axis.
      key: this update's shuffle key.
      loss_fn: ``(params, minibatch) -> (loss, LossInfo)``.
      tx: the optimiser (gradients are clipped to config.max_grad_norm before it).
      axis_name: None, or the `shard_map` axis the batch is split over: gradients and infos are averaged over it.

    Returns:
      ``(params, opt_state, UpdateInfo)`` with the info averaged over every minibatch step.
    """
    grad_fn = jax.grad(loss_fn, has_aux=True)

    def minibatch_step(carry, minibatch):
        params, opt_state = carry
        grads, info = grad_fn(params, minibatch)
        if axis_name is not None:
            info = jax.lax.pmean(info, axis_name)
        params, opt_state, grad_norm = gradient_step(params, opt_state, tx, grads, config.max_grad_norm, axis_name)
        return (params, opt_state), UpdateInfo(info, grad_norm)

    def epoch(carry, epoch_index):
        minibatches = shuffle_into_minibatches(batch, jax.random.fold_in(key, epoch_index), config.num_minibatches)
        return jax.lax.scan(minibatch_step, carry, minibatches)

    (params, opt_state), infos = jax.lax.scan(epoch, (params, opt_state), jnp.arange(config.update_epochs))
    return params, opt_state, jax.tree.map(jnp.mean, infos)
