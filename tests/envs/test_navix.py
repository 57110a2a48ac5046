"""The navix adapter (`purejaxppo.envs.suites.navix`): episode ends against navix's own step, PPO runs (shapes,
auto-reset and the time limit as such: tests/envs/test_contract.py).

Skipped when navix (the optional extra ``purejaxppo[navix]``) is not installed. Uses Navix-Empty-5x5-v0 (agent at
(1, 1) facing east, goal at (3, 3): forward, forward, turn right, forward, forward reaches it) and DoorKey-5x5.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

nx = pytest.importorskip("navix", reason="navix is not installed (optional extra: pip install 'purejaxppo[navix]')")

from purejaxppo import PPOConfig, evaluate, make_train  # noqa: E402
from purejaxppo.configs import load_config, shipped_config_names  # noqa: E402
from purejaxppo.envs import make_env  # noqa: E402
from purejaxppo.envs.suites.navix import make_navix_env, navix_check  # noqa: E402

EMPTY = "Navix-Empty-5x5-v0"
DOORKEY = "Navix-DoorKey-5x5-v0"
ROTATE_CW, FORWARD = 1, 2
TO_GOAL = [FORWARD, FORWARD, ROTATE_CW, FORWARD, FORWARD]  # Empty-5x5: reaches the goal on the 5th step
TRANSITION, TRUNCATION, TERMINATION = 0, 1, 2


def navix_trajectory(name: str, max_steps: int, actions, key):
    """navix's own `Environment.step` (auto-reset on the call after an end) on `actions [T]`: obs [T, ...],
    reward, step_type [T]."""
    env = nx.make(name, max_steps=max_steps)

    def step(timestep, action):
        timestep = env.step(timestep, action)
        return timestep, (jnp.ravel(timestep.observation), timestep.reward, timestep.step_type)

    return jax.jit(lambda k, a: jax.lax.scan(step, env.reset(k), a)[1])(key, jnp.asarray(actions, jnp.int32))


def our_trajectory(name: str, max_steps: int, actions, key):
    """The adapter on the same actions, first episode from the same reset key: obs0, (obs, final obs, reward,
    terminated, truncated) [T]."""
    env, params = make_navix_env(name, max_steps=max_steps)

    def step(carry, action):
        state, t = carry
        obs, state, reward, terminated, truncated, info = env.step(jax.random.fold_in(key, t), state, action, params)
        return (state, t + 1), (obs, info["final_observation"], reward, terminated, truncated)

    def run(k, a):
        obs0, state = env.reset(k, params)
        return obs0, jax.lax.scan(step, (state, 0), a)[1]

    return jax.jit(run)(key, jnp.asarray(actions, jnp.int32))


def first_end(done) -> int:
    ends = np.flatnonzero(np.asarray(done))
    assert ends.size, "the episode never ended within the actions given"
    return int(ends[0])


def test_spec_by_env_name():
    assert make_navix_env(EMPTY)[1].max_steps_in_episode == 100  # navix.make's default max_steps
    spec = make_env(f"navix:{DOORKEY}", {"max_steps": 50}).spec
    assert spec.obs_shape == (5 * 5 * 3,) and spec.discrete and spec.num_actions == 7  # symbolic [H, W, 3], flattened
    assert spec.max_steps_in_episode == 50


def test_termination_matches_navix():
    """Reaching the goal: navix's TERMINATION is our `terminated` (reward 1), and also on the time limit's step."""
    actions, key = TO_GOAL + [FORWARD] * 3, jax.random.key(3)
    n_obs, n_reward, n_type = navix_trajectory(EMPTY, 100, actions, key)
    obs0, (_, final_obs, reward, terminated, truncated) = our_trajectory(EMPTY, 100, actions, key)
    end = first_end(n_type > 0)
    assert end == 4 and int(n_type[end]) == TERMINATION  # the premise, in navix's own terms
    np.testing.assert_array_equal(np.asarray(terminated[: end + 1]), np.asarray(n_type[: end + 1]) == TERMINATION)
    assert not np.asarray(truncated[: end + 1]).any()
    np.testing.assert_array_equal(final_obs[: end + 1], n_obs[: end + 1])
    np.testing.assert_array_equal(reward[: end + 1], n_reward[: end + 1])
    assert float(reward[end]) == 1.0

    # Time limit = the step the goal is reached: navix and the adapter both call it a termination.
    _, _, n_type = navix_trajectory(EMPTY, 5, actions, key)
    _, (_, _, _, terminated, truncated) = our_trajectory(EMPTY, 5, actions, key)
    assert int(n_type[4]) == TERMINATION and bool(terminated[4]) and not bool(truncated[4])


def test_truncation_matches_navix():
    """Random actions in DoorKey with a 12-step limit: navix's TRUNCATION is our `truncated`, observations agree."""
    actions = np.asarray(jax.random.randint(jax.random.key(5), (16,), 0, 7))
    key = jax.random.key(6)
    n_obs, n_reward, n_type = navix_trajectory(DOORKEY, 12, actions, key)
    _, (_, final_obs, reward, terminated, truncated) = our_trajectory(DOORKEY, 12, actions, key)
    end = first_end(n_type > 0)
    assert end == 11 and int(n_type[end]) == TRUNCATION  # the premise: navix itself calls this a truncation
    np.testing.assert_array_equal(np.asarray(truncated[: end + 1]), np.asarray(n_type[: end + 1]) == TRUNCATION)
    assert not np.asarray(terminated[: end + 1]).any()
    np.testing.assert_array_equal(final_obs[: end + 1], n_obs[: end + 1])
    np.testing.assert_array_equal(reward[: end + 1], n_reward[: end + 1])
    assert not np.asarray(truncated[end + 1:]).any()  # the adapter's new episode starts counting again


def test_errors_are_one_line(monkeypatch):
    with pytest.raises(ValueError, match="registered: .*Navix-DoorKey-5x5-v0"):
        navix_check("Navix-No-Such-Room")
    with pytest.raises(ValueError, match="observation must be one of"):
        make_navix_env(EMPTY, observation="pixels")
    monkeypatch.setitem(sys.modules, "navix", None)  # as if not installed
    with pytest.raises(ValueError, match=r"^env 'navix:X' needs the navix extra: pip install 'purejaxppo\[navix\]'"):
        navix_check("X")


def test_shipped_config():
    assert f"navix:{EMPTY}" in shipped_config_names() and "brax:hopper" in shipped_config_names()
    config = load_config(f"navix:{EMPTY}")
    assert config.env_name == f"navix:{EMPTY}" and config.num_envs == 16


@pytest.mark.slow
def test_ppo_updates_run_on_navix():
    """A few PPO updates through `env_name="navix:..."`, then greedy evaluation under jit."""
    config = PPOConfig(
        env_name=f"navix:{EMPTY}", env_kwargs={"max_steps": 20}, num_envs=4, num_steps=16,
        total_timesteps=3 * 64, update_epochs=2, num_minibatches=2,
    )
    out = make_train(config)(jax.random.key(0))
    assert out.metrics["policy_loss"].shape == (3,)
    for name in ("policy_loss", "value_loss", "entropy", "grad_norm"):
        assert np.all(np.isfinite(out.metrics[name])), name
    assert int(out.metrics["env_steps"][-1]) == 192
    returns = jax.jit(lambda state, key: evaluate(config, state, key, num_episodes=2))(out.state, jax.random.key(1))
    assert returns.shape == (2,) and np.all((np.asarray(returns) >= 0) & (np.asarray(returns) <= 1))
