"""Host pools on the command line: an environment that fails mid-run, resuming a run (the pool restarts), the shipped
EnvPool configs.

The runs are tiny and use the Gymnasium toy environments of `pool_toys` (known episodes, a failure at a known step),
named as ``gymnasium:pool_toys:<Id>``; gymnasium comes with purejaxppo, so these run without any extra. The EnvPool
cases skip without envpool. References: the toy episodes' closed forms (return ``L (L + 1) / 2`` in L steps),
Gymnasium's own CartPole reset with the documented restart seed, CleanRL's published settings for the configs.
"""

from __future__ import annotations

import json
import tomllib
import traceback
from pathlib import Path

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pool_toys  # noqa: F401 - registers the PoolsToy* ids
import pytest

from purejaxppo import PPOConfig, cli, make_setup
from purejaxppo.cli.args import UsageError
from purejaxppo.configs import load_config, shipped_config_path
from purejaxppo.core import streams
from purejaxppo.envs.pools import HostEnvError
from purejaxppo.runs import logs
from purejaxppo.runs.checkpoint import Checkpointer, batched_keys
from purejaxppo.runs.policy import restore_run_state
from purejaxppo.runs.progress import chunk_runner
from purejaxppo.training.train import init, restart_envs

LENGTH = 12  # the toy's episodes: reward t at step t, so each returns 78 in 12 steps
# 2 seeds x 2 environments x 8 steps, 4 updates; an episode ends at host steps 12, 24 (updates 2 and 3) when not resumed
TOY = ["--env", "gymnasium:pool_toys:PoolsToyCount-v0", "--env-kwargs", json.dumps({"length": LENGTH}),
       "--num-seeds", "2", "--num-envs", "2", "--num-steps", "8", "--total-timesteps", "64", "--num-minibatches", "2",
       "--update-epochs", "1", "--checkpoint-every", "2", "--quiet"]
FAILING = ["--env", "gymnasium:pool_toys:PoolsToyFail-v0", "--env-kwargs", json.dumps({"fail_at": 20}),
           *TOY[4:-3], "--checkpoint-every", "1", "--quiet"]  # host step 20 is in update 3 (steps 17 to 24)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def rows(run_dir: Path, name: str) -> np.ndarray:
    """A metric of metrics.jsonl as ``[updates, seeds]`` (NaN where no episode finished)."""
    records = logs.read_records(run_dir / logs.METRICS_FILE)
    updates = sorted({r["update"] for r in records})
    table = np.full((len(updates), 2), np.nan)
    for r in records:
        table[updates.index(r["update"]), r["seed"]] = np.nan if r.get(name) is None else r[name]
    return table


def leaves(tree) -> list[np.ndarray]:
    return [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
            for x in jax.tree.leaves(tree)]


def assert_same_bits(a, b, what: str) -> None:
    la, lb = leaves(a), leaves(b)
    assert len(la) == len(lb), what
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x, y, err_msg=what)


# ------------------------------------------------------------------------------------------------------ errors
@pytest.mark.timeout(300)
def test_an_environment_failing_mid_run_is_one_line_and_keeps_the_last_checkpoint(capsys, tmp_path, monkeypatch):
    run_dir = tmp_path / "failing"
    code, _, err = run_cli(capsys, "train", *FAILING, "--logdir", run_dir)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err and "io_callback" not in err, err
    assert lines[0] == (
        "error: gymnasium env 'pool_toys:PoolsToyFail-v0' raised in step (host step 20): RuntimeError: CountEnv "
        f"failed on purpose at its step 20; the last checkpoint, {run_dir / 'checkpoints' / '2'} (update 2), is "
        f"intact. Once the environment is fixed, continue with: purejaxppo train --resume {run_dir}")
    with Checkpointer(run_dir / "checkpoints", read_only=True) as ckpt:
        assert ckpt.steps() == [1, 2]
    state, meta, _ = restore_run_state(run_dir)  # reads back: digest, shapes, config
    assert meta["update"] == 2 and np.asarray(state.updates_done).tolist() == [2, 2]
    assert [r["update"] for r in logs.read_records(run_dir / logs.METRICS_FILE)] == [1, 1, 2, 2]  # none of update 3
    assert not (run_dir / "summary.json").exists()

    monkeypatch.setenv("PUREJAXPPO_DEBUG", "1")  # the traceback instead: the environment's own exception at its root
    with pytest.raises(UsageError) as error:
        cli.main([*map(str, ["train", *FAILING, "--logdir", tmp_path / "debug"])])
    host = error.value.__cause__
    assert isinstance(host, HostEnvError) and isinstance(host.__cause__, RuntimeError)
    assert traceback.extract_tb(host.__cause__.__traceback__)[-1].name == "step"  # CountEnv.step raised it


# ------------------------------------------------------------------------------------------------------ resume
def test_restart_keeps_the_learning_state_and_reseeds_from_the_key_and_update():
    """`restart_envs` at update u: the learning state bit for bit, fresh episodes, and environment i seeded
    ``randint(split(fold_in(fold_in(key, RESET), u), N)[0], [0, 2**30)) + i`` (checked against Gymnasium's own
    CartPole reset with that seed)."""
    config = PPOConfig(env_name="gymnasium:CartPole-v1", num_envs=3, num_steps=8, total_timesteps=48,
                       normalize_observations=True, normalize_rewards=True)
    setup = make_setup(config)
    key, update = jax.random.key(5), 7
    state = init(setup, key, config)
    state = state.replace(updates_done=jnp.int32(update), reward_state=state.reward_state.replace(
        discounted_return=jnp.asarray([1.5, -2.0, 0.25], jnp.float32)))
    restarted = jax.jit(lambda s: restart_envs(setup, s, config))(state)
    for name in ("params", "opt_state", "obs_stats", "key", "updates_done"):
        assert_same_bits(getattr(restarted, name), getattr(state, name), name)
    assert_same_bits(restarted.reward_state.stats, state.reward_state.stats, "reward statistics")
    assert np.asarray(restarted.reward_state.discounted_return).tolist() == [0.0] * 3  # the dropped episodes'
    assert np.asarray(restarted.rollout.done).all()  # every policy carry restarts
    env_state = restarted.rollout.env_state
    assert not np.asarray(env_state.episode_length).any() and not np.asarray(env_state.episode_return).any()
    reset_key = jax.random.split(streams.stream(key, streams.RESET, update), 3)[0]
    seed = int(jax.random.randint(reset_key, (1,), 0, 2**30, jnp.int32)[0])
    expected = np.stack([gymnasium.make("CartPole-v1").reset(seed=seed + i)[0] for i in range(3)])
    np.testing.assert_array_equal(np.asarray(restarted.rollout.obs), expected)
    assert not np.array_equal(np.asarray(restarted.rollout.obs), np.asarray(state.rollout.obs))


@pytest.mark.timeout(300)
def test_resume_restarts_the_pool_reproducibly_and_drops_the_episodes_in_flight(capsys, tmp_path):
    runs = {name: tmp_path / name for name in ("a", "b", "whole")}
    for name in ("a", "b"):  # the same stop after update 2 and resume, twice
        assert run_cli(capsys, "train", *TOY, "--logdir", runs[name], "--stop-after", "2")[0] == 0
        code, out, err = run_cli(capsys, "train", "--resume", runs[name])
        assert code == 0 and not err, err
        assert ("gymnasium env 'pool_toys:PoolsToyCount-v0' is a host pool, which a checkpoint cannot hold: its "
                "environments restart at update 2") in out
        assert json.loads((runs[name] / "summary.json").read_text())["complete"]
    assert run_cli(capsys, "train", *TOY, "--logdir", runs["whole"])[0] == 0

    # what the resumed run continued from: the checkpoint's learning state, bit for bit, with its pool restarted
    checkpoint = restore_run_state(runs["a"] / "checkpoints" / "2")[0]
    restarted = chunk_runner(cli.requested_config(cli.parse(["train", *TOY]))).restart(checkpoint, 2)
    for name in ("params", "opt_state", "obs_stats", "key", "updates_done"):
        assert_same_bits(getattr(restarted, name), getattr(checkpoint, name), name)
    assert np.asarray(restarted.rollout.obs).tolist() == [[[0.0]] * 2] * 2  # every episode starts again

    # reproducible: both stop/resume runs end with the same bits and log the same metrics
    assert_same_bits(restore_run_state(runs["a"])[0], restore_run_state(runs["b"])[0], "stop/resume twice")
    assert (runs["a"] / "metrics.jsonl").read_text() == (runs["b"] / "metrics.jsonl").read_text()

    # the episodes in flight at update 2 (4 steps into their second episode) are dropped: the restarted ones run
    # their whole 12 steps, to host step 28 (update 4), and none ends in update 3, where the uninterrupted run's do
    finished = {name: rows(run_dir, "episodes_finished") for name, run_dir in runs.items()}
    assert finished["whole"].tolist() == [[0, 0], [2, 2], [2, 2], [0, 0]]
    assert finished["a"].tolist() == [[0, 0], [2, 2], [0, 0], [2, 2]]
    full = LENGTH * (LENGTH + 1) / 2
    for name in ("a", "whole"):
        ended = finished[name] > 0
        assert (rows(runs[name], "episode_return")[ended] == full).all(), name  # whole episodes only, nothing partial
        assert (rows(runs[name], "episode_length")[ended] == LENGTH).all(), name
    before = [r for r in logs.read_records(runs["a"] / logs.METRICS_FILE) if r["update"] <= 2]
    assert before == [r for r in logs.read_records(runs["whole"] / logs.METRICS_FILE) if r["update"] <= 2]
    assert not (np.asarray(jax.tree.leaves(restore_run_state(runs["a"])[0].params)[0])
                == np.asarray(jax.tree.leaves(restore_run_state(runs["whole"])[0].params)[0])).all()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_envpool_xla_run_resumes_reproducibly(capsys, tmp_path):
    """EnvPool's XLA route is seeded from an integer, not the key: a run resumed at update u restarts on a fresh pool
    seeded ``SeedSequence([seed, S * N, u])``, so the same stop and resume gives the same bits."""
    pytest.importorskip("envpool")
    flags = ["--env", "envpool:CartPole-v1", "--env-kwargs", json.dumps({"backend": "xla"}), *TOY[4:]]
    finals = []
    for name in ("a", "b"):
        assert run_cli(capsys, "train", *flags, "--logdir", tmp_path / name, "--stop-after", "2")[0] == 0
        assert run_cli(capsys, "train", "--resume", tmp_path / name, "--quiet")[0] == 0
        finals.append(restore_run_state(tmp_path / name)[0])
        config = PPOConfig.from_dict(json.loads((tmp_path / name / "config.json").read_text()))
        resumed_pool = chunk_runner(config).host_pool._current[2 * 2]  # the pool of 2 seeds x 2 environments
        assert resumed_pool.seed == int(np.random.SeedSequence([0, 2 * 2, 2]).generate_state(1)[0]) % 2**30
    assert_same_bits(finals[0], finals[1], "stop/resume twice, xla backend")
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_pbt_run_on_a_host_pool_resumes_the_same_way(capsys, tmp_path):
    flags = [*TOY[:4], "--population", "2", *TOY[6:-3], "--ready-every", "2", "--checkpoint-every", "2", "--quiet"]
    run_dir = tmp_path / "pbt"
    assert run_cli(capsys, "pbt", *flags, "--logdir", run_dir, "--stop-after", "2")[0] == 0
    code, out, err = run_cli(capsys, "pbt", "--resume", run_dir)
    assert code == 0 and "its environments restart at update 2" in out, err
    finished = rows(run_dir, "episodes_finished")  # as for train: the restarted episodes end in update 4
    assert finished.tolist() == [[0, 0], [2, 2], [0, 0], [2, 2]]


# ------------------------------------------------------------------------------------------------------ configs
# CleanRL's published settings (https://docs.cleanrl.dev/rl-algorithms/ppo/, the scripts' Args), as PPOConfig fields
CLEANRL = {
    "envpool:HalfCheetah-v4": dict(  # ppo_continuous_action.py
        num_envs=1, num_steps=2048, total_timesteps=1_000_000, update_epochs=10, num_minibatches=32,
        learning_rate=3e-4, anneal_lr=True, gamma=0.99, gae_lambda=0.95, clip_param=0.2, clip_value_loss=True,
        normalize_advantages=True, entropy_coeff=0.0, vf_coeff=0.5, max_grad_norm=0.5, adam_eps=1e-5,
        hidden_sizes=(64, 64), activation="tanh", network="mlp", normalize_observations=True, obs_clip=10.0,
        normalize_rewards=True, reward_clip=10.0),
    "envpool:Pong-v5": dict(  # ppo_atari_envpool_xla_jax.py
        num_envs=8, num_steps=128, total_timesteps=10_000_000, update_epochs=4, num_minibatches=4,
        learning_rate=2.5e-4, anneal_lr=True, gamma=0.99, gae_lambda=0.95, clip_param=0.1, clip_value_loss=True,
        normalize_advantages=True, entropy_coeff=0.01, vf_coeff=0.5, max_grad_norm=0.5, adam_eps=1e-5,
        network="nature_cnn", normalize_observations=False, normalize_rewards=False),
}


@pytest.mark.parametrize("env_name", sorted(CLEANRL))
def test_the_shipped_envpool_configs_are_cleanrls_and_load_without_envpool(env_name, capsys):
    config = load_config(env_name)  # no envpool needed to read or validate a config
    assert shipped_config_path(env_name).name == env_name.replace(":", "_") + ".toml"
    assert {k: getattr(config, k) for k in CLEANRL[env_name]} == CLEANRL[env_name]
    assert config.env_name == env_name and config.eval_every == 0
    assert config.num_updates == CLEANRL[env_name]["total_timesteps"] // (config.num_envs * config.num_steps)
    text = shipped_config_path(env_name).read_text()
    if env_name == "envpool:HalfCheetah-v4":
        assert "1442.64 +- 46.03" in text and "docs.cleanrl.dev/rl-algorithms/ppo/#ppo_continuous_actionpy" in text
    else:  # EnvPool's Atari options as CleanRL sets them
        assert config.env_kwargs_dict == {"backend": "callback", "episodic_life": True, "reward_clip": True}
    code, out, _ = run_cli(capsys, "train", "--env", env_name, "--print-config")
    assert code == 0 and PPOConfig.from_dict(tomllib.loads(out)) == config


@pytest.mark.parametrize("env_name, obs_shape, obs_dtype", [("envpool:HalfCheetah-v4", (17,), np.float32),
                                                            ("envpool:Pong-v5", (84, 84, 4), np.uint8)])
def test_the_shipped_envpool_configs_build_their_environment_and_policy(env_name, obs_shape, obs_dtype):
    pytest.importorskip("envpool")
    setup = make_setup(load_config(env_name))  # EnvPool accepts the env_kwargs; the policy fits the observations
    assert setup.env.spec.obs_shape == obs_shape and np.dtype(setup.env.spec.obs_dtype) == obs_dtype
    assert setup.env.spec.next_step_reset
    params = jax.eval_shape(lambda k: init(setup, k, setup.config).params, batched_keys(0, 1)[0])
    assert jax.tree.leaves(params)
