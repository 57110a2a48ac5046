"""Shipped PPO configs, one TOML file per environment (``purejaxppo/configs/<EnvName>.toml``), and their loader.

A config file holds `PPOConfig` fields at the top level (``learning_rate = 5e-4``) and, optionally, an
``[env_kwargs]`` table; fields it leaves out take `PPOConfig`'s defaults. Each shipped file says in its header comment
what its settings are based on.

    load_config("Breakout-MinAtar")        # the shipped file
    load_config("my/tuned.toml")           # any TOML file (or a run's config.json)
    load_config("DeepSea-bsuite")          # no shipped file: PPOConfig defaults with that env_name
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

from purejaxppo.config import PPOConfig
from purejaxppo.envs.registry import SUITES

CONFIG_DIR = Path(__file__).resolve().parent
CONFIG_SUFFIXES = (".toml", ".json")


def _file_prefix(suite_prefix: str) -> str:
    """A suite's config file prefix: "brax:hopper" ships as brax_hopper.toml, "navix:X" as navix_X.toml (no ':' in
    file names)."""
    return suite_prefix.rstrip(":") + "_"


def _env_name_of(stem: str) -> str:
    for prefix in SUITES:
        if stem.startswith(_file_prefix(prefix)):
            return prefix + stem[len(_file_prefix(prefix)):]
    return stem


def _stem_of(env_name: str) -> str:
    for prefix in SUITES:
        if env_name.startswith(prefix):
            return _file_prefix(prefix) + env_name[len(prefix):]
    return env_name


def shipped_config_names() -> list[str]:
    """Environment ids that have a shipped config, sorted."""
    return sorted(_env_name_of(p.stem) for p in CONFIG_DIR.glob("*.toml"))


def shipped_config_path(env_name: str) -> Path | None:
    """The shipped config file for `env_name`, or None if there is none."""
    path = CONFIG_DIR / f"{_stem_of(env_name)}.toml"
    return path if path.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path} is not valid TOML: {e}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of field names to values in a ``.toml`` or ``.json`` config file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    if path.suffix == ".json":
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
    elif path.suffix == ".toml":
        values = _read_toml(path)
    else:
        raise ValueError(f"config file {str(path)!r} must end in one of {list(CONFIG_SUFFIXES)}")
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a table of PPOConfig fields, got {type(values).__name__}")
    return values


def config_from_file(path: str | Path) -> PPOConfig:
    """A validated `PPOConfig` from a config file; errors name the file and the field."""
    values = read_config_file(path)
    try:
        return PPOConfig.from_dict(values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None


def is_config_path(name: str | Path) -> bool:
    """Whether `name` means a file (it ends in .toml/.json or contains a path separator) rather than an env id."""
    text = str(name)
    return isinstance(name, Path) or text.endswith(CONFIG_SUFFIXES) or "/" in text or "\\" in text


def load_config(env_name_or_path: str | Path) -> PPOConfig:
    """The config for an environment id or a config file.

    Args:
      env_name_or_path: a gymnax environment id (its shipped config, or `PPOConfig` defaults with that env_name when
        none ships), or the path of a ``.toml``/``.json`` config file.

    Raises:
      ValueError: naming the file or field at fault, or listing the registered environments for an unknown id.
    """
    if is_config_path(env_name_or_path):
        return config_from_file(env_name_or_path)
    path = shipped_config_path(str(env_name_or_path))
    if path is not None:
        return config_from_file(path)
    return PPOConfig(env_name=str(env_name_or_path))


def _toml_value(value: Any) -> str:
    """A TOML literal for a config value: str, bool, int, float, a list of them, or a table (inline)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: the same escapes as JSON's
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise ValueError(f"cannot write {value!r} ({type(value).__name__}) to TOML")


def config_toml(config: PPOConfig, comment: str = "") -> str:
    """`config` as a TOML config file (every field, `load_config` reads it back to an equal config); `comment` lines
    go on top as ``#`` comments."""
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    values = config.to_dict()
    kwargs = values.pop("env_kwargs")
    lines += [f"{name} = {_toml_value(value)}" for name, value in values.items()]
    lines += ["", "[env_kwargs]"] + [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in kwargs.items()]
    return "\n".join(lines) + "\n"


__all__ = [
    "CONFIG_DIR",
    "config_from_file",
    "config_toml",
    "is_config_path",
    "load_config",
    "read_config_file",
    "shipped_config_names",
    "shipped_config_path",
]
