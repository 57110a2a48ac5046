"""env_kwargs: unknown keys are refused when the config is built; values the environment cannot work with raise one
ValueError naming env_kwargs when it is built (`make_env`, `check_env_config`), not an error from deep inside JAX."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import PPOConfig
from purejaxppo.envs import check_env_config, env_kwarg_names, make_env


def test_unknown_key_is_refused_naming_it_and_the_allowed_keys():
    with pytest.raises(ValueError, match=r"env_kwargs has unknown key\(s\) \['colums'\] for Catch-bsuite; "
                                         r"it takes \['rows', 'columns'\]"):
        PPOConfig(env_name="Catch-bsuite", env_kwargs={"rows": 8, "colums": 3})


def test_environment_without_keyword_arguments_says_it_takes_none():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['bogus'\] for CartPole-v1; it takes none"):
        PPOConfig(env_kwargs={"bogus": 1})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['bogus'\]"):  # make_env checks the keys too
        make_env("CartPole-v1", {"bogus": 1})


def test_keys_are_read_from_the_constructor_and_brax_is_not_imported_for_them():
    assert env_kwarg_names("DeepSea-bsuite") == ("size", "action_mapping_key")
    assert env_kwarg_names("Pendulum-v1") == ()
    assert env_kwarg_names("brax:hopper") is None  # not inspected: any key passes here, brax judges it when built
    assert PPOConfig(env_name="brax:hopper", env_kwargs={"backend": "positional"}).env_kwargs == (
        ("backend", "positional"),)


@pytest.mark.timeout(120)
def test_accepted_kwarg_builds_and_steps():
    config = PPOConfig(env_name="Catch-bsuite", env_kwargs={"rows": 8})
    env = make_env(config.env_name, config.env_kwargs_dict)
    assert env.spec.obs_shape == (8, 5) and env.spec.num_actions == 3
    assert check_env_config("Catch-bsuite", {"rows": 8}) == env.spec
    obs, state = env.reset(jax.random.split(jax.random.key(0), 2))
    # Catch: the ball starts in the top row, the paddle sits in the bottom row (rows - 1 = 7); one cell each.
    assert obs.shape == (2, 8, 5)
    np.testing.assert_array_equal(np.asarray(obs.sum((1, 2))), [2.0, 2.0])
    np.testing.assert_array_equal(np.asarray(obs[:, 0].sum(-1)), [1.0, 1.0])
    np.testing.assert_array_equal(np.asarray(obs[:, 7].sum(-1)), [1.0, 1.0])
    step = env.step(jax.random.split(jax.random.key(1), 2), state, jnp.ones(2, jnp.int32))  # action 1: stay
    assert step.obs.shape == (2, 8, 5)
    np.testing.assert_array_equal(np.asarray(step.obs[:, 1].sum(-1)), [1.0, 1.0])  # the ball fell one row
    np.testing.assert_array_equal(np.asarray(step.reward), [0.0, 0.0])


@pytest.mark.parametrize("env_name,kwargs,message", [
    # DeepSea draws its (size, size) action mapping in __init__: JAX refuses the negative shape there.
    ("DeepSea-bsuite", {"size": -1}, r"env_kwargs \{'size': -1\} \(key\(s\) \['size'\]\) do not give a working "
                                     r"DeepSea-bsuite: building it failed with TypeError: .*\(-1, -1\)"),
    # Catch builds with rows=0, but its first observation indexes a (0, 5) board.
    ("Catch-bsuite", {"rows": 0}, r"env_kwargs \{'rows': 0\} \(key\(s\) \['rows'\]\) do not give a working "
                                  r"Catch-bsuite: its first reset and step failed with IndexError"),
])
def test_bad_values_raise_one_value_error_naming_env_kwargs(env_name, kwargs, message):
    config = PPOConfig(env_name=env_name, env_kwargs=kwargs)  # keys are fine: the values fail when built
    with pytest.raises(ValueError, match=message):
        make_env(config.env_name, config.env_kwargs_dict)
    with pytest.raises(ValueError, match=message):
        check_env_config(env_name, kwargs)
