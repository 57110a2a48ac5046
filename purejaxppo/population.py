"""Population-based training (Jaderberg et al., 2017), `pbt`: one config, the whole run one compiled program.

    result = pbt(PPOConfig(env_name="CartPole-v1"), population=8, ready_every=10, key=jax.random.key(0),
                 hyperparameters={"learning_rate": (1e-4, 1e-3), "entropy_coeff": [0.0, 0.01, 0.05]})
    result.metrics["episode_return"]            # [P, num_updates]
    result.lineage["parent"]                    # [G, P]: who each member copied after generation g (-1: nobody)
    result.lineage["hyperparameters"]["learning_rate"]   # [G + 1, P]: the values each segment trained with
    replay(config, *result.schedule(member))    # that member's hyperparameter schedule as a single run

How it works. The P members train as `sweep`'s cells do: one `RunState` each and their own float hyperparameters
(batched `PPOConfig` leaves), `jax.vmap`-ed. The run is cut into S = num_updates / ready_every segments of
`ready_every` updates. After every segment but the last (G = S - 1 generations), on the device: each member's recent
return (the NaN-aware mean of its episode_return over the segment) is ranked; each member of the bottom `quantile`
copies the parameters, optimiser state and observation / reward normalisation statistics of a uniformly chosen member
of the top `quantile` (exploit), then perturbs the copied hyperparameters (explore: a range's value is multiplied by
0.8 or 1.2 and clipped to the range; a list of choices moves to a neighbouring choice, staying put at an end half the
time). A member keeps its own environments, its own random key and its update counter, so all members stay at the same
point of the learning-rate schedule: with anneal_lr the learning rate at update u is ``lr * (1 - u / num_updates)``
where lr, the member's `learning_rate` leaf, is its base rate (the copied Adam step count is the same as the member's
own).

Design: one `lax.scan` over the segments, not a host loop over one jitted chunk. The generation step (ranking, gather,
perturbation) is a handful of tiny array ops that belong to the same program, the hyperparameters are traced values
that change without recompiling by construction, and one program means one compile and no per-generation host round
trip or transfer of the population's state (what `make_train` does for a single run). The price is that nothing
reaches the host before the end; use small budgets per call. The program is cached per (config, searched names,
population, ready_every, quantile): new keys or new ranges / choices (the same number of choices) reuse it.

Randomness. Member i trains with the key ``jax.random.split(key, P)[i]`` (the key a lone `make_train` run, or
`replay`, takes). Initial hyperparameters come from ``streams.stream(key, PBT)`` (ranges: log-uniform when low > 0,
else uniform; choices: uniform), generation g's exploit/explore from ``streams.stream(key, PBT, g)``; the training
streams are those of `make_train`. The same key gives the same bits.

Devices: single device (the population is one vmapped batch under `jit`). Sharding members over devices like `sweep`
would need a gather of the chosen parents across devices at each generation; not done yet.

Replay. `replay(config, key, schedule)` trains one run with a member's hyperparameter schedule (segment s uses
``schedule[name][s]``). It is exact for a member that never copied weights (e.g. a population of 1, or a top member),
up to the float rounding of vmap vs a lone run (as `sweep`'s cells vs `make_train`: episode statistics equal, losses
within ~1e-4). For a member that copied weights, its history is several members' histories spliced together; one run
cannot reproduce it, and `replay` then only replays the hyperparameter schedule from the member's own start.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo import streams
from purejaxppo.compiler import jit
from purejaxppo.config import HYPERPARAMETERS, STATIC_FIELDS, PPOConfig, with_hyperparameters
from purejaxppo.train import RunState, TrainOutput, init, make_setup, run

EXPLORE_FACTORS = (0.8, 1.2)


class PBTResult(NamedTuple):
    """The outcome of `pbt`, as host NumPy arrays.

    state: the final `RunState` of every member, leaves ``[P, ...]``.
    metrics: name -> ``[P, num_updates]`` (names as in `metrics.METRIC_NAMES`).
    lineage: ``{"parent": [G, P] int32, "hyperparameters": {name: [G + 1, P]}, "score": [G, P]}``: after generation
      g, member i copied member ``parent[g, i]`` (-1: it kept its own weights); segment s trained with
      ``hyperparameters[name][s, i]``; ``score[g, i]`` is the recent return the ranking of generation g used.
    keys: ``[P]`` the members' training keys (``jax.random.split(key, P)``).
    config, ready_every: as given.
    """

    state: Any
    metrics: dict[str, np.ndarray]
    lineage: dict[str, Any]
    keys: Any
    config: PPOConfig
    ready_every: int

    def schedule(self, member: int) -> tuple[jax.Array, dict[str, np.ndarray]]:
        """``(key, {name: [S] values})`` of one member: the arguments of `replay` after `config`."""
        values = {name: v[:, member] for name, v in self.lineage["hyperparameters"].items()}
        return self.keys[member], values

    def best(self, metric: str = "episode_return", last: int = 10) -> int:
        """The member with the best NaN-aware mean of `metric` over its last `last` updates."""
        window = self.metrics[metric][:, -last:].astype(np.float64)
        finite = np.isfinite(window)
        scores = np.where(finite.any(-1), np.where(finite, window, 0).sum(-1) / np.maximum(finite.sum(-1), 1), -np.inf)
        return int(np.argmax(scores))


class _Space(NamedTuple):
    """The searched hyperparameters: ranges (low, high) and choice lists, in the given order."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]  # "range" or "choice"
    bounds: tuple[tuple[float, ...], ...]  # (low, high) or the choices


def _check_space(config: PPOConfig, hyperparameters: Mapping[str, Any]) -> _Space:
    if not isinstance(hyperparameters, Mapping) or not hyperparameters:
        raise ValueError("hyperparameters must be a non-empty dict {name: (low, high) or [choices]}")
    names, kinds, bounds = [], [], []
    for name, spec in hyperparameters.items():
        if name in STATIC_FIELDS or name not in HYPERPARAMETERS:
            raise ValueError(f"cannot search {name!r} with pbt: searchable float hyperparameters are "
                             f"{list(HYPERPARAMETERS)}")
        if isinstance(spec, tuple) and len(spec) == 2:
            low, high = (float(v) for v in spec)
            if not low < high:
                raise ValueError(f"pbt range for {name} must have low < high, got {spec!r}")
            kind, values = "range", (low, high)
        elif isinstance(spec, list) and spec:
            kind, values = "choice", tuple(float(v) for v in spec)
        else:
            raise ValueError(f"pbt hyperparameters[{name!r}] must be a (low, high) tuple or a non-empty list of "
                             f"choices, got {spec!r}")
        for v in values:
            config.replace(**{name: v})  # the same ValueError a user building this config would get
        names.append(name)
        kinds.append(kind)
        bounds.append(values)
    return _Space(tuple(names), tuple(kinds), tuple(bounds))


def _nanmean(x: jax.Array, axis: int = -1) -> jax.Array:
    finite = jnp.isfinite(x)
    count = finite.sum(axis)
    return jnp.where(count > 0, jnp.where(finite, x, 0.0).sum(axis) / jnp.maximum(count, 1), jnp.nan)


# ------------------------------------------------------------------------------------------------------ the program
def _sample_initial(kinds, key, population, bounds):
    """Initial ``{i: value [P]}`` for ranges and ``{i: index [P]}`` for choices (by position in the space)."""
    out = []
    for i, kind in enumerate(kinds):
        k = jax.random.fold_in(key, i)
        if kind == "range":
            low, high = bounds[i][0], bounds[i][1]
            log = low > 0
            lo, hi = jnp.where(log, jnp.log(jnp.maximum(low, 1e-30)), low), jnp.where(log, jnp.log(high), high)
            u = jax.random.uniform(k, (population,), jnp.float32, lo, hi)
            out.append(jnp.clip(jnp.where(log, jnp.exp(u), u), low, high))
        else:
            out.append(jax.random.randint(k, (population,), 0, bounds[i].shape[0]))
    return out


def _values(kinds, genes, bounds):
    """Hyperparameter values [P] from the genes (values for ranges, indices for choices)."""
    return [g if kind == "range" else bounds[i][g] for i, (kind, g) in enumerate(zip(kinds, genes))]


def exploit_explore(kinds, genes, scores, key, bounds, quantile: float):
    """One generation's decision: ``(parent [P] int32, new genes)``; parent -1 keeps its own weights and genes.

    The members are ranked by `scores` (NaN ranks lowest); each of the bottom ``n = max(1, floor(P * quantile))``
    picks a parent uniformly among the top n and takes its genes perturbed. A population of 1 never exploits.
    """
    population = scores.shape[0]
    if population < 2:
        return jnp.full((population,), -1, jnp.int32), list(genes)
    n = max(1, math.floor(population * quantile))
    order = jnp.argsort(jnp.where(jnp.isnan(scores), -jnp.inf, scores), stable=True)  # ascending
    k_parent, k_explore = jax.random.split(key)
    chosen = order[population - n + jax.random.randint(k_parent, (n,), 0, n)]  # a top member for each bottom one
    parent = jnp.full((population,), -1, jnp.int32).at[order[:n]].set(chosen.astype(jnp.int32))
    copies = parent >= 0
    source = jnp.where(copies, parent, jnp.arange(population))
    new = []
    for i, (kind, gene) in enumerate(zip(kinds, genes)):
        k = jax.random.fold_in(k_explore, i)
        inherited = gene[source]
        up = jax.random.bernoulli(k, 0.5, (population,))
        if kind == "range":
            factor = jnp.where(up, EXPLORE_FACTORS[1], EXPLORE_FACTORS[0]).astype(inherited.dtype)
            moved = jnp.clip(inherited * factor, bounds[i][0], bounds[i][1])
        else:
            moved = jnp.clip(inherited + jnp.where(up, 1, -1), 0, bounds[i].shape[0] - 1)
        new.append(jnp.where(copies, moved, gene))
    return parent, new


def _copy_from(state: RunState, parent: jax.Array) -> RunState:
    """Each member with ``parent >= 0`` takes that member's params, optimiser state and normalisation statistics."""
    source = jnp.where(parent >= 0, parent, jnp.arange(parent.shape[0]))
    take = functools.partial(jax.tree.map, lambda x: x[source])
    return state.replace(params=take(state.params), opt_state=take(state.opt_state),
                         obs_stats=take(state.obs_stats), reward_state=take(state.reward_state))


TRACES = {"count": 0}  # how many times a pbt program was traced (tests: no recompile across generations / calls)


def _build_program(config: PPOConfig, space: _Space, population: int, ready_every: int, quantile: float):
    setup = make_setup(config)
    segments = config.num_updates // ready_every
    kinds, names = space.kinds, space.names

    def member_run(state, values, n):
        return run(setup, state, with_hyperparameters(config, dict(zip(names, values))), n)

    def program(key, bounds):
        TRACES["count"] += 1
        keys = jax.random.split(key, population)
        genes = _sample_initial(kinds, streams.stream(key, streams.PBT), population, bounds)
        values0 = _values(kinds, genes, bounds)
        state = jax.vmap(lambda k, v: init(setup, k, with_hyperparameters(config, dict(zip(names, v)))))(keys, values0)

        def segment(carry, s):
            state, genes = carry
            values = _values(kinds, genes, bounds)
            state, metrics = jax.vmap(lambda st, v: member_run(st, v, ready_every))(state, values)
            scores = _nanmean(metrics["episode_return"])
            parent, new_genes = exploit_explore(kinds, genes, scores, streams.stream(key, streams.PBT, s), bounds,
                                                quantile)
            last = s == segments - 1  # no generation after the last segment
            parent = jnp.where(last, -1, parent)
            new_genes = [jnp.where(last, g, ng) for g, ng in zip(genes, new_genes)]
            state = _copy_from(state, parent)
            return (state, new_genes), (metrics, parent, values, scores)

        (state, _), (metrics, parent, values, scores) = jax.lax.scan(segment, (state, genes), jnp.arange(segments))
        metrics = jax.tree.map(lambda m: jnp.swapaxes(m, 0, 1).reshape(population, -1), metrics)  # [S,P,R]->[P,U]
        lineage = {"parent": parent[:-1], "hyperparameters": dict(zip(names, values)), "score": scores[:-1]}
        return state.replace(key=jax.random.key_data(state.key)), metrics, lineage, jax.random.key_data(keys)

    return jit(program)


@functools.lru_cache(maxsize=8)
def _cached_program(config, space_shape, population, ready_every, quantile):
    names, kinds, sizes = space_shape
    space = _Space(names, kinds, tuple((0.0,) * s for s in sizes))
    return _build_program(config, space, population, ready_every, quantile)


def pbt(
    config: PPOConfig,
    population: int,
    hyperparameters: Mapping[str, tuple[float, float] | Sequence[float]],
    ready_every: int,
    key: jax.Array | None = None,
    *,
    quantile: float = 0.25,
) -> PBTResult:
    """Population-based training of `population` members of `config` in one compiled program (see the module doc).

    Args:
      config: the base `PPOConfig` (its static fields are shared; its other float leaves are every member's).
      population: the number of members P (a population of 1 never exploits: plain training with a schedule).
      hyperparameters: ``{name: (low, high)}`` (a tuple: a range) or ``{name: [choices]}`` (a list), float
        hyperparameters only (`config.HYPERPARAMETERS`).
      ready_every: updates per segment; ``config.num_updates`` must be a multiple of it, at least two segments.
      key: the base key (default ``jax.random.key(0)``).
      quantile: the fraction of the population that is replaced each generation (and that it copies from).

    Returns:
      A `PBTResult`.
    """
    if not isinstance(config, PPOConfig):
        raise TypeError(f"pbt needs a PPOConfig, got {type(config).__name__}")
    if not isinstance(population, int) or isinstance(population, bool) or population < 1:
        raise ValueError(f"population must be an integer >= 1, got {population!r}")
    if not isinstance(ready_every, int) or isinstance(ready_every, bool) or ready_every < 1:
        raise ValueError(f"ready_every must be a positive integer, got {ready_every!r}")
    if config.num_updates % ready_every or config.num_updates // ready_every < 1:
        raise ValueError(f"config.num_updates ({config.num_updates}) must be a positive multiple of ready_every "
                         f"({ready_every})")
    if not 0 < quantile <= 0.5:
        raise ValueError(f"quantile must be in (0, 0.5], got {quantile!r}")
    space = _check_space(config, hyperparameters)
    key = jax.random.key(0) if key is None else key
    shape = (space.names, space.kinds, tuple(len(b) for b in space.bounds))
    program = _cached_program(config, shape, population, ready_every, float(quantile))
    bounds = tuple(np.asarray(b, np.float32) for b in space.bounds)
    state, metrics, lineage, keys = jax.device_get(program(key, bounds))
    state = state.replace(key=jax.random.wrap_key_data(state.key, impl=jax.random.key_impl(key)))
    keys = jax.random.wrap_key_data(keys, impl=jax.random.key_impl(key))
    return PBTResult(state, metrics, lineage, keys, config, ready_every)


def replay(config: PPOConfig, key: jax.Array, schedule: Mapping[str, Sequence[float]]) -> TrainOutput:
    """One run of `config` from `key` whose hyperparameters follow `schedule` ``{name: [S] values}``: segment s
    (``num_updates / S`` updates) trains with ``schedule[name][s]``. See the module doc for when this is exact."""
    columns = {name: np.asarray(v, np.float32) for name, v in schedule.items()}
    lengths = {c.shape for c in columns.values()}
    if len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise ValueError("schedule must map names to 1-d sequences of one length")
    segments = next(iter(lengths))[0]
    if config.num_updates % segments:
        raise ValueError(f"config.num_updates ({config.num_updates}) is not a multiple of the schedule's {segments} "
                         f"segments")
    _check_space(config, {name: [float(x) for x in v] for name, v in columns.items()})
    return _replay_program(config, tuple(columns), segments)(key, columns)


@functools.lru_cache(maxsize=8)
def _replay_program(config: PPOConfig, names: tuple[str, ...], segments: int):
    setup = make_setup(config)
    length = config.num_updates // segments

    def program(key, columns):
        first = with_hyperparameters(config, {n: columns[n][0] for n in names})
        state = init(setup, key, first)

        def segment(state, values):
            return run(setup, state, with_hyperparameters(config, values), length)

        state, metrics = jax.lax.scan(segment, state, columns)
        return TrainOutput(state, jax.tree.map(lambda m: m.reshape(-1), metrics))

    return jit(program)
