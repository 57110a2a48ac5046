"""Fixed runs whose final parameters and metrics are pinned by SHA-256 digest (tests/test_pinned.py).

The digests show that a restructuring kept behaviour to the bit (see tests/test_pinned.py for their history). Only the
public API is used (`make_train`, `sweep`, the command line and `load_policy`), so the same file runs against old and
new code alike.

    python tests/pinned_runs.py            # print the digests of this checkout
    python tests/pinned_runs.py --write    # record them in tests/data/pinned_runs.json (only when bits must change)

Bits are promised for one platform: XLA's CPU code depends on the jax version and the processor, so the record keeps
the platform it was made on and the exact check runs there; everywhere the first update's metrics are compared with
a tolerance instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import platform
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


def platform_id() -> str:
    """The jax version and the processor: where bit-identity is promised."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"jax {jax.__version__} / jaxlib {jax.lib.__version__} / {jax.default_backend()} / {cpu}"


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
    from purejaxppo.logs import METRICS_FILE, read_records

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
    record = {"platform": platform_id(), "cases": run_cases()}
    text = json.dumps(record, indent=2, sort_keys=True)
    if "--write" in argv:
        RECORD.parent.mkdir(parents=True, exist_ok=True)
        RECORD.write_text(text + "\n")
        print(f"wrote {RECORD}")
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
