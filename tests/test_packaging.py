"""Packaging: the metadata says what is true (license, Python versions, extras), and no placeholder is left anywhere.

The install itself is proved by `.ci/install_check.py` (CI runs it after the tests): the wheel and the sdist install
into fresh venvs on every Python the classifiers claim and run, and Python 3.10 is refused.
"""

import importlib.util
import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PLACEHOLDER = re.compile(r"<owner>|<user(name)?>|<your[-_ a-z]*>|\bTODO\b|\bFIXME\b|\bXXX\b|example\.com|@@")


def tracked_text_files() -> dict[str, str]:
    """``{path: text}`` of every tracked text file (notebooks: their cells' sources, not their outputs)."""
    try:
        names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    out = {}
    for name in names.split():
        path = ROOT / name
        if not path.is_file() or name in ("tests/test_packaging.py", "tests/test_docs.py"):  # they spell the patterns
            continue
        data = path.read_bytes()
        if b"\0" in data[:4096]:
            continue  # binary
        text = data.decode("utf-8", errors="replace")
        if name.endswith(".ipynb"):
            text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"])
        out[name] = text
    return out


def test_no_placeholder_anywhere():
    hits = [f"{name}: {m.group(0)!r}" for name, text in tracked_text_files().items()
            for m in PLACEHOLDER.finditer(text)]
    assert not hits, "placeholders left:\n" + "\n".join(hits)


def test_license_file_matches_the_metadata():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert PROJECT["license"] == {"text": "Apache-2.0"}
    assert "License :: OSI Approved :: Apache Software License" in PROJECT["classifiers"]


def test_python_classifiers_agree_with_requires_python():
    claimed = sorted(int(m.group(1)) for c in PROJECT["classifiers"]
                     if (m := re.fullmatch(r"Programming Language :: Python :: 3\.(\d+)", c)))
    minimum = int(re.fullmatch(r">=3\.(\d+)", PROJECT["requires-python"]).group(1))
    assert claimed and claimed[0] == minimum == 11  # every jax the pin allows needs Python 3.11
    assert claimed == list(range(minimum, claimed[-1] + 1))


def test_every_extra_the_documentation_names_exists():
    extras = set(PROJECT["optional-dependencies"])
    assert {"cuda", "cuda12", "notebooks", "render", "brax", "tensorboard", "wandb", "test"} <= extras
    assert PROJECT["optional-dependencies"]["cuda"][0].startswith("jax[cuda13]")
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md")), *sorted((ROOT / "purejaxppo").glob("*.py"))]
    named = {extra for path in docs for group in re.findall(r"purejaxppo\[([a-z0-9_,\- ]+)\]|\.\[([a-z0-9_,\- ]+)\]",
                                                              path.read_text())
             for extra in ",".join(group).split(",") if extra.strip()}
    assert named and not {e.strip() for e in named} - extras


def test_every_environment_suite_has_its_extra():
    from purejaxppo.envs import SUITES

    suites = {"brax", "playground", "craftax", "jumanji", "navix", "envpool", "gymnasium"}
    assert suites == {p.rstrip(":") for p in SUITES}
    assert {p.rstrip(":") for p, suite in SUITES.items() if not suite.core} <= set(PROJECT["optional-dependencies"])
    core = [suite.module for suite in SUITES.values() if suite.core]  # no extra: a dependency of purejaxppo itself
    assert core == ["gymnasium"] and all(importlib.util.find_spec(module) for module in core)


def test_no_file_offers_disabling_xdist():
    """addopts holds `-n auto`, which only the xdist plugin understands: `-p no:xdist` then fails ('unrecognized
    arguments: -n'), so the one-process command to document is `-n 0`."""
    pytest_options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert re.search(r"(^|\s)-n\s", pytest_options["addopts"])
    raw = (ROOT / "pyproject.toml").read_text()  # tracked_text_files reads it too; the comment is what matters
    assert "-n 0" in raw
    hits = [name for name, text in tracked_text_files().items() if "no:xdist" in text]
    assert not hits, f"these files offer `-p no:xdist`, which fails beside addopts' `-n`: {hits}"
