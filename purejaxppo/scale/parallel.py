"""Data parallelism inside one run: the environments split across devices, gradients averaged with `lax.pmean`.

    train = make_data_parallel_train(PPOConfig(num_envs=2048, ...))          # all devices, or mesh=...
    out = train(jax.random.key(0))                                           # a `TrainOutput`, as from make_train

With D devices each device steps ``num_envs / D`` environments under `jax.shard_map`, computes its part of every
minibatch's gradient, and the gradients are averaged over the devices (``lax.pmean``) before clipping and Adam, so the
parameters stay identical everywhere. What must be global is global: environment i draws the same keys as in the
one-device run (``split(key, num_envs)[i]``), and advantage standardisation, observation/reward normalisation
statistics and the metrics use every device's samples. With ``num_minibatches=1`` the result therefore equals the
one-device run up to float rounding (a mean of D equal-sized means, summed in another order). With more minibatches
each device shuffles its own samples, so a minibatch is the union of D per-device minibatches rather than the
one-device run's: the same algorithm, a different random shuffle.

Use it when one run is too big for one device; to train many seeds or settings, `purejaxppo.sweep` (one whole run
per device, no communication) scales better. Every policy works, recurrent ones too: a GRU's minibatches hold whole
sequences of the device's own environments.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from purejaxppo.compiler import jit
from purejaxppo.config import PPOConfig
from purejaxppo.core.normalize import RewardNormState
from purejaxppo.training.rollout import RolloutState
from purejaxppo.training.train import RunState, TrainOutput, init, make_setup, run

DATA_AXIS = "data"


def _state_partitions(per_env: P) -> RunState:
    """Where each part of the `RunState` lives: per-environment arrays split (`per_env`), everything else replicated."""
    replicated = P()
    return RunState(
        params=replicated, opt_state=replicated,
        rollout=RolloutState(env_state=per_env, obs=per_env, done=per_env, carry=per_env),
        obs_stats=replicated, reward_state=RewardNormState(stats=replicated, discounted_return=per_env),
        key=replicated, updates_done=replicated,
    )


def per_device_config(config: PPOConfig, num_devices: int) -> PPOConfig:
    """The config one device runs: ``num_envs / num_devices`` environments, the same number of updates.

    Raises a ValueError when num_envs does not divide by the devices, or num_minibatches does not divide a device's
    share of the samples (steps, or whole sequences for a recurrent policy).
    """
    if config.num_envs % num_devices:
        raise ValueError(
            f"PPOConfig.num_envs={config.num_envs} must be divisible by the number of devices ({num_devices}) "
            f"for data parallelism"
        )
    local_envs = config.num_envs // num_devices
    try:
        return config.replace(num_envs=local_envs, total_timesteps=config.num_updates * local_envs * config.num_steps)
    except ValueError as error:  # the config's own check, for one device's share
        raise ValueError(f"with data parallelism over {num_devices} devices, each device has "
                         f"num_envs / devices = {local_envs} environments: {error}") from None


def make_data_parallel_train(
    config: PPOConfig, mesh: Mesh | None = None, env=None, env_params=None
) -> Callable[..., TrainOutput]:
    """A jitted ``train(key, hparams=None) -> TrainOutput`` that splits `config`'s environments over `mesh`.

    Args:
      config: the run's `PPOConfig` (num_envs is the total over all devices).
      mesh: the devices (all of its axes together form the data axis). Default: every device,
        ``Mesh(jax.devices(), ("data",))``.
      env, env_params: a custom environment, as for `make_train`.

    The output has the same shapes as `make_train`'s: metrics ``[num_updates]`` (global), the final state's
    per-environment arrays ``[num_envs, ...]`` split over the devices, and everything else replicated. `hparams`, as
    for `make_train`, is a config with the same static fields whose float leaves replace `config`'s.
    """
    mesh = Mesh(np.array(jax.devices()), (DATA_AXIS,)) if mesh is None else mesh
    axis = mesh.axis_names[0] if len(mesh.axis_names) == 1 else tuple(mesh.axis_names)
    local = per_device_config(config, mesh.size)
    setup = make_setup(local, env, env_params, axis_name=axis)
    local_tree, global_tree = jax.tree_util.tree_structure(local), jax.tree_util.tree_structure(config)
    out_partitions = TrainOutput(_state_partitions(P(axis)), P())

    def local_train(key: jax.Array, leaves: list) -> TrainOutput:
        hp = jax.tree_util.tree_unflatten(local_tree, leaves)
        return TrainOutput(*run(setup, init(setup, key, hp), hp))

    # check_vma=False: parameters are replicated by construction (pmean'd gradients), not by type inference.
    sharded = jax.shard_map(local_train, mesh=mesh, in_specs=(P(), P()), out_specs=out_partitions, check_vma=False)

    def train(key: jax.Array, hparams: PPOConfig | None = None) -> TrainOutput:
        hparams = config if hparams is None else hparams
        if jax.tree_util.tree_structure(hparams) != global_tree:
            raise ValueError("hparams must be a PPOConfig with the same static fields as the config given to "
                             "make_data_parallel_train")
        return sharded(key, jax.tree.leaves(hparams))  # floats as arguments: one program for every hparams

    return jit(train)
