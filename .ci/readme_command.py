"""Print one of the README's fresh-machine commands, so CI runs exactly what the README tells users to run.

The README marks each command's fenced block with a comment line ``<!-- command: NAME -->`` right above it.
Usage: python3 .ci/readme_command.py test|main
"""

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_command(name: str, text: str | None = None) -> str:
    text = README.read_text() if text is None else text
    match = re.search(rf"<!-- command: {re.escape(name)} -->\s*```(?:bash|sh)?\n(.*?)```", text, re.S)
    if match is None:
        raise SystemExit(f"README.md has no block marked <!-- command: {name} -->")
    lines = [line for line in match.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return " && ".join(lines)


if __name__ == "__main__":
    print(readme_command(sys.argv[1]))
