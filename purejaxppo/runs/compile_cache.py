"""JAX's persistent compilation cache for the command line: on by default, so that a second identical run does not
compile its program again.

    PUREJAXPPO_CACHE_DIR unset      ->  $XDG_CACHE_HOME/purejaxppo/jax  (~/.cache/purejaxppo/jax without XDG_CACHE_HOME)
    PUREJAXPPO_CACHE_DIR=/some/dir  ->  that folder
    PUREJAXPPO_CACHE_DIR=off        ->  no cache ("0", "false", "none" and "" too)

JAX keys each entry by the program, the jax/jaxlib versions, the backend and the compiler options, so a changed
config, seed count or version compiles afresh; nothing is shared between different programs. JAX does not store
programs that hold host callbacks, which is why the command line's training program has none
(`purejaxppo.runs.progress`); a host pool's programs (which step the environments through callbacks) compile every
time. `enable` is called once by the command line before anything compiles; the Python API (`make_train`) leaves
JAX's own settings alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

ENV_VAR = "PUREJAXPPO_CACHE_DIR"
OFF = ("off", "0", "false", "none", "")
HIT_LOGGER = "jax._src.compiler"  # where JAX logs "Persistent compilation cache hit for ..." (DEBUG)
HIT_MESSAGE = "Persistent compilation cache hit"
MIN_COMPILE_SECONDS = 0.5  # programs that compile faster are not worth a file (JAX's default: 1 s)


def cache_dir(environ: dict[str, str] | None = None) -> Path | None:
    """The cache folder the environment asks for (module docstring), or None when it is switched off."""
    environ = os.environ if environ is None else environ
    if ENV_VAR in environ:
        value = environ[ENV_VAR].strip()
        return None if value.lower() in OFF else Path(value).expanduser()
    base = environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "purejaxppo" / "jax"


def quiet_xla_log(environ: dict[str, str] | None = None) -> None:
    """Before jax is imported, when the cache is on: XLA's C++ log at FATAL only, unless the user set its level
    (``TF_CPP_MIN_LOG_LEVEL``). Loading a CPU program from the cache logs an ERROR line a page long on CPUs whose
    compile-time tuning flags (``+prefer-no-gather``) are not in the host's feature list (AMD EPYC here), though the
    program is the one compiled on this very machine; that must not greet every cached run."""
    environ = os.environ if environ is None else environ
    if cache_dir(environ) is not None:
        environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def enable(environ: dict[str, str] | None = None) -> Path | None:
    """Point JAX's persistent compilation cache at `cache_dir` (created if missing); the folder, or None when off or
    when the folder cannot be created (the run then compiles as usual)."""
    import jax

    path = cache_dir(environ)
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return path


class _Hits(logging.Handler):
    """Counts the cache-hit records and passes on, to the logger's parent, only what the logger would have let through
    anyway (its level is lowered to DEBUG while counting, so that JAX writes the hit records at all)."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logging.DEBUG)
        self.count, self.level_before = 0, logger.getEffectiveLevel()
        self.parent = logger.parent

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(HIT_MESSAGE):
            self.count += 1
        if record.levelno >= self.level_before and self.parent is not None:
            self.parent.handle(record)


@contextlib.contextmanager
def cache_hits() -> Iterator[_Hits]:
    """Count the programs loaded from the persistent cache (``.count``) while the block runs; nothing else of the
    logger's output changes."""
    logger = logging.getLogger(HIT_LOGGER)
    hits = _Hits(logger)
    saved = logger.level, logger.propagate
    logger.addHandler(hits)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield hits
    finally:
        logger.removeHandler(hits)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
