"""Probe environments with closed-form answers: value targets, policy improvement, truncation, action masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probes import BestAction, ConstantRewardHorizon, ConstantRewardTimeLimit, MaskedChoice
from purejaxppo import PPOConfig, evaluate, make_policy, make_train

PROBE = dict(num_envs=8, num_steps=32, update_epochs=4, num_minibatches=4, learning_rate=3e-3, anneal_lr=False,
             hidden_sizes=(32,), entropy_coeff=0.0)


def _train(env, **overrides):
    config = PPOConfig(**{**PROBE, **overrides})
    out = make_train(config, env=env)(jax.random.key(0))
    return config, out


def _value(config, env, params, obs):
    _, value = make_policy(config, env=env).heads(params, jnp.asarray(obs)[None], None)
    return float(value[0])


@pytest.mark.timeout(120)
def test_constant_reward_value_is_the_discounted_sum():
    env, gamma, horizon = ConstantRewardHorizon(5), 0.9, 5
    config, out = _train(env, gamma=gamma, total_timesteps=30_000)
    for t in range(horizon):
        expected = (1 - gamma ** (horizon - t)) / (1 - gamma)
        v = _value(config, env, out.state.params, jax.nn.one_hot(t, horizon))
        assert v == pytest.approx(expected, abs=0.15), (t, v, expected)


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_action_dependent_reward_learns_the_best_action():
    env = BestAction()
    config, out = _train(env, total_timesteps=20_000, entropy_coeff=0.0)
    pi, _ = make_policy(config, env=env).heads(out.state.params, jnp.ones((1, 1)), None)
    assert float(pi.probs[0, 1]) > 0.9
    returns = evaluate(config, out.state, jax.random.key(1), num_episodes=16, env=env)
    np.testing.assert_array_equal(np.asarray(returns), np.ones(16))


@pytest.mark.timeout(120)
def test_time_limit_bootstraps_to_infinite_horizon_value():
    """Truncation is not termination: V -> 1/(1-gamma) = 10, whereas treating the time limit as termination would
    average the truncated sums (about 6 for a 20-step limit)."""
    env, gamma = ConstantRewardTimeLimit(20), 0.9
    config, out = _train(env, gamma=gamma, total_timesteps=40_000)
    v = _value(config, env, out.state.params, np.ones(1))
    assert v == pytest.approx(1 / (1 - gamma), rel=0.08), v
    lengths = np.asarray(out.metrics["episode_length"])
    assert np.nanmax(lengths) == 20  # episodes really were cut by the limit


@pytest.mark.timeout(180)
@pytest.mark.parametrize("network", ["mlp", "gru"])
def test_masked_environment_never_gets_an_illegal_action(network):
    """Rollout, loss and evaluation all mask, for the MLP and the GRU alike (the same pipeline)."""
    env = MaskedChoice()
    config, out = _train(env, total_timesteps=8_192, entropy_coeff=0.05, network=network, gru_hidden_size=32)
    finished = np.asarray(out.metrics["episodes_finished"])
    assert finished.sum() > 1000  # many episodes, many auto-resets with new masks
    np.testing.assert_array_equal(np.asarray(out.metrics["episode_return"]), 0.0)
    for deterministic in (True, False):
        returns = evaluate(config, out.state, jax.random.key(2), num_episodes=64, env=env, deterministic=deterministic)
        np.testing.assert_array_equal(np.asarray(returns), 0.0)


def test_masked_probe_would_catch_an_unmasked_policy():
    """The probe is sharp: a uniform policy without the mask takes illegal actions (so the test above can fail)."""
    env = MaskedChoice()
    params = env.default_params
    obs, state = env.reset(jax.random.key(0), params)
    illegal = 0
    for i in range(50):
        action = jax.random.randint(jax.random.key(100 + i), (), 0, 4)
        illegal += int(~state.legal[action])
        obs, state, *_ = env.step(jax.random.key(i), state, action, params)
    assert illegal > 5
