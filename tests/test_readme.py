"""The README's two fresh-machine commands exist, and CI runs the test one verbatim (the README's and the docs'
Python blocks are run by tests/test_docs.py)."""

import importlib.util
import re
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("readme_command", ROOT / ".ci" / "readme_command.py")
readme_command = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_command)


def test_readme_has_both_fresh_machine_commands():
    main = readme_command.readme_command("main")
    test = readme_command.readme_command("test")
    assert "pip install -e ." in main and "purejaxppo train" in main
    assert 'pip install -e ".[test' in test and "pytest" in test


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "readme_command.py test" in ci
    assert re.search(r"^bash .*\$cmd", ci, re.M)


def test_extraction_reads_the_marked_block_only():
    text = "intro\n<!-- command: test -->\n```bash\n# comment\nstep one\n\nstep two\n```\n```bash\nother\n```\n"
    assert readme_command.readme_command("test", text) == "step one && step two"


def test_the_test_extra_installs_the_timeout_plugin():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "pytest-timeout" in pyproject and re.search(r"^timeout = \d+", pyproject, re.M)
