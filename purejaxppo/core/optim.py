"""The optimisation phase: epochs of shuffled minibatches, gradient clipping by global norm, Adam (optax).

Pure functions of arrays and scalars. `run_epochs` is generic over what a "sample" is: it shuffles axis 0 of every
leaf of the samples it is given (single steps ``[T*N, ...]`` or whole sequences ``[N, T, ...]``: see `batch.py`).
`make_train` and `PPOTrainer` both run through here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxppo.core.losses import LossInfo


class UpdateInfo(NamedTuple):
    """`LossInfo` averaged over all minibatches of all epochs, plus the mean pre-clip gradient norm."""

    loss: LossInfo
    grad_norm: jax.Array


def learning_rate_at(learning_rate, anneal: bool, update: jax.Array, num_updates: int) -> jax.Array:
    """The learning rate during update `update` (0-based): ``lr * (1 - update / num_updates)`` when `anneal`
    (`optax.linear_schedule` from `learning_rate` to 0 over `num_updates` updates, read at `update`)."""
    if not anneal:
        return jnp.asarray(learning_rate, jnp.float32)
    return optax.linear_schedule(learning_rate, 0.0, num_updates)(update)


def make_optimizer(learning_rate, adam_eps, anneal: bool, num_updates: int,
                   steps_per_update: int) -> optax.GradientTransformation:
    """Adam with epsilon `adam_eps`, and the linear learning-rate decay to 0 over `num_updates` when `anneal`.

    Gradient clipping is not part of it: `clip_by_global_norm` runs first, so the norm can be reported. The step
    count lives in the optimiser's state (``steps_per_update`` steps per update), so a restored state resumes the
    schedule exactly. `learning_rate` and `adam_eps` may be traced (a sweep).
    """

    def schedule(count):
        return learning_rate_at(learning_rate, anneal, count // steps_per_update, num_updates)

    return optax.chain(optax.scale_by_adam(eps=adam_eps), optax.scale_by_learning_rate(schedule))


def clip_by_global_norm(grads, max_norm) -> tuple[Any, jax.Array]:
    """Scale `grads` so their global L2 norm (`optax.tree.norm`) is at most `max_norm`. Returns ``(clipped, norm
    before clipping)``.

    The scaling stays written out, so the pinned runs keep their bits: `optax.clip_by_global_norm` computes
    ``(g / norm) * max_norm`` (other bits in every clipped step), and `optax.projections.projection_l2_ball`
    ``max_norm / sqrt(max(norm**2, max_norm**2))``, which XLA rewrites into ``max_norm * rsqrt(...)`` (other bits in
    about a third of them); neither returns the norm (benchmarks/results/speed-levers-optax-cpu-2core.md).
    optax.clip clips element-wise; PPO's max_grad_norm means the global norm.
    """
    norm = optax.tree.norm(grads)
    scale = jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12))
    return jax.tree.map(lambda g: g * scale.astype(g.dtype), grads), norm


def apply_gradients(params, opt_state, tx: optax.GradientTransformation, grads, max_grad_norm, axis_name=None):
    """Clip, then apply one optimiser step. Returns ``(params, opt_state, grad_norm)``.

    With `axis_name` (data parallelism), the gradients are first averaged over the devices (`lax.pmean`).
    """
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
    grads, grad_norm = clip_by_global_norm(grads, max_grad_norm)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, grad_norm


def shuffle_into_minibatches(samples, key: jax.Array, num_minibatches: int):
    """Permute axis 0 of every leaf and cut it into ``[num_minibatches, S // num_minibatches, ...]``."""
    size = jax.tree.leaves(samples)[0].shape[0]
    permutation = jax.random.permutation(key, size)
    return jax.tree.map(
        lambda x: jnp.take(x, permutation, axis=0).reshape((num_minibatches, size // num_minibatches, *x.shape[1:])),
        samples,
    )


def run_epochs(
    params,
    opt_state,
    samples,
    key: jax.Array,
    loss_fn: Callable[[Any, Any], tuple[jax.Array, LossInfo]],
    tx: optax.GradientTransformation,
    *,
    epochs: int,
    num_minibatches: int,
    max_grad_norm,
    axis_name=None,
) -> tuple[Any, Any, UpdateInfo]:
    """`epochs` passes over `samples`, each shuffled (key ``fold_in(key, epoch)``) into `num_minibatches` minibatches.

    Args:
      params, opt_state: the parameters and `tx`'s state.
      samples: a pytree whose leaves share the leading sample axis.
      key: this update's shuffle key.
      loss_fn: ``(params, minibatch) -> (loss, LossInfo)``.
      tx: the optimiser; gradients are clipped to `max_grad_norm` (global norm) before it.
      axis_name: None, or the `shard_map` axis the samples are split over: gradients and infos are averaged over it.

    Returns:
      ``(params, opt_state, UpdateInfo)`` with the info averaged over every minibatch step.
    """
    grad_fn = jax.grad(loss_fn, has_aux=True)

    def minibatch_step(carry, minibatch):
        params, opt_state = carry
        grads, info = grad_fn(params, minibatch)
        if axis_name is not None:
            info = jax.lax.pmean(info, axis_name)
        params, opt_state, grad_norm = apply_gradients(params, opt_state, tx, grads, max_grad_norm, axis_name)
        return (params, opt_state), UpdateInfo(info, grad_norm)

    def epoch(carry, epoch_index):
        minibatches = shuffle_into_minibatches(samples, jax.random.fold_in(key, epoch_index), num_minibatches)
        return jax.lax.scan(minibatch_step, carry, minibatches)

    (params, opt_state), infos = jax.lax.scan(epoch, (params, opt_state), jnp.arange(epochs))
    return params, opt_state, jax.tree.map(jnp.mean, infos)
