"""`save_run`: a `make_train` result saved in one call is a run directory that `load_policy`, `purejaxppo eval` and
`purejaxppo export` read; a run trained on an environment object loads with ``load_policy(path, env=...)``."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probes import BestAction
from purejaxppo import PPOConfig, cli, evaluate, load_policy, make_train, save_run
from purejaxppo.runs.checkpoint import CheckpointError
from purejaxppo.runs.export import export_policy

pytestmark = pytest.mark.timeout(300)

# 20 updates of 4 envs x 8 steps; BestAction: one-step episodes, reward [0, 1, 0.5] by action
CONFIG = PPOConfig(num_envs=4, num_steps=8, total_timesteps=640, num_minibatches=2, learning_rate=1e-2,
                   hidden_sizes=(16,))


@pytest.fixture(scope="module")
def custom_run(tmp_path_factory):
    """A run trained on the probe environment object `BestAction`, saved with save_run(env=...)."""
    env = BestAction()
    out = make_train(CONFIG, env=env)(jax.random.key(3))
    run_dir = save_run(tmp_path_factory.mktemp("save_run") / "best-action", CONFIG, out.state, seed=3, env=env,
                       metrics=out.metrics)
    return run_dir, env, out


def test_a_custom_environment_run_loads_with_env_and_evaluates_as_trained(custom_run):
    run_dir, env, out = custom_run
    info = json.loads((run_dir / "run.json").read_text())
    assert (info["num_seeds"], info["seed"], info["custom_env"]) == (1, 3, "probes.BestAction")
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == CONFIG.num_updates
    loaded = load_policy(run_dir, env=env)
    assert loaded.update == CONFIG.num_updates and loaded.setup.env.spec.num_actions == 3
    for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(out.state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    key = jax.random.key(5)
    np.testing.assert_array_equal(np.asarray(loaded.evaluate(8, key)),  # the policy make_train trained
                                  np.asarray(evaluate(CONFIG, out.state, key, num_episodes=8, env=env)))


def test_a_custom_environment_run_exports_to_stablehlo(custom_run, tmp_path):
    run_dir, env, _ = custom_run
    path = export_policy(run_dir, "stablehlo", out=tmp_path / "policy.stablehlo", env=env)
    exported = jax.export.deserialize(bytearray(path.read_bytes()))
    obs = jnp.ones((5, 1), jnp.float32)
    loaded = load_policy(run_dir, env=env)
    np.testing.assert_array_equal(np.asarray(exported.call(obs)), np.asarray(loaded.act((), obs)[1]))
    description = json.loads((tmp_path / "policy.stablehlo.json").read_text())
    assert description["env_name"] == "probes.BestAction (custom environment)"


def test_a_custom_environment_run_without_env_says_to_pass_it(custom_run, capsys):
    run_dir, _, _ = custom_run
    message = (r"was trained on a custom environment \(probes\.BestAction\), not on config\.env_name 'CartPole-v1', "
               r"and a checkpoint cannot rebuild it: pass it, load_policy\(path, env=BestAction\(\.\.\.\), "
               r"env_params=\.\.\.\)")
    with pytest.raises(CheckpointError, match=message):
        load_policy(run_dir)
    assert cli.main(["eval", str(run_dir)]) == 2  # the command line cannot rebuild it: one error line
    assert "pass it, load_policy(path, env=BestAction(...)" in capsys.readouterr().err


def test_a_state_of_another_environment_is_refused_naming_env(tmp_path):
    """BestAction's state (1 observation, 3 actions) does not fit CartPole-v1, the config's env_name."""
    out = make_train(CONFIG, env=BestAction())(jax.random.key(0))
    with pytest.raises(ValueError, match=r"does not fit this config's run: .*trained on your own environment\? pass "
                                         r"it as env="):
        save_run(tmp_path / "run", CONFIG, out.state)
    with pytest.raises(ValueError, match=r"out\.state, not the whole TrainOutput"):
        save_run(tmp_path / "run", CONFIG, out, env=BestAction())
    with pytest.raises(ValueError, match=r"num_seeds=2, but the state holds 1 seed\(s\)"):
        save_run(tmp_path / "run", CONFIG, out.state, num_seeds=2, env=BestAction())
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"full exists and is not an empty directory"):
        save_run(tmp_path / "full", CONFIG, out.state, env=BestAction())


def test_seeds_of_a_registered_environment_are_read_by_eval_and_export(tmp_path, capsys):
    """Two CartPole seeds (jax.vmap of make_train over the command line's keys) saved in one call."""
    config = CONFIG.replace(hidden_sizes=(8,))
    keys = jax.random.split(jax.random.key(7), 2)  # as `purejaxppo train --seed 7 --num-seeds 2` splits them
    out = jax.jit(jax.vmap(make_train(config)))(keys)
    run_dir = save_run(tmp_path / "cartpole", config, out.state, seed=7, num_seeds=2, metrics=out.metrics)
    loaded = load_policy(run_dir, seed_index=1)
    for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(out.state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b)[1])
    assert cli.main(["eval", str(run_dir), "--seed-index", "1", "--episodes", "2"]) == 0
    assert "CartPole-v1 (update 20, seed 1), 2 episodes" in capsys.readouterr().out
    assert cli.main(["export", str(run_dir), "--format", "stablehlo"]) == 0
    assert (run_dir / "policy_seed0.stablehlo").is_file()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["update"], r["seed"]) for r in records[:3]] == [(1, 0), (1, 1), (2, 0)] and len(records) == 40
