"""Build the wheel and the sdist, install each into a fresh venv on every Python the package claims, and run it.

    python .ci/install_check.py                       # the versions of pyproject's classifiers, plus 3.10 refused
    python .ci/install_check.py --pythons 3.12 --refuse

For each claimed version: a new venv, ``pip install <wheel>`` (its dependencies from the index), then
``purejaxppo --help`` and a 2-update CartPole run (``purejaxppo train --total-timesteps 1024 ...``) from a directory
outside the checkout, so nothing can import the source tree instead of the installed package. The sdist is installed
and run the same way on the first version. Python 3.10 must be refused by pip (requires-python), not half-installed.

Interpreters are found as ``python3.X`` on PATH or under pyenv's versions directory. A claimed version that is not
on the machine fails the check (say --pythons to check fewer). Prints one line per step and a table at the end;
exit status 0 only if every step passed.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ["train", "--num-envs", "4", "--num-steps", "128", "--total-timesteps", "1024", "--quiet"]


def claimed_versions() -> list[str]:
    """The ``Programming Language :: Python :: 3.X`` classifiers of pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [m.group(1) for c in project["classifiers"] if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))]


def find_python(version: str) -> str | None:
    """An interpreter of `version` that runs: pyenv's own install first (its shims may refuse), then PATH."""
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"))
    candidates += [found] if (found := shutil.which(f"python{version}")) else []
    for python in candidates:
        if subprocess.run([python, "-c", "pass"], capture_output=True).returncode == 0:
            return python
    return None


def run(argv: list[str], cwd: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def build(dist: Path) -> tuple[Path, Path]:
    """``(wheel, sdist)`` built from the checkout with `build` (installed into a throwaway venv)."""
    tools = dist / "tools-venv"
    subprocess.run([sys.executable, "-m", "venv", str(tools)], check=True)
    subprocess.run([str(tools / "bin" / "pip"), "install", "-q", "build"], check=True)
    subprocess.run([str(tools / "bin" / "python"), "-m", "build", "--outdir", str(dist), str(ROOT)], check=True,
                   capture_output=True)
    return next(dist.glob("purejaxppo-*.whl")), next(dist.glob("purejaxppo-*.tar.gz"))


def check_install(python: str, artifact: Path, work: Path) -> tuple[bool, str]:
    """Install `artifact` into a fresh venv of `python` and run the command line; ``(ok, what happened)``."""
    venv = work / "venv"
    steps = [
        ([python, "-m", "venv", str(venv)], "venv"),
        ([str(venv / "bin" / "pip"), "install", "-q", str(artifact)], "pip install"),
        ([str(venv / "bin" / "purejaxppo"), "--help"], "purejaxppo --help"),
        ([str(venv / "bin" / "purejaxppo"), *TRAIN, "--logdir", str(work / "run")], "2-update train"),
    ]
    for argv, name in steps:
        t0 = time.time()
        proc = run(argv, cwd=work)
        if proc.returncode != 0:
            return False, f"{name} failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-600:]}"
        print(f"    {name}: ok ({time.time() - t0:.0f} s)", flush=True)
    if not (work / "run" / "summary.json").is_file():
        return False, "train wrote no summary.json"
    print(f"    on {run([str(venv / 'bin' / 'python'), '--version'], cwd=work).stdout.strip()}", flush=True)
    return True, "installed, --help and a 2-update train ran"


def check_refused(python: str, wheel: Path, work: Path) -> tuple[bool, str]:
    """A current pip must refuse the wheel on `python` by its Requires-Python, and install nothing.

    (pip 23.0, which Python 3.10.13 ships, does not check a local wheel's Requires-Python and fails later on jax
    instead; an index's data-requires-python is checked by every pip.)
    """
    venv = work / "venv"
    pip = str(venv / "bin" / "pip")
    run([python, "-m", "venv", str(venv)], cwd=work)
    run([pip, "install", "-q", "--upgrade", "pip"], cwd=work)
    proc = run([pip, "install", str(wheel)], cwd=work)
    said = proc.stderr + proc.stdout
    refused = proc.returncode != 0 and "requires a different Python" in said and "'>=3.11'" in said
    installed = run([pip, "show", "purejaxppo"], cwd=work).returncode == 0
    if refused and not installed:
        return True, "pip refuses it: requires a different Python, not in '>=3.11'"
    return False, f"not refused (installed: {installed}): {said[-400:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pythons", nargs="*", default=None, help="versions to install on (default: classifiers)")
    parser.add_argument("--refuse", nargs="*", default=["3.10"], help="versions pip must refuse")
    args = parser.parse_args(argv)
    versions = claimed_versions() if args.pythons is None else args.pythons
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dist = Path(tmp) / "dist"
        dist.mkdir()
        wheel, sdist = build(dist)
        print(f"built {wheel.name} and {sdist.name}", flush=True)
        cases = [(v, wheel, "install") for v in versions] + [(versions[0], sdist, "install")] if versions else []
        cases += [(v, wheel, "refuse") for v in args.refuse]
        for i, (version, artifact, kind) in enumerate(cases):
            print(f"Python {version}, {artifact.name}, {kind}:", flush=True)
            python = find_python(version)
            work = Path(tmp) / f"case{i}"
            work.mkdir()
            if python is None:
                ok, what = (kind == "refuse"), f"python{version} not found on this machine"
            elif kind == "install":
                ok, what = check_install(python, artifact, work)
            else:
                ok, what = check_refused(python, artifact, work)
            print(f"    {'PASS' if ok else 'FAIL'}: {what}", flush=True)
            rows.append((version, artifact.name, kind, ok, what))
            shutil.rmtree(work, ignore_errors=True)
    print("\n| Python | artifact | expected | result |\n|---|---|---|---|")
    for version, name, kind, ok, what in rows:
        print(f"| {version} | {name} | {kind} | {'pass' if ok else 'FAIL'}: {what} |")
    return 0 if rows and all(r[3] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
