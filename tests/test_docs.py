"""Every ```python block in README.md and docs/*.md runs as written.

The blocks of one page run in order in one fresh namespace (so a later block may use an earlier one's names), in a
temporary working directory. A block that cannot run in a test is marked on the line before its fence with
``<!-- test: skip (reason) -->``; a block that needs an optional package with ``<!-- test: requires MODULE -->``
(skipped when MODULE is not installed). Nothing else is exempt.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"<!--\s*test:(.*?)-->")
SKIP = re.compile(r"^\s*skip\s*\((.*\S.*)\)\s*$")
REQUIRES = re.compile(r"^\s*requires\s+([A-Za-z_][\w.]*)\s*$")
PLACEHOLDERS = ("<owner>", "TODO", "TBD", "FIXME", "REFERENCE.md", "XXX")


class Block(NamedTuple):
    page: Path
    line: int  # 1-based line of the first code line
    lang: str
    code: str
    marker: str | None  # the text after "test:" in the comment on the line before the fence


def blocks(page: Path) -> list[Block]:
    lines = page.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if fence is None:
            i += 1
            continue
        indent, lang, start = fence.group(1), fence.group(2), i + 1
        end = start
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        marker = MARKER.search(lines[i - 1]) if i > 0 else None
        code = "\n".join(line.removeprefix(indent) for line in lines[start:end])
        found.append(Block(page, start + 1, lang, code + "\n", marker.group(1) if marker else None))
        i = end + 1
    return found


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_there_are_python_blocks_and_the_pages_exist():
    names = {page_id(p) for p in PAGES}
    for name in ("getting-started", "config", "cli", "architecture", "benchmarks", "scaling", "custom-environments",
                 "trainer", "notebooks", "api"):
        assert f"docs/{name}.md" in names
    assert sum(b.lang == "python" for p in PAGES for b in blocks(p)) >= 10


def test_every_marker_is_a_skip_with_a_reason_or_a_requirement_and_sits_on_a_python_fence():
    for page in PAGES:
        lines = page.read_text().splitlines()
        marked = {b.line - 3 for b in blocks(page) if b.marker is not None and b.lang == "python"}  # 0-based
        for index, line in enumerate(lines):
            for marker in MARKER.finditer(line):
                where = f"{page_id(page)}:{index + 1}"
                text = marker.group(1)
                assert SKIP.match(text) or REQUIRES.match(text), (
                    f"{where}: a test marker must be 'skip (reason)' with a non-empty reason or 'requires MODULE', "
                    f"got {text!r}")
                assert index in marked, f"{where}: a test marker must be on the line right before a ```python fence"


def test_no_placeholder_or_stale_reference_is_left():
    for page in PAGES:
        text = page.read_text()
        for placeholder in PLACEHOLDERS:
            assert placeholder not in text, f"{page_id(page)} contains {placeholder!r}"


def test_the_readme_is_a_front_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def _commands(code: str) -> list[list[str]]:
    """The shell commands of a ```bash block, continuation lines joined and comments dropped, split as a shell would."""
    return [shlex.split(line, comments=True) for line in code.replace("\\\n", " ").splitlines() if line.strip()]


def _options(args: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """``(positionals, {--flag: [values]})`` of a command's arguments (a flag without values: [])."""
    positionals, options, flag = [], {}, None
    for arg in args:
        if arg.startswith("--"):
            flag = arg
            options[flag] = []
        elif flag is None:
            positionals.append(arg)
        else:
            options[flag].append(arg)
    return positionals, options


def _same(shown: list[str], recorded) -> bool:
    """A flag's values as written (strings) against a config value from config.json."""
    if isinstance(recorded, bool) or recorded is None:
        return not shown and recorded is True
    if isinstance(recorded, list):
        return [float(v) for v in shown] == [float(v) for v in recorded]
    if isinstance(recorded, (int, float)):
        return len(shown) == 1 and float(shown[0]) == float(recorded)
    return shown == [str(recorded)]


def test_a_learning_curves_figure_is_what_the_commands_beside_it_make():
    """A page that shows `purejaxppo plot ... --out NAME.png` and the image images/NAME.png: the PNG's own record
    (`plotting.plot_provenance`) names the runs, labels, smoothing and, per run, the seeds and settings the
    `purejaxppo train` commands of that block give (a figure drawn otherwise, or from other runs, fails)."""
    from purejaxppo.configs import load_config
    from purejaxppo.runs.plotting import plot_provenance

    checked = 0
    for page in PAGES:
        images = set(re.findall(r"!\[[^]]*]\(images/([^)]+\.png)\)", page.read_text()))
        for block in (b for b in blocks(page) if b.lang == "bash" and "purejaxppo plot" in b.code):
            commands = _commands(block.code)
            runs, plot = _options(next(c for c in commands if c[:2] == ["purejaxppo", "plot"])[2:])
            out = Path(plot["--out"][0]).name if "--out" in plot else None
            if out not in images:
                continue
            where = f"{page_id(page)}:{block.line} (images/{out})"
            record = plot_provenance(page.parent / "images" / out)
            assert [r["run"] for r in record["runs"]] == [Path(r).name for r in runs], where
            assert [r["label"] for r in record["runs"]] == plot.get("--labels", [None] * len(runs)), where
            assert record["window"] == int(plot["--smooth"][0]) if "--smooth" in plot else True, where
            assert record["metric"] == plot.get("--metric", ["episode_return"])[0], where
            assert record["title"] == (plot["--title"][0] if "--title" in plot else None), where
            recorded = {r["run"]: r for r in record["runs"]}
            for command in (c for c in commands if c[:2] == ["purejaxppo", "train"]):
                _, flags = _options(command[2:])
                run = recorded[Path(flags.pop("--logdir")[0]).name]
                assert run["num_seeds"] == int(flags.pop("--num-seeds", ["1"])[0]), where
                config = run["config"]
                given = set()
                for flag, values in flags.items():
                    field = {"--env": "env_name"}.get(flag, flag[2:].replace("-", "_"))
                    if field.startswith("no_") and field[3:] in config:
                        field = field[3:]
                        assert config[field] is False and not values, f"{where}: {flag}"
                    else:
                        assert _same(values, config[field]), f"{where}: {flag} {values} but the run had {config[field]}"
                    given.add(field)
                shipped = load_config(config["env_name"]).to_dict()  # what a flag left out trains with
                assert {k: v for k, v in config.items() if k not in given} == {
                    k: v for k, v in shipped.items() if k not in given}, f"{where}: settings the commands do not give"
            checked += 1
    assert checked, "no page shows a figure beside the purejaxppo plot command that made it"


@pytest.mark.parametrize("page", [p for p in PAGES if any(b.lang == "python" for b in blocks(p))], ids=page_id)
@pytest.mark.slow
def test_the_python_blocks_of_a_page_run(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # blocks may write run directories
    environ = dict(os.environ)  # blocks may set JAX_NUM_CPU_DEVICES and the like: keep it from later tests
    namespace: dict = {"__name__": "__main__"}
    ran = 0
    try:
        for block in blocks(page):
            if block.lang != "python":
                continue
            if block.marker is not None and SKIP.match(block.marker):
                continue
            requires = REQUIRES.match(block.marker) if block.marker is not None else None
            if requires is not None and importlib.util.find_spec(requires.group(1)) is None:
                continue
            source = "\n" * (block.line - 1) + block.code  # tracebacks point at the page's own line numbers
            exec(compile(source, str(page), "exec"), namespace)  # noqa: S102 - our own documentation
            ran += 1
    finally:
        os.environ.clear()
        os.environ.update(environ)
    assert ran, f"{page_id(page)}: no block ran"
    assert capsys.readouterr().out.strip(), "the blocks print their results"
    check = PAGE_CHECKS.get(page_id(page))
    if check is not None:
        check(namespace)


LOADING_BLOCKS = [b for p in PAGES for b in blocks(p) if b.lang == "python" and "load_policy(" in b.code
                  and "main([" in b.code and (b.marker is None or not SKIP.match(b.marker))]


@pytest.mark.parametrize("block", LOADING_BLOCKS, ids=lambda b: f"{page_id(b.page)}:{b.line}")
@pytest.mark.slow
def test_a_block_that_trains_and_loads_a_run_loads_its_own(block, tmp_path, monkeypatch, capsys):
    """A block that trains with the command line (`main([...])`) and loads the result, run twice in one directory
    (a reader running the script again): the second run trains and loads its own run, not the first one's (a fixed
    --logdir made the second `main` refuse, "already holds a run", and `load_policy` read the old run)."""
    monkeypatch.chdir(tmp_path)
    loaded = []
    for _ in range(2):
        namespace: dict = {"__name__": "__main__"}
        exec(compile("\n" * (block.line - 1) + block.code, str(block.page), "exec"), namespace)  # noqa: S102
        loaded.append(namespace["loaded"])
        err = capsys.readouterr().err
        assert "error:" not in err, err
    assert [x.update for x in loaded] == [loaded[0].update] * 2


def _corridor_reaches_the_goal(namespace):
    assert [float(r) for r in namespace["returns"]] == [1.0] * 8


def _quickstart_learns(namespace):
    assert float(namespace["greedy"].mean()) > 100  # CartPole: a random policy gets about 20


PAGE_CHECKS = {
    "docs/custom-environments.md": _corridor_reaches_the_goal,
    "README.md": _quickstart_learns,
    "docs/getting-started.md": _quickstart_learns,
}
