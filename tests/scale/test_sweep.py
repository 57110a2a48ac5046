"""`sweep` on one device: layout of the result, agreement with lone `make_train` runs, `best`, and its errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from purejaxppo import PPOConfig, SweepResult, make_train, sweep
from purejaxppo.scale.sweeps import _cell_inputs, _plan, in_blocks

CONFIG = PPOConfig(num_envs=4, num_steps=16, total_timesteps=320, update_epochs=2, num_minibatches=2)  # 5 updates
LRS, ENTS, SEEDS = [1e-4, 1e-3], [0.0, 0.01], 2
FLOAT_METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "explained_variance", "grad_norm")


@pytest.fixture(scope="module")
def grid() -> SweepResult:
    return sweep(CONFIG, num_seeds=SEEDS, learning_rate=LRS, entropy_coeff=ENTS, keep_state=True)


def assert_matches_lone_run(metrics: dict, lone) -> None:
    """A vmapped cell equals the lone run up to float rounding (vmap batches the matmuls differently)."""
    for name, value in lone.metrics.items():
        expected = np.asarray(value)
        if name in FLOAT_METRICS:
            np.testing.assert_allclose(metrics[name], expected, rtol=1e-4, atol=1e-5, err_msg=name)
        else:  # episode statistics, counts, schedule: the same environment steps and actions
            np.testing.assert_array_equal(metrics[name], expected, err_msg=name)


@pytest.mark.timeout(120)
def test_grid_layout(grid):
    assert grid.axes == ("learning_rate", "entropy_coeff", "seed", "update")
    assert grid.setting_shape == (2, 2)
    for name, values in grid.metrics.items():
        assert values.shape == (2, 2, SEEDS, CONFIG.num_updates), name
    assert grid.coords == {"learning_rate": tuple(LRS), "entropy_coeff": tuple(ENTS), "seed": (0, 1)}
    assert grid.settings == tuple({"learning_rate": a, "entropy_coeff": b} for a in LRS for b in ENTS)
    assert grid.config_at((1, 0)) == CONFIG.replace(learning_rate=1e-3, entropy_coeff=0.0)
    np.testing.assert_array_equal(grid.metrics["learning_rate"][1, :, :, 0], np.float32(1e-3))  # anneal starts here
    np.testing.assert_array_equal(grid.metrics["env_steps"][0, 0, 0], CONFIG.batch_size * np.arange(1, 6))
    assert np.isfinite(grid.metrics["policy_loss"]).all()
    # final states: one per cell, with that cell's key and all updates done
    assert grid.state.updates_done.shape == (2, 2, SEEDS) and (grid.state.updates_done == CONFIG.num_updates).all()
    seed_keys = jax.random.key_data(jax.random.split(jax.random.key(0), SEEDS))
    np.testing.assert_array_equal(jax.random.key_data(grid.state.key[1, 1]), seed_keys)
    assert grid.state.rollout.obs.shape == (2, 2, SEEDS, CONFIG.num_envs, 4)


@pytest.mark.timeout(120)
def test_cells_match_lone_make_train_runs(grid):
    # cell (lr=1e-3, entropy=0.0, seed 1) against an independent run of the config built by hand
    key = jax.random.split(jax.random.key(0), SEEDS)[1]
    lone = make_train(CONFIG.replace(learning_rate=1e-3, entropy_coeff=0.0))(key)
    assert_matches_lone_run({k: v[1, 0, 1] for k, v in grid.metrics.items()}, lone)
    # different hyperparameters really train differently
    assert not np.allclose(grid.metrics["policy_loss"][0, 0], grid.metrics["policy_loss"][1, 0])


@pytest.mark.timeout(180)
def test_each_cell_is_evaluated_with_its_own_obs_clip():
    """In-training evaluation normalises observations with the cell's own obs_clip, not the base config's: a sweep
    cell's eval_return equals a lone run of that setting. (Before the one-pipeline refactor evaluation closed over the
    base config, so the obs_clip=0.05 cell was evaluated with 10.0 and this failed.)"""
    config = CONFIG.replace(normalize_observations=True, eval_every=1, eval_episodes=8, obs_clip=10.0)
    result = sweep(config, num_seeds=1, obs_clip=[0.05, 10.0])
    for i, clip in enumerate((0.05, 10.0)):
        lone = make_train(config.replace(obs_clip=clip))(jax.random.split(jax.random.key(0), 1)[0])
        np.testing.assert_allclose(result.metrics["eval_return"][i, 0], np.asarray(lone.metrics["eval_return"]),
                                   err_msg=f"obs_clip={clip}")
    # the setting matters for evaluation, so the comparison above is sharp
    assert not np.array_equal(result.metrics["eval_return"][0, 0], result.metrics["eval_return"][1, 0])


@pytest.mark.timeout(60)
def test_settings_list_equals_grid_cells(grid):
    # the grid's cells in another order: the same swept names and batch size, hence the same cached program, so
    # each setting is bit-identical to its grid cell
    order = [(1, 1), (0, 0), (1, 0), (0, 1)]
    settings = [{"learning_rate": LRS[i]} if ENTS[j] == CONFIG.entropy_coeff else
                {"entropy_coeff": ENTS[j], "learning_rate": LRS[i]} for i, j in order]
    result = sweep(CONFIG, num_seeds=SEEDS, keep_state=True, settings=settings)
    assert result.axes == ("setting", "seed", "update")
    assert result.coords == {"setting": (0, 1, 2, 3), "seed": (0, 1)}
    # a setting that omits a swept name keeps the config's value (entropy_coeff 0.01)
    assert result.settings == tuple({"learning_rate": LRS[i], "entropy_coeff": ENTS[j]} for i, j in order)
    for name, values in result.metrics.items():
        assert values.shape == (4, SEEDS, CONFIG.num_updates)
        for k, cell in enumerate(order):
            np.testing.assert_array_equal(values[k], grid.metrics[name][cell], err_msg=name)
    np.testing.assert_array_equal(result.state.rollout.obs[0], grid.state.rollout.obs[1, 1])
    np.testing.assert_array_equal(result.scores(), [grid.scores()[cell] for cell in order])
    assert result.best() in result.settings


def test_plain_multi_seed_run_has_no_setting_axes():
    result = SweepResult({"episode_return": np.ones((3, 4))}, ("seed", "update"), {"seed": (0, 1, 2)}, ({},),
                         CONFIG, 0)
    assert result.setting_shape == () and result.best() == {} and result.scores().shape == ()
    assert _plan(CONFIG, None, {}) == ((), {}, ({},), ())


def test_seed_keys_are_documented_split():
    plan = _plan(CONFIG, None, {"gamma": [0.9, 0.99, 0.999]})
    keys, values = _cell_inputs(CONFIG, plan, num_seeds=4, seed=5)
    expected = np.asarray(jax.random.key_data(jax.random.split(jax.random.key(5), 4)))
    assert keys.shape == (12, *expected.shape[1:])
    for s in range(3):  # setting-major; every setting sees the same seed keys
        np.testing.assert_array_equal(keys[4 * s:4 * s + 4], expected)
    np.testing.assert_array_equal(values["gamma"], np.repeat(np.float32([0.9, 0.99, 0.999]), 4))


# ---------------------------------------------------------------------------------------------------- best / scores
def fake_result(returns: np.ndarray, axes=("learning_rate",), coords=None) -> SweepResult:
    coords = coords or {"learning_rate": (1e-4, 3e-4, 1e-3)}
    settings = tuple({"learning_rate": v} for v in coords["learning_rate"])
    coords = {**coords, "seed": tuple(range(returns.shape[-2]))}
    return SweepResult({"episode_return": returns}, (*axes, "seed", "update"), coords, settings, CONFIG, 0)


def test_best_uses_mean_of_last_updates_over_seeds():
    returns = np.zeros((3, 2, 20), np.float32)
    returns[0, :, :10] = 500.0  # great early, then poor: loses with the default window of the last 10 updates
    returns[1, :, 10:] = 100.0
    returns[2, 0, 10:], returns[2, 1, 10:] = 190.0, 0.0  # mean over seeds 95 < 100
    result = fake_result(returns)
    np.testing.assert_allclose(result.scores(), [0.0, 100.0, 95.0])
    assert result.best() == {"learning_rate": 3e-4}
    assert result.best(last=20) == {"learning_rate": 1e-4}
    assert result.best(maximize=False) == {"learning_rate": 1e-4}


def test_best_ignores_nan_updates_and_rejects_all_nan():
    returns = np.full((3, 1, 4), np.nan, np.float32)
    returns[1, 0, -1] = 5.0  # one finished episode
    returns[2, 0, -2:] = [1.0, 3.0]
    result = fake_result(returns)
    np.testing.assert_allclose(result.scores(), [np.nan, 5.0, 2.0])
    assert result.best() == {"learning_rate": 3e-4}
    with pytest.raises(ValueError, match="no setting has a finite"):
        fake_result(np.full((3, 1, 4), np.nan)).best()
    with pytest.raises(ValueError, match="metric must be one of"):
        result.best("nonexistent")
    with pytest.raises(ValueError, match="last must be a positive"):
        result.best(last=0)


# ------------------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("field, values", [("num_envs", [4, 8]), ("hidden_sizes", [(32,), (64,)]),
                                          ("network", ["mlp", "cnn"]), ("anneal_lr", [True, False])])
def test_sweeping_a_static_field_explains_why(field, values):
    with pytest.raises(ValueError, match=rf"cannot sweep '{field}'.*array shapes.*Python loop"):
        sweep(CONFIG, **{field: values})
    with pytest.raises(ValueError, match=rf"cannot sweep '{field}'"):
        sweep(CONFIG, settings=[{field: values[0]}])


@pytest.mark.parametrize("field, bad", [("learning_rate", -1e-3), ("gamma", 1.5), ("clip_param", 0.0),
                                        ("entropy_coeff", float("nan"))])
def test_bad_value_gives_the_config_error(field, bad):
    with pytest.raises(ValueError) as from_config:
        CONFIG.replace(**{field: bad})
    with pytest.raises(ValueError) as from_grid:
        sweep(CONFIG, **{field: [getattr(CONFIG, field), bad]})
    with pytest.raises(ValueError) as from_settings:
        sweep(CONFIG, settings=[{field: bad}])
    assert str(from_grid.value) == str(from_settings.value) == str(from_config.value)
    assert f"PPOConfig.{field}" in str(from_config.value)


@pytest.mark.parametrize("kwargs, match", [
    ({"learning_rate": []}, "non-empty list of numbers"),
    ({"learning_rate": 3e-4}, "non-empty list of numbers"),
    ({"learning_rate": np.array(3e-4)}, "non-empty list of numbers"),  # 0-d: len() raised TypeError
    ({"learning_rate": ["fast"]}, "must be a number"),
    ({"learning_rat": [1e-3]}, "no such field"),
    ({"settings": [{"gamma": 0.9}], "learning_rate": [1e-3]}, "not both"),
    ({"settings": []}, "non-empty list"),
    ({"settings": {"gamma": 0.9}}, "non-empty list"),
    ({"num_seeds": 0}, "num_seeds must be an integer >= 1"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"seed": 2**32}, r"seed must be an integer in \[0, 2\*\*32 - 1\]"),  # key(2**32) is key(0)
    ({"cells_per_block": 0}, "cells_per_block must be an integer >= 1"),
])
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sweep(CONFIG, **kwargs)


def test_a_mesh_that_is_not_one_is_named():
    with pytest.raises(TypeError, match="mesh must be a jax.sharding.Mesh .*got 'cpu'"):
        sweep(CONFIG, mesh="cpu")


def test_progress_reports_every_update_and_changes_no_result(grid):
    """`progress` (the command line's bar) is called after every update of every device's cells; the cells are then
    stepped together, update by update, and give the same metrics and final states as the plain program here."""
    seen = []
    with_bar = sweep(CONFIG, num_seeds=SEEDS, learning_rate=LRS, entropy_coeff=ENTS, keep_state=True,
                     progress=seen.append)
    assert sorted(set(seen)) == list(range(1, CONFIG.num_updates + 1)) and len(seen) % CONFIG.num_updates == 0
    for name in grid.metrics:
        np.testing.assert_allclose(with_bar.metrics[name], grid.metrics[name], rtol=1e-5, atol=1e-6, err_msg=name)
    for a, b in zip(jax.tree.leaves(with_bar.state.params), jax.tree.leaves(grid.state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rows, block", [(10, 3), (10, 4), (7, 7), (7, 100), (9, 1)])
def test_in_blocks_is_vmap_block_by_block(rows, block):
    """Every row gets `fn` of its own row (pytrees in and out), whatever the split into blocks and the filled rows."""
    x = {"a": np.arange(rows, dtype=np.float32), "b": np.arange(2 * rows, dtype=np.int32).reshape(rows, 2)}
    fn = lambda t: {"s": t["a"] * 2 + t["b"].sum(), "b": t["b"][::-1]}  # noqa: E731
    out, expected = jax.jit(in_blocks(fn, block))(x), jax.vmap(fn)(x)
    for name in expected:
        np.testing.assert_array_equal(out[name], expected[name])


def test_cells_in_blocks_train_to_the_same_bits(grid):
    """8 cells in 2 blocks of 4 (lax.map over blocks, vmap inside) give bit for bit what all 8 at once give."""
    blocked = sweep(CONFIG, num_seeds=SEEDS, learning_rate=LRS, entropy_coeff=ENTS, keep_state=True,
                    cells_per_block=5)
    for name in grid.metrics:
        np.testing.assert_array_equal(blocked.metrics[name], grid.metrics[name], err_msg=name)
    for a, b in zip(jax.tree.leaves(blocked.state.params), jax.tree.leaves(grid.state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
