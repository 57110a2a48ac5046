"""`PPOTrainer`: PPO updates for your own model on trajectories you collected (Flax NNX, or any linen-style apply).

    model = ActorCriticModel(rngs=nnx.Rngs(0))        # model(observations [B, ...]) -> (policy, values [B])
    optimizer = nnx.Optimizer(model, optax.adam(3e-4), wrt=nnx.Param)
    trainer = PPOTrainer(model, optimizer, PPOConfig(update_epochs=4, num_minibatches=4))
    metrics = trainer.train_step({"observations": obs, "actions": actions, "rewards": rewards,
                                  "values": values, "log_probs": old_log_probs, "dones": dones})

One `train_step` = GAE (`gae.gae_advantages`) + `config.update_epochs` epochs of `config.num_minibatches` shuffled
minibatches (`batch.fit`, the code `make_train` learns with: your model is wrapped as a feed-forward
`policies.Policy`), each step: the loss (`losses.ppo_loss`, so `policy_objective="spo"` works too) -> gradients ->
clip to `config.max_grad_norm` global norm (`optim.apply_gradients`) -> your optimiser. It is one jitted program: a
second call with the same shapes and dtypes does not retrace (`trainer.num_traces` counts traces).

**The trajectory** is a mapping of arrays, time-major: T steps of N environments ``[T, N, ...]``, or T steps of one
environment ``[T, ...]``. The shape of `rewards` fixes T (and N) for every other key.

* ``observations`` ``[T(, N), *obs_shape]``: what the policy saw at step t (the model gets them as ``[B, *obs_shape]``,
  B = T*N);
* ``actions`` ``[T(, N)]`` integers (discrete), or ``[T(, N), A]`` floats (continuous);
* ``rewards`` ``[T(, N)]``: the reward of step t;
* ``values`` ``[T(, N)]``: V(obs_t) from the critic that collected the data;
* ``log_probs`` ``[T(, N)]``: log pi_old(action_t | obs_t);
* ``dones`` ``[T(, N)]`` bool (or 0/1): the episode ended at step t (obs_{t+1} starts a new one);
* optional ``truncated`` ``[T(, N)]`` bool: the episode was cut by a time limit at t (needs `next_values`);
* optional ``next_values`` (alias ``final_values``) ``[T(, N)]``: V(s'_t), the critic at the pre-reset successor
  observation of step t;
* optional ``last_values`` ``[]`` or ``[N]``: V(obs_T), the critic at the observation after the last step;
* optional ``action_mask`` ``[T(, N), A]`` bool (or 0/1): the legal actions at obs_t (discrete actions). Illegal
  actions get probability 0 in the loss (their logits are set to -1e9, as `make_train` masks), every step needs at
  least one legal action, and every taken action must be legal.

Bootstrapping. ``delta_t = r_t + gamma (1 - terminated_t) V(s'_t) - V(obs_t)``, and the GAE recursion stops at every
done (see `purejaxppo.core.gae`):

* without `truncated`, every done is a **termination** (no bootstrap); with it, ``terminated = dones & ~truncated``
  and a step is done if either flag is set;
* ``V(s'_t)`` is `next_values[t]` when given. Otherwise it is ``values[t + 1]`` (which is only used where the episode
  did not end, where s'_t = obs_{t+1}) and, for the last step, `last_values` -- or **0 when `last_values` is absent**,
  i.e. the data is treated as ending after step T - 1. Pass `last_values` (or `next_values`) when the episodes
  continue past the batch. Truncated steps need `next_values` (the value of the final observation is not in
  `values`), so `truncated` without `next_values` is an error.

**The model** is called on the flat minibatch, ``model(observations [B, *obs]) -> (policy, values [B])``, where
`policy` is either

* an array of **log-probabilities (or logits) [B, A]** for discrete actions (normalised with log_softmax, so both
  work), or
* a **distribution** with ``log_prob(actions) -> [B]`` and ``entropy() -> [B]`` (any distrax distribution with batch
  shape [B]: `distrax.Categorical`, `distrax.MultivariateNormalDiag` for continuous actions [B, A], ...). Continuous
  actions need this form; the entropy must be analytic (a tanh-squashed Gaussian has none: return the Gaussian and
  squash outside).

The model runs functionally: its parameters (the optimiser's `wrt` filter, normally `nnx.Param`) are differentiated,
other state is read but changes made during the update (batch-norm statistics, RNG counters) are discarded.

**Checks** run on the host (the arrays are read into NumPy) before anything is traced: missing or unknown keys,
wrong shapes, mismatched lengths, non-finite floats (checked after the cast to float32, so a float64 1e300 that float32
cannot hold is caught too), non-boolean done flags, out-of-range discrete actions, actions the mask forbids and
log-probabilities of discrete actions above 0 raise a `ValueError` naming the key and the expected shape. Nothing is
broadcast. A model that fails on the observations (e.g. a width its first layer does not take) raises a `ValueError`
naming `observations`, their shape and the model's error.

**Config**: the trainer reads `gamma`, `gae_lambda`, `clip_param`, `vf_coeff`, `entropy_coeff`, `max_grad_norm`,
`normalize_advantages`, `clip_value_loss`, `policy_objective`, `update_epochs` and `num_minibatches` (which must
divide T*N). The learning rate is the optimiser's; environment fields are ignored, except that `PPOConfig` itself
checks that `num_minibatches` divides ``num_envs * num_steps`` (default 4 * 128), so an unusual count needs those set
too.

**Optimiser**: the trainer applies ``optimizer.tx`` to ``optimizer.opt_state`` exactly as ``nnx.Optimizer.update``
does (``tx.update(grads, opt_state, params)`` then ``optax.apply_updates`` on the `wrt`-filtered parameters) and
advances ``optimizer.step`` by one per minibatch, so it works whichever `update` signature your flax has
(``update(model, grads)`` since 0.11, ``ModelAndOptimizer.update(grads)``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from purejaxppo.core import streams
from purejaxppo.training.batch import Batch, fit, to_samples
from purejaxppo.compiler import jit
from purejaxppo.config import PPOConfig
from purejaxppo.envs.make import short_error
from purejaxppo.core.gae import gae_advantages
from purejaxppo.training.metrics import explained_variance
from purejaxppo.models.networks import masked_logits
from purejaxppo.models.policies import Policy, feedforward_policy

# A log-probability of a discrete action is <= 0; values up to this much above 0 are accepted as float rounding.
LOG_PROB_TOLERANCE = 1e-6
REQUIRED_KEYS = ("observations", "actions", "rewards", "values", "log_probs", "dones")
OPTIONAL_KEYS = ("truncated", "next_values", "final_values", "last_values", "action_mask")
METRIC_NAMES = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm",
                "explained_variance")


class Trajectory(NamedTuple):
    """A validated trajectory, always ``[T, N, ...]`` (N = 1 for 1-d input); what the jitted step receives."""

    observations: Any  # [T, N, *obs_shape]
    actions: Any  # [T, N] int32 or [T, N, A] float32
    rewards: Any  # [T, N] float32
    values: Any  # [T, N] float32
    log_probs: Any  # [T, N] float32
    terminated: Any  # [T, N] bool
    truncated: Any  # [T, N] bool
    next_values: Any  # [T, N] float32, V(s'_t)
    action_mask: Any = None  # [T, N, A] bool, or None


class ModelOutput(NamedTuple):
    """What the model's policy output looks like: log-prob array with `num_actions`, or a distribution."""

    is_array: bool
    num_actions: int | None
    event_shape: tuple[int, ...]


# ---------------------------------------------------------------------------------------------- input validation
def _array(batch: Mapping, key: str) -> np.ndarray:
    try:
        return np.asarray(batch[key])
    except (TypeError, ValueError) as error:  # e.g. ragged lists
        raise ValueError(f"trajectory[{key!r}] must be an array, could not convert it: {error}") from None


def _shape_text(leading: tuple[int, ...], rest: str = "") -> str:
    names = ("T", "N")[: len(leading)]
    inner = ", ".join(f"{n}={v}" for n, v in zip(names, leading))
    return f"[{inner}{rest}]"


def _check_shape(key: str, x: np.ndarray, expected: tuple[int, ...], leading: tuple[int, ...]) -> None:
    if x.shape != expected:
        raise ValueError(
            f"trajectory[{key!r}] must have shape {_shape_text(leading)} = {expected} (like 'rewards'), got {x.shape}"
        )


def _to_float32(key: str, x: np.ndarray) -> np.ndarray:
    """`x` as float32, checked after the cast: NaN, inf and finite values float32 cannot hold (1e300 in a float64
    array, which the cast turns into inf) raise a `ValueError` naming the key, how many and an example."""
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing cast is reported below, not warned about
        cast = x.astype(np.float32)
    if np.isfinite(cast).all():
        return cast
    non_finite = ~np.isfinite(x)
    if non_finite.any():
        raise ValueError(f"trajectory[{key!r}] has {int(non_finite.sum())} non-finite value(s) (NaN or inf, e.g. "
                         f"{float(x[non_finite][0]):g})")
    outside = ~np.isfinite(cast)
    raise ValueError(f"trajectory[{key!r}] has {int(outside.sum())} value(s) outside float32's range (e.g. "
                     f"{float(x[outside][0]):g}; float32 holds magnitudes up to {float(np.finfo(np.float32).max):g})")


def _float(key: str, x: np.ndarray) -> np.ndarray:
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
        raise ValueError(f"trajectory[{key!r}] must be numeric, got dtype {x.dtype}")
    return _to_float32(key, x)


def _flags(key: str, x: np.ndarray) -> np.ndarray:
    numeric = np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    if x.dtype != bool and not (numeric and np.all((x == 0) | (x == 1))):
        raise ValueError(f"trajectory[{key!r}] must be boolean (or 0/1), got values outside {{0, 1}}")
    return x.astype(bool)


def _check_discrete_log_probs(log_probs: np.ndarray) -> None:
    """Log-probabilities of discrete actions are probabilities' logs: <= 0 (up to `LOG_PROB_TOLERANCE`)."""
    above = log_probs > LOG_PROB_TOLERANCE
    if above.any():
        raise ValueError(
            f"trajectory['log_probs'] has {int(above.sum())} value(s) above 0 (largest {float(log_probs.max()):g}), "
            "but the log-probability of a discrete action is <= 0 (pass log pi_old(action | obs), not logits)"
        )


def as_trajectory(batch: Mapping[str, Any]) -> Trajectory:
    """Validate a user trajectory (see the module docstring) and return it as a `Trajectory` ``[T, N, ...]``.

    Raises:
      ValueError: a missing or unknown key, a wrong shape, a length mismatch, a non-finite value, bad done flags.
    """
    if not isinstance(batch, Mapping):
        raise ValueError(f"train_step needs a mapping of arrays with keys {list(REQUIRED_KEYS)}, got {type(batch)}")
    missing = [k for k in REQUIRED_KEYS if k not in batch]
    if missing:
        raise ValueError(f"trajectory is missing key(s) {missing}; required: {list(REQUIRED_KEYS)}")
    unknown = sorted(set(batch) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise ValueError(f"trajectory has unknown key(s) {unknown}; accepted: {list(REQUIRED_KEYS + OPTIONAL_KEYS)}")
    if "next_values" in batch and "final_values" in batch:
        raise ValueError("trajectory: give 'next_values' or its alias 'final_values', not both")
    next_key = "next_values" if "next_values" in batch else "final_values" if "final_values" in batch else None
    if next_key is not None and "last_values" in batch:
        raise ValueError(f"trajectory: {next_key!r} already holds the last step's bootstrap; drop 'last_values'")

    rewards = _array(batch, "rewards")
    if rewards.ndim not in (1, 2) or 0 in rewards.shape:
        raise ValueError(f"trajectory['rewards'] must have shape [T] or [T, N] with T, N >= 1, got {rewards.shape}")
    leading = rewards.shape
    rewards = _float("rewards", rewards)

    def per_step(key: str) -> np.ndarray:
        x = _array(batch, key)
        _check_shape(key, x, leading, leading)
        return x

    values = _float("values", per_step("values"))
    log_probs = _float("log_probs", per_step("log_probs"))
    dones = _flags("dones", per_step("dones"))
    truncated = _flags("truncated", per_step("truncated")) if "truncated" in batch else np.zeros(leading, bool)

    observations = _array(batch, "observations")
    if observations.shape[: len(leading)] != leading:
        raise ValueError(
            f"trajectory['observations'] must have shape {_shape_text(leading, ', *obs_shape')} "
            f"(leading axes {leading} like 'rewards'), got {observations.shape}"
        )
    if np.issubdtype(observations.dtype, np.floating):
        observations = _to_float32("observations", observations)
    elif not (np.issubdtype(observations.dtype, np.integer) or observations.dtype == bool):
        raise ValueError(f"trajectory['observations'] must be numeric, got dtype {observations.dtype}")

    actions = _array(batch, "actions")
    if np.issubdtype(actions.dtype, np.integer):
        _check_shape("actions", actions, leading, leading)
        info, lowest, highest = np.iinfo(np.int32), actions.min(), actions.max()
        if lowest < info.min or highest > info.max:  # astype would wrap them onto legal actions
            raise ValueError(f"trajectory['actions'] has values outside int32 (e.g. "
                             f"{lowest if lowest < info.min else highest}): discrete actions are indices 0 .. "
                             "num_actions - 1")
        actions = actions.astype(np.int32)
        _check_discrete_log_probs(log_probs)
    elif np.issubdtype(actions.dtype, np.floating):
        if actions.shape[: len(leading)] != leading or actions.ndim != len(leading) + 1:
            raise ValueError(
                f"trajectory['actions'] (float, continuous) must have shape {_shape_text(leading, ', A')}, "
                f"got {actions.shape}; discrete actions must be integers of shape {_shape_text(leading)}"
            )
        actions = _to_float32("actions", actions)
    else:
        raise ValueError(f"trajectory['actions'] must be integer (discrete) or float (continuous), got {actions.dtype}")

    if next_key is not None:
        next_values = _float(next_key, per_step(next_key))
    else:
        if truncated.any():
            raise ValueError(
                "trajectory['truncated'] marks time-limit steps, which bootstrap from V(final observation): "
                f"pass 'next_values' with shape {_shape_text(leading)} = {leading} as well"
            )
        if "last_values" in batch:
            last = _array(batch, "last_values")
            if last.shape != leading[1:]:
                raise ValueError(
                    f"trajectory['last_values'] must have shape {list(leading[1:])} (one value per environment, "
                    f"the critic at the observation after the last step), got {last.shape}"
                )
            last = _float("last_values", last)
        else:
            last = np.zeros(leading[1:], np.float32)
        next_values = np.concatenate([values[1:], last[None]], axis=0)

    mask = _action_mask(batch, leading, actions) if "action_mask" in batch else None
    terminated = dones & ~truncated
    if len(leading) == 1:  # one environment: add N = 1
        add_env_axis = lambda x: None if x is None else x[:, None]  # noqa: E731
        observations, actions, rewards, values, log_probs, terminated, truncated, next_values, mask = map(
            add_env_axis,
            (observations, actions, rewards, values, log_probs, terminated, truncated, next_values, mask),
        )
    return Trajectory(observations, actions, rewards, values, log_probs, terminated, truncated, next_values, mask)


def _action_mask(batch: Mapping, leading: tuple[int, ...], actions: np.ndarray) -> np.ndarray:
    """The validated ``action_mask`` [T(, N), A] bool: a legal action at every step, and every taken action legal."""
    mask = _array(batch, "action_mask")
    if mask.ndim != len(leading) + 1 or mask.shape[: len(leading)] != leading or mask.shape[-1] < 1:
        raise ValueError(f"trajectory['action_mask'] must have shape {_shape_text(leading, ', A')} (one flag per "
                         f"action at each step), got {mask.shape}")
    mask = _flags("action_mask", mask)
    if not np.issubdtype(actions.dtype, np.integer):
        raise ValueError("trajectory['action_mask'] needs discrete actions (integers); got float actions")
    if not mask.any(-1).all():
        step = tuple(int(i) for i in np.argwhere(~mask.any(-1))[0])
        raise ValueError(f"trajectory['action_mask'] allows no action at step {step}: every step needs one")
    num_actions = mask.shape[-1]
    if actions.min() < 0 or actions.max() >= num_actions:
        raise ValueError(f"trajectory['actions'] must lie in [0, {num_actions}) (the mask's last axis), got values "
                         f"in [{actions.min()}, {actions.max()}]")
    legal = np.take_along_axis(mask, actions[..., None].astype(np.int64), -1)[..., 0]
    if not legal.all():
        step = tuple(int(i) for i in np.argwhere(~legal)[0])
        raise ValueError(f"trajectory['actions'] takes action {int(actions[step])} at step {step}, which "
                         "'action_mask' marks illegal")
    return mask


# ----------------------------------------------------------------------------------------------- the pure update
def as_distribution(policy, mask=None) -> distrax.Distribution:
    """A model's policy output as a distribution: log-probabilities/logits [B, A] become a categorical; with a mask,
    illegal actions get logit -1e9 (a `distrax.Categorical` output is masked the same way)."""
    if isinstance(policy, (jax.Array, np.ndarray)):
        return distrax.Categorical(logits=jax.nn.log_softmax(masked_logits(policy, mask), axis=-1))
    if mask is None:
        return policy
    if not isinstance(policy, distrax.Categorical):
        raise ValueError("trajectory['action_mask'] needs a model whose policy is log-probabilities [B, A] or a "
                         f"distrax.Categorical, got {type(policy).__name__}")
    return distrax.Categorical(logits=masked_logits(policy.logits, mask))


def model_policy(apply_fn: Callable, extra) -> Policy:
    """A user's model, ``apply_fn(params, extra, obs [B, ...]) -> (policy, values [B])``, as a feed-forward `Policy`."""

    def heads(params, obs, mask):
        policy, values = apply_fn(params, extra, obs)
        return as_distribution(policy, mask), values

    return feedforward_policy(heads)


def ppo_update(apply_fn: Callable, tx: optax.GradientTransformation, params, extra, opt_state,
               trajectory: Trajectory, key: jax.Array, config) -> tuple[Any, Any, dict[str, jax.Array]]:
    """GAE, then `batch.fit` on the single steps ``[T*N]``. Pure; returns ``(params, opt_state, metrics)``."""
    advantages, targets = gae_advantages(
        trajectory.rewards, trajectory.values, trajectory.next_values, trajectory.terminated, trajectory.truncated,
        config.gamma, config.gae_lambda,
    )
    done = trajectory.terminated | trajectory.truncated
    reset = jnp.concatenate([jnp.zeros_like(done[:1]), done[:-1]])  # obs_t starts an episode where step t-1 ended one
    batch = Batch(trajectory.observations, reset, trajectory.actions, trajectory.log_probs, trajectory.values,
                  advantages, targets, trajectory.action_mask)
    params, opt_state, info = fit(model_policy(apply_fn, extra), params, opt_state,
                                  to_samples(batch, (), sequences=False), key, config, tx)
    metrics = {**info.loss._asdict(), "grad_norm": info.grad_norm,
               "explained_variance": explained_variance(trajectory.values, targets)}
    return params, opt_state, metrics


def check_model_output(output, trajectory: Trajectory, batch_size: int) -> ModelOutput:
    """Validate ``(policy, values)`` (concrete or abstract) for a probe batch of `batch_size` observations."""
    if not (isinstance(output, tuple) and len(output) == 2):
        raise ValueError(f"the model must return (policy, values), got {type(output).__name__}")
    policy, values = output
    if tuple(values.shape) != (batch_size,):
        raise ValueError(f"the model's values must have shape [B] = ({batch_size},), got {tuple(values.shape)}")
    action_shape = tuple(trajectory.actions.shape[2:])
    if hasattr(policy, "log_prob") and hasattr(policy, "entropy"):
        batch_shape = tuple(getattr(policy, "batch_shape", (batch_size,)))
        event_shape = tuple(getattr(policy, "event_shape", action_shape))
        if batch_shape != (batch_size,):
            raise ValueError(f"the model's distribution must have batch shape [B] = ({batch_size},), got {batch_shape}")
        if event_shape != action_shape:
            raise ValueError(
                f"trajectory['actions'] must have per-step shape {event_shape} (the distribution's event shape), "
                f"got {action_shape}"
            )
        if trajectory.action_mask is not None and not isinstance(policy, distrax.Categorical):
            raise ValueError("trajectory['action_mask'] needs a model whose policy is log-probabilities [B, A] or a "
                             f"distrax.Categorical, got {type(policy).__name__}")
        return ModelOutput(False, None, event_shape)
    if not hasattr(policy, "shape") or len(policy.shape) != 2 or policy.shape[0] != batch_size:
        raise ValueError(
            "the model's policy must be log-probabilities [B, A] (discrete) or a distribution with batch shape [B]; "
            f"got {getattr(policy, 'shape', type(policy).__name__)} for B={batch_size}"
        )
    if action_shape or not np.issubdtype(trajectory.actions.dtype, np.integer):
        raise ValueError(
            "trajectory['actions'] must be integers of shape [T] or [T, N] for a policy given as log-probabilities "
            f"[B, A]; got dtype {trajectory.actions.dtype}, per-step shape {action_shape}"
        )
    num_actions = int(policy.shape[1])
    if trajectory.action_mask is not None and trajectory.action_mask.shape[-1] != num_actions:
        raise ValueError(f"trajectory['action_mask'] has {trajectory.action_mask.shape[-1]} actions on its last axis, "
                         f"the model gives {num_actions} log-probabilities")
    return ModelOutput(True, num_actions, ())


def first_linear(node, path: str = "", seen: set[int] | None = None) -> tuple[str, int] | None:
    """``(attribute path, in_features)`` of the first `nnx.Linear` that `node` defines, depth first in the order its
    attributes were set (as written in ``__init__``), or None. A hint only: it need not be the layer the
    observations reach first."""
    seen = set() if seen is None else seen
    if id(node) in seen:  # a shared or cyclic reference in the module graph
        return None
    seen.add(id(node))
    if isinstance(node, nnx.Linear):
        return path, int(node.in_features)
    if isinstance(node, nnx.Module):
        children = vars(node).items()
    elif isinstance(node, Mapping):
        children = node.items()
    elif isinstance(node, (list, tuple)):
        children = enumerate(node)
    else:
        return None
    for name, child in children:
        found = first_linear(child, f"{path}.{name}" if path else str(name), seen)
        if found is not None:
            return found
    return None


def observations_error(model, obs_shape: tuple[int, ...], trajectory: Trajectory, error: Exception) -> ValueError:
    """A one-line ValueError for a model that fails on the trajectory's observations ``[B, *obs_shape]``: the shape,
    the model's error in short and, for an nnx model with a Linear, what that Linear expects."""
    shape = (trajectory.rewards.shape[0] * trajectory.rewards.shape[1], *obs_shape)
    hint = ""
    linear = first_linear(model) if model is not None else None
    if linear is not None and obs_shape and obs_shape[-1] != linear[1]:
        hint = f"; the first nnx.Linear it defines ('{linear[0]}') takes in_features={linear[1]}, not {obs_shape[-1]}"
    return ValueError(f"trajectory['observations'] has shape [B, *obs_shape] = {shape} but the model failed on it "
                      f"({short_error(error)}){hint}")


# --------------------------------------------------------------------------------------------------- the trainer
class PPOTrainer:
    """PPO updates on user-collected trajectories for a Flax NNX model and its `nnx.Optimizer` (or, through
    `from_apply`, any ``apply_fn(params, obs)`` with an optax transformation). See the module docstring.

    Args:
      model: an `nnx.Module`, ``model(observations [B, ...]) -> (policy, values [B])``; updated in place.
      optimizer: its `nnx.Optimizer` (``wrt`` selects what is trained); its state and step are updated in place.
      config: a `PPOConfig`.
      seed: seeds the minibatch shuffle; call k shuffles with ``fold_in(fold_in(key(seed), 0xA11CE), k)``.
    """

    def __init__(self, model, optimizer, config: PPOConfig, *, seed: int = 0):
        if not isinstance(config, PPOConfig):
            raise TypeError(f"PPOTrainer needs a PPOConfig, got {type(config).__name__}")
        if model is not None and not isinstance(model, nnx.Module):
            raise TypeError(f"PPOTrainer needs an nnx.Module (use PPOTrainer.from_apply otherwise), got {type(model)}")
        if model is not None and not all(hasattr(optimizer, a) for a in ("tx", "opt_state")):
            raise TypeError(f"PPOTrainer needs an nnx.Optimizer for the model, got {type(optimizer).__name__}")
        self.model = model
        self.optimizer = optimizer
        self.config = config
        self.num_traces = 0  # how many times the update program was traced (a retrace means a recompile)
        self.num_calls = 0
        streams.check_seed(seed)
        self._key = jax.random.key(seed)
        self._apply_fn: Callable | None = None
        self.params = None  # from_apply only
        self.opt_state = None
        self._tx = optimizer.tx if model is not None else None
        self._outputs: dict[Any, ModelOutput] = {}
        self._step = jit(self._traced_update, static_argnums=(0,))

    @classmethod
    def from_apply(cls, apply_fn: Callable, params, tx: optax.GradientTransformation, config: PPOConfig, *,
                   opt_state=None, seed: int = 0) -> PPOTrainer:
        """A trainer for a functional model: ``apply_fn(params, observations [B, ...]) -> (policy, values [B])``.

        `policy` is log-probabilities/logits [B, A] or a distribution (see the module docstring), e.g. a flax linen
        module's ``module.apply``. The trainer keeps ``trainer.params`` and ``trainer.opt_state`` (``tx.init(params)``
        unless `opt_state` is given) and replaces them after every `train_step`.
        """
        if not callable(apply_fn):
            raise TypeError(f"from_apply needs a callable apply_fn, got {type(apply_fn).__name__}")
        if not hasattr(tx, "update") or not hasattr(tx, "init"):
            raise TypeError(f"from_apply needs an optax GradientTransformation, got {type(tx).__name__}")
        trainer = cls(None, None, config, seed=seed)
        trainer._apply_fn = apply_fn
        trainer._tx = tx
        trainer.params = params
        trainer.opt_state = tx.init(params) if opt_state is None else opt_state
        return trainer

    # ----------------------------------------------------------------------------------------------- internals
    def _split(self):
        """``(static, params, extra, opt_state)``: static is the nnx graphdef (None for from_apply)."""
        if self.model is None:
            return None, self.params, None, self.opt_state
        pure = getattr(nnx, "as_pure", None) or nnx.pure
        wrt = getattr(self.optimizer, "wrt", nnx.Param)
        graphdef, params, rest = nnx.split(self.model, wrt, ...)
        return graphdef, pure(params), pure(rest), pure(self.optimizer.opt_state)

    def _apply(self, graphdef) -> Callable:
        """``apply(params, extra, obs) -> model output`` for the nnx model (graphdef) or the user's apply_fn."""
        if graphdef is None:
            return lambda params, extra, obs: self._apply_fn(params, obs)
        return lambda params, extra, obs: nnx.merge(graphdef, params, extra)(obs)

    def _traced_update(self, graphdef, params, extra, opt_state, trajectory, key, config):
        self.num_traces += 1
        return ppo_update(self._apply(graphdef), self._tx, params, extra, opt_state, trajectory, key, config)

    def _model_output(self, graphdef, params, extra, trajectory: Trajectory) -> ModelOutput:
        """Check the model's output on a probe batch (abstractly; cached per model structure and shapes)."""
        obs = trajectory.observations
        mask_shape = None if trajectory.action_mask is None else trajectory.action_mask.shape[2:]
        cache_key = (graphdef, obs.shape[2:], obs.dtype.str, trajectory.actions.shape[2:], trajectory.actions.dtype.str,
                     mask_shape)
        if cache_key not in self._outputs:
            probe = obs.reshape((-1, *obs.shape[2:]))[:2]
            apply = self._apply(graphdef)

            failures: list[Exception] = []

            def check(params, extra, obs):  # runs once, abstractly: shapes are static while tracing
                try:
                    output = apply(params, extra, obs)
                except Exception as error:  # the model's own failure on these observations: reported below
                    failures.append(error)
                    return
                self._outputs[cache_key] = check_model_output(output, trajectory, obs.shape[0])

            jax.eval_shape(check, params, extra, probe)
            if failures:  # raised outside the trace, so the message stays one line
                raise observations_error(self.model, probe.shape[1:], trajectory, failures[0]) from failures[0]
        return self._outputs[cache_key]

    def _write_back(self, params, opt_state) -> None:
        if self.model is None:
            self.params, self.opt_state = params, opt_state
            return
        nnx.update(self.model, params)
        nnx.update(self.optimizer.opt_state, nnx.state(opt_state))
        if hasattr(self.optimizer, "step"):
            self.optimizer.step[...] += self.config.update_epochs * self.config.num_minibatches

    # ------------------------------------------------------------------------------------------------- public
    def train_step(self, trajectory: Mapping[str, Any]) -> dict[str, jax.Array]:
        """One PPO update on `trajectory` (keys and shapes in the module docstring).

        Returns:
          ``{policy_loss, value_loss, entropy, approx_kl, clip_fraction, grad_norm, explained_variance}``, scalars
          (jax arrays); the loss terms are means over every minibatch step, grad_norm before clipping.
        Raises:
          ValueError: invalid input (nothing is updated then).
        """
        data = as_trajectory(trajectory)
        num_samples = data.rewards.shape[0] * data.rewards.shape[1]
        if num_samples % self.config.num_minibatches:
            raise ValueError(
                f"config.num_minibatches={self.config.num_minibatches} must divide the number of samples "
                f"T*N = {num_samples}"
            )
        graphdef, params, extra, opt_state = self._split()
        output = self._model_output(graphdef, params, extra, data)
        if output.is_array and (data.actions.min() < 0 or data.actions.max() >= output.num_actions):
            raise ValueError(
                f"trajectory['actions'] must lie in [0, {output.num_actions}) (the model gives {output.num_actions} "
                f"log-probabilities), got values in [{data.actions.min()}, {data.actions.max()}]"
            )
        key = streams.stream(self._key, streams.SHUFFLE, self.num_calls)
        params, opt_state, metrics = self._step(graphdef, params, extra, opt_state, data, key, self.config)
        self._write_back(params, opt_state)
        self.num_calls += 1
        return metrics


__all__ = ["METRIC_NAMES", "PPOTrainer", "Trajectory", "as_trajectory", "ppo_update"]
