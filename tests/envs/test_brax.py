"""The Brax adapter (`purejaxppo.envs.suites.brax`): episode ends against Brax's own wrapper, the control range, PPO
runs (shapes, auto-reset and the time limit: tests/envs/test_contract.py).

Skipped when brax (the optional extra ``purejaxppo[brax]``) is not installed. Uses Brax's small inverted pendulum
(obs 4, action 1; it terminates when the pole falls) with the cheap "positional" physics backend.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("brax", reason="brax is not installed (optional extra: pip install 'purejaxppo[brax]')")

from brax.envs import get_environment  # noqa: E402
from brax.envs.wrappers.training import EpisodeWrapper  # noqa: E402

from purejaxppo import PPOConfig, evaluate, make_train  # noqa: E402
from purejaxppo.envs.suites.brax import make_brax_env  # noqa: E402

ENV = "inverted_pendulum"
BACKEND = "positional"


def brax_trajectory(episode_length: int, actions: np.ndarray, key: jax.Array):
    """Brax's own `EpisodeWrapper` (no auto-reset) on `actions [T, A]`: obs [T, O], reward, done, truncation [T]."""
    env = EpisodeWrapper(get_environment(ENV, backend=BACKEND), episode_length, action_repeat=1)

    def step(state, action):
        state = env.step(state, action)
        return state, (state.obs, state.reward, state.done, state.info["truncation"])

    return jax.jit(lambda k, a: jax.lax.scan(step, env.reset(k), a)[1])(key, jnp.asarray(actions))


def our_trajectory(episode_length: int, actions: np.ndarray, key: jax.Array):
    """The adapter on the same actions, first episode from the same reset key: obs, final obs, reward, flags [T]."""
    env, params = make_brax_env(ENV, episode_length=episode_length, backend=BACKEND)

    def step(carry, action):
        state, t = carry
        obs, state, reward, terminated, truncated, info = env.step(jax.random.fold_in(key, t), state, action, params)
        return (state, t + 1), (obs, info["final_observation"], reward, terminated, truncated)

    def run(k, a):
        obs0, state = env.reset(k, params)
        return obs0, jax.lax.scan(step, (state, 0), a)[1]

    return jax.jit(run)(key, jnp.asarray(actions))


def first_end(done: np.ndarray) -> int:
    ends = np.flatnonzero(np.asarray(done))
    assert ends.size, "the episode never ended within the actions given"
    return int(ends[0])


def test_action_space_is_the_actuators_control_range():
    env, params = make_brax_env(ENV, backend=BACKEND)
    ranges = np.asarray(env.brax_env.sys.actuator.ctrl_range).reshape(1, 2)
    space = env.action_space(params)
    np.testing.assert_array_equal(space.low, ranges[:, 0])
    np.testing.assert_array_equal(space.high, ranges[:, 1])
    assert ranges[0, 0] < ranges[0, 1] and params.max_steps_in_episode == 1000 and env.name == f"brax:{ENV}"


def test_truncation_matches_brax_episode_wrapper():
    """Zero torque keeps the pole up for 30 steps: a time-limit end, flagged as truncation exactly as Brax does."""
    length, actions, key = 30, np.zeros((40, 1), np.float32), jax.random.key(3)
    b_obs, b_reward, b_done, b_trunc = brax_trajectory(length, actions, key)
    _, (_, final_obs, reward, terminated, truncated) = our_trajectory(length, actions, key)
    end = first_end(b_done)
    assert end == length - 1 and b_trunc[end] == 1.0  # the premise: Brax itself calls this a truncation
    np.testing.assert_array_equal(np.asarray(truncated[: end + 1]), np.asarray(b_trunc[: end + 1]) > 0)
    np.testing.assert_array_equal(np.asarray(terminated[: end + 1]), np.zeros(end + 1, bool))
    np.testing.assert_allclose(final_obs[: end + 1], b_obs[: end + 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reward[: end + 1], b_reward[: end + 1], rtol=1e-6)


def test_termination_matches_brax_and_is_not_truncation():
    """Full torque topples the pole: Brax's done without its truncation flag is our `terminated`; and when the fall
    lands exactly on the time limit's step it is still a termination (Brax's truncation is 0 there too)."""
    actions, key = np.full((200, 1), 3.0, np.float32), jax.random.key(4)
    _, _, b_done, b_trunc = brax_trajectory(1000, actions, key)
    fall = first_end(b_done)
    assert b_trunc[fall] == 0.0 and fall < 199
    _, (_, _, _, terminated, truncated) = our_trajectory(1000, actions, key)
    assert first_end(terminated) == fall and not np.asarray(truncated[: fall + 1]).any()

    # Time limit = the step of the fall: both Brax and the adapter call it a termination.
    _, _, b_done, b_trunc = brax_trajectory(fall + 1, actions, key)
    assert first_end(b_done) == fall and b_trunc[fall] == 0.0
    _, (_, _, _, terminated, truncated) = our_trajectory(fall + 1, actions, key)
    assert bool(terminated[fall]) and not bool(truncated[fall])


def test_unknown_name_lists_environments():
    with pytest.raises(ValueError, match="registered: .*hopper"):
        make_brax_env("no_such_robot")


@pytest.mark.slow
def test_ppo_updates_run_on_brax():
    """A few PPO updates through `env_name="brax:..."` (observations normalised), then greedy evaluation."""
    config = PPOConfig(
        env_name=f"brax:{ENV}", env_kwargs={"backend": BACKEND, "episode_length": 40}, num_envs=4, num_steps=16,
        total_timesteps=3 * 64, update_epochs=2, num_minibatches=2, normalize_observations=True,
    )
    out = make_train(config)(jax.random.key(0))
    assert out.metrics["policy_loss"].shape == (3,)
    for name in ("policy_loss", "value_loss", "entropy", "grad_norm"):
        assert np.all(np.isfinite(out.metrics[name])), name
    assert int(out.metrics["env_steps"][-1]) == 192
    assert float(out.state.obs_stats.count) > 192  # the running statistics saw every rollout observation
    # Under jit, as benchmarks/returns.py evaluates: `evaluate` then builds the Brax environment inside a trace.
    returns = jax.jit(lambda state, key: evaluate(config, state, key, num_episodes=2))(out.state, jax.random.key(1))
    assert returns.shape == (2,) and np.all(np.asarray(returns) > 0)  # +1 per step the pole stays up
