"""Where one PPO update's time goes: each phase timed alone, scanned over many updates inside one jit, as in a run.

    python benchmarks/profile_update.py                         # CartPole, default config, 1 and 8 seeds
    python benchmarks/profile_update.py --seeds 8 --updates 200 --set num_minibatches=8

Phases (each vmapped over the seeds, each iteration depending on the last so nothing is hoisted out of the loop):

* rollout: `rollout.collect`, num_steps environment steps with the policy acting;
* batch:   `batch.prepare_batch`, values of the rollout and GAE (on one recorded rollout);
* epochs:  `train.learn`, update_epochs x num_minibatches gradient steps (on one prepared batch);
* update:  the whole `train.update` (the three above, plus metrics);
* env:     the environment alone with random actions, the same number of steps (the ceiling).

Prints milliseconds per update and each phase's share of the whole update. Absolute times drift between days on
shared machines; compare phases within one run.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp

from purejaxppo import PPOConfig, make_setup
from purejaxppo.core import streams
from purejaxppo.training.batch import prepare_batch, to_samples
from purejaxppo.training.rollout import collect
from purejaxppo.training.train import init, learn, update


def parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        out[name] = json.loads(value) if value[:1] in "[{0123456789-." or value in ("true", "false") else value
    return out


def timed(fn, *args) -> tuple[float, float]:
    """``(compile seconds, run seconds)`` of ``jax.jit(fn)(*args)``."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    t1 = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    return t1 - t0, time.perf_counter() - t1


def phases(config: PPOConfig, num_seeds: int, num_updates: int) -> dict[str, float]:
    setup = make_setup(config)
    policy, env, hp = setup.policy, setup.env, config
    keys = jax.random.split(jax.random.key(0), num_seeds)
    states = jax.jit(jax.vmap(lambda k: init(setup, k, hp)))(keys)
    # one recorded rollout and its prepared batch, as inputs for the phases that follow it
    first = jax.jit(jax.vmap(lambda s: collect(policy, s.params, env, hp, s.obs_stats, s.rollout,
                                               streams.stream(s.key, streams.ACTIONS, 0),
                                               streams.stream(s.key, streams.ENV, 0))))(states)
    transition = first[0]
    batches = jax.jit(jax.vmap(lambda s, tr: prepare_batch(policy, s.params, hp, tr, s.rollout.carry, s.obs_stats,
                                                           s.reward_state)[0]))(states, transition)

    def loop(body, carry):
        return lambda c: jax.lax.scan(lambda x, u: (body(x, u), None), c, jnp.arange(num_updates))[0]

    def rollout_phase(s):
        def body(rollout, u):
            return collect(policy, s.params, env, hp, s.obs_stats, rollout, streams.stream(s.key, streams.ACTIONS, u),
                           streams.stream(s.key, streams.ENV, u))[1]
        return loop(body, s.rollout)(s.rollout)

    def batch_phase(s, tr):
        def body(carry, u):  # the advantages are summed into the carry, so they are computed every iteration
            stats, reward_state, total = carry
            tr_u = tr._replace(reward=tr.reward + total * 1e-30)
            batch, stats, reward_state = prepare_batch(policy, s.params, hp, tr_u, s.rollout.carry, stats,
                                                       reward_state)
            return stats, reward_state, total + batch.advantage.sum()
        return loop(body, None)((s.obs_stats, s.reward_state, jnp.zeros(())))

    def epochs_phase(s, batch):
        samples = to_samples(batch, s.rollout.carry, policy.recurrent)

        def body(carry, u):
            params, opt_state = carry
            params, opt_state, _ = learn(setup, params, opt_state, samples,
                                         streams.stream(s.key, streams.SHUFFLE, u), hp)
            return params, opt_state
        return loop(body, None)((s.params, s.opt_state))

    def update_phase(s):
        return loop(lambda x, u: update(setup, x, hp)[0], None)(s)

    def env_phase(s):
        def body(carry, u):
            env_state, key = carry
            key, k_act, k_env = jax.random.split(key, 3)
            n = config.num_envs

            def step(es, t):
                ka, ke = jax.random.fold_in(k_act, t), jax.random.fold_in(k_env, t)
                action = jax.vmap(env.wrapped.action_space(env.params).sample)(jax.random.split(ka, n))
                return env.step(jax.random.split(ke, n), es, action).env_state, None
            return jax.lax.scan(step, env_state, jnp.arange(config.num_steps))[0], key
        return loop(body, None)((s.rollout.env_state, s.key))

    results = {}
    for name, fn, args in (
        ("rollout", rollout_phase, (states,)), ("batch", batch_phase, (states, transition)),
        ("epochs", epochs_phase, (states, batches)), ("update", update_phase, (states,)), ("env", env_phase, (states,)),
    ):
        compile_s, run_s = timed(jax.vmap(fn), *args)
        results[name] = {"ms_per_update": 1e3 * run_s / num_updates, "compile_s": compile_s}
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="1,8")
    ap.add_argument("--updates", type=int, default=200)
    ap.add_argument("--set", nargs="*", default=[], help="config overrides FIELD=VALUE")
    ap.add_argument("--json", action="store_true", help="print one JSON line per seed count")
    args = ap.parse_args()
    config = PPOConfig(**parse_set(args.set))
    for seeds in (int(s) for s in args.seeds.split(",")):
        result = phases(config, seeds, args.updates)
        if args.json:
            print(json.dumps({"seeds": seeds, **result}))
            continue
        whole = result["update"]["ms_per_update"]
        print(f"{config.env_name}, {seeds} seed(s), {args.updates} updates; ms per update (share of the whole update)")
        for name, row in result.items():
            print(f"  {name:8s} {row['ms_per_update']:8.3f} ms  ({100 * row['ms_per_update'] / whole:5.1f}%)"
                  f"   compile {row['compile_s']:.1f} s")
        steps = seeds * config.batch_size
        print(f"  -> {steps / whole * 1e3:,.0f} env steps/s for the whole update")


if __name__ == "__main__":
    main()
