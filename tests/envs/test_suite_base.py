"""The base of the suite adapters (`purejaxppo.envs.suites.base`) on a suite of its own, so that it is checked without
any extra installed: a new suite is a subclass with two hooks; termination beats the time limit; a state whose
structure changes is refused; the space conversion takes gymnasium-style spaces; the checks say one line each.
"""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

from purejaxppo.envs import make_env
from purejaxppo.envs.suites.base import (Reset, SuiteEnv, SuiteParams, Transition, check_time_limit, gymnax_space,
                                         import_suite)


class Counter(SuiteEnv):
    """One environment: obs [start, steps]; action 1 ends the game and is legal only while steps < 2."""

    prefix = "toy"

    def __init__(self, max_steps: int = 4):
        super().__init__("Counter", (2,), spaces.Discrete(2), SuiteParams(max_steps), obs_low=0.0, masked=True)

    def suite_reset(self, key, params):
        state = jnp.stack([jax.random.uniform(key), 0.0])
        return Reset(state, state, mask=jnp.ones(2, bool))

    def suite_step(self, key, suite_state, action, params):
        state = suite_state + jnp.array([0.0, 1.0])
        return Transition(state, state, 1, action == 1, info={"steps": state[1]}, mask=jnp.array([True, state[1] < 2]))


def run(env, actions, key=jax.random.key(0)):
    """The unwrapped environment on `actions`, step t with key fold_in(key, t): per step (obs, state, reward,
    terminated, truncated, info)."""
    params = env.default_params
    _, state = env.reset(key, params)
    out = []
    for t, action in enumerate(actions):
        result = env.step(jax.random.fold_in(key, t), state, action, params)
        state = result[1]
        out.append(result)
    return out


def test_a_new_suite_is_a_subclass_with_two_hooks():
    env = Counter()
    spec = make_env(env=env).spec
    assert spec.obs_shape == (2,) and spec.discrete and spec.num_actions == 2 and spec.has_action_mask
    assert spec.max_steps_in_episode == 4 and env.name == "toy:Counter" and env.num_actions == 2
    assert env.observation_space(env.default_params).low == 0.0
    first, second = run(env, [0, 0])
    obs, state, reward, terminated, truncated, info = first
    assert obs.dtype == jnp.float32 and reward.dtype == jnp.float32 and float(reward) == 1.0
    assert terminated.dtype == jnp.bool_ and not bool(terminated) and not bool(truncated)
    assert float(info["steps"]) == 1.0 and int(state.time) == 1
    np.testing.assert_array_equal(info["final_observation"], obs)
    np.testing.assert_array_equal(env.action_mask(state, env.default_params), [True, True])
    np.testing.assert_array_equal(env.action_mask(second[1], env.default_params), [True, False])  # the step's mask


def test_termination_resets_from_the_steps_key_and_beats_the_time_limit():
    env = Counter(max_steps=2)
    steps = run(env, [0, 1])  # the game ends on the time limit's step
    obs, state, _, terminated, truncated, info = steps[1]
    assert bool(terminated) and not bool(truncated)
    np.testing.assert_array_equal(obs, env.reset(jax.random.fold_in(jax.random.key(0), 1))[0])
    assert float(info["final_observation"][1]) == 2.0 and int(state.time) == 0
    np.testing.assert_array_equal(state.mask, [True, True])  # the reset's mask, not the ended episode's
    _, _, _, terminated, truncated, _ = run(env, [0, 0])[1]
    assert bool(truncated) and not bool(terminated)


def test_a_state_whose_structure_changes_cannot_be_reset_by_selection():
    class Changing(Counter):
        def suite_step(self, key, suite_state, action, params):
            return Transition((suite_state, suite_state), suite_state, 0.0, False, mask=jnp.ones(2, bool))

    with pytest.raises(ValueError, match=r"^toy:Counter: the state after step has a different structure"):
        run(Changing(), [0])


def test_space_conversion_takes_gymnasium_style_spaces():
    discrete = gymnax_space(gymnasium.spaces.Discrete(5))
    assert isinstance(discrete, spaces.Discrete) and discrete.n == 5
    box = gymnax_space(gymnasium.spaces.Box(-2.0, 3.0, (3,), np.float32))
    assert isinstance(box, spaces.Box) and box.shape == (3,)
    np.testing.assert_array_equal(box.low, [-2.0] * 3)
    np.testing.assert_array_equal(box.high, [3.0] * 3)
    same = spaces.Discrete(2)
    assert gymnax_space(same) is same
    with pytest.raises(ValueError, match=r"^the action space is Discrete starting at 1; only Discrete starting at 0"):
        gymnax_space(gymnasium.spaces.Discrete(3, start=1))
    for space in (gymnasium.spaces.MultiDiscrete([2, 3]), gymnasium.spaces.MultiBinary(4)):
        with pytest.raises(ValueError, match=r"^the action space is Multi\w+; supported: Discrete \(n\) or Box"):
            gymnax_space(space)


def test_checks_say_one_line_each():
    with pytest.raises(ValueError, match=r"^env 'toy:Counter' needs the toy extra: pip install 'purejaxppo\[toy\]'"):
        import_suite("toy", "Counter", "no_such_module_anywhere", lambda module: [], "Toy")
    with pytest.raises(ValueError, match=r"^'Count' is not a Toy environment; registered: Counter, Other$"):
        import_suite("toy", "Count", "numpy", lambda module: ["Counter", "Other"], "Toy")
    assert import_suite("toy", "anything", "numpy", lambda module: [], "Toy") is np  # no list: nothing to check
    assert check_time_limit(3, "max_steps") == 3
    for bad in (0, True, 2.5):
        with pytest.raises(ValueError, match=rf"^max_steps must be an integer >= 1, got {bad!r}$"):
            check_time_limit(bad, "max_steps")
