"""Fixed runs whose final parameters and metrics are pinned by SHA-256 digest (tests/test_pinned.py).

The digests show that a restructuring kept behaviour to the bit (see tests/test_pinned.py for their history). Only the
public API is used (`make_train`, `sweep`, the command line and `load_policy`), so the same file runs against old and
new code alike.

    python tests/pinned_runs.py            # print the digests of this checkout
    python tests/pinned_runs.py --write    # record them in tests/data/pinned_runs.json (only when bits must change)

Bits are promised for one platform: XLA's CPU code depends on the jax version, XLA's flags and the processor (its
family, model, stepping and instruction sets, not only its "model name"), so the record keeps the fingerprint of the
platform it was made on (`platform_fingerprint`) and the exact check runs there; everywhere else the first update's
metrics are compared with a tolerance instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import re
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # probes.py, when run as a script

RECORD = Path(__file__).resolve().parent / "data" / "pinned_runs.json"
# The metrics that existed when the digests were taken; metrics added later are not part of the pin.
PINNED_METRICS = (
    "episode_return", "episode_length", "episodes_finished",
    "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
    "explained_variance", "grad_norm", "learning_rate", "env_steps",
)
# First-update metrics compared with a tolerance on every platform.
SUMMARY_METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm", "explained_variance")


def digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.shape}|{a.dtype.name}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# The /proc/cpuinfo flags that decide which instructions XLA:CPU emits (vector width, fused multiply-add, the AVX-512
# and AMX families): two processors that differ in any of them may round differently.
ISA_FLAG = re.compile(r"^(sse4_1|sse4_2|avx|avx2|fma|f16c|avx_vnni|avx512.*|amx.*|asimd.*|sve.*|neon)$")


def cpu_fingerprint(cpuinfo: str | None = None) -> dict:
    """Where XLA's CPU code is the same: vendor, family, model, stepping and the ISA flags of the first processor.

    "model name" alone is not enough: "AMD EPYC" names several families that round differently. `cpuinfo` is
    /proc/cpuinfo's text (read here when None); without it (macOS, Windows) the fingerprint is what `platform` knows.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor only: they are all alike
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    flags = fields.get("flags") or fields.get("Features") or ""  # x86 | arm64
    return {
        "machine": platform.machine(),
        "vendor": fields.get("vendor_id") or fields.get("CPU implementer") or platform.processor(),
        "family": fields.get("cpu family") or fields.get("CPU architecture", ""),
        "model": fields.get("model") or fields.get("CPU part", ""),
        "stepping": fields.get("stepping") or fields.get("CPU variant", ""),
        "model_name": fields.get("model name", ""),
        "isa": sorted(f for f in flags.split() if ISA_FLAG.match(f)),
    }


def platform_fingerprint() -> dict:
    """Where bit-identity is promised: jax, jaxlib, the backend (and its device kind), XLA_FLAGS and the CPU.

    XLA_FLAGS is part of it because flags such as ``--xla_cpu_max_isa`` change the code XLA emits.
    """
    return {
        "jax": jax.__version__,
        "jaxlib": jax.lib.__version__,
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "cpu": cpu_fingerprint(),
    }


def fingerprint_differences(recorded: dict, current: dict) -> list[str]:
    """The keys (dotted) where two fingerprints differ, e.g. ``["cpu.family", "cpu.isa"]``; empty when equal."""
    out = []
    for key in sorted(set(recorded) | set(current)):
        a, b = recorded.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{k}" for k in fingerprint_differences(a, b)]
        elif a != b:
            out.append(key)
    return out


def _record(params, metrics: dict, eval_return=None) -> dict:
    """Digests of the params (tree order) and of the pinned metrics (name order), plus the first update's values."""
    metrics = {k: np.asarray(metrics[k]) for k in PINNED_METRICS}
    return {
        "params": digest(jax.tree.leaves(params)),
        "metrics": digest(metrics[k] for k in PINNED_METRICS),
        "first_update": {k: float(np.asarray(metrics[k]).reshape(-1)[0]) for k in SUMMARY_METRICS},
    }


def run_cases() -> dict[str, dict]:
    from probes import MaskedChoice

    from purejaxppo import PPOConfig, cli, load_policy, make_train, sweep
    from purejaxppo.runs.logs import METRICS_FILE, read_records

    key = jax.random.key(0)
    out = {}

    # 1. CartPole, the default config, 20k steps (39 updates).
    run = make_train(PPOConfig(total_timesteps=20_000))(key)
    out["cartpole_default_20k"] = _record(run.state.params, run.metrics)

    # 2. Pendulum with observation and reward normalisation.
    pendulum = PPOConfig(env_name="Pendulum-v1", num_envs=8, num_steps=64, total_timesteps=8 * 64 * 12,
                         num_minibatches=4, update_epochs=4, normalize_observations=True, normalize_rewards=True)
    run = make_train(pendulum)(key)
    out["pendulum_normalised"] = _record(run.state.params, run.metrics)

    # 3. An environment with an action mask.
    masked = PPOConfig(num_envs=4, num_steps=32, total_timesteps=4 * 32 * 10, num_minibatches=2, update_epochs=2,
                       learning_rate=1e-2)
    run = make_train(masked, env=MaskedChoice())(key)
    out["masked_choice"] = _record(run.state.params, run.metrics)

    # 4. One sweep cell (the second of two learning rates, seed 1 of 2).
    base = PPOConfig(num_envs=4, num_steps=32, total_timesteps=4 * 32 * 8, num_minibatches=2, update_epochs=2)
    result = sweep(base, num_seeds=2, learning_rate=[1e-3, 3e-3], keep_state=True)
    cell = jax.tree.map(lambda x: x[1, 1], result.state.params)
    out["sweep_cell"] = _record(cell, {k: v[1, 1] for k, v in result.metrics.items()})

    # 5. A chunked, checkpointed and resumed run through the command line (2 seeds, stopped after 5 of 12 updates).
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = str(Path(tmp) / "run")
        flags = ["--num-envs", "4", "--num-steps", "32", "--total-timesteps", str(4 * 32 * 12), "--num-seeds", "2",
                 "--checkpoint-every", "2", "--quiet"]
        with contextlib.redirect_stdout(io.StringIO()):  # the summary lines
            assert cli.main(["train", "--logdir", run_dir, "--stop-after", "5", *flags]) == 0
            assert cli.main(["train", "--resume", run_dir, "--quiet"]) == 0
        records = read_records(Path(run_dir) / METRICS_FILE)
        metrics = {k: np.asarray([r[k] for r in records], np.float64) for k in PINNED_METRICS}
        params = [load_policy(run_dir, seed_index=i).params for i in range(2)]
        out["resumed_cli_run"] = _record(params, metrics)

    # GRU runs (not required to keep bits, recorded to see whether they do).
    gru = PPOConfig(env_name="MemoryChain-bsuite", network="gru", num_envs=8, num_steps=12, total_timesteps=8 * 12 * 8,
                    num_minibatches=2, update_epochs=2, hidden_sizes=(16,), gru_hidden_size=16, eval_every=4,
                    eval_episodes=4)
    run = make_train(gru)(key)
    out["gru_memory_chain"] = _record(run.state.params, run.metrics)
    return out


def main(argv: list[str]) -> None:
    record = {"platform": platform_fingerprint(), "cases": run_cases()}
    text = json.dumps(record, indent=2, sort_keys=True)
    if "--write" in argv:
        RECORD.parent.mkdir(parents=True, exist_ok=True)
        RECORD.write_text(text + "\n")
        print(f"wrote {RECORD}")
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
