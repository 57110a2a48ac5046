"""Running observation and reward normalisation. The statistics are part of the training state, not the environment's.

Observations are normalised with the statistics as they stood at the start of the rollout, and the statistics are
then updated once from the rollout's whole batch (Chan et al.'s parallel mean/variance update). Freezing them during
a rollout keeps every stored observation consistent with the log-probabilities recorded for it.

Rewards are divided by the running standard deviation of the discounted return (as gym's VecNormalize and PureJaxRL's
NormalizeVecReward do); the per-environment discounted-return accumulator is part of the state too.

`weights` (host pools' `valid` flags): samples with weight 0 do not enter the statistics (a NEXT_STEP pool's reset
step would otherwise count each terminal observation twice, and add a zero return). Without weights the code is
unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

EPSILON = 1e-8


@struct.dataclass
class RunningStats:
    """Mean and variance of a stream of arrays with shape `shape`, from `count` samples."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array  # [] float32

    @classmethod
    def create(cls, shape) -> RunningStats:
        return cls(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32), jnp.asarray(EPSILON, jnp.float32))


def update_stats(stats: RunningStats, batch: jax.Array, axis_name=None, weights=None) -> RunningStats:
    """Fold ``batch [B, *shape]`` into `stats` (exact parallel update of mean and variance).

    With `axis_name` (inside `shard_map`, B samples on each device), the batch is the union of every device's, so the
    statistics stay identical on all devices. `weights` ``[B]`` (0 or 1; None: all 1) leaves out the samples with
    weight 0; a batch with none left leaves `stats` unchanged.
    """
    if weights is not None:
        return _update_weighted_stats(stats, batch, weights, axis_name)
    batch_mean = jnp.mean(batch, axis=0)
    batch_var = jnp.var(batch, axis=0)
    batch_count = batch.shape[0]
    if axis_name is not None:  # equal-sized shards: mean of means, and of variances about the global mean
        global_mean = jax.lax.pmean(batch_mean, axis_name)
        batch_var = jax.lax.pmean(batch_var + jnp.square(batch_mean - global_mean), axis_name)
        batch_mean, batch_count = global_mean, batch_count * jax.lax.psum(1, axis_name)
    batch_count = jnp.asarray(batch_count, jnp.float32)
    delta = batch_mean - stats.mean
    total = stats.count + batch_count
    mean = stats.mean + delta * batch_count / total
    m2 = stats.var * stats.count + batch_var * batch_count + jnp.square(delta) * stats.count * batch_count / total
    return RunningStats(mean, m2 / total, total)


def _update_weighted_stats(stats: RunningStats, batch: jax.Array, weights: jax.Array, axis_name=None) -> RunningStats:
    """`update_stats` over the samples of ``batch [B, *shape]`` weighted by ``weights [B]``."""
    psum = (lambda x: x) if axis_name is None else (lambda x: jax.lax.psum(x, axis_name))  # noqa: E731
    w = weights.astype(jnp.float32).reshape((-1,) + (1,) * (batch.ndim - 1))
    batch_count = psum(jnp.sum(w))
    safe = jnp.maximum(batch_count, 1.0)
    batch_mean = psum(jnp.sum(w * batch, axis=0)) / safe
    batch_var = psum(jnp.sum(w * jnp.square(batch - batch_mean), axis=0)) / safe
    delta = batch_mean - stats.mean
    total = stats.count + batch_count
    mean = stats.mean + delta * batch_count / total
    m2 = stats.var * stats.count + batch_var * batch_count + jnp.square(delta) * stats.count * batch_count / total
    return RunningStats(mean, m2 / total, total)


def normalize(stats: RunningStats, x: jax.Array, clip) -> jax.Array:
    """``clip((x - mean) / sqrt(var + eps), -clip, clip)``, broadcasting over leading axes."""
    return jnp.clip((x - stats.mean) / jnp.sqrt(stats.var + EPSILON), -clip, clip)


def normalize_obs(stats: RunningStats, obs: jax.Array, clip, enabled: bool) -> jax.Array:
    """What a policy sees: `obs` normalised with `stats` and clipped to +-`clip` when `enabled`, else `obs` itself."""
    return normalize(stats, obs, clip) if enabled else obs


@struct.dataclass
class RewardNormState:
    """Running variance of the discounted return, and each environment's return so far."""

    stats: RunningStats  # shape []
    discounted_return: jax.Array  # [N]

    @classmethod
    def create(cls, num_envs: int) -> RewardNormState:
        return cls(RunningStats.create(()), jnp.zeros((num_envs,), jnp.float32))


def normalize_rewards(
    state: RewardNormState, rewards: jax.Array, dones: jax.Array, gamma, clip, axis_name=None, valid=None
) -> tuple[RewardNormState, jax.Array]:
    """Scale ``rewards [T, N]`` by the running std of the discounted return; ``dones [T, N]`` restart the return.

    Returns the updated state and the scaled, clipped rewards [T, N]. `axis_name`: as in `update_stats`. `valid`
    ``[T, N]`` bool (None: all): the returns of invalid steps (a NEXT_STEP pool's reset step, reward 0) are left out
    of the statistics.
    """

    def accumulate(ret, step):
        r_t, done_t = step
        ret = ret * gamma + r_t
        return jnp.where(done_t, 0.0, ret), ret

    final_return, returns = jax.lax.scan(accumulate, state.discounted_return, (rewards, dones))
    stats, scaled = scale_rewards(state.stats, returns, rewards, clip, axis_name, valid)
    return RewardNormState(stats, final_return), scaled


def scale_rewards(stats: RunningStats, returns, rewards, clip, axis_name=None, valid=None):
    """The return statistics updated with ``returns`` (any shape; `valid` of the same shape or None), and ``rewards``
    scaled by their std and clipped to ``[-clip, clip]``. Returns ``(stats, scaled)``."""
    stats = update_stats(stats, returns.reshape(-1), axis_name, None if valid is None else valid.reshape(-1))
    return stats, jnp.clip(rewards / jnp.sqrt(stats.var + EPSILON), -clip, clip)
