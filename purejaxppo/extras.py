"""Optional extras: how an environment adapter imports its suite, and the one message when the extra is missing."""

from __future__ import annotations

import importlib
from types import ModuleType


def import_extra(module: str, env_name: str, extra: str) -> ModuleType:
    """`module` imported (e.g. "navix", "brax.envs"), or a ValueError in one line naming `env_name` and the extra that
    brings it: ``env 'navix:X' needs the navix extra: pip install 'purejaxppo[navix]' (<the ImportError>)``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ValueError(
            f"env '{env_name}' needs the {extra} extra: pip install 'purejaxppo[{extra}]' ({error})"
        ) from None
