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
per device, no communication) scales better. Feed-forward networks only (not ``network="gru"``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from purejaxppo.config import PPOConfig
from purejaxppo.normalize import RewardNormState
from purejaxppo.train import TrainOutput, TrainState, make_train_functions

DATA_AXIS = "data"


def _state_specs(env_spec: P) -> TrainState:
    """Where each part of the `TrainState` lives: per-environment arrays split, everything else replicated."""
    replicated = P()
    return TrainState(
        params=replicated, opt_state=replicated, env_state=env_spec, obs=env_spec, obs_stats=replicated,
        reward_state=RewardNormState(stats=replicated, discounted_return=env_spec), policy_carry=None,
        key=replicated, update=replicated,
    )


def per_device_config(config: PPOConfig, num_devices: int) -> PPOConfig:
    """The config one device runs: ``num_envs / num_devices`` environments, the same number of updates.

    Raises a ValueError when num_envs does not divide by the devices, or num_minibatches does not divide a device's
    share of the batch.
    """
    if config.network == "gru":
        raise ValueError("data parallelism supports feed-forward networks only (network='mlp' or 'cnn'), got 'gru'")
    if config.num_envs % num_devices:
        raise ValueError(
            f"PPOConfig.num_envs={config.num_envs} must be divisible by the number of devices ({num_devices}) "
            f"for data parallelism"
        )
    local_envs = config.num_envs // num_devices
    if (local_envs * config.num_steps) % config.num_minibatches:
        raise ValueError(
            f"PPOConfig.num_minibatches={config.num_minibatches} must divide each device's batch, "
            f"num_envs / devices * num_steps = {local_envs * config.num_steps}"
        )
    return config.replace(num_envs=local_envs, total_timesteps=config.num_updates * local_envs * config.num_steps)


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
    fns = make_train_functions(local, env, env_params, axis_name=axis)
    local_tree, global_tree = jax.tree_util.tree_structure(local), jax.tree_util.tree_structure(config)
    out_specs = TrainOutput(_state_specs(P(axis)), P())

    def local_train(key: jax.Array, leaves: list) -> TrainOutput:
        cfg = jax.tree_util.tree_unflatten(local_tree, leaves)
        state, metrics = fns.run(fns.init(key, cfg), cfg)
        return TrainOutput(state, metrics)

    # check_vma=False: parameters are replicated by construction (pmean'd gradients), not by type inference.
    sharded = jax.shard_map(local_train, mesh=mesh, in_specs=(P(), P()), out_specs=out_specs, check_vma=False)

    def train(key: jax.Array, hparams: PPOConfig | None = None) -> TrainOutput:
        hparams = config if hparams is None else hparams
        if jax.tree_util.tree_structure(hparams) != global_tree:
            raise ValueError("hparams must be a PPOConfig with the same static fields as the config given to "
                             "make_data_parallel_train")
        return sharded(key, jax.tree.leaves(hparams))  # floats as arguments: one program for every hparams

    return jax.jit(train)
