"""``purejaxppo sweep``: settings x seeds in one program, a run directory per setting that the other commands read,
a ranked table whose numbers are recomputed here from each run's own metrics.jsonl, and one-line errors for grids
that cannot be swept."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from cli_helpers import TINY, one_error_line, records, run_cli

from purejaxppo import load_policy
from purejaxppo.runs.logs import curves, final_returns


@pytest.mark.timeout(300)
def test_a_two_value_grid_writes_a_run_per_setting_and_a_ranked_table(tmp_path, capsys):
    logdir = tmp_path / "sweep"
    code, out, err = run_cli(capsys, "sweep", *TINY, "--grid", "learning_rate=1e-3,3e-4", "--num-seeds", "2",
                             "--logdir", logdir)
    assert code == 0, err
    summary = json.loads((logdir / "summary.json").read_text())
    table = (logdir / "summary.md").read_text()
    assert "0.001" in table and "0.0003" in table and "**best**" in table and table.strip() in out
    ranked = summary["ranked"]
    assert len(ranked) == 2
    assert sorted(r["setting"]["learning_rate"] for r in ranked) == [3e-4, 1e-3]
    assert ranked[0]["final_return"] >= ranked[1]["final_return"] and ranked[0]["best"]
    for row in ranked:  # the table's numbers, again from the run's own metrics
        run_dir = logdir / row["run_dir"]
        finals = final_returns(curves(records(run_dir))[1])
        assert len(finals) == 2
        np.testing.assert_allclose(row["final_return"], finals.mean(), rtol=1e-9)
        low, high = row["ci95"]
        assert low < row["final_return"] < high
        assert json.loads((run_dir / "config.json").read_text())["learning_rate"] == row["setting"]["learning_rate"]
        policy = load_policy(run_dir, seed_index=1)  # what eval, export and compare read
        assert policy.update == 20 and policy.config.learning_rate == row["setting"]["learning_rate"]
    assert (logdir / "curves.png").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["--grid", "num_envs=4,8"], r"num_envs is not a float hyperparameter.*one sweep per value"),
    (["--grid", "learning_rat=1e-3"], r"unknown field 'learning_rat'; sweepable: .*learning_rate"),
    (["--grid", "learning_rate=fast"], r"learning_rate = 'fast' is not a number"),
    (["--grid", "learning_rate=1e-3", "--grid", "learning-rate=3e-4"], r"gives learning_rate twice"),
    (["--grid", "learning_rate=-1"], r"setting \{'learning_rate': -1.0\}: .*learning_rate"),
    ([], r"give the settings with --grid"),
    (["--grid", "clip_param="], r"expected NAME=A,B,\.\.\. with numbers"),
])
def test_a_grid_that_cannot_be_swept_is_one_line_and_creates_nothing(tmp_path, capsys, args, message):
    logdir = tmp_path / "sweep"
    code, _, err = run_cli(capsys, "sweep", *TINY, *args, "--logdir", logdir)
    assert code == 2
    assert re.search(message, one_error_line(err)), err
    assert not logdir.exists()


def test_a_logdir_that_is_not_empty_is_refused_without_offering_a_resume(tmp_path, capsys):
    """sweep has no --resume: its message must not offer one (it said "continue it with --resume")."""
    logdir = tmp_path / "sweep"
    logdir.mkdir()
    (logdir / "00-learning_rate=0.0001").mkdir()  # a sweep killed while it wrote its results
    code, _, err = run_cli(capsys, "sweep", *TINY, "--grid", "learning_rate=1e-4,3e-4", "--logdir", logdir)
    line = one_error_line(err)
    assert code == 2 and f"--logdir {logdir} is not empty: a sweep writes into a new directory" in line
    assert "--resume" not in line


def test_a_list_file_gives_the_settings(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[setting]]\nnetwork = 3\n")
    code, _, err = run_cli(capsys, "sweep", *TINY, "--list", bad, "--logdir", tmp_path / "s")
    assert code == 2 and "network is not a float hyperparameter" in one_error_line(err)
    empty = tmp_path / "empty.toml"
    empty.write_text("# no settings\n")
    code, _, err = run_cli(capsys, "sweep", *TINY, "--list", empty, "--logdir", tmp_path / "s")
    assert code == 2 and "expected [[setting]] tables" in err
    # keys beside the tables were silently dropped: a top-level value, a misspelt table
    beside = tmp_path / "beside.toml"
    beside.write_text("num_seeds = 8\n[[setting]]\nlearning_rate = 1e-3\n[settting]\ngamma = 0.9\n")
    code, _, err = run_cli(capsys, "sweep", *TINY, "--list", beside, "--logdir", tmp_path / "s")
    assert code == 2 and "unknown top-level key(s) ['num_seeds', 'settting']; the file holds only [[setting]]" in err
