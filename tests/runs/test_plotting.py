"""Plots: every title lies inside its figure (a long one is wrapped, not cut at both ends)."""

import json
from pathlib import Path

import numpy as np
import pytest

from purejaxppo.runs.plotting import draw_lineage, draw_runs


def write_metrics(run_dir: Path, num_updates: int, num_seeds: int) -> Path:
    """A run directory with only a metrics.jsonl of rising returns."""
    run_dir.mkdir(parents=True)
    lines = [json.dumps({"update": u + 1, "seed": s, "env_steps": 512 * (u + 1), "episode_return": u + 3.0 * s})
             for u in range(num_updates) for s in range(num_seeds)]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return run_dir


def assert_inside(fig, text):
    box, page = text.get_window_extent(), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, (
        f"{text.get_text()!r} spans x {box.x0:.0f}..{box.x1:.0f}, y {box.y0:.0f}..{box.y1:.0f}; the figure "
        f"{page.x0:.0f}..{page.x1:.0f} x {page.y0:.0f}..{page.y1:.0f}")


@pytest.mark.parametrize("title", [None, "CartPole-v1, 8 seeds each, learning rate 2.5e-4 (the shipped config) against "
                                         "1e-3, smoothed over 10 updates, 95% bootstrap CI of the mean shaded"])
def test_a_learning_curves_title_lies_inside_the_figure(tmp_path, title):
    """The default title with smoothing and a band ("Learning curves (shaded: 95% bootstrap CI of the mean over
    seeds; moving average over 10 updates)") is wider than the 7-inch figure at 10 points."""
    run = write_metrics(tmp_path / "cartpole-lr1e-3", num_updates=500, num_seeds=4)
    fig = draw_runs([run], window=10, title=title)
    heading = fig.axes[0].title
    assert_inside(fig, heading)
    words = heading.get_text().split()
    assert words == (title.split() if title else "Learning curves (shaded: 95% bootstrap CI of the mean over seeds; "
                     "moving average over 10 updates)".split())  # wrapped, every word kept


def test_lineage_titles_lie_inside_the_figure():
    population, segments = 4, 3
    rng = np.random.default_rng(0)
    lineage = {"parent": np.full((segments - 1, population), -1),
               "hyperparameters": {"learning_rate": rng.uniform(1e-4, 1e-2, (segments, population))}}
    title = ("playground:CartpoleBalance: PBT, 4 members, searching learning_rate in [1e-4, 1e-2] log-uniformly, "
             "a generation every 100 updates")
    fig = draw_lineage(lineage, np.arange(population, dtype=float), ready_every=100, title=title)
    for text in (fig._suptitle, *(ax.title for ax in fig.axes)):  # _suptitle: the Text (get_suptitle: its string)
        assert_inside(fig, text)
    assert fig._suptitle.get_text().split() == title.split()


def test_plot_runs_records_what_it_shows_without_paths(tmp_path):
    """The PNG names each run's directory (not its path), label, seeds and config, the metric and the window."""
    from purejaxppo.runs.plotting import plot_provenance, plot_runs

    run = write_metrics(tmp_path / "deep" / "cartpole", num_updates=100, num_seeds=2)
    (run / "config.json").write_text(json.dumps({"env_name": "CartPole-v1", "total_timesteps": 51200}))
    (run / "run.json").write_text(json.dumps({"num_seeds": 2}))
    png = plot_runs([run], tmp_path / "curves.png", labels=["shipped"])
    record = plot_provenance(png)
    assert record == {"metric": "episode_return", "window": 2, "title": None, "runs": [
        {"run": "cartpole", "label": "shipped", "num_seeds": 2,
         "config": {"env_name": "CartPole-v1", "total_timesteps": 51200}}]}
    assert str(tmp_path) not in json.dumps(record)
    with pytest.raises(ValueError, match="holds no 'purejaxppo plot' record"):
        plot_provenance(draw_and_save(tmp_path))


def draw_and_save(tmp_path):
    from purejaxppo.runs.plotting import save_png

    return save_png(draw_runs([write_metrics(tmp_path / "plain", 10, 1)]), tmp_path / "plain.png")
