"""The Craftax adapter (`purejaxppo.craftax_env`): gymnax 1.0 interface, episode ends against craftax's own
auto-resetting environment, PPO runs.

Skipped when craftax (the optional extra ``purejaxppo[craftax]``) is not installed. Uses Craftax-Classic with
symbolic observations (1345 floats, 17 actions) and a short time limit (``max_timesteps``) so that episodes end within
the test. The reference is craftax's own environment with auto-reset (`EnvironmentAutoReset`: one ``done``, the reset
selected in the step), and, for the pre-reset observation, the same environment without auto-reset.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("craftax", reason="craftax is not installed (optional extra: pip install 'purejaxppo[craftax]')")

from craftax.craftax_env import make_craftax_env_from_name  # noqa: E402

from purejaxppo import PPOConfig, make_train  # noqa: E402
from purejaxppo.configs import load_config, shipped_config_path  # noqa: E402
from purejaxppo.craftax_env import CraftaxEnvParams, craftax_check, make_craftax_env  # noqa: E402
from purejaxppo.envs import make_env  # noqa: E402

NAME = "Craftax-Classic-Symbolic-v1"
OBS_DIM, NUM_ACTIONS = 1345, 17
LIMIT = 12  # the time limit in the episode-end tests
NOOP = 0


def _kill(health, now):
    return jnp.where(now, jnp.zeros_like(health), health)


@pytest.fixture(scope="module")
def env_and_params():
    return make_craftax_env(NAME, max_timesteps=LIMIT)


def craftax_trajectory(params, actions, key, kill_at=-1):
    """craftax's own auto-resetting environment on `actions` [T]: obs, reward, done [T]. At step `kill_at`, the
    player's health is set to 0 before stepping (a death)."""
    env = make_craftax_env_from_name(NAME, auto_reset=True)

    def step(carry, inputs):
        state, t = carry
        action, k = inputs
        state = state.replace(player_health=_kill(state.player_health, t == kill_at))
        obs, state, reward, done, _ = env.step(k, state, action, params.game)
        return (state, t + 1), (obs, reward, done)

    def run(key, actions):
        keys = jax.random.split(key, actions.shape[0] + 1)
        _, state = env.reset(keys[0], params.game)
        return jax.lax.scan(step, (state, 0), (actions, keys[1:]))[1]

    return jax.jit(run)(key, jnp.asarray(actions))


def our_trajectory(env, params, actions, key, kill_at=-1):
    """The adapter on the same actions and keys: obs, final obs, reward, terminated, truncated [T]."""

    def step(carry, inputs):
        state, t = carry
        action, k = inputs
        game = state.game.replace(player_health=_kill(state.game.player_health, t == kill_at))
        obs, state, reward, terminated, truncated, info = env.step(k, state.replace(game=game), action, params)
        return (state, t + 1), (obs, info["final_observation"], reward, terminated, truncated)

    def run(key, actions):
        keys = jax.random.split(key, actions.shape[0] + 1)
        _, state = env.reset(keys[0], params)
        return jax.lax.scan(step, (state, 0), (actions, keys[1:]))[1]

    return jax.jit(run)(key, jnp.asarray(actions))


def test_reset_and_step_shapes_and_spaces(env_and_params):
    env, params = env_and_params
    assert isinstance(params, CraftaxEnvParams) and params.max_steps_in_episode == LIMIT
    obs, state = env.reset(jax.random.key(0), params)
    assert obs.shape == (OBS_DIM,) and obs.dtype == jnp.float32
    assert float(obs.min()) >= 0.0 and float(obs.max()) <= 1.0
    assert int(state.game.timestep) == 0
    assert env.action_space(params).n == NUM_ACTIONS and env.num_actions == NUM_ACTIONS
    assert env.observation_space(params).shape == (OBS_DIM,)
    obs, state, reward, terminated, truncated, info = env.step(jax.random.key(1), state, NOOP, params)
    assert obs.shape == (OBS_DIM,) and reward.shape == () and reward.dtype == jnp.float32
    assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
    assert info["final_observation"].shape == (OBS_DIM,)
    assert int(state.game.timestep) == 1


def test_truncation_matches_craftax_and_keeps_final_observation(env_and_params):
    """Doing nothing for LIMIT steps: craftax's ``done`` at the time limit is our truncation (not termination); every
    observation, reward and the reset world after it are craftax's own; the final observation is the pre-reset one."""
    env, params = env_and_params
    actions, key = np.full(LIMIT + 4, NOOP, np.int32), jax.random.key(3)
    c_obs, c_reward, c_done = craftax_trajectory(params, actions, key)
    obs, final_obs, reward, terminated, truncated = our_trajectory(env, params, actions, key)
    end = LIMIT - 1
    assert np.flatnonzero(np.asarray(c_done)).tolist() == [end]  # the premise: craftax ends it at the time limit
    np.testing.assert_array_equal(np.asarray(truncated), np.asarray(c_done))
    assert not np.asarray(terminated).any()
    np.testing.assert_array_equal(obs, c_obs)  # including the reset observation on the ending step
    np.testing.assert_array_equal(reward, c_reward)
    # Before the end, the final observation is the observation; at the end it is the pre-reset one.
    np.testing.assert_array_equal(final_obs[:end], obs[:end])
    assert not np.array_equal(final_obs[end], obs[end])

    # craftax without auto-reset: its observation on the ending step is our final observation.
    no_reset = make_craftax_env_from_name(NAME, auto_reset=False)
    keys = jax.random.split(key, LIMIT + 5)
    _, state = no_reset.reset(keys[0], params.game)
    step = jax.jit(no_reset.step)
    for t in range(LIMIT):
        pre_reset, state, _, done, _ = step(keys[t + 1], state, NOOP, params.game)
    assert bool(done)
    np.testing.assert_array_equal(final_obs[end], pre_reset)


def test_death_is_termination_even_on_the_time_limit_step(env_and_params):
    """A death (health 0) is craftax's ``done`` and our termination, also when it lands on the time limit's step."""
    env, params = env_and_params
    actions, key = np.full(LIMIT + 2, NOOP, np.int32), jax.random.key(4)
    for kill_at in (4, LIMIT - 1):
        _, _, c_done = craftax_trajectory(params, actions, key, kill_at)
        _, _, _, terminated, truncated = our_trajectory(env, params, actions, key, kill_at)
        assert bool(c_done[kill_at]) and bool(terminated[kill_at]) and not bool(truncated[kill_at])
        np.testing.assert_array_equal(np.asarray(terminated | truncated), np.asarray(c_done))


def test_unknown_names_and_params_and_missing_extra(monkeypatch):
    with pytest.raises(ValueError, match="registered: .*Craftax-Classic-Symbolic-v1"):
        craftax_check("Craftax-Nope-v1")
    with pytest.raises(ValueError, match=r"no env param\(s\) \['max_steps'\].*max_timesteps"):
        make_craftax_env(NAME, max_steps=5)
    monkeypatch.setitem(sys.modules, "craftax.craftax_env", None)
    with pytest.raises(ValueError, match=r"needs the craftax extra: pip install 'purejaxppo\[craftax\]'"):
        craftax_check(NAME)


def test_env_name_prefix_and_shipped_config():
    env = make_env(f"craftax:{NAME}", {"max_timesteps": 50})
    assert env.spec.obs_shape == (OBS_DIM,) and env.spec.discrete and env.spec.num_actions == NUM_ACTIONS
    assert env.spec.max_steps_in_episode == 50
    assert shipped_config_path(f"craftax:{NAME}").name == f"craftax_{NAME}.toml"
    config = load_config(f"craftax:{NAME}")
    assert config.env_name == f"craftax:{NAME}" and config.network == "gru"
    assert config.total_timesteps == 1_000_000_000


def test_ppo_updates_run_on_craftax():
    """A few PPO updates through ``env_name="craftax:..."`` with the GRU; 10-step episodes, so some end."""
    config = PPOConfig(
        env_name=f"craftax:{NAME}", env_kwargs={"max_timesteps": 10}, num_envs=4, num_steps=8,
        total_timesteps=3 * 32, update_epochs=1, num_minibatches=2, network="gru", hidden_sizes=(32, 32),
        gru_hidden_size=32, activation="relu", gae_lambda=0.8,
    )
    out = make_train(config)(jax.random.key(0))
    assert out.metrics["policy_loss"].shape == (3,)
    for name in ("policy_loss", "value_loss", "entropy", "grad_norm"):
        assert np.all(np.isfinite(out.metrics[name])), name
    assert int(out.metrics["env_steps"][-1]) == 96
    lengths = np.asarray(out.metrics["episode_length"])
    assert np.all(lengths[1:] == 10)  # every episode is truncated at the time limit (no death in 10 steps)
