"""Paths as the result files record them: relative to the repository root, never absolute.

A machine's absolute paths (under ``/home``, ``/work``, ...) mean nothing on another machine and leak its layout into the
committed results. Inside this repository a path is written relative to its root (``purejaxppo``); outside it (a
peer's checkout, another purejaxppo checkout to compare with) only its folder's name is kept, marked as outside
(``purejaxrl (outside the repository)``).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = " (outside the repository)"


def repo_relative(path: str | os.PathLike, root: str | os.PathLike = ROOT) -> str:
    """`path` relative to the repository `root` (POSIX separators, "." for the root itself), or, outside it, its
    folder's name followed by " (outside the repository)"."""
    resolved, root = Path(path).resolve(), Path(root).resolve()
    if resolved.is_relative_to(root):
        return resolved.relative_to(root).as_posix() or "."
    return f"{resolved.name}{OUTSIDE}".strip()
