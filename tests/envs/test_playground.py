"""The MuJoCo Playground adapter (`purejaxppo.envs.suites.playground`): episode ends against Brax's own `EpisodeWrapper`
(the one Playground's PPO training wraps its environments in), the task's time limit and control range, PPO runs
(shapes, auto-reset and the time limit as such: tests/envs/test_contract.py).

Skipped when playground (the optional extra ``purejaxppo[playground]``) is not installed. Uses the DM Control Suite's
CartpoleBalance (obs 5, action 1, XML shipped inside the package so nothing is downloaded) on MJX's JAX implementation.
Its episodes end only by the time limit, or by termination when the physics state becomes NaN (a NaN action here).
MJX compiles slowly on CPU, so each trajectory function is compiled once and run on several inputs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip(
    "mujoco_playground", reason="playground is not installed (optional extra: pip install 'purejaxppo[playground]')"
)

from brax.envs.wrappers.training import EpisodeWrapper  # noqa: E402
from mujoco_playground import registry  # noqa: E402

from purejaxppo import PPOConfig, make_train  # noqa: E402
from purejaxppo.envs import make_env  # noqa: E402
from purejaxppo.envs.suites.base import SuiteParams  # noqa: E402
from purejaxppo.envs.suites.playground import make_playground_env  # noqa: E402

ENV = "CartpoleBalance"
LENGTH = 8  # the time limit of the reference trajectories
T = 10  # steps per trajectory


@pytest.fixture(scope="module")
def env_and_params():
    return make_playground_env(ENV, episode_length=LENGTH)


@pytest.fixture(scope="module")
def reference():
    """Brax's `EpisodeWrapper` around the bare Playground task (no auto-reset): actions [T, 1] -> obs, reward, done,
    truncation [T], compiled once."""
    env = EpisodeWrapper(registry.load(ENV, config_overrides={"impl": "jax"}), LENGTH, action_repeat=1)

    def step(state, action):
        state = env.step(state, action)
        return state, (state.obs, state.reward, state.done, state.info["truncation"])

    run = jax.jit(lambda k, a: jax.lax.scan(step, env.reset(k), a)[1])
    return lambda key, actions: run(jax.random.key_data(key), jnp.asarray(actions))


@pytest.fixture(scope="module")
def ours(env_and_params):
    """The adapter on the same actions, first episode from the same reset key, step t with key fold_in(key, t):
    obs, final obs, reward, terminated, truncated [T]."""
    env, _ = env_and_params

    def step(carry, action):
        state, t, key, params = carry
        obs, state, reward, terminated, truncated, info = env.step(jax.random.fold_in(key, t), state, action, params)
        return (state, t + 1, key, params), (obs, info["final_observation"], reward, terminated, truncated)

    def run(key, actions, params):
        state = env.reset(key, params)[1]
        return jax.lax.scan(step, (state, 0, key, params), actions)[1]

    run = jax.jit(run)
    return lambda key, actions: run(key, jnp.asarray(actions), SuiteParams(LENGTH))


def first_end(done) -> int:
    ends = np.flatnonzero(np.asarray(done))
    assert ends.size, "the episode never ended within the actions given"
    return int(ends[0])


def test_time_limit_and_control_range(env_and_params):
    env, params = env_and_params
    assert env.name == f"playground:{ENV}" and params.max_steps_in_episode == LENGTH
    assert make_playground_env(ENV)[1].max_steps_in_episode == 1000  # the task's own config.episode_length
    action_space = env.action_space(params)
    np.testing.assert_array_equal(action_space.low, [-1.0])
    np.testing.assert_array_equal(action_space.high, [1.0])
    spec = make_env(f"playground:{ENV}", {"episode_length": LENGTH}).spec  # through the registry of suites
    assert spec.obs_shape == (5,) and not spec.discrete and spec.max_steps_in_episode == LENGTH


def test_truncation_matches_episode_wrapper(reference, ours):
    """Zero force for LENGTH steps: a time-limit end, flagged as truncation exactly as Brax's wrapper does, with its
    observations (the final one before the reset) and rewards."""
    actions, key = np.zeros((T, 1), np.float32), jax.random.key(3)
    b_obs, b_reward, b_done, b_trunc = reference(key, actions)
    _, final_obs, reward, terminated, truncated = ours(key, actions)
    end = first_end(b_done)
    assert end == LENGTH - 1 and b_trunc[end] == 1.0  # the premise: Brax itself calls this a truncation
    np.testing.assert_array_equal(np.asarray(truncated[: end + 1]), np.asarray(b_trunc[: end + 1]) > 0)
    assert not np.asarray(terminated[: end + 1]).any()
    np.testing.assert_allclose(final_obs[: end + 1], b_obs[: end + 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reward[: end + 1], b_reward[: end + 1], rtol=1e-6)


def test_termination_matches_episode_wrapper_and_is_not_truncation(reference, ours):
    """A NaN action makes the physics NaN: the task's done without Brax's truncation flag is our `terminated`, also
    when it lands exactly on the time limit's step (Brax's truncation is 0 there too)."""
    key = jax.random.key(4)
    for fall in (3, LENGTH - 1):
        actions = np.zeros((T, 1), np.float32)
        actions[fall] = np.nan
        _, _, b_done, b_trunc = reference(key, actions)
        assert first_end(b_done) == fall and b_trunc[fall] == 0.0
        obs, _, _, terminated, truncated = ours(key, actions)
        assert first_end(terminated) == fall and not np.asarray(truncated[: fall + 1]).any()
        assert np.all(np.isfinite(obs[fall]))  # the next episode starts from a clean reset


def test_unknown_name_lists_environments():
    with pytest.raises(ValueError, match="registered: .*CheetahRun"):
        make_playground_env("NoSuchTask")
    with pytest.raises(ValueError, match="registered: .*CartpoleBalance"):
        make_env("playground:NoSuchTask")


@pytest.mark.slow
def test_ppo_updates_run_on_playground():
    """A few PPO updates through `env_name="playground:..."` (observations normalised)."""
    config = PPOConfig(
        env_name=f"playground:{ENV}", env_kwargs={"episode_length": 12}, num_envs=2, num_steps=8,
        total_timesteps=3 * 16, update_epochs=2, num_minibatches=2, normalize_observations=True,
    )
    out = make_train(config)(jax.random.key(0))
    assert out.metrics["policy_loss"].shape == (3,)
    for name in ("policy_loss", "value_loss", "entropy", "grad_norm"):
        assert np.all(np.isfinite(out.metrics[name])), name
    assert int(out.metrics["env_steps"][-1]) == 48
    assert float(out.state.obs_stats.count) > 48  # the running statistics saw every rollout observation
    returns = np.asarray(out.metrics["episode_return"])
    assert np.isfinite(returns).any() and np.nanmax(returns) > 0  # 12-step episodes ended; reward in [0, 1] per step
