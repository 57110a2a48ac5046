"""The Jumanji adapter (`purejaxppo.envs.suites.jumanji`): the flattened observation and actions, episode ends against
Jumanji's own `AutoResetWrapper`, the action mask through purejaxppo's masked sampling, PPO runs (shapes, auto-reset and
the time limit as such: tests/envs/test_contract.py).

Skipped when jumanji (the optional extra ``purejaxppo[jumanji]``) is not installed. Uses Knapsack-v1 (50 items, a
Discrete action over items with a mask of the items that still fit; it terminates when nothing fits or on an illegal
pick) and a small Connector-v3 (2 agents on a 5x5 grid: MultiDiscrete [5, 5] flattened to 25 actions; its time limit
is a Jumanji *truncation*).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("jumanji", reason="jumanji is not installed (optional extra: pip install 'purejaxppo[jumanji]')")

import jumanji  # noqa: E402
from jumanji.environments.routing.connector.generator import UniformRandomGenerator  # noqa: E402
from jumanji.types import StepType  # noqa: E402
from jumanji.wrappers import AutoResetWrapper  # noqa: E402

from purejaxppo import PPOConfig, evaluate, make_train  # noqa: E402
from purejaxppo.configs import load_config  # noqa: E402
from purejaxppo.envs import make_env  # noqa: E402
from purejaxppo.envs.suites.base import SuiteParams  # noqa: E402
from purejaxppo.envs.suites.jumanji import flatten_observation, jumanji_check, make_jumanji_env  # noqa: E402
from purejaxppo.models.policies import make_policy  # noqa: E402
from purejaxppo.training.rollout import collect, initial_rollout_state  # noqa: E402

KNAPSACK = "Knapsack-v1"


def connector_kwargs(time_limit):
    return {"generator": UniformRandomGenerator(grid_size=5, num_agents=2), "time_limit": time_limit}


def jumanji_trajectory(jumanji_env, actions, key):
    """Jumanji's own `AutoResetWrapper` on `actions`: flat obs, next_obs (pre-reset), reward, step_type, discount."""
    env = AutoResetWrapper(jumanji_env, next_obs_in_extras=True)

    def step(state, action):
        state, ts = env.step(state, action)
        return state, (flatten_observation(ts.observation), flatten_observation(ts.extras["next_obs"]),
                       jnp.sum(ts.reward), ts.step_type, jnp.max(ts.discount))

    return jax.jit(lambda k, a: jax.lax.scan(step, env.reset(k)[0], a)[1])(key, jnp.asarray(actions))


def our_trajectory(env, params, actions, key):
    """The adapter on the same (flat) actions, first episode from the same reset key."""

    def step(carry, action):
        state, t = carry
        obs, state, reward, terminated, truncated, info = env.step(jax.random.fold_in(key, t), state, action, params)
        return (state, t + 1), (obs, info["final_observation"], reward, terminated, truncated, env.action_mask(state))

    def run(k, a):
        obs0, state = env.reset(k, params)
        return obs0, state.mask, jax.lax.scan(step, (state, 0), a)[1]

    return jax.jit(run)(key, jnp.asarray(actions))


def first_end(done) -> int:
    ends = np.flatnonzero(np.asarray(done))
    assert ends.size, "the episode never ended within the actions given"
    return int(ends[0])


@pytest.fixture(scope="module")
def knapsack():
    return make_jumanji_env(KNAPSACK)


def test_observation_layout_reward_and_mask(knapsack):
    env, params = knapsack
    assert params.max_steps_in_episode == 1000  # Knapsack has no time_limit
    obs, state = env.reset(jax.random.key(0), params)
    assert obs.shape == (200,)  # weights, values, packed_items, action_mask (50 each)
    assert env.action_space(params).n == 50 and bool(env.action_mask(state, params).all())
    np.testing.assert_array_equal(obs[150:], env.action_mask(state, params).astype(np.float32))  # order documented
    obs, state, reward, terminated, truncated, info = env.step(jax.random.key(1), state, 3, params)
    assert float(reward) == pytest.approx(float(info["final_observation"][50 + 3]))  # item 3's value
    assert not bool(env.action_mask(state, params)[3]) and int(state.time) == 1
    assert not bool(terminated) and not bool(truncated)
    spec = make_env(f"jumanji:{KNAPSACK}").spec
    assert spec.discrete and spec.num_actions == 50 and spec.has_action_mask and spec.obs_shape == (200,)


def test_termination_matches_jumanji(knapsack):
    """Packing items 0, 1, 2, ... in turn overflows the budget (an illegal pick): Jumanji's LAST with discount 0 is our
    `terminated`, on the same step, with the same rewards and the pre-reset observation kept."""
    env, params = knapsack
    actions, key = np.arange(50, dtype=np.int32), jax.random.key(2)
    j_obs, j_next, j_reward, j_type, j_discount = jumanji_trajectory(env.jumanji_env, actions, key)
    end = first_end(np.asarray(j_type) == StepType.LAST)
    assert float(j_discount[end]) == 0.0
    _, _, (obs, final_obs, reward, terminated, truncated, _) = our_trajectory(env, params, actions, key)
    assert first_end(terminated) == end and not np.asarray(truncated[: end + 1]).any()
    np.testing.assert_allclose(reward[: end + 1], j_reward[: end + 1], rtol=1e-6)
    np.testing.assert_allclose(final_obs[: end + 1], j_next[: end + 1], rtol=1e-6)
    np.testing.assert_allclose(obs[:end], j_obs[:end], rtol=1e-6)


def test_jumanji_time_limit_truncation_matches_jumanji():
    """Connector's time limit is Jumanji's `truncation` (LAST, discount 1): our `truncated`, not `terminated`; the
    flattened MultiDiscrete action 0 is (0, 0) (both agents stay), and the mask is the product of the agents' masks."""
    env, params = make_jumanji_env("Connector-v3", **connector_kwargs(time_limit=4))
    assert env.action_space(params).n == 25 and params.max_steps_in_episode == 4
    actions, key = np.zeros(8, np.int32), jax.random.key(3)
    j_obs, j_next, j_reward, j_type, j_discount = jumanji_trajectory(env.jumanji_env, np.zeros((8, 2), np.int32), key)
    end = first_end(np.asarray(j_type) == StepType.LAST)
    assert end == 3 and float(j_discount[end]) > 0.0  # Jumanji itself calls this a truncation
    _, mask0, (obs, final_obs, reward, terminated, truncated, _) = our_trajectory(env, params, actions, key)
    np.testing.assert_array_equal(np.asarray(truncated[: end + 1]), np.arange(end + 1) == end)
    assert not np.asarray(terminated[: end + 1]).any()
    np.testing.assert_allclose(reward[: end + 1], j_reward[: end + 1], rtol=1e-6)
    np.testing.assert_allclose(final_obs[: end + 1], j_next[: end + 1], rtol=1e-6)
    _, ts = env.jumanji_env.reset(key)
    per_agent = np.asarray(ts.observation.action_mask)  # [2 agents, 5 actions]
    np.testing.assert_array_equal(np.asarray(mask0).reshape(5, 5), per_agent[0][:, None] & per_agent[1][None, :])


def test_adapter_time_limit_truncates_where_jumanji_goes_on(knapsack):
    """`max_steps_in_episode` is the adapter's own time limit: a truncation while Jumanji's episode is still MID."""
    env, _ = knapsack
    params = SuiteParams(max_steps_in_episode=3)
    actions, key = np.asarray([0, 5, 10, 15, 20, 25], np.int32), jax.random.key(4)
    _, _, _, j_type, _ = jumanji_trajectory(env.jumanji_env, actions, key)
    assert not (np.asarray(j_type[:3]) == StepType.LAST).any()
    _, _, (_, _, _, terminated, truncated, _) = our_trajectory(env, params, actions, key)
    assert first_end(truncated) == 2 and not np.asarray(terminated[:3]).any()


def test_masked_rollout_never_picks_an_illegal_action():
    """A rollout as training collects it (an untrained policy, masked Gumbel-max sampling): every action is legal in
    its state, so Knapsack never ends on an illegal pick (each episode packs items until none fits)."""
    config = PPOConfig(env_name=f"jumanji:{KNAPSACK}", num_envs=4, num_steps=64)
    env = make_env(config.env_name)
    policy = make_policy(config, env.spec)
    start = initial_rollout_state(env, policy, jax.random.key(0), config.num_envs)
    params = policy.init(jax.random.key(1), start.obs)
    run = jax.jit(lambda p, s: collect(policy, p, env, config, None, s, jax.random.key(2), jax.random.key(3))[0])
    transition = run(params, start)
    mask, action = np.asarray(transition.action_mask), np.asarray(transition.action)
    assert mask.shape == (64, 4, 50) and mask.any(-1).all()
    assert np.take_along_axis(mask, action[..., None], -1).all()
    # every episode ended because nothing fit any more: the pre-reset mask is empty (the mask sits at obs[150:])
    ended = np.asarray(transition.terminated)
    assert ended.any() and not np.asarray(transition.truncated).any()
    assert not np.asarray(transition.final_obs)[ended][:, 150:].any()


def test_unknown_name_and_missing_extra(monkeypatch):
    with pytest.raises(ValueError, match="not a Jumanji environment; registered: .*Knapsack-v1"):
        jumanji_check("NoSuchGame-v0")
    with pytest.raises(ValueError, match="registered: .*Snake-v1"):
        make_env("jumanji:NoSuchGame-v0")
    monkeypatch.setitem(__import__("sys").modules, "jumanji", None)
    with pytest.raises(ValueError, match=r"needs the jumanji extra: pip install 'purejaxppo\[jumanji\]'"):
        jumanji_check(KNAPSACK)


def test_shipped_config_loads():
    config = load_config(f"jumanji:{KNAPSACK}")
    assert config.env_name == f"jumanji:{KNAPSACK}"
    assert jumanji.registered_environments() >= {KNAPSACK}


@pytest.mark.slow
def test_ppo_updates_run_on_jumanji():
    """A few PPO updates through `env_name="jumanji:..."` with masked sampling, then greedy evaluation."""
    config = PPOConfig(env_name=f"jumanji:{KNAPSACK}", num_envs=4, num_steps=16, total_timesteps=3 * 64,
                       update_epochs=2, num_minibatches=2)
    out = make_train(config)(jax.random.key(0))
    assert out.metrics["policy_loss"].shape == (3,)
    for name in ("policy_loss", "value_loss", "entropy", "grad_norm"):
        assert np.all(np.isfinite(out.metrics[name])), name
    assert int(out.metrics["env_steps"][-1]) == 192
    returns = evaluate(config, out.state, jax.random.key(1), num_episodes=2)
    assert returns.shape == (2,) and np.all(np.asarray(returns) > 0)  # every legal pick adds its value
