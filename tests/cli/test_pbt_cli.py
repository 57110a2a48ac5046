"""`purejaxppo pbt`: the run directory, exact resume from a checkpoint taken mid-generation, the same bits as the
in-process `pbt`, the lineage files, the other commands on a PBT run, and one-line errors."""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest

from purejaxppo import cli
from purejaxppo.runs.checkpoint import Checkpointer, checkpoint_dir
from purejaxppo.runs.policy import load_policy
from purejaxppo.scale.population import pbt

# 20 updates, a generation every 5, checkpoints every 7: the chunks end mid-generation (updates 7 and 14)
TINY = ["--num-envs", "4", "--num-steps", "16", "--total-timesteps", "1280", "--population", "4", "--ready-every",
        "5", "--search", "learning_rate=1e-4:1e-2", "entropy_coeff=0,0.01,0.05", "--checkpoint-every", "7", "--quiet"]
# the same run without --search (a second --search is refused)
SMALL = ["--num-envs", "4", "--num-steps", "16", "--total-timesteps", "1280", "--ready-every", "5", "--quiet"]


def pbt_cli(*argv) -> int:
    return cli.main(["pbt", *TINY, *map(str, argv)])


def final_digest(run_dir) -> str:
    with Checkpointer(checkpoint_dir(run_dir), read_only=True) as ckpt:
        return ckpt.read_meta()["sha256"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("pbt") / "reference"
    assert pbt_cli("--logdir", run_dir) == 0
    return run_dir


@pytest.mark.timeout(300)
def test_run_directory_and_lineage(reference, capsys):
    names = {p.name for p in reference.iterdir()}
    assert {"config.json", "run.json", "metrics.jsonl", "lineage.json", "lineage.png", "checkpoints",
            "summary.json"} <= names
    run = json.loads((reference / "run.json").read_text())
    assert run["kind"] == "pbt" and run["population"] == 4 and run["ready_every"] == 5
    lineage = json.loads((reference / "lineage.json").read_text())
    assert lineage["updates_done"] == 20 and np.asarray(lineage["parent"]).shape == (3, 4)
    assert set(lineage["hyperparameters"]) == {"learning_rate", "entropy_coeff"}
    assert all(v is not None for row in lineage["hyperparameters"]["learning_rate"] for v in row)
    records = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 20 * 4 and {r["seed"] for r in records} == {0, 1, 2, 3}
    summary = json.loads((reference / "summary.json").read_text())
    best = summary["pbt"]["best_member"]
    assert summary["complete"] and best == int(np.nanargmax(
        [np.nan if v is None else v for v in summary["final_episode_return"]["per_seed"]]))
    assert summary["pbt"]["best_schedule"]["learning_rate"] == [
        row[best] for row in lineage["hyperparameters"]["learning_rate"]]
    assert (reference / "lineage.png").stat().st_size > 10_000
    assert sorted(int(p.name) for p in checkpoint_dir(reference).iterdir() if p.name.isdigit()) == [14, 20]


@pytest.mark.timeout(300)
def test_stop_mid_generation_and_resume_is_bit_identical(reference, tmp_path):
    run_dir = tmp_path / "stopped"
    assert pbt_cli("--logdir", run_dir, "--stop-after", 7) == 0  # update 7: inside the second segment
    assert json.loads((run_dir / "lineage.json").read_text())["updates_done"] == 7
    assert cli.main(["pbt", "--resume", str(run_dir), "--quiet"]) == 0
    assert final_digest(run_dir) == final_digest(reference)
    for name in ("lineage.json", "metrics.jsonl"):
        assert (run_dir / name).read_text() == (reference / name).read_text(), name


@pytest.mark.timeout(300)
def test_a_run_killed_before_its_summary_and_lineage_gets_them_on_resuming(reference, tmp_path, capsys):
    run_dir = tmp_path / "killed"
    shutil.copytree(reference, run_dir)
    for name in ("summary.json", "lineage.json", "lineage.png"):  # killed after the last checkpoint
        (run_dir / name).unlink()
    assert cli.main(["pbt", "--resume", str(run_dir), "--quiet"]) == 0
    assert (run_dir / "lineage.json").read_text() == (reference / "lineage.json").read_text()
    summary, expected = (json.loads((d / "summary.json").read_text()) for d in (run_dir, reference))
    assert summary["pbt"] == expected["pbt"] and summary["final_episode_return"] == expected["final_episode_return"]
    assert (run_dir / "lineage.png").exists()
    capsys.readouterr()
    assert cli.main(["pbt", "--resume", str(run_dir)]) == 0
    assert "already at update 20 of 20: nothing to do" in capsys.readouterr().out


@pytest.mark.timeout(300)
def test_the_command_line_computes_what_pbt_computes(reference):
    config = cli.requested_config(cli.parse(["train", *TINY[:6]]))
    result = pbt(config, 4, {"learning_rate": (1e-4, 1e-2), "entropy_coeff": [0.0, 0.01, 0.05]}, 5,
                 jax.random.key(0))
    lineage = json.loads((reference / "lineage.json").read_text())
    np.testing.assert_array_equal(result.lineage["parent"], lineage["parent"])
    np.testing.assert_array_equal(result.lineage["hyperparameters"]["learning_rate"],
                                  np.float32(lineage["hyperparameters"]["learning_rate"]))
    member = load_policy(reference, seed_index=3)  # eval / export / compare read a PBT run's members as seeds
    for a, b in zip(jax.tree.leaves(member.params), jax.tree.leaves(jax.tree.map(lambda x: x[3], result.state.params))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.timeout(120)
def test_errors_are_one_line(reference, tmp_path, capsys):
    cases = [
        (["pbt", *SMALL, "--search", "lr=1e-4:1e-3", "--logdir", str(tmp_path / "a")], "cannot search 'lr'"),
        (["pbt", *SMALL, "--search", "gamma=abc", "--logdir", str(tmp_path / "a")], "expected NAME=LOW:HIGH"),
        (["pbt", *TINY, "--ready-every", "3", "--logdir", str(tmp_path / "a")], "--ready-every 3 must divide"),
        (["pbt", *TINY, "--quantile", "0.7", "--logdir", str(tmp_path / "a")], "--quantile must be in (0, 0.5]"),
        (["pbt", "--resume", str(reference), "--population", "3"], "the run has --population 4, not 3"),
        (["train", "--resume", str(reference)], "this is a PBT run"),
        (["pbt", "--resume", str(tmp_path)], "not a PBT run directory"),
    ]
    for argv, message in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, (argv, err)
    assert not (tmp_path / "a").exists()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("argv, message", [
    (["--search", "learning_rate=1e-4:1e-3", "learning-rate=1e-3,2e-3"],
     "--search gives learning_rate twice ('learning_rate=1e-4:1e-3' and 'learning-rate=1e-3,2e-3')"),
    (["--search", "entropy_coeff=0,0.01", "entropy_coeff=0:0.1"], "--search gives entropy_coeff twice"),
    (["--search", "learning_rate=1e-4:1e-3", "--search", "entropy_coeff=0,0.01"], "--search is given more than once"),
    (["--search"], "--search needs at least one NAME=LOW:HIGH or NAME=A,B,..."),
    (["--search", "--population", "4"], "--search needs at least one"),
    (["--population", "1"], "--population must be an integer >= 2 (PBT copies the weights of its best members"),
    (["--population", "0"], "--population must be an integer >= 2"),
])
def test_search_and_population_are_refused_in_one_line_before_anything_is_written(tmp_path, capsys, argv, message):
    assert cli.main(["pbt", *SMALL, *argv, "--logdir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.timeout(300)
def test_divergence_names_the_last_finite_checkpoint(tmp_path, capsys, monkeypatch):
    """A PBT run that goes non-finite in its third chunk stops there, and summary.json and the error line name the
    checkpoint of update 14 (the last finite one), not the diverged update's, which was never saved."""
    from purejaxppo.cli.pbt import PbtProgram

    real_run, calls = PbtProgram.run, []

    def run_diverging_in_chunk_3(self, state, n, update, bar):  # as if update 16 of member 2 went non-finite
        state, rows = real_run(self, state, n, update, bar)
        calls.append(n)
        if len(calls) == 3:
            rows = {k: np.array(v) for k, v in rows.items()}
            rows["nonfinite"][1, 2], rows["policy_loss"][1, 2] = 3, np.nan
        return state, rows

    monkeypatch.setattr(PbtProgram, "run", run_diverging_in_chunk_3)
    run_dir = tmp_path / "run"
    assert pbt_cli("--logdir", run_dir) == cli.EXIT_DIVERGED
    err = capsys.readouterr().err.strip().splitlines()[-1]
    last = checkpoint_dir(run_dir).resolve() / "14"
    assert "training diverged at update 16 (seed 2)" in err and f"the last finite checkpoint is {last}" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["checkpoint"] == str(last) and summary["updates"] == 16


def test_resume_without_a_checkpoint_says_it_starts_again(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert pbt_cli("--logdir", run_dir, "--stop-after", "1", "--checkpoint-every", "5") == 0
    for path in checkpoint_dir(run_dir).iterdir():  # as if killed before the first checkpoint
        shutil.rmtree(path)
    capsys.readouterr()
    assert cli.main(["pbt", "--resume", str(run_dir), "--stop-after", "1"]) == 0
    assert f"Resuming {run_dir}: no checkpoint yet, starting from update 0" in capsys.readouterr().out
