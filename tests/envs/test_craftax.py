"""The Craftax adapter (`purejaxppo.envs.suites.craftax`): episodes bit-identical to craftax's own auto-resetting
environment, deaths as terminations, PPO runs (shapes, auto-reset and the time limit as such:
tests/envs/test_contract.py).

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
from purejaxppo.envs import make_env  # noqa: E402
from purejaxppo.envs.suites.craftax import craftax_check, make_craftax_env  # noqa: E402

NAME = "Craftax-Classic-Symbolic-v1"
OBS_DIM, NUM_ACTIONS = 1345, 17
LIMIT = 12  # the time limit in the episode-end tests
NOOP = 0


# Cases run side by side in one compiled program (vmapped): (step at which the player dies or -1, time limit).
CASES = ((-1, LIMIT), (4, LIMIT), (LIMIT - 1, LIMIT), (-1, 10 * LIMIT))
STEPS = LIMIT + 4


def _kill(health, now):
    return jnp.where(now, jnp.zeros_like(health), health)


@pytest.fixture(scope="module")
def env_and_params():
    return make_craftax_env(NAME, max_timesteps=LIMIT)


@pytest.fixture(scope="module")
def trajectories(env_and_params):
    """craftax's own auto-resetting environment and the adapter on the same NOOP actions and keys, for each of CASES
    (the player's health set to 0 before the step `kill_at`: a death). One jitted program, compiled once:
    ``(craftax: obs, reward, done), (ours: obs, final obs, reward, terminated, truncated)``, each [len(CASES), T]."""
    env, params = env_and_params
    reference = make_craftax_env_from_name(NAME, auto_reset=True)

    def run(key, kill_at, limit):
        game_params = params.game.replace(max_timesteps=limit)
        ours_params = params.replace(game=game_params)
        keys = jax.random.split(key, STEPS + 1)

        def step(carry, k):
            ref_state, our_state, t = carry
            ref_state = ref_state.replace(player_health=_kill(ref_state.player_health, t == kill_at))
            game = our_state.suite_state
            game = game.replace(player_health=_kill(game.player_health, t == kill_at))
            c_obs, ref_state, c_reward, c_done, _ = reference.step(k, ref_state, NOOP, game_params)
            obs, our_state, reward, terminated, truncated, info = env.step(
                k, our_state.replace(suite_state=game), NOOP, ours_params)
            return (ref_state, our_state, t + 1), (
                (c_obs, c_reward, c_done), (obs, info["final_observation"], reward, terminated, truncated))

        _, ref_state = reference.reset(keys[0], game_params)
        _, our_state = env.reset(keys[0], ours_params)
        return jax.lax.scan(step, (ref_state, our_state, 0), keys[1:])[1]

    kill_at, limit = (jnp.asarray(c, jnp.int32) for c in zip(*CASES))
    out = jax.jit(jax.vmap(run, in_axes=(None, 0, 0)))(jax.random.key(3), kill_at, limit)
    return jax.tree.map(np.asarray, out)


def test_truncation_matches_craftax_and_keeps_final_observation(trajectories):
    """Doing nothing for LIMIT steps: craftax's ``done`` at the time limit is our truncation (not termination); every
    observation, reward and the reset world after it are craftax's own; the final observation is the pre-reset one."""
    (c_obs, c_reward, c_done), (obs, final_obs, reward, terminated, truncated) = trajectories
    case, end = 0, LIMIT - 1
    assert np.flatnonzero(c_done[case]).tolist() == [end]  # the premise: craftax ends it at the time limit
    np.testing.assert_array_equal(truncated[case], c_done[case])
    assert not terminated[case].any()
    np.testing.assert_array_equal(obs[case], c_obs[case])  # including the reset observation on the ending step
    np.testing.assert_array_equal(reward[case], c_reward[case])
    assert 0.0 <= obs.min() and obs.max() <= 1.0
    # Before the end, the final observation is the observation; at the end it is the pre-reset one ...
    np.testing.assert_array_equal(final_obs[case, :end], obs[case, :end])
    assert not np.array_equal(final_obs[case, end], obs[case, end])
    # ... which is what craftax shows on that step when its time limit is further away (same keys, no reset).
    assert not c_done[3].any()
    np.testing.assert_array_equal(final_obs[case, end], c_obs[3, end])
    np.testing.assert_array_equal(final_obs[3], obs[3])


def test_death_is_termination_even_on_the_time_limit_step(trajectories):
    """A death (health 0) is craftax's ``done`` and our termination, also when it lands on the time limit's step."""
    (_, _, c_done), (_, _, _, terminated, truncated) = trajectories
    for case in (1, 2):
        kill_at = CASES[case][0]
        assert c_done[case, kill_at] and terminated[case, kill_at] and not truncated[case, kill_at]
        np.testing.assert_array_equal(terminated[case] | truncated[case], c_done[case])
        assert not (terminated[case] & truncated[case]).any()


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
    assert env.spec.max_steps_in_episode == 50 and env.params.game.max_timesteps == 50
    space = env.wrapped.observation_space(env.params)
    assert space.low == 0.0 and space.high == 1.0
    assert shipped_config_path(f"craftax:{NAME}").name == f"craftax_{NAME}.toml"
    config = load_config(f"craftax:{NAME}")
    assert config.env_name == f"craftax:{NAME}" and config.network == "gru"
    assert config.total_timesteps == 1_000_000_000


@pytest.mark.slow
def test_ppo_updates_run_on_craftax():
    """A few PPO updates through ``env_name="craftax:..."`` with the GRU; 10-step episodes, so some end."""
    config = PPOConfig(
        env_name=f"craftax:{NAME}", env_kwargs={"max_timesteps": 10}, num_envs=4, num_steps=8,
        total_timesteps=3 * 32, update_epochs=1, num_minibatches=1, network="gru", hidden_sizes=(32, 32),
        gru_hidden_size=32, activation="relu", gae_lambda=0.8,
    )
    out = make_train(config)(jax.random.key(0))
    assert out.metrics["policy_loss"].shape == (3,)
    for name in ("policy_loss", "value_loss", "entropy", "grad_norm"):
        assert np.all(np.isfinite(out.metrics[name])), name
    assert int(out.metrics["env_steps"][-1]) == 96
    lengths = np.asarray(out.metrics["episode_length"])
    assert np.all(lengths[1:] == 10)  # every episode is truncated at the time limit (no death in 10 steps)
