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


def _corridor_reaches_the_goal(namespace):
    assert [float(r) for r in namespace["returns"]] == [1.0] * 8


def _quickstart_learns(namespace):
    assert float(namespace["greedy"].mean()) > 100  # CartPole: a random policy gets about 20


PAGE_CHECKS = {
    "docs/custom-environments.md": _corridor_reaches_the_goal,
    "README.md": _quickstart_learns,
    "docs/getting-started.md": _quickstart_learns,
}
