"""Memory benchmark: a GRU policy against a feed-forward (MLP) policy on bsuite's MemoryChain (gymnax).

MemoryChain (num_bits 1): the context bit (+-1) is visible only in the first observation; after `memory_length` more
steps the agent is rewarded +1 for the action equal to the bit and -1 otherwise, and the episode ends. The
observation at the rewarded step holds no information about the bit, so a feed-forward policy's best expected return
is exactly 0 (chance); a policy that remembers gets 1.

    python benchmarks/memory_task.py                       # writes benchmarks/results/memory_task.json
    python benchmarks/memory_task.py --memory-lengths 2 5 --seeds 3 --timesteps 24576

Every (network, memory_length) cell trains all seeds in one `jax.vmap`-ed program. Reported per seed: the mean
training episode return over the last 10% of updates, and the greedy evaluation return (32 episodes) at the end.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import gymnax
import jax
import numpy as np

from purejaxppo import PPOConfig, make_train

RESULTS = Path(__file__).parent / "results" / "memory_task.json"


def base_config(timesteps: int) -> dict:
    return dict(
        env_name="MemoryChain-bsuite", num_envs=16, num_steps=24, total_timesteps=timesteps, update_epochs=4,
        num_minibatches=4, learning_rate=3e-3, anneal_lr=False, hidden_sizes=(32,), gru_hidden_size=32,
        eval_episodes=32,
    )


def run_cell(network: str, memory_length: int, seeds: int, timesteps: int) -> dict:
    env, env_params = gymnax.make("MemoryChain-bsuite")
    env_params = env_params.replace(memory_length=memory_length)
    cfg = base_config(timesteps)
    config = PPOConfig(**cfg, network=network, eval_every=timesteps // (cfg["num_envs"] * cfg["num_steps"]))
    train = jax.jit(jax.vmap(make_train(config, env, env_params)))
    start = time.perf_counter()
    out = train(jax.random.split(jax.random.key(0), seeds))
    returns = np.asarray(jax.block_until_ready(out.metrics["episode_return"]))  # [seeds, num_updates]
    seconds = time.perf_counter() - start
    tail = max(1, config.num_updates // 10)
    final = np.nanmean(returns[:, -tail:], axis=1)
    evals = np.asarray(out.metrics["eval_return"])[:, -1]
    return {
        "network": network,
        "memory_length": memory_length,
        "timesteps_trained": config.timesteps_trained,
        "final_train_return_per_seed": [round(float(x), 4) for x in final],
        "final_train_return_mean": round(float(final.mean()), 4),
        "eval_return_per_seed": [round(float(x), 4) for x in evals],
        "wall_seconds_incl_compile": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-lengths", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=16 * 24 * 128)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    cells = []
    for memory_length in args.memory_lengths:
        for network in ("mlp", "gru"):
            cell = run_cell(network, memory_length, args.seeds, args.timesteps)
            print(json.dumps(cell))
            cells.append(cell)
    result = {
        "task": "MemoryChain-bsuite (gymnax), num_bits=1; chance (feed-forward optimum) = 0, memory optimum = 1",
        "seeds": f"jax.random.split(key(0), {args.seeds})",
        "config": base_config(args.timesteps),
        "machine": {"platform": platform.platform(), "jax": jax.__version__, "device": str(jax.devices()[0])},
        "cells": cells,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
