"""Recurrent PPO (`PPOConfig(network="gru")`): a GRU actor-critic trained on whole environment sequences.

The network, `RecurrentActorCritic` (flax linen), reads a time-major sequence:

    x_t = act(Dense(obs_t))                                    embedding, width hidden_sizes[0]
    h_t = GRU(reset_t ? h_0 : h_{t-1}, x_t)                    h_0 = 0, width gru_hidden_size
    pi_t = PolicyHead(MLP(h_t)),  V_t = Dense(MLP(h_t))        separate heads, MLP widths hidden_sizes[1:]

The reset flag fed with obs_t is ``done_{t-1}``: obs_t is the first observation of a new episode exactly when the
previous step ended one (the environments auto-reset inside `step`), so the hidden state restarts at h_0 before
obs_t is read. `TrainState.policy_carry` is a `RecurrentCarry`: the hidden state [N, H] and ``done_{t-1}`` [N].

One update (same streams and semantics as `purejaxppo.train`):

1. rollout: `num_steps` steps; the policy carries h across steps (and across updates).
2. values for GAE, recomputed in one pass with the rollout's params from the stored initial carry: ``V_t = V(h_t)``
   and ``V(s'_t) = V(GRU(h_t, final_obs_t))``, the critic after feeding the pre-reset successor observation to the
   GRU with *no* reset. For a step that did not end an episode `final_obs_t` is ``obs_{t+1}`` and this is exactly
   ``V_{t+1}``; for a truncated step it is the value of the cut episode's last observation, with the episode's own
   memory; for the last step of the rollout it bootstraps from the current observation.
3. `gae_advantages`, then `update.run_epochs` on a batch laid out ``[N, T, ...]`` (axis 0 = environment), so the
   shuffle permutes whole sequences and never the steps within one. Each sequence keeps its initial hidden state
   (the carry at the start of the rollout) and its reset flags, so the loss replays the GRU exactly as the rollout ran
   it (with the current params).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo import rollout as rollout_lib
from purejaxppo import train as train_lib
from purejaxppo.config import PPOConfig
from purejaxppo.envs import make_env
from purejaxppo.evaluate import make_evaluate
from purejaxppo.gae import gae_advantages
from purejaxppo.losses import LossInfo, ppo_loss_terms
from purejaxppo.networks import ACTIVATIONS, MLPTorso, PolicyHead, _dense
from purejaxppo.normalize import RewardNormState
from purejaxppo.update import Batch, make_optimizer, run_epochs


# ------------------------------------------------------------------------------------------------------- network
class _GRUStep(nn.Module):
    """One GRU step with a reset: ``carry [B, H], (x [B, E], reset [B]) -> (h [B, H], h [B, H])``."""

    features: int

    @nn.compact
    def __call__(self, carry, inputs):
        x, reset = inputs
        carry = jnp.where(reset[:, None], jnp.zeros_like(carry), carry)
        cell = nn.GRUCell(
            self.features,
            kernel_init=nn.initializers.orthogonal(1.0),
            recurrent_kernel_init=nn.initializers.orthogonal(1.0),
            bias_init=nn.initializers.zeros,
        )
        h, _ = cell(carry, x)
        return h, h


# The GRU over time: params shared across steps, inputs and outputs time-major.
_ScannedGRU = nn.scan(
    _GRUStep, variable_broadcast="params", split_rngs={"params": False}, in_axes=0, out_axes=0
)


class RecurrentActorCritic(nn.Module):
    """Dense embedding -> GRU -> separate actor and critic heads (orthogonal init as in `networks.ActorCritic`).

    Time-major throughout: obs ``[T, B, *obs_shape]`` (flat observations), resets ``bool[T, B]``, carry ``[B, H]``.
    `__call__` returns ``(carry_T, pi [T, B], value [T, B])``; the other methods expose the pieces the rollout,
    GAE and the loss need.
    """

    discrete: bool
    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    gru_hidden_size: int = 128

    def setup(self):
        self.embed = _dense(self.hidden_sizes[0], np.sqrt(2))
        self.gru = _ScannedGRU(self.gru_hidden_size)
        self.actor_torso = MLPTorso(tuple(self.hidden_sizes[1:]), self.activation)
        self.critic_torso = MLPTorso(tuple(self.hidden_sizes[1:]), self.activation)
        self.policy_head = PolicyHead(self.discrete, self.num_actions)
        self.value_out = _dense(1, 1.0)

    def __call__(self, carry, obs, resets, mask=None):
        carry, hidden = self.hidden_states(carry, obs, resets)
        return carry, self.policy_from_hidden(hidden, mask), self.value_from_hidden(hidden)

    def initial_carry(self, batch_size: int) -> jax.Array:
        """h_0, zeros ``[batch_size, H]``."""
        return jnp.zeros((batch_size, self.gru_hidden_size), jnp.float32)

    def hidden_states(self, carry, obs, resets) -> tuple[jax.Array, jax.Array]:
        """``(h_{T-1} [B, H], h [T, B, H])``: h_t is the GRU state after reading obs_t (reset first where resets_t)."""
        x = ACTIVATIONS[self.activation](self.embed(obs))
        return self.gru(carry, (x, resets))

    def policy_from_hidden(self, hidden, mask=None) -> distrax.Distribution:
        """The action distribution for hidden states ``[..., H]`` (batch shape ``[...]``)."""
        return self.policy_head(self.actor_torso(hidden), mask)

    def value_from_hidden(self, hidden) -> jax.Array:
        """V for hidden states ``[..., H]``, shape ``[...]``."""
        return self.value_out(self.critic_torso(hidden))[..., 0]

    def step(self, carry, obs, reset, mask=None) -> tuple[jax.Array, distrax.Distribution]:
        """One step for N environments: carry [N, H], obs [N, ...], reset bool[N] -> ``(carry [N, H], pi [N])``."""
        carry, _ = self.hidden_states(carry, obs[None], reset[None])
        return carry, self.policy_from_hidden(carry, mask)

    def successor_value(self, hidden, next_obs) -> jax.Array:
        """``V(GRU(h, next_obs))`` with no reset, elementwise over leading axes: hidden [..., H], next_obs [..., D]."""
        batch_shape = hidden.shape[:-1]
        flat_h = hidden.reshape((-1, hidden.shape[-1]))
        flat_obs = next_obs.reshape((1, flat_h.shape[0], *next_obs.shape[len(batch_shape):]))
        h, _ = self.hidden_states(flat_h, flat_obs, jnp.zeros((1, flat_h.shape[0]), bool))
        return self.value_from_hidden(h).reshape(batch_shape)


# ----------------------------------------------------------------------------------------------- state and batch
class RecurrentCarry(NamedTuple):
    """`TrainState.policy_carry` for the GRU: hidden [N, H] (after the last observation read) and done [N] bool,
    the done flag of the last step taken (the reset flag for the current observation)."""

    hidden: jax.Array
    done: jax.Array


class SequenceBatch(NamedTuple):
    """The update's batch, environment-major so `run_epochs` shuffles whole sequences (every leaf's axis 0 = N).

    steps: `update.Batch` with leaves ``[N, T, ...]``; resets: bool ``[N, T]`` (reset_t = done_{t-1});
    initial_hidden: ``[N, H]``, the carry each sequence started the rollout with.
    """

    steps: Batch
    resets: jax.Array
    initial_hidden: jax.Array


def reset_flags(done_before: jax.Array, terminated: jax.Array, truncated: jax.Array) -> jax.Array:
    """bool[T, N] reset flags for a rollout: ``[done_before, done_0, ..., done_{T-2}]`` (done = terminated|truncated)."""
    done = terminated | truncated
    return jnp.concatenate([done_before[None], done[:-1]], axis=0)


def sequence_loss(params, network, minibatch: SequenceBatch, config) -> tuple[jax.Array, LossInfo]:
    """`ppo_loss_terms` on M whole sequences: replays the GRU from each stored initial hidden state.

    minibatch leaves are ``[M, T, ...]``; they are turned time-major for the GRU and flattened for the loss.
    """
    time_major = lambda x: None if x is None else jnp.swapaxes(x, 0, 1)  # noqa: E731
    steps = jax.tree.map(time_major, minibatch.steps)
    _, hidden = network.apply(params, minibatch.initial_hidden, steps.obs, time_major(minibatch.resets),
                              method="hidden_states")
    pi = network.apply(params, hidden, steps.action_mask, method="policy_from_hidden")
    values = network.apply(params, hidden, method="value_from_hidden")
    flat = lambda x: x.reshape(-1)  # noqa: E731
    return ppo_loss_terms(
        flat(pi.log_prob(steps.action)), flat(steps.log_prob), flat(steps.advantage), flat(values),
        flat(steps.value), flat(steps.target), flat(pi.entropy()), config,
    )


# ------------------------------------------------------------------------------------------------------- rollout
def collect_recurrent(network, params, env, env_params, config, spec, obs_stats, env_state, obs, carry: RecurrentCarry,
                      action_key: jax.Array, env_key: jax.Array):
    """`rollout.collect` for the GRU: also threads the hidden state and the reset flags through the steps.

    Returns ``(transition [T, N], env_state, obs, carry)``; the random numbers are drawn before the scan with
    `rollout.draw_rollout_noise`, exactly as `rollout.collect` draws them.
    """

    def step(state, noise: rollout_lib.StepNoise):
        env_state, obs, carry = state
        mask = rollout_lib.batch_action_mask(env, env_params, env_state, spec.has_action_mask)
        hidden, pi = network.apply(params, carry.hidden, rollout_lib.observe(config, obs_stats, obs), carry.done,
                                   mask, method="step")
        action, log_prob = rollout_lib.sample_with_noise(pi, noise.action)
        out = rollout_lib.step_envs_keyed(env, env_params, env_state, action, noise.env_keys)
        transition = rollout_lib.Transition(
            obs, action, log_prob, out.reward, out.terminated, out.truncated, out.final_obs, mask,
            out.episode_return, out.episode_length,
        )
        return (out.env_state, out.obs, RecurrentCarry(hidden, out.terminated | out.truncated)), transition

    noise = rollout_lib.draw_rollout_noise(spec, action_key, env_key, config.num_steps, obs.shape[0])
    (env_state, obs, carry), transition = jax.lax.scan(step, (env_state, obs, carry), noise)
    return transition, env_state, obs, carry


def prepare_sequences(network, params, config, transition, start: RecurrentCarry, obs_stats, reward_state):
    """Recompute values along the sequences, compute GAE, lay the batch out environment-major.

    Args:
      transition: the rollout [T, N]; start: the carry at the rollout's start.
    Returns:
      ``(SequenceBatch [N, T, ...], values [T, N], targets [T, N], obs_stats, reward_state)``.
    """
    obs = rollout_lib.observe(config, obs_stats, transition.obs)
    final_obs = rollout_lib.observe(config, obs_stats, transition.final_obs)
    resets = reset_flags(start.done, transition.terminated, transition.truncated)
    _, hidden = network.apply(params, start.hidden, obs, resets, method="hidden_states")
    values = network.apply(params, hidden, method="value_from_hidden")
    next_values = network.apply(params, hidden, final_obs, method="successor_value")
    rewards, obs_stats, reward_state = train_lib.normalize_rollout(config, transition, obs_stats, reward_state)
    advantages, targets = gae_advantages(
        rewards, values, next_values, transition.terminated, transition.truncated, config.gamma, config.gae_lambda
    )
    steps = Batch(obs, transition.action, transition.log_prob, values, advantages, targets, transition.action_mask)
    env_major = lambda x: None if x is None else jnp.swapaxes(x, 0, 1)  # noqa: E731
    batch = SequenceBatch(jax.tree.map(env_major, steps), env_major(resets), start.hidden)
    return batch, values, targets, obs_stats, reward_state


# --------------------------------------------------------------------------------------------------- train pieces
def make_recurrent_train_functions(config: PPOConfig, env=None, env_params=None):
    """`train.make_train_functions` for ``config.network == "gru"``; returns a `train.TrainFunctions`."""
    from purejaxppo.networks import make_network

    if config.network != "gru":
        raise ValueError(f"make_recurrent_train_functions needs network='gru', got {config.network!r}")
    env, env_params, spec = make_env(config, env, env_params)
    network = make_network(config, spec=spec)
    check = train_lib.static_check(config)
    stream = train_lib.stream

    def init(key: jax.Array, cfg: PPOConfig = config):
        check(cfg)
        obs, env_state = rollout_lib.reset_envs(env, env_params, stream(key, train_lib.STREAM_RESET), cfg.num_envs)
        carry = RecurrentCarry(network.initial_carry(cfg.num_envs), jnp.ones((cfg.num_envs,), bool))
        params = network.init(stream(key, train_lib.STREAM_INIT), carry.hidden[:1], obs[None, :1], carry.done[None, :1])
        return train_lib.strong_types(train_lib.TrainState(
            params=params, opt_state=make_optimizer(cfg).init(params), env_state=env_state, obs=obs,
            obs_stats=train_lib.initial_obs_stats(cfg, spec, obs), reward_state=RewardNormState.create(cfg.num_envs),
            policy_carry=carry, key=key, update=jnp.zeros((), jnp.int32),
        ))

    def update(state, cfg: PPOConfig = config):
        check(cfg)
        u = state.update
        transition, env_state, obs, carry = collect_recurrent(
            network, state.params, env, env_params, cfg, spec, state.obs_stats, state.env_state, state.obs,
            state.policy_carry, stream(state.key, train_lib.STREAM_ACTIONS, u),
            stream(state.key, train_lib.STREAM_ENV, u),
        )
        batch, values, targets, obs_stats, reward_state = prepare_sequences(
            network, state.params, cfg, transition, state.policy_carry, state.obs_stats, state.reward_state
        )
        loss_fn = lambda p, mb: sequence_loss(p, network, mb, cfg)  # noqa: E731
        params, opt_state, info = run_epochs(
            state.params, state.opt_state, batch, stream(state.key, train_lib.STREAM_SHUFFLE, u), loss_fn,
            make_optimizer(cfg), cfg,
        )
        new_state = state.replace(
            params=params, opt_state=opt_state, env_state=env_state, obs=obs, obs_stats=obs_stats,
            reward_state=reward_state, policy_carry=carry, update=u + 1,
        )
        metrics = train_lib.update_metrics(cfg, u, transition, info, values, targets)
        if cfg.eval_every > 0:
            metrics["eval_return"] = eval_return(new_state, cfg)
        return new_state, metrics

    if config.eval_every > 0:
        eval_return = train_lib.periodic_evaluation(
            make_evaluate(config, env, env_params, spec, network, config.eval_episodes)
        )
    return train_lib.TrainFunctions(init, update, train_lib.scan_updates(update, config), env, env_params, spec,
                                    network)
