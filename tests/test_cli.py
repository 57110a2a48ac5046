"""The command line, run in-process through `cli.main` (plus one real subprocess): train -> eval -> plot, shipped
configs, overrides, and one-line errors for bad input.

All training here uses one tiny CartPole config with 2 seeds, shared with tests/test_checkpoint.py and
tests/test_progress.py, so its chunk program compiles once per pytest process.
"""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from purejaxppo import PPOConfig, cli
from purejaxppo.configs import load_config, read_config_file, shipped_config_names, shipped_config_path

TINY = ["--num-envs", "4", "--num-steps", "16", "--total-timesteps", "1280"]  # 20 updates of 64 steps
TRAIN = ["train", *TINY, "--num-seeds", "2", "--checkpoint-every", "5", "--quiet"]
REQUIRED_CONFIGS = {
    "CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1", "MountainCarContinuous-v0", "Catch-bsuite",
    "MemoryChain-bsuite", "Breakout-MinAtar", "Asterix-MinAtar", "Freeway-MinAtar", "SpaceInvaders-MinAtar",
}


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    code = cli.main([*TRAIN, "--logdir", str(run_dir)])
    assert code == 0
    return run_dir


@pytest.mark.timeout(180)
def test_train_eval_plot_round_trip(trained_run, capsys, tmp_path):
    run_dir = trained_run
    for name in ("config.json", "run.json", "metrics.jsonl", "summary.json"):
        assert (run_dir / name).is_file(), name
    assert PPOConfig.from_dict(json.loads((run_dir / "config.json").read_text())) == load_config(
        "CartPole-v1").replace(num_envs=4, num_steps=16, total_timesteps=1280)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 20 * 2
    assert [(r["update"], r["seed"]) for r in records] == [(u, s) for u in range(1, 21) for s in range(2)]
    assert all(r["env_steps"] == 64 * r["update"] for r in records)
    assert all(r["episode_return"] is None or r["episode_return"] > 0 for r in records)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] and summary["updates"] == 20 and len(summary["final_episode_return"]["per_seed"]) == 2
    assert sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()) == [15, 20]

    code, out, err = run_cli(capsys, "eval", run_dir, "--episodes", "4", "--seed-index", "1")
    assert code == 0, err
    assert "mean return" in out and "update 20, seed 1" in out
    returns = [float(x) for x in out.split("returns:")[1].split()]
    assert len(returns) == 4 and all(r >= 1 for r in returns)

    png = tmp_path / "curves.png"
    code, out, err = run_cli(capsys, "plot", run_dir, run_dir, "--labels", "a", "b", "--out", png, "--smooth", "2")
    assert code == 0, err
    width, height = png_size(png)
    assert width > 300 and height > 200 and png.stat().st_size > 5_000


@pytest.mark.timeout(120)
def test_eval_gif(trained_run, capsys, tmp_path):
    gif = tmp_path / "episode.gif"
    code, out, err = run_cli(capsys, "eval", trained_run, "--episodes", "1", "--gif", gif, "--gif-max-steps", "5")
    try:
        import pygame  # noqa: F401
    except ModuleNotFoundError:  # classic control renders through gymnasium + pygame
        assert code == 2 and "pygame" in err and err.count("\n") == 1
        return
    assert code == 0, err
    assert gif.read_bytes()[:6] in (b"GIF89a", b"GIF87a") and "wrote" in out


def test_eval_gif_refuses_an_environment_the_visualiser_cannot_draw():
    from purejaxppo.plotting import check_gif_support, render_gif

    class Loaded:  # render_gif checks the environment before it touches the policy
        config = PPOConfig(env_name="DeepSea-bsuite")

    with pytest.raises(ValueError, match="cannot draw DeepSea-bsuite; it supports .*CartPole-v1"):
        render_gif(Loaded(), "x.gif", None)
    check_gif_support(PPOConfig(env_name="Catch-bsuite", network="gru"))  # recurrent policies play through `act`


@pytest.mark.parametrize("argv, expected", [
    (["train", "--lerning-rate", "1e-3"], "--learning-rate"),
    (["train", "--network", "transformer"], "'mlp'"),
    (["train", "--learning-rate", "abc"], "--learning-rate"),
    (["train", "--learning-rate", "-1"], "PPOConfig.learning_rate must be in (0, inf)"),
    (["train", "--config.gamma", "1.5"], "PPOConfig.gamma must be in [0, 1]"),
    (["train", "--num-minibatches", "3"], "PPOConfig.num_minibatches must divide"),
    (["train", "--env", "NoSuchEnv-v0"], "Registered: CartPole-v1"),
    (["train", "--num-seeds", "0"], "--num-seeds must be an integer >= 1"),
    (["train", "--env-kwargs", "{oops"], "JSON object"),
    (["train", "--config-file", "missing.toml"], "does not exist"),
    (["train", "--resume", "no/such/run"], "not a run directory"),
    (["eval", "no/such/run"], "does not exist"),
    (["plot"], "plot needs at least one run directory"),
    ([], "Expected one of {train, eval, plot, list-envs}"),
])
def test_bad_input_gives_one_line_error_and_exit_2(capsys, argv, expected):
    code, _out, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err
    assert "Traceback" not in err


def test_overrides_in_both_spellings_apply_on_top_of_the_shipped_config():
    cmd = cli.parse(["train", "--env", "Acrobot-v1", "--config.learning_rate", "1e-3", "--num-envs", "8",
                     "--hidden-sizes", "32", "32", "--no-anneal-lr", "--env-kwargs", "{}"])
    config = cli.requested_config(cmd)
    assert config == load_config("Acrobot-v1").replace(learning_rate=1e-3, num_envs=8, hidden_sizes=(32, 32),
                                                       anneal_lr=False)


def test_train_without_arguments_is_cartpole_on_the_default_config():
    config = cli.requested_config(cli.parse(["train"]))
    assert config == load_config("CartPole-v1") == PPOConfig()


def test_config_file_and_env_override(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('env_name = "Acrobot-v1"\nnum_envs = 8\nlearning_rate = 1e-3\n[env_kwargs]\n')
    assert cli.requested_config(cli.parse(["train", "--config-file", str(path)])) == PPOConfig(
        env_name="Acrobot-v1", num_envs=8, learning_rate=1e-3)
    on_cartpole = cli.requested_config(cli.parse(["train", "--config-file", str(path), "--env", "CartPole-v1"]))
    assert on_cartpole.env_name == "CartPole-v1" and on_cartpole.num_envs == 8
    assert load_config(str(path)) == PPOConfig(env_name="Acrobot-v1", num_envs=8, learning_rate=1e-3)
    bad = tmp_path / "bad.toml"
    bad.write_text("learning_rat = 1e-3\n")
    with pytest.raises(ValueError, match=r"bad.toml: PPOConfig has no field\(s\) \['learning_rat'\]"):
        load_config(bad)


def test_shipped_configs_load_and_say_what_they_are_based_on():
    assert REQUIRED_CONFIGS <= set(shipped_config_names())
    for name in shipped_config_names():
        config = load_config(name)
        assert config.env_name == name
        text = shipped_config_path(name).read_text()
        assert text.startswith("#") and "Based on" in text, name
        assert set(read_config_file(shipped_config_path(name))) <= set(config.to_dict())
    assert load_config("Breakout-MinAtar").network == "cnn"
    assert load_config("Pendulum-v1").normalize_observations and load_config("Pendulum-v1").normalize_rewards
    assert load_config("DeepSea-bsuite") == PPOConfig(env_name="DeepSea-bsuite")  # no shipped file: defaults


def test_list_envs_marks_shipped_configs(capsys):
    code, out, _ = run_cli(capsys, "list-envs")
    assert code == 0
    assert "* CartPole-v1" in out and "* Breakout-MinAtar" in out and "  DeepSea-bsuite" in out


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_real_process_help_and_bad_flag(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    def run(*args):
        return subprocess.run([sys.executable, "-m", "purejaxppo", *args], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=100, check=False)

    helped = run("train", "--help")
    assert helped.returncode == 0 and "--learning-rate" in helped.stdout and "--config.learning-rate" in helped.stdout
    bad = run("train", "--bogus-flag", "3")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: Unrecognized options: --bogus-flag") and "Traceback" not in bad.stderr
    assert bad.stderr.count("\n") == 1 and not list(tmp_path.iterdir())  # nothing written


@pytest.mark.timeout(120)
def test_tensorboard_and_offline_wandb_logging(tmp_path, capsys, monkeypatch):
    argv = [*TRAIN, "--logdir", tmp_path / "run", "--stop-after", "5", "--tensorboard"]
    try:
        import wandb

        argv.append("--wandb")  # offline by default: must work with no network
        monkeypatch.setenv("WANDB_SILENT", "true")
    except ModuleNotFoundError:
        wandb = None
    code, _out, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    if wandb is not None:
        assert list((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb"))
