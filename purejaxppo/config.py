"""`PPOConfig`: every setting of a PPO run, frozen, typed and checked when it is built.

Two kinds of field:

* **static** fields set array shapes or the program's structure (`num_envs`, `num_steps`, `network`, ...). They are
  pytree *metadata*: changing one means a new compiled program.
* **hyperparameter** fields are floats (`learning_rate`, `gamma`, `clip_param`, ...). They are pytree *leaves*, so a
  batch of configs can be `jax.vmap`-ed over in one compiled program (see `purejaxppo.sweep`).

Validation runs only when a config is built by hand (``PPOConfig(...)`` or ``config.replace(...)``); JAX rebuilding the
tree under `jit`/`vmap` bypasses it, so tracers and `in_axes` placeholders never reach the checks.

The budget: training runs ``num_updates = total_timesteps // (num_envs * num_steps)`` updates, so the steps trained,
``timesteps_trained``, are `total_timesteps` rounded *down* to a multiple of the batch size (the default 500_000 runs 976
updates = 499_712 steps). Both are properties of the config and are printed by the command line. The run counts steps
per seed in int32, so `total_timesteps` is at most ``MAX_TOTAL_TIMESTEPS = 2**31 - 1``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from purejaxppo.envs.registry import check_env_kwargs, check_env_name, suite_of

# Names of the fields that are float hyperparameters (pytree leaves). Everything else is static metadata.
HYPERPARAMETERS: tuple[str, ...] = (
    "learning_rate",
    "gamma",
    "gae_lambda",
    "clip_param",
    "vf_coeff",
    "entropy_coeff",
    "max_grad_norm",
    "adam_eps",
    "obs_clip",
    "reward_clip",
)

NETWORKS = ("mlp", "cnn", "gru", "nature_cnn")
ACTIVATIONS = ("tanh", "relu", "gelu", "silu")
POLICY_OBJECTIVES = ("ppo", "spo")

# The run counts updates, environment steps and Adam's steps per seed in int32 (`RunState.updates_done`, the
# "env_steps" metric, optax's step count that drives the learning-rate schedule), so none may pass 2**31 - 1.
MAX_TOTAL_TIMESTEPS = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """All settings of a PPO run. Frozen; build a variant with `config.replace(field=value)`.

    Attributes (static unless marked *leaf*):
      env_name: a gymnax environment id (`gymnax.registered_envs`), or a suite's ``"<prefix>:<name>"``: ``"brax:<name>"``
        with the brax extra, ``"envpool:<task>"`` (the envpool extra) or ``"gymnasium:<id>"`` (host pools, which
        train with eval_every 0).
      env_kwargs: keyword arguments for the environment's constructor (stored as a sorted tuple of pairs). The keys
        are checked against the constructor's signature here (gymnax environments); the values when it is built.
      num_envs: environments stepped in parallel, N.
      num_steps: steps per environment per update (rollout length), T.
      total_timesteps: the budget in environment steps per seed; rounded down to a multiple of N*T (see module
        docstring). At most `MAX_TOTAL_TIMESTEPS` = 2**31 - 1, since the run counts steps in int32; the optimiser's
        steps, num_updates * update_epochs * num_minibatches, must stay within that bound too.
      update_epochs: passes over each rollout batch.
      num_minibatches: minibatches per epoch; N*T (or N for the GRU) must divide by it.
      learning_rate: *leaf*, Adam's step size (its start value when annealed).
      anneal_lr: decay the learning rate linearly to 0 over the run.
      gamma: *leaf*, discount factor in [0, 1].
      gae_lambda: *leaf*, GAE's lambda in [0, 1].
      clip_param: *leaf*, PPO's epsilon (ratio clip, value clip, and SPO's trust-region radius), > 0.
      vf_coeff: *leaf*, weight of the value loss, >= 0.
      entropy_coeff: *leaf*, weight of the entropy bonus, >= 0.
      max_grad_norm: *leaf*, gradients are clipped to this global norm, > 0.
      adam_eps: *leaf*, Adam's epsilon, > 0.
      normalize_advantages: standardise advantages within each minibatch.
      clip_value_loss: clip the value update to +-clip_param around the rollout's value (as PPO2 and PureJaxRL do).
      policy_objective: "ppo" (clipped surrogate) or "spo" (Simple Policy Optimization's penalty).
      network: "mlp", "cnn" (for image observations such as MinAtar), "gru" (recurrent) or "nature_cnn" (Mnih et al.'s
        Atari torso, shared by actor and critic; chosen instead of "mlp" for uint8 image frames, e.g. EnvPool's Atari).
      hidden_sizes: widths of the MLP torso's layers (and of the dense layer after the CNN, and the GRU's input layer).
      activation: one of "tanh", "relu", "gelu", "silu".
      cnn_channels: output channels of each 3x3 convolution in the CNN torso.
      gru_hidden_size: width of the GRU's hidden state.
      normalize_observations: standardise observations with running statistics kept in the training state.
      obs_clip: *leaf*, normalised observations are clipped to +-obs_clip.
      normalize_rewards: scale rewards by the running standard deviation of the discounted return.
      reward_clip: *leaf*, normalised rewards are clipped to +-reward_clip.
      eval_every: run greedy evaluation every this many updates inside the training program (0 = off).
      eval_episodes: episodes per in-training evaluation.
    """

    env_name: str = "CartPole-v1"
    env_kwargs: Any = ()
    num_envs: int = 4
    num_steps: int = 128
    total_timesteps: int = 500_000
    update_epochs: int = 4
    num_minibatches: int = 4
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_param: float = 0.2
    vf_coeff: float = 0.5
    entropy_coeff: float = 0.01
    max_grad_norm: float = 0.5
    adam_eps: float = 1e-5
    normalize_advantages: bool = True
    clip_value_loss: bool = True
    policy_objective: str = "ppo"
    network: str = "mlp"
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    cnn_channels: tuple[int, ...] = (16,)
    gru_hidden_size: int = 128
    normalize_observations: bool = False
    obs_clip: float = 10.0
    normalize_rewards: bool = False
    reward_clip: float = 10.0
    eval_every: int = 0
    eval_episodes: int = 10

    # ----------------------------------------------------------------------------------------------- construction
    def __post_init__(self) -> None:
        _normalise_fields(self)
        _validate(self)

    def replace(self, **changes: Any) -> PPOConfig:
        """A copy with `changes` applied (and validated). Unknown names raise a `ValueError`."""
        _check_field_names(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (env_kwargs as a dict, tuples as lists); `from_dict` inverts it."""
        out: dict[str, Any] = {}
        for name in field_names():
            value = getattr(self, name)
            if name == "env_kwargs":
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif hasattr(value, "item"):  # a concrete 0-d array (e.g. from a sweep cell)
                value = value.item()
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PPOConfig:
        """Build from a mapping of field names, with clear errors for unknown names."""
        _check_field_names(values)
        return cls(**dict(values))

    # -------------------------------------------------------------------------------------------- derived sizes
    @property
    def batch_size(self) -> int:
        """Transitions per update, N*T."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        """Transitions per minibatch."""
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        """PPO updates in the run: total_timesteps // batch_size."""
        return self.total_timesteps // self.batch_size

    @property
    def timesteps_trained(self) -> int:
        """Environment steps actually trained: num_updates * batch_size (<= total_timesteps)."""
        return self.num_updates * self.batch_size

    @property
    def env_kwargs_dict(self) -> dict[str, Any]:
        return dict(self.env_kwargs)

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The float leaves, by name."""
        return {name: getattr(self, name) for name in HYPERPARAMETERS}


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(PPOConfig))


def _check_field_names(names) -> None:
    unknown = sorted(set(names) - set(field_names()))
    if unknown:
        raise ValueError(f"PPOConfig has no field(s) {unknown}; fields are {list(field_names())}")


STATIC_FIELDS: tuple[str, ...] = tuple(n for n in field_names() if n not in HYPERPARAMETERS)


# ------------------------------------------------------------------------------------------------- pytree registration
def _flatten(config: PPOConfig):
    leaves = tuple(getattr(config, n) for n in HYPERPARAMETERS)
    aux = tuple(getattr(config, n) for n in STATIC_FIELDS)
    return leaves, aux


def _flatten_with_keys(config: PPOConfig):
    leaves, aux = _flatten(config)
    return tuple((jax.tree_util.GetAttrKey(n), v) for n, v in zip(HYPERPARAMETERS, leaves)), aux


def _unflatten(aux, leaves) -> PPOConfig:
    # Bypass __init__: under jit/vmap the leaves are tracers or in_axes placeholders, which must not be validated.
    config = object.__new__(PPOConfig)
    for name, value in zip(STATIC_FIELDS, aux):
        object.__setattr__(config, name, value)
    for name, value in zip(HYPERPARAMETERS, leaves):
        object.__setattr__(config, name, value)
    return config


jax.tree_util.register_pytree_with_keys(PPOConfig, _flatten_with_keys, _unflatten, _flatten)


def with_hyperparameters(config: PPOConfig, values: Mapping[str, Any]) -> PPOConfig:
    """`config` with some float leaves replaced by ``values`` (possibly tracers), without validation: what `sweep`
    and `pbt` hand to the train functions for one cell or member."""
    leaves, treedef = jax.tree_util.tree_flatten(config)
    return jax.tree_util.tree_unflatten(treedef, [values.get(n, v) for n, v in zip(HYPERPARAMETERS, leaves)])


# ---------------------------------------------------------------------------------------------------- validation
def _normalise_fields(config: PPOConfig) -> None:
    """Coerce inputs to canonical, hashable forms without touching the caller's objects."""
    set_ = lambda name, value: object.__setattr__(config, name, value)  # noqa: E731
    kwargs = config.env_kwargs
    if kwargs is None:
        kwargs = ()
    if isinstance(kwargs, Mapping):
        kwargs = tuple(sorted(kwargs.items()))
    elif isinstance(kwargs, (list, tuple)):
        try:
            kwargs = tuple(sorted((str(k), v) for k, v in kwargs))
        except (TypeError, ValueError):
            raise ValueError(
                f"PPOConfig.env_kwargs must be a dict of keyword arguments, got {config.env_kwargs!r}"
            ) from None
    else:
        raise ValueError(f"PPOConfig.env_kwargs must be a dict of keyword arguments, got {config.env_kwargs!r}")
    set_("env_kwargs", kwargs)
    for name in ("hidden_sizes", "cnn_channels"):
        value = getattr(config, name)
        if isinstance(value, int):
            value = (value,)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"PPOConfig.{name} must be a sequence of positive integers, got {value!r}")
        set_(name, tuple(value))
    # Integral floats such as total_timesteps=5e5 are accepted as integers.
    for name in ("total_timesteps", "num_envs", "num_steps", "update_epochs", "num_minibatches",
                 "eval_every", "eval_episodes", "gru_hidden_size"):
        value = getattr(config, name)
        if isinstance(value, float) and value.is_integer():
            set_(name, int(value))
    for name in HYPERPARAMETERS:
        value = getattr(config, name)
        if isinstance(value, int) and not isinstance(value, bool):
            with contextlib.suppress(OverflowError):  # an int beyond float64 stays as it is: refused below
                set_(name, float(value))


def _is_concrete_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(config: PPOConfig, name: str, minimum: int) -> None:
    value = getattr(config, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"PPOConfig.{name} must be an integer >= {minimum}, got {value!r}")


def _float_values(name: str, value: Any) -> list | None:
    """The concrete values of hyperparameter `name`: one number, or the elements of an array (a batch of values for a
    sweep); None for a tracer (nothing concrete to check). Booleans, strings and other non-real values are refused."""
    if _is_concrete_number(value):
        return [value]
    dtype = getattr(value, "dtype", None)
    if not hasattr(value, "shape") or dtype is None:
        raise ValueError(f"PPOConfig.{name} must be a number, got {value!r}")
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):  # bool, str, complex, object
        raise ValueError(f"PPOConfig.{name} must be a real number, got {value!r} (dtype {dtype})")
    try:
        return list(np.asarray(jax.device_get(value)).reshape(-1))
    except Exception:  # a tracer
        return None


def _check_float(config: PPOConfig, name: str, low: float, high: float, low_open: bool, high_open: bool = False):
    """`name`'s value(s) in the interval, as the float32 the run computes with (1e39 would be inf, 1e-50 zero)."""
    values = _float_values(name, getattr(config, name))
    lo = f"{'(' if low_open else '['}{low:g}"
    hi = f"{high:g}{')' if high_open else ']'}" if math.isfinite(high) else "inf)"

    def outside(y: float) -> bool:
        return not math.isfinite(y) or (y <= low if low_open else y < low) or (y >= high if high_open else y > high)

    for v in values or ():
        try:
            x = float(v)
        except OverflowError:  # an int beyond float64
            raise ValueError(f"PPOConfig.{name} must be in {lo}, {hi}, got an integer of {len(str(v))} digits"
                             ) from None
        with np.errstate(over="ignore", under="ignore"):
            x32 = float(np.float32(x))
        if outside(x):
            raise ValueError(f"PPOConfig.{name} must be in {lo}, {hi}, got {v!r}")
        if outside(x32):
            raise ValueError(f"PPOConfig.{name} must be in {lo}, {hi} in float32, the precision the run computes in, "
                             f"got {v!r}, which is {x32:g} in float32")


def _check_choice(config: PPOConfig, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"PPOConfig.{name} must be one of {list(choices)}, got {value!r}")


def _check_bool(config: PPOConfig, name: str) -> None:
    value = getattr(config, name)
    if not isinstance(value, bool):
        raise ValueError(f"PPOConfig.{name} must be True or False, got {value!r}")


def _check_int32_budget(config: PPOConfig) -> None:
    """The run's int32 counters must not overflow: environment steps and Adam's steps per seed <= 2**31 - 1."""
    if config.total_timesteps > MAX_TOTAL_TIMESTEPS:
        raise ValueError(
            f"PPOConfig.total_timesteps must be <= 2**31 - 1 = {MAX_TOTAL_TIMESTEPS} per seed (the run counts "
            f"environment steps in int32), got {config.total_timesteps}"
        )
    optimizer_steps = config.num_updates * config.update_epochs * config.num_minibatches
    if optimizer_steps > MAX_TOTAL_TIMESTEPS:
        raise ValueError(
            f"PPOConfig.total_timesteps={config.total_timesteps} gives num_updates * update_epochs * num_minibatches "
            f"= {optimizer_steps} Adam steps, more than the 2**31 - 1 = {MAX_TOTAL_TIMESTEPS} its int32 step count "
            "(which drives the learning-rate schedule) holds: lower total_timesteps or raise num_envs * num_steps"
        )


def _validate(config: PPOConfig) -> None:
    if not isinstance(config.env_name, str):
        raise ValueError(f"PPOConfig.env_name must be a string, got {config.env_name!r}")
    check_env_name(config.env_name)
    check_env_kwargs(config.env_name, config.env_kwargs)
    for name in ("num_envs", "num_steps", "update_epochs", "num_minibatches", "eval_episodes", "gru_hidden_size"):
        _check_int(config, name, 1)
    _check_int(config, "eval_every", 0)
    suite = suite_of(config.env_name)[1]
    if suite is not None and suite.on_host and config.eval_every > 0:
        raise ValueError(f"PPOConfig.eval_every must be 0 for {config.env_name!r}, a host environment pool (got "
                         f"{config.eval_every}): evaluate after training (evaluate, load_policy(...).evaluate), on its "
                         "own pool")
    _check_int(config, "total_timesteps", 1)
    if config.total_timesteps < config.batch_size:
        raise ValueError(
            f"PPOConfig.total_timesteps must be >= num_envs * num_steps = {config.batch_size} (one update), "
            f"got {config.total_timesteps}"
        )
    _check_int32_budget(config)
    if config.eval_every > config.num_updates:
        raise ValueError(f"PPOConfig.eval_every ({config.eval_every}) is more than num_updates ({config.num_updates}): "
                         "no evaluation would run; lower it, or give 0 for none")
    if config.network == "gru":
        if config.num_envs % config.num_minibatches:
            raise ValueError(
                f"PPOConfig.num_minibatches must divide num_envs={config.num_envs} for network='gru' "
                f"(minibatches hold whole environment sequences), got {config.num_minibatches}"
            )
    elif config.batch_size % config.num_minibatches:
        raise ValueError(
            f"PPOConfig.num_minibatches must divide num_envs * num_steps = {config.batch_size}, "
            f"got {config.num_minibatches}"
        )
    for name in ("anneal_lr", "normalize_advantages", "clip_value_loss", "normalize_observations",
                 "normalize_rewards"):
        _check_bool(config, name)
    _check_choice(config, "network", NETWORKS)
    _check_choice(config, "activation", ACTIVATIONS)
    _check_choice(config, "policy_objective", POLICY_OBJECTIVES)
    for name in ("hidden_sizes", "cnn_channels"):
        sizes = getattr(config, name)
        if not sizes or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
            raise ValueError(f"PPOConfig.{name} must be a non-empty sequence of positive integers, got {sizes!r}")
    inf = math.inf
    _check_float(config, "learning_rate", 0.0, inf, low_open=True)
    _check_float(config, "gamma", 0.0, 1.0, low_open=False)
    _check_float(config, "gae_lambda", 0.0, 1.0, low_open=False)
    _check_float(config, "clip_param", 0.0, inf, low_open=True)
    _check_float(config, "vf_coeff", 0.0, inf, low_open=False)
    _check_float(config, "entropy_coeff", 0.0, inf, low_open=False)
    _check_float(config, "max_grad_norm", 0.0, inf, low_open=True)
    _check_float(config, "adam_eps", 0.0, inf, low_open=True)
    _check_float(config, "obs_clip", 0.0, inf, low_open=True)
    _check_float(config, "reward_clip", 0.0, inf, low_open=True)
