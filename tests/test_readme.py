"""The README's two fresh-machine commands exist, and CI runs the test one verbatim."""

import importlib.util
import re
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_the_readme_custom_environment_example_runs_and_learns(capsys):
    text = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "class Corridor" in b)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    returns = namespace["evaluate"](namespace["config"], namespace["out"].state, namespace["jax"].random.key(1),
                                    num_episodes=8, env=namespace["env"])
    assert [float(r) for r in returns] == [1.0] * 8
