"""The command line, run in-process through `cli.main` (plus one real subprocess): train -> eval -> plot, shipped
configs, overrides, and one-line errors for bad input.

All training here uses one tiny CartPole config with 2 seeds, shared with tests/test_checkpoint.py and
tests/test_progress.py, so its chunk program compiles once per pytest process.
"""

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import TRAIN, run_cli

from purejaxppo import PPOConfig, cli
from purejaxppo.configs import load_config, read_config_file, shipped_config_names, shipped_config_path

TRAIN = [*TRAIN, "--checkpoint-every", "5"]
REQUIRED_CONFIGS = {
    "CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1", "MountainCarContinuous-v0", "Catch-bsuite",
    "MemoryChain-bsuite", "Breakout-MinAtar", "Asterix-MinAtar", "Freeway-MinAtar", "SpaceInvaders-MinAtar",
}


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
    from purejaxppo.runs.plotting import check_gif_support, render_gif

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
    (["train", "--env", ""], "--env is empty: give an environment name (purejaxppo list-envs lists them)"),
    (["pbt", "--env", ""], "--env is empty"),
    (["train", "--env", " ", "--config-file", "c.toml"], "--env is empty"),
    (["train", "--env", "foo:Bar"], "'foo:Bar': 'foo' is not a known suite. The suites are 'brax:<name>',"),
    (["train", "--env", "envpool:NoSuchTask-v0"], "env 'envpool:NoSuchTask-v0'"),  # no such task, or no envpool extra
    (["train", "--env", "gymnasium:NoSuchEnv-v0"], "gymnasium env 'NoSuchEnv-v0' cannot be made: NameNotFound"),
    (["train", "--env", "Brax:hopper"], "Did you mean 'brax:hopper'?"),
    (["train", "--env", "CartPole-v0"], "Did you mean 'CartPole-v1'? Registered: CartPole-v1"),
    (["train", "--env", "Cartpole-v1"], "Did you mean 'CartPole-v1'?"),
    (["pbt", "--env", "cartpole-v1"], "Did you mean 'CartPole-v1'?"),
    (["train", "--num-seeds", "0"], "--num-seeds must be an integer >= 1"),
    (["train", "--env-kwargs", "{oops"], "JSON object"),
    (["train", "--config-file", "missing.toml"], "does not exist"),
    (["train", "--resume", "no/such/run"], "not a run directory"),
    (["eval", "no/such/run"], "does not exist"),
    (["eval", "no/such/run", "--eval-seed", "4294967296"], "--eval-seed must be an integer in [0, 2**32 - 1]"),
    (["export", "no/such/run", "--format", "stablehlo", "--out", "p.onnx"],
     "out p.onnx names a .onnx file, but format is 'stablehlo': give format='onnx' or a name ending in .stablehlo"),
    (["plot"], "plot needs at least one run directory"),
    ([], "Expected one of {train, pbt, sweep, eval, export, plot, compare, list-envs}"),
    (["compare"], "compare needs at least one run directory"),
    (["compare", "a", "--csv", "--markdown"], "--csv or --markdown, not both"),
    (["compare", "no/such/run"], "compare takes run directories: no/such/run does not exist"),
    (["compare", "no/such/run", "gone", "--markdown"], "no/such/run does not exist; gone does not exist"),
])
def test_bad_input_gives_one_line_error_and_exit_2(capsys, monkeypatch, tmp_path, argv, expected):
    monkeypatch.chdir(tmp_path)  # where runs/<env>-<timestamp> would go
    code, _out, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err
    assert "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("env_name, expected", [
    ("", "PPOConfig.env_name is empty"),
    ("foo:Bar", "'foo' is not a known suite"),
    ("Envpool:Pong-v5", "Did you mean 'envpool:Pong-v5'?"),
    ("cartpole-v1", "Did you mean 'CartPole-v1'?"),
])
def test_ppoconfig_checks_the_env_name_as_the_command_line_does(env_name, expected):
    with pytest.raises(ValueError, match=re.escape(expected)) as info:
        PPOConfig(env_name=env_name)
    assert "purejaxppo list-envs" in str(info.value)


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
    assert "* brax:hopper" in out


def test_list_envs_says_which_suites_are_installed(capsys, monkeypatch):
    import importlib.util

    from purejaxppo.envs import SUITES

    def installed(prefix):
        return importlib.util.find_spec(SUITES[prefix].module) is not None

    expected = [f"  {p[:-1]}: installed" + (" (comes with purejaxppo)" if SUITES[p].core else "") if installed(p) else
                f"  {p[:-1]}: not installed (pip install 'purejaxppo[{p[:-1]}]')" for p in SUITES]
    code, out, _ = run_cli(capsys, "list-envs")
    assert code == 0 and out.splitlines()[-len(SUITES):] == expected
    assert {p[:-1] for p in SUITES} == {"brax", "craftax", "jumanji", "navix", "playground", "envpool", "gymnasium"}
    real, modules = importlib.util.find_spec, {suite.module for suite in SUITES.values()}

    def find_spec(name, *args):  # as if only brax and playground were installed
        if name in modules:
            return real("json") if name in ("brax", "mujoco_playground") else None
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    code, out, _ = run_cli(capsys, "list-envs")
    assert out.splitlines()[-len(SUITES) - 1:] == [
        "Other suites (env name <suite>:<name>), each an extra unless it comes with purejaxppo:", "  brax: installed",
        "  craftax: not installed (pip install 'purejaxppo[craftax]')",
        "  jumanji: not installed (pip install 'purejaxppo[jumanji]')",
        "  navix: not installed (pip install 'purejaxppo[navix]')", "  playground: installed",
        "  envpool: not installed (pip install 'purejaxppo[envpool]')",
        "  gymnasium: not installed (pip install gymnasium)"]


@pytest.mark.timeout(120)
def test_list_envs_imports_no_suite():
    """(A `core` suite's module, gymnasium, is not optional: gymnax imports it.)"""
    check = ("import sys; from purejaxppo import cli; from purejaxppo.envs import SUITES; "
             "assert cli.main(['list-envs']) == 0; "
             "print(sorted(s.module for s in SUITES.values() if s.module in sys.modules and not s.core))")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=100, check=False,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_real_process_help_and_bad_flag(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    def run(*args):
        return subprocess.run([sys.executable, "-m", "purejaxppo", *args], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=100, check=False)

    helped = run("train", "--help")
    assert helped.returncode == 0 and "--learning-rate" in helped.stdout
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


# ------------------------------------------------------------------------------------ a newcomer's path (issue 14)
LAZY_CHECK = """
import sys
from purejaxppo import cli
code = cli.main({argv!r})
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "jaxlib", "gymnax", "flax", "orbax"))
assert not loaded, loaded
print("exit", code)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("argv, code", [
    (["--help"], 0), (["train", "--help"], 0), (["compare", "--help"], 0),
    (["train", "--bogus-flag", "3"], 2), (["train", "--network", "transformer"], 2), ([], 2), (["--version"], 0),
])
def test_help_and_argument_errors_do_not_import_jax(argv, code):
    done = subprocess.run([sys.executable, "-c", LAZY_CHECK.format(argv=argv)], capture_output=True, text=True,
                          timeout=100, check=False, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"exit {code}"


@pytest.mark.timeout(120)
def test_version_flag(capsys):
    import purejaxppo

    code, out, err = run_cli(capsys, "--version")
    assert (code, out, err) == (0, f"purejaxppo {purejaxppo.__version__}\n", "")
    done = subprocess.run([sys.executable, "-m", "purejaxppo", "--version"], capture_output=True, text=True,
                          timeout=100, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"purejaxppo {purejaxppo.__version__}\n", "")


def test_import_purejaxppo_is_lazy_and_keeps_its_public_names():
    check = ("import sys, purejaxppo; assert 'jax' not in sys.modules; names = dir(purejaxppo); "
             "assert set(purejaxppo.__all__) <= set(names), names; "
             "assert set(purejaxppo.__all__) == {*purejaxppo._PUBLIC, '__version__'}; "
             "from purejaxppo import make_train, PPOConfig, load_policy, __version__; "
             "assert purejaxppo.PPOConfig is PPOConfig and 'jax' in sys.modules; "
             "assert purejaxppo.configs.load_config('CartPole-v1') == PPOConfig(); print('ok')")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=100, check=False,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert done.stdout.strip() == "ok", done.stderr
    import purejaxppo

    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        purejaxppo.no_such_name  # noqa: B018


def test_configfields_read_ppoconfig_exactly():
    """The command line's view of PPOConfig (read from config.py's source, without jax) is the real class."""
    import dataclasses

    from purejaxppo.config import ACTIVATIONS, NETWORKS, POLICY_OBJECTIVES
    from purejaxppo.configfields import FIELDS

    real = dataclasses.fields(PPOConfig)
    assert [f.name for f in FIELDS] == [f.name for f in real]
    assert [f.default for f in FIELDS] == [f.default for f in real]
    assert [f.annotation for f in FIELDS] == [f.type for f in real]  # strings (from __future__ import annotations)
    assert {f.name: f.choices for f in FIELDS if f.choices} == {
        "network": NETWORKS, "activation": ACTIVATIONS, "policy_objective": POLICY_OBJECTIVES}
    doc = " ".join(PPOConfig.__doc__.split())
    for f in FIELDS:
        assert f.doc and " ".join(f.doc.split()) in doc.replace("*leaf*, ", ""), f.name


def test_train_help_is_short_and_says_where_defaults_come_from(capsys):
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0
    assert len(out.splitlines()) <= 125  # was 151
    assert "--config.learning-rate" not in out and "--env-name" not in out.replace("spelled --env-name", "")
    assert "see module docstring" not in out and "--print-config" in out
    assert "(default: --env's, else 0.00025)" in " ".join(out.split()).replace("│ ", "")


def test_dotted_and_env_name_spellings_are_still_accepted():
    cmd = cli.parse(["train", "--config.learning_rate", "1e-3", "--config.no-anneal-lr", "--config.env-name",
                     "Acrobot-v1", "--num_envs", "8"])
    assert cli.requested_config(cmd) == load_config("Acrobot-v1").replace(learning_rate=1e-3, anneal_lr=False,
                                                                          num_envs=8)
    assert cli.parse(["train", "--env-name=Pendulum-v1"]).env == "Pendulum-v1"


def test_print_config_shows_the_resolved_config_as_toml_and_trains_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "train", "--env", "Acrobot-v1", "--learning-rate", "1e-3", "--num-seeds", "3",
                             "--print-config")
    assert code == 0, err
    assert "976 updates x 512 steps" in out and "3 seed(s)" in out and not list(tmp_path.iterdir())
    (tmp_path / "printed.toml").write_text(out)
    assert load_config(str(tmp_path / "printed.toml")) == load_config("Acrobot-v1").replace(learning_rate=1e-3)
    code, out, err = run_cli(capsys, "train", "--env", "DeepSea-bsuite", "--env-kwargs", '{"size": 6}',
                             "--print-config")
    assert code == 0, err
    (tmp_path / "kwargs.toml").write_text(out)
    assert load_config(str(tmp_path / "kwargs.toml")) == PPOConfig(env_name="DeepSea-bsuite", env_kwargs={"size": 6})


def test_print_config_of_a_run_is_its_config(trained_run, capsys, tmp_path):
    code, out, err = run_cli(capsys, "train", "--resume", trained_run, "--print-config")
    assert code == 0, err
    (tmp_path / "run.toml").write_text(out)
    assert load_config(str(tmp_path / "run.toml")) == PPOConfig.from_dict(
        json.loads((trained_run / "config.json").read_text()))


@pytest.mark.timeout(180)
def test_train_header_names_the_device_and_compile_time_is_reported_apart(capsys, tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = run_cli(capsys, *[a for a in TRAIN if a != "--quiet"], "--logdir", run_dir, "--stop-after", "5")
    assert code == 0, err
    header = out.splitlines()[0]
    assert header.startswith("Training CartPole-v1 on cpu (") and "compiling" not in header
    assert re.search(r"^compiling\.\.\. compiled in \d+\.\d s$", out, re.M), out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["compile_seconds"] >= 0 and summary["train_seconds"] > 0
    assert summary["wall_seconds"] >= summary["train_seconds"]
    assert summary["steps_per_second"] == pytest.approx(5 * 64 * 2 / summary["train_seconds"], rel=0.02)
    assert "compiling, then" in out and "steps/s over all seeds" in out


def test_gif_without_pygame_names_the_render_extra(monkeypatch):
    from purejaxppo.runs.plotting import check_gif_support

    monkeypatch.setitem(sys.modules, "pygame", None)  # import pygame -> ModuleNotFoundError
    with pytest.raises(ValueError, match=r"needs pygame, .*pip install 'purejaxppo\[render\]'"):
        check_gif_support(PPOConfig(env_name="CartPole-v1"))


def write_metrics(run_dir: Path, returns: list[list[float | None]]) -> Path:
    """A run directory with only a metrics.jsonl: returns[update][seed], None for no finished episode."""
    run_dir.mkdir(parents=True)
    lines = [json.dumps({"update": u + 1, "seed": s, "env_steps": 64 * (u + 1), "episode_return": r})
             for u, row in enumerate(returns) for s, r in enumerate(row)]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return run_dir


def test_plot_of_one_seed_promises_no_band_and_reads_1_seed(tmp_path):
    from purejaxppo.runs.plotting import draw_runs

    run = write_metrics(tmp_path / "one", [[float(u)] for u in range(100)])
    ax = draw_runs([run]).axes[0]
    assert "bootstrap" not in ax.get_title() and not ax.collections  # no band, no promise of one
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["one (1 seed)"]
    assert "moving average over 2 updates" in ax.get_title()  # default: about 1/50 of the 100 updates
    assert "not smoothed" in draw_runs([run], window=1).axes[0].get_title()


def test_plot_bridges_updates_with_no_episode_and_draws_the_iqm_apart(tmp_path):
    from purejaxppo.runs.plotting import draw_runs

    returns = [[float(u + s) for s in range(4)] for u in range(30)]
    returns[10] = [None] * 4  # no seed finished an episode in update 11
    run = write_metrics(tmp_path / "four", returns)
    ax = draw_runs([run], window=1).axes[0]
    mean, iqm_line = ax.get_lines()
    assert np.isfinite(mean.get_ydata()).all() and len(mean.get_xdata()) == 29  # bridged, not a gap
    assert mean.get_linestyle() == "-" and iqm_line.get_linestyle() == ":"
    assert iqm_line.get_linewidth() < mean.get_linewidth()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["four: mean of 4 seeds", "four: IQM"]
    assert "95% bootstrap CI" in ax.get_title() and len(ax.collections) == 1


@pytest.mark.timeout(300)
def test_compare_table_matches_load_policy(trained_run, capsys, tmp_path):
    import jax

    from purejaxppo import load_policy
    from purejaxppo.runs.compare import compare_runs
    from purejaxppo.runs.plotting import bootstrap_ci, iqm

    other = tmp_path / "other"
    code, _, err = run_cli(capsys, *TRAIN, "--seed", "1", "--logdir", other)
    assert code == 0, err
    empty = tmp_path / "empty"  # a run directory with no checkpoint yet
    empty.mkdir()
    for name in ("config.json", "run.json"):
        (empty / name).write_text((trained_run / name).read_text())

    results = compare_runs([trained_run, other, empty], episodes=4, eval_seed=0)
    key = jax.random.key(0)
    for result, run in zip(results[:2], (trained_run, other)):
        direct = np.array([float(np.mean(load_policy(run, seed_index=s).evaluate(4, key))) for s in range(2)])
        np.testing.assert_allclose(result.returns, direct, rtol=1e-6)
        stats = result.stats()
        low, high = bootstrap_ci(direct[:, None])
        assert stats["mean"] == pytest.approx(direct.mean()) and stats["iqm"] == pytest.approx(float(iqm(direct)))
        assert (stats["ci_low"], stats["ci_high"]) == pytest.approx((low[0], high[0]))
        assert result.steps_per_seed == 1280 and result.note is None
    assert results[2].returns is None and results[2].note == "no checkpoint yet"

    code, out, err = run_cli(capsys, "compare", trained_run, other, empty, "--episodes", "4")
    assert code == 0 and "Traceback" not in err, err
    header, first, second, third = out.splitlines()[2:6]
    assert header.split()[:8] == ["run", "env", "seeds", "steps/seed", "wall", "s", "return", "IQM"]
    assert header.split()[-1] == "seed"  # the only setting that differs (run.json)
    assert f"{results[0].stats()['mean']:.2f}" in first and "1,280" in first and first.split()[-1] == "0"
    assert f"{results[1].stats()['iqm']:.2f}" in second and second.split()[-1] == "1"
    assert "[1]" in third and third.split()[4:9] == ["-"] * 5
    assert f"[1] {empty}: no checkpoint yet" in out
    code, out, _ = run_cli(capsys, "compare", trained_run, empty, "--episodes", "4", "--csv")
    rows = out.splitlines()
    assert code == 0 and rows[0].startswith("run,env,seeds,update,steps_per_seed,wall_seconds,return_mean")
    assert rows[1].split(",")[3:5] == ["20", "1280"] and rows[2].endswith("no checkpoint yet")
    code, out, _ = run_cli(capsys, "compare", trained_run, "--episodes", "4", "--markdown")
    assert code == 0 and "| run | env | seeds |" in out


# ------------------------------------------------------------------------------------------------ the help pages
HELP_PAGES = [[], ["train"], ["pbt"], ["eval"], ["export"], ["plot"], ["compare"], ["list-envs"]]


@pytest.mark.parametrize("command", HELP_PAGES, ids=lambda c: " ".join(c) or "purejaxppo")
def test_help_breaks_no_sentence(capsys, monkeypatch, command):
    """tyro keeps a docstring's line break when the next line starts with anything but a letter (an attribute
    docstring's indented continuation, "--quantile", "95%"), which --help shows as a break inside the sentence. Drawn
    so wide that nothing wraps, every line of help text must end a sentence (or be a flag with its help below)."""
    monkeypatch.setenv("COLUMNS", "1000")
    code, out, _ = run_cli(capsys, *command, "--help")
    assert code == 0
    lines = out.splitlines()
    rule = lambda line: set(line.strip()) <= set("─-╭╮╰╯│ ")  # noqa: E731
    for i, line in enumerate(lines):
        text = line.strip().strip("│").strip()
        if not text or line.startswith("usage:") or "╭" in line or rule(line) or i + 1 < len(lines) and rule(
                lines[i + 1]) and lines[i + 1].strip():
            continue  # a box's border or title (drawn with "─" on a terminal, "-" when not)
        if text.endswith("show this help message and exit") or (text.startswith(("-", "[")) and "  " not in text):
            continue  # -h, and a flag whose help is on the next line
        assert text.endswith((".", ")", ":")), f"{' '.join(command)} --help breaks a sentence: {text!r}"


def fake_run(run_dir: Path, env_name: str) -> Path:
    """A run directory with config.json and run.json only (compare notes it: no checkpoint yet)."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(PPOConfig(env_name=env_name).to_dict()))
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_dir.name, "num_seeds": 1, "seed": 0}))
    return run_dir


def test_compare_of_a_file_is_an_error(capsys, tmp_path):
    (tmp_path / "afile").write_text("")
    code, out, err = run_cli(capsys, "compare", fake_run(tmp_path / "run", "CartPole-v1"), tmp_path / "afile")
    assert code == 2 and out == ""
    assert err == f"error: compare takes run directories: {tmp_path / 'afile'} is not a directory\n"


def test_compare_warns_when_the_runs_are_on_different_environments(capsys, tmp_path):
    cartpole, acrobot = fake_run(tmp_path / "c", "CartPole-v1"), fake_run(tmp_path / "a", "Acrobot-v1")
    note = f"The runs are on different environments ({cartpole}: CartPole-v1, {acrobot}: Acrobot-v1): their returns"
    for style in ([], ["--markdown"], ["--csv"]):
        code, out, err = run_cli(capsys, "compare", cartpole, acrobot, *style)
        assert code == 0, err
        assert err.startswith(f"warning: {note}") and err.count("\n") == 1, err
        assert (note in out) == (style != ["--csv"])  # the table's footer says it too (a CSV has no footer)
    code, out, err = run_cli(capsys, "compare", cartpole, fake_run(tmp_path / "c2", "CartPole-v1"))
    assert code == 0 and err == "" and "different environments" not in out


@pytest.mark.timeout(180)
def test_export_out_under_a_file_says_it_is_a_file(trained_run, capsys, tmp_path):
    from purejaxppo.runs.export import export_policy

    run, afile = trained_run, tmp_path / "afile"
    afile.write_text("")
    code, out, err = run_cli(capsys, "export", run, "--format", "stablehlo", "--out", afile / "x" / "policy")
    assert code == 2 and err == f"error: --out {afile / 'x' / 'policy'}: {afile} is a file, not a directory\n"
    code, out, err = run_cli(capsys, "export", run, "--format", "stablehlo", "--out", tmp_path)
    assert code == 2 and err == f"error: --out {tmp_path} is a directory; give the path of the file to write\n"
    with pytest.raises(ValueError, match=re.escape(f"out {afile / 'x'}: {afile} is a file, not a directory")):
        export_policy(run, "stablehlo", out=afile / "x")
    assert afile.read_text() == "" and [p.name for p in tmp_path.iterdir()] == ["afile"]


@pytest.mark.timeout(180)
def test_stop_and_resume_leave_no_lock_and_a_killed_processs_lock_is_reported(capsys, tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = run_cli(capsys, *TRAIN, "--logdir", run_dir, "--stop-after", "5")
    assert code == 0 and err == "" and not (run_dir / ".lock").exists()
    code, out, err = run_cli(capsys, "train", "--resume", run_dir, "--stop-after", "10")
    assert code == 0 and err == "" and "lock" not in out and not (run_dir / ".lock").exists()
    (run_dir / ".lock").write_text("pid 999999 on elsewhere since 2020-01-01T00:00:00\n")  # a SIGKILLed holder's
    code, out, err = run_cli(capsys, "train", "--resume", run_dir, "--quiet")
    assert code == 0 and err == (f"warning: {run_dir / '.lock'} was left by a process that did not exit cleanly "
                                 "(pid 999999 on elsewhere since 2020-01-01T00:00:00); taken over\n")
    assert not (run_dir / ".lock").exists()
