"""Learning curves from run directories: per run, the mean over seeds with a 95% bootstrap band, and the IQM.

For each run and each update: the mean over seeds (solid line); with 2 or more seeds, a 95% percentile-bootstrap
confidence interval of that mean (resampling seeds with replacement, shaded); with 4 or more seeds, the
interquartile mean over seeds (thin dotted line: the mean of the middle 50% of seeds, Agarwal et al. 2021, robust to
outlier seeds; with fewer than 4 seeds it equals the mean, so it is not drawn). Each seed's curve is first smoothed
by a trailing moving average over `window` updates (default `auto_window`: about 1/50 of the updates, 1 for runs of
fewer than 75 updates). Updates where a seed finished no episode (NaN) are skipped for that seed, and updates where
no seed has a value are bridged (the lines join the neighbouring points, no gap that looks like a dashed line).
Several runs share one figure.

`draw_lineage` draws a population-based training run (`purejaxppo pbt`'s lineage.png): each member's final return,
and each searched hyperparameter over the updates with the copies marked.
"""

from __future__ import annotations

import contextlib
import json
import os
import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import EngFormatter
from PIL import Image  # matplotlib's own dependency: reading a PNG's text chunks back

from purejaxppo.runs.policy import LoadedPolicy
from purejaxppo.envs.wrappers import EpisodeStatisticsState
from purejaxppo.runs.logs import CONFIG_FILE, METRICS_FILE, RUN_FILE, curves, read_json, read_records

NUM_BOOTSTRAP = 1000


class Curve(NamedTuple):
    """One run's aggregated curve; every array is [U] over updates."""

    label: str
    env_steps: np.ndarray
    mean: np.ndarray
    low: np.ndarray  # 2.5th percentile of the bootstrapped mean
    high: np.ndarray  # 97.5th percentile
    iqm: np.ndarray
    num_seeds: int


def iqm(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Interquartile mean along `axis`: drop floor(n/4) values from each end, average the rest (NaNs ignored)."""
    values = np.moveaxis(np.asarray(values, np.float64), axis, 0)
    out = np.full(values.shape[1:], np.nan)
    for idx in np.ndindex(out.shape):
        column = values[(slice(None), *idx)]
        column = np.sort(column[np.isfinite(column)])
        cut = column.size // 4
        if column.size:
            out[idx] = column[cut:column.size - cut].mean()
    return out


def bootstrap_ci(values: np.ndarray, num_samples: int = NUM_BOOTSTRAP, level: float = 0.95, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap interval of the mean over axis 0 of ``values [S, U]`` (seeds resampled jointly across
    updates). Returns ``(low [U], high [U])``; NaN where no seed has a value."""
    values = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.shape[0], size=(num_samples, values.shape[0]))
    with warnings.catch_warnings():  # all-NaN columns (no seed finished an episode yet) stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(values[idx], axis=1)  # [B, U]
        tail = (1.0 - level) / 2
        return np.nanquantile(means, tail, axis=0), np.nanquantile(means, 1.0 - tail, axis=0)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over the last axis, NaN-aware (window 1: unchanged)."""
    if window <= 1:
        return values
    finite = np.isfinite(values)
    total = np.cumsum(np.where(finite, values, 0.0), axis=-1)
    count = np.cumsum(finite, axis=-1)
    total[..., window:] = total[..., window:] - total[..., :-window]
    count[..., window:] = count[..., window:] - count[..., :-window]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


SMOOTHING_FRACTION = 50  # auto_window: a moving average over about 1/50 of the updates


def auto_window(num_updates: int) -> int:
    """The default smoothing window for a run of `num_updates` updates: ``round(num_updates / 50)``, at least 1."""
    return max(1, round(num_updates / SMOOTHING_FRACTION))


def run_label(run_dir: Path) -> str:
    """``<run dir name> (<env>)``; the env comes from the run's config.json when present."""
    try:
        env = read_json(run_dir / CONFIG_FILE)["env_name"]
    except (ValueError, KeyError, TypeError):
        return run_dir.name
    return run_dir.name if env in run_dir.name else f"{run_dir.name} ({env})"


def load_curve(run_dir: str | Path, metric: str = "episode_return", window: int = 1, label: str | None = None
               ) -> Curve:
    """Aggregate one run's metrics.jsonl into a `Curve`."""
    run_dir = Path(run_dir)
    records = read_records(run_dir / METRICS_FILE)
    if not records:
        raise ValueError(f"{run_dir} has no metrics ({METRICS_FILE} is missing or empty)")
    steps, values = curves(records, metric)
    values = smooth(values, window)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=0)
    low, high = bootstrap_ci(values)
    return Curve(label or run_label(run_dir), steps, mean, low, high, iqm(values, 0), values.shape[0])


def _finite(x: np.ndarray, *ys: np.ndarray) -> list[np.ndarray]:
    """`x` and `ys` at the points where every y is finite (lines bridge the updates with no value)."""
    keep = np.logical_and.reduce([np.isfinite(y) for y in ys])
    return [x[keep], *(y[keep] for y in ys)]


TITLE_MARGIN = 4  # pixels kept free between a title and the figure's edge (or its column's)


def fit_title(text: Text, bounds: tuple[float, float] | None = None) -> bool:
    """Wrap a centred title (an axes title or a suptitle) onto as few lines of about equal length as keep it
    within `bounds` (left and right, in the figure's pixels; default: the whole figure). A title wider than its
    figure is otherwise cut at both ends. Returns whether it was rewrapped (lay the figure out again then)."""
    left, right = (text.figure.bbox.x0, text.figure.bbox.x1) if bounds is None else bounds
    extent = text.get_window_extent()
    centre = (extent.x0 + extent.x1) / 2
    room = 2 * min(centre - left, right - centre) - 2 * TITLE_MARGIN
    if extent.x0 >= left + TITLE_MARGIN and extent.x1 <= right - TITLE_MARGIN:
        return False
    words = " ".join(text.get_text().split())
    for lines in range(2, len(words.split()) + 1):
        chars = -(-len(words) // lines)  # about equal lines: widen until `lines` lines hold it
        while len(wrapped := textwrap.wrap(words, chars, break_long_words=False)) > lines:
            chars += 1
        text.set_text("\n".join(wrapped))
        if text.get_window_extent().width <= room:
            break
    return True


def fit_titles(fig: Figure, titles: Sequence[tuple[Text, tuple[float, float] | None]]) -> None:
    """`tight_layout`, then wrap every title that sticks out (`fit_title`) and lay the figure out again."""
    fig.tight_layout()
    for _ in range(3):  # a rewrapped title is taller: the layout moves the axes, which moves the titles a little
        if not any([fit_title(text, bounds) for text, bounds in titles]):
            break
        fig.tight_layout()


def default_window(run_dirs: Sequence[str | Path]) -> int:
    """The smoothing window when none is given: `auto_window` of the longest run's update count."""
    return auto_window(max(len({r["update"] for r in read_records(Path(d) / METRICS_FILE)}) for d in run_dirs))


def draw_runs(run_dirs: Sequence[str | Path], metric: str = "episode_return", window: int | None = None,
              labels: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """Every run's curve on one `matplotlib.figure.Figure` (no pyplot, so the caller's backend is left alone).

    `window`: the moving-average window in updates (1: none; None: `auto_window` of the longest run).
    """
    if labels is not None and len(labels) != len(run_dirs):
        raise ValueError(f"--labels needs one label per run ({len(run_dirs)}), got {len(labels)}")
    window = default_window(run_dirs) if window is None else window
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    max_seeds = 0
    for i, run_dir in enumerate(run_dirs):
        c = load_curve(run_dir, metric, window, None if labels is None else labels[i])
        max_seeds = max(max_seeds, c.num_seeds)
        color = f"C{i % 10}"
        seeds = f"{c.num_seeds} seeds" if c.num_seeds > 1 else "1 seed"
        ax.plot(*_finite(c.env_steps, c.mean), color=color, lw=1.8,
                label=f"{c.label}: mean of {seeds}" if c.num_seeds > 1 else f"{c.label} ({seeds})")
        if c.num_seeds > 1:
            ax.fill_between(*_finite(c.env_steps, c.low, c.high), color=color, alpha=0.2, lw=0)
        if c.num_seeds >= 4:
            ax.plot(*_finite(c.env_steps, c.iqm), color=color, lw=1.0, ls=":", label=f"{c.label}: IQM")
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 100k, 1M
    ax.set_xlabel("environment steps (per seed)")
    ax.set_ylabel(metric.replace("_", " "))
    notes = [f"moving average over {window} updates" if window > 1 else "not smoothed"]
    if max_seeds > 1:
        notes.insert(0, "shaded: 95% bootstrap CI of the mean over seeds")
    heading = ax.set_title(title or f"Learning curves ({'; '.join(notes)})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fit_titles(fig, [(heading, None)])
    return fig


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path, metric: str = "episode_return",
              window: int | None = None, labels: Sequence[str] | None = None, title: str | None = None) -> Path:
    """Draw every run's curve on one figure (`draw_runs`) and save it as a PNG at `out`. Returns the path.

    The PNG says what it shows: its text chunk `PROVENANCE_KEY` holds (as JSON) the metric, the smoothing window, the
    title given, and per run its directory's name, label, seed count (run.json) and config (config.json); no path
    (`plot_provenance` reads it back)."""
    window = default_window(run_dirs) if window is None else window
    fig = draw_runs(run_dirs, metric, window, labels, title)
    runs = []
    for i, run_dir in enumerate(map(Path, run_dirs)):
        run, config = ((read_json(run_dir / name) if (run_dir / name).is_file() else None)
                       for name in (RUN_FILE, CONFIG_FILE))
        runs.append({"run": run_dir.resolve().name, "label": None if labels is None else labels[i],
                     "num_seeds": (run or {}).get("num_seeds"), "config": config})
    record = {"metric": metric, "window": window, "title": title, "runs": runs}
    return save_png(fig, out, metadata={PROVENANCE_KEY: json.dumps(record)})


PROVENANCE_KEY = "purejaxppo plot"


def plot_provenance(png: str | Path) -> dict:
    """What `plot_runs` recorded in a PNG it wrote (see there); a ValueError for a PNG without the record."""
    with Image.open(png) as image:
        text = image.text.get(PROVENANCE_KEY) if hasattr(image, "text") else None
    if text is None:
        raise ValueError(f"{png} holds no {PROVENANCE_KEY!r} record: purejaxppo plot did not write it")
    return json.loads(text)


def draw_lineage(lineage: dict, final_return: np.ndarray, ready_every: int, title: str | None = None) -> Figure:
    """A population-based training run at a glance: each member's final return (bars, the best one outlined), then
    per searched hyperparameter its value over the updates (one step line per member, in the member's colour), with
    a marker where the member copied another's weights (labelled with the parent's number) and took its perturbed
    value.

    Args:
      lineage: ``{"parent": [G, P], "hyperparameters": {name: [S, P]}}`` (`population.lineage`; NaN values and
        parent -1 where a segment or generation was not reached).
      final_return: ``[P]`` each member's final return (non-finite: no episode finished).
      ready_every: updates per segment (the x axis is in updates).
    """
    parent = np.asarray(lineage["parent"])
    values = {n: np.asarray(v, np.float64) for n, v in lineage["hyperparameters"].items()}
    final = np.asarray(final_return, np.float64)
    population = final.shape[0]
    colours = matplotlib.colormaps["tab10" if population <= 10 else "viridis"]
    colour = [colours(i if population <= 10 else i / max(population - 1, 1)) for i in range(population)]
    fig = Figure(figsize=(4.5 + 4.5 * len(values), 3.6))
    axes = fig.subplots(1, 1 + len(values), squeeze=False)[0]
    ax = axes[0]
    shown = np.where(np.isfinite(final), final, 0.0)
    bars = ax.bar(np.arange(population), shown, color=colour)
    if np.isfinite(final).any():
        best = int(np.nanargmax(np.where(np.isfinite(final), final, -np.inf)))
        bars[best].set_edgecolor("black")
        bars[best].set_linewidth(2)
        ax.set_title(f"final return per member (best: {best})", fontsize=10)
    else:
        ax.set_title("final return per member (no episode finished)", fontsize=10)
    ax.set_xlabel("member")
    ax.set_xticks(np.arange(population))
    ax.grid(alpha=0.3, axis="y")
    for ax, (name, v) in zip(axes[1:], values.items()):
        segments = v.shape[0]
        edges = np.arange(segments + 1) * ready_every
        for i in range(population):
            reached = np.isfinite(v[:, i])
            if not reached.any():
                continue
            last = int(np.flatnonzero(reached)[-1])
            ax.stairs(v[:last + 1, i], edges[:last + 2], color=colour[i], linewidth=1.5, baseline=None)
            for g in np.flatnonzero(parent[:, i] >= 0):
                if g + 1 <= last:
                    x, y = edges[g + 1], v[g + 1, i]
                    ax.plot([x], [y], marker="o", markersize=4, color=colour[int(parent[g, i])],
                            markeredgecolor="black", markeredgewidth=0.5, linestyle="none")
                    if population <= 16:
                        ax.annotate(str(int(parent[g, i])), (x, y), textcoords="offset points", xytext=(2, 3),
                                    fontsize=6)
        finite = v[np.isfinite(v)]
        if finite.size and finite.min() > 0 and finite.max() / finite.min() >= 10:
            ax.set_yscale("log")
        ax.set_title(f"{name} (o: copied member n)", fontsize=10)
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
    column = fig.bbox.width / len(axes)  # each panel's title stays over its own panel
    titles = [(ax.title, (i * column, (i + 1) * column)) for i, ax in enumerate(axes)]
    if title:
        titles.append((fig.suptitle(title, fontsize=11), None))
    fit_titles(fig, titles)
    return fig


def save_png(fig: Figure, out: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Save `fig` as a PNG at `out` (parents created), with `metadata` as its text chunks; a failure is a ValueError
    naming the file. Returns the path."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120, format="png", metadata=metadata)
    except OSError as e:
        with contextlib.suppress(OSError):
            if out.exists() and out.stat().st_size == 0:
                out.unlink()  # no empty PNG left behind
        raise ValueError(f"cannot write the plot to {out}: {e.strerror or e}") from None
    return out


# ------------------------------------------------------------------------------------------------------------ GIFs
# Environments gymnax.visualize.Visualizer can draw (gymnax 1.0.1); the classic-control ones render through
# gymnasium, which needs pygame.
GIF_ENVS = (
    "Acrobot-v1", "CartPole-v1", "Pendulum-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Catch-bsuite",
    "Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "Seaquest-MinAtar", "SpaceInvaders-MinAtar",
    "Pong-misc", "PointRobot-misc", "MetaMaze-misc", "FourRooms-misc",
)
CLASSIC_CONTROL = GIF_ENVS[:5]


def _base_state(state):
    """The unwrapped environment's state inside `envs.EpisodeStatisticsState`."""
    while isinstance(state, EpisodeStatisticsState):
        state = state.env_state
    return state


def play_episode(loaded: LoadedPolicy, key: jax.Array, max_steps: int) -> tuple[list, list[float]]:
    """One episode of a `LoadedPolicy` (feed-forward or recurrent, acting as loaded) in a single environment.

    Returns ``(states, cumulative returns)``: the unwrapped environment state before each step and the return so far
    after it, at most `max_steps` of each.
    """
    env = loaded.setup.env
    step = jax.jit(lambda k, state, action: env.step(k[None], state, action))
    action_mask = jax.jit(env.action_mask)
    key_reset, key_run = jax.random.split(key)
    obs, state = env.reset(key_reset[None])  # a batch of one environment
    carry = loaded.initial_carry(1)
    states, returns, total = [], [], 0.0
    for t in range(max_steps):
        states.append(jax.device_get(_base_state(jax.tree.map(lambda x: x[0], state))))
        key_action, key_env = jax.random.split(jax.random.fold_in(key_run, t))
        carry, action = loaded.act(carry, obs, jnp.asarray([t == 0]), key_action, action_mask(state))
        out = step(key_env, state, action)
        obs, state = out.obs, out.env_state
        total += float(out.reward[0])
        returns.append(total)
        if bool(out.terminated[0] | out.truncated[0]):
            break
    return states, returns


def check_gif_support(config) -> None:
    """Raise a ValueError naming the supported environments if a GIF of `config`'s run cannot be drawn."""
    name = config.env_name
    if name not in GIF_ENVS:
        raise ValueError(f"--gif: gymnax's visualiser cannot draw {name}; it supports {', '.join(GIF_ENVS)}")
    if name in CLASSIC_CONTROL:
        # gymnasium draws with pygame off screen; without these SDL looks for a display and a sound card.
        for var, value in (("SDL_VIDEODRIVER", "dummy"), ("SDL_AUDIODRIVER", "dummy"),
                           ("PYGAME_HIDE_SUPPORT_PROMPT", "1")):
            os.environ.setdefault(var, value)
        try:
            import gymnasium  # noqa: F401
            import pygame  # noqa: F401
        except ModuleNotFoundError as e:
            raise ValueError(f"--gif for {name} renders through gymnasium and needs {e.name}, which the render "
                             "extra installs: pip install 'purejaxppo[render]'") from None


def render_gif(loaded: LoadedPolicy, out: str | Path, key, max_steps: int = 300) -> tuple[Path, int, float]:
    """Render one episode of a `LoadedPolicy` (greedy unless loaded otherwise) to a GIF with gymnax's `Visualizer`.

    Returns ``(path, steps, return)``. Raises a ValueError (see `check_gif_support`) when it cannot be drawn.
    """
    check_gif_support(loaded.config)
    matplotlib.use("Agg")  # the Visualizer draws with pyplot
    from gymnax.visualize import Visualizer  # imports gymnasium: the optional render extra

    states, returns = play_episode(loaded, key, max_steps)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Visualizer(loaded.setup.env.wrapped.unwrapped, loaded.setup.env.params, states, returns).animate(str(out))
    return out, len(states), returns[-1] if returns else 0.0
