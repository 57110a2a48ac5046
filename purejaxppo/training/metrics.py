"""Per-update metrics, aggregated on the device: one scalar per metric per update, so memory is flat in run length.

With `axis_name` (data parallelism) every metric covers all devices' environments and samples. A host pool's `valid`
flags (`rollout.Transition.valid`) leave its reset steps out of the explained variance; they never end an episode,
so the episode statistics need no mask. "env_steps" counts every pool step, reset steps included.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from purejaxppo.core.optim import UpdateInfo, learning_rate_at

METRIC_NAMES = (
    "episode_return", "episode_length", "episodes_finished",
    "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
    "explained_variance", "grad_norm", "learning_rate", "env_steps", "nonfinite",
)  # plus "eval_return" when eval_every > 0
# The metrics whose non-finite value means that training diverged (with "nonfinite" > 0).
DIVERGENCE_METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm")


def _psum(x, axis_name):
    """`x` summed over the devices of `axis_name` (unchanged when it is None)."""
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def _global_var(x: jax.Array, axis_name, where=None) -> jax.Array:
    """Variance of all elements (of every device's equal-sized `x`, with `axis_name`); only those `where` is True,
    when given."""
    if where is not None:
        w = where.astype(x.dtype)
        count = jnp.maximum(_psum(w.sum(), axis_name), 1.0)
        mean = _psum(jnp.sum(w * x), axis_name) / count
        return _psum(jnp.sum(w * jnp.square(x - mean)), axis_name) / count
    if axis_name is None:
        return jnp.var(x)
    mean = jax.lax.pmean(x.mean(), axis_name)
    return jax.lax.pmean(jnp.square(x - mean).mean(), axis_name)


def masked_mean(values: jax.Array, where: jax.Array, axis_name=None) -> jax.Array:
    """Mean of `values` over `where`; NaN (never a fake 0) when nothing is selected."""
    count = _psum(where.sum(), axis_name)
    total = _psum(jnp.sum(jnp.where(where, values, 0.0)), axis_name)
    return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)


def explained_variance(values: jax.Array, targets: jax.Array, axis_name=None, where=None) -> jax.Array:
    """1 - Var[G - V] / Var[G] (1 is perfect, 0 no better than a constant); NaN if the targets are constant.
    `where` (bool, the shape of `values`; None: all) selects the samples."""
    if where is not None:  # an invalid step's target may be garbage: keep it out of the arithmetic altogether
        targets, values = jnp.where(where, targets, 0.0), jnp.where(where, values, 0.0)
    var_targets = _global_var(targets, axis_name, where)
    residual_var = _global_var(targets - values, axis_name, where)
    return jnp.where(var_targets > 0, 1.0 - residual_var / jnp.where(var_targets > 0, var_targets, 1.0), jnp.nan)


def count_nonfinite(tree) -> jax.Array:
    """The number of NaN or infinite elements over every leaf of `tree` (int32 [])."""
    counts = [jnp.sum(~jnp.isfinite(x)).astype(jnp.int32) for x in jax.tree.leaves(tree)]
    return sum(counts, jnp.zeros((), jnp.int32))


def episode_metrics(transition, axis_name=None) -> dict[str, jax.Array]:
    """Means over the episodes that finished during the rollout (NaN when none did) and their count."""
    done = transition.terminated | transition.truncated
    return {
        "episode_return": masked_mean(transition.episode_return, done, axis_name),
        "episode_length": masked_mean(transition.episode_length.astype(jnp.float32), done, axis_name),
        "episodes_finished": _psum(done.sum().astype(jnp.int32), axis_name),
    }


def update_metrics(hp, update: jax.Array, transition, info: UpdateInfo, values: jax.Array, targets: jax.Array,
                   params, axis_name=None) -> dict[str, jax.Array]:
    """The metrics of update `update` (0-based): episode statistics, averaged loss terms and diagnostics.

    "nonfinite" counts the NaN or infinite values among the parameters after the update, the averaged loss terms and
    the gradient norm: 0 in a healthy run, and the first update where it is not is where training diverged (the
    command line stops there). The parameters are the same on every device, so it is not summed over `axis_name`.
    """
    diagnostics = [getattr(info.loss, n) for n in DIVERGENCE_METRICS if n != "grad_norm"] + [info.grad_norm]
    return {
        **episode_metrics(transition, axis_name),
        **info.loss._asdict(),
        "explained_variance": explained_variance(values, targets, axis_name, transition.valid),
        "grad_norm": info.grad_norm,
        "learning_rate": learning_rate_at(hp.learning_rate, hp.anneal_lr, update, hp.num_updates),
        "env_steps": env_steps_done(update, hp, axis_name),
        "nonfinite": count_nonfinite(params) + count_nonfinite(diagnostics),
    }


def env_steps_done(update: jax.Array, hp, axis_name=None) -> jax.Array:
    """Environment steps taken (over all devices of `axis_name`) once update `update` (0-based) is done, in int32.

    Exact for every update: `PPOConfig` keeps ``num_updates * batch_size <= total_timesteps <= 2**31 - 1``.
    """
    return (update + 1) * hp.batch_size * _psum(1, axis_name)
