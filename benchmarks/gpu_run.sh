#!/usr/bin/env bash
# The body of ONE device call: purejaxppo beside PureJaxRL on a lent NVIDIA GPU (H100/H200), then the scaling figure,
# as benchmarks/gpu.py plans them inside --budget-s (default 520 s, stopped by 560 s, so the call ends inside 600 s).
# It writes to $OUT: peers-<device>.json and .md, scaling-<device>.json and .png, gpu-run.log (4 to 5 files).
#
# The GPU image has jax 0.11 with CUDA, flax, optax, chex, matplotlib and seaborn, but not gymnax, distrax or
# tfp-nightly, and no network: those travel as wheels. PureJaxRL's snapshot (../shared/peers/purejaxrl) does not
# travel either: a copy goes in .gpu/. Both folders are ignored by git and named in the call's `carry`.
#
# Preparation, here, once, in the repository root (the versions are those this project's venv has; Python 3.12,
# manylinux x86_64, as the device README shows; then check each wheel's needs with
# `unzip -p .whl/NAME-*.whl '*/METADATA' | grep ^Requires-Dist`: what the image lacks must be among these):
#
#   printf '%s\n' /.whl/ /.gpu/ /.cache/ >> "$(git rev-parse --git-path info/exclude)"   # .cache/ (a venv of
#                                          # ~1 GB, if present) would push the travelling tree over its 64 MiB
#   rm -rf .whl .gpu && mkdir -p .gpu && cp -r ../shared/peers/purejaxrl .gpu/
#   pins=$(for p in gymnax gymnasium farama-notifications distrax tfp-nightly dm-tree gast decorator; do
#          printf '%s==%s ' "$p" "$(.venv/bin/python -c "from importlib.metadata import version; print(version('$p'))")"
#          done)
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl $pins
#   ls .whl                                # one wheel per package (two versions of one stop the whole install)
#   git status --short                     # neither .whl/, .gpu/ nor .cache/ listed: they are ignored
#   .venv/bin/python benchmarks/gpu.py --purejaxrl-dir .gpu/purejaxrl --out /tmp/gpu-dry --dry-run   # ~2 min, CPU
#
# (Today's pins: gymnax 1.0.1, gymnasium 1.3.0, farama-notifications 0.0.6, distrax 0.1.9,
# tfp-nightly 0.26.0.dev20261027, dm-tree 0.1.10, gast 0.7.0, decorator 5.3.2. If pip finds no dm-tree wheel, add
# `--platform manylinux_2_N_x86_64` for other N, as the device README says.)
#
# Then the one device call (the tool `run`; kind left out: an H100 does; 10 of the 15 minutes of device time):
#
#   run(command="bash benchmarks/gpu_run.sh", carry=[".whl", ".gpu"], timeout_s=600)
#
# and give_back at once unless rerunning. The files come back under the reply's files_at; copy peers-<device>.json,
# .md and scaling-<device>.json, .png into benchmarks/results/ (gpu-run.log is the whole log, for the record).
# Extra arguments go to gpu.py (e.g. `bash benchmarks/gpu_run.sh --budget-s 400`).
set -uo pipefail
cd "$(dirname "$0")/.." || exit
: "${OUT:?OUT (the folder whose files come back) is not set: this script is the body of a device call}"
PY=${PYTHON:-python3}

"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "installing the carried wheels (.whl) failed"; exit 1; }
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
# No network there: the build backend is the image's own setuptools; without it, the source tree on the path does.
"$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . \
    || export PYTHONPATH="$PWD:$PYTHONPATH"

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    PYTHONUNBUFFERED=1 "$PY" benchmarks/gpu.py --purejaxrl-dir .gpu/purejaxrl --out "$OUT" "$@"
} 2>&1 | tee "$OUT/gpu-run.log"
