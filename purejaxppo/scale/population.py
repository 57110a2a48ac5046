"""Population-based training (Jaderberg et al., 2017), `pbt`: one config, one compiled program for the whole run.

    result = pbt(PPOConfig(env_name="CartPole-v1"), population=8, ready_every=10, key=jax.random.key(0),
                 hyperparameters={"learning_rate": (1e-4, 1e-3), "entropy_coeff": [0.0, 0.01, 0.05]})
    result.metrics["episode_return"]            # [P, num_updates]
    result.lineage["parent"]                    # [G, P]: who each member copied after generation g (-1: nobody)
    result.lineage["hyperparameters"]["learning_rate"]   # [G + 1, P]: the values each segment trained with
    key, schedule = result.schedule(member)
    make_train(config)(key, schedule=schedule)             # that member's hyperparameter schedule as a single run

How it works. The P members train as `sweep`'s cells do: one `RunState` each and their own float hyperparameters
(batched `PPOConfig` leaves), `jax.vmap`-ed and split over the devices of a mesh with `shard_map`. The run is cut into
S = num_updates / ready_every segments of `ready_every` updates. After every segment but the last (G = S - 1
generations), on the device: each member's recent return (the mean of its finite per-update episode_return over the
segment) is ranked; each member of the bottom `quantile` copies the parameters, optimiser state and observation /
reward normalisation statistics of a uniformly chosen member of the top `quantile` (exploit), then perturbs the copied
hyperparameters (explore: a range's value is multiplied by 0.8 or 1.2 and clipped to the range; a list of choices
moves to a neighbouring choice, staying put at an end half the time). A member keeps its own environments, its own
random key and its update counter, so all members stay at the same point of the learning-rate schedule: with
anneal_lr the learning rate at update u is ``lr * (1 - u / num_updates)`` where lr, the member's `learning_rate`
leaf, is its base rate (the copied Adam step count is the same as the member's own).

Design: the population's whole state is one pytree, `PopulationState` (the members' `RunState`s, their genes, the
running score of the current segment, the lineage so far, the update counter), and one compiled program advances it
by n updates, n a traced argument: a `fori_loop` over updates whose body trains every member one update and, at a
segment's end, runs the generation step under `lax.cond`. So the hyperparameters are traced values that change
without recompiling, the generation step (ranking, gather, perturbation: a handful of tiny array ops) stays on the
device, and the same executable serves `pbt` (one call for the whole run: no host round trip per generation, as
`make_train` runs) and the command line's chunks between checkpoints. A chunk may end anywhere, mid-generation
included, and resuming from its checkpoint is bit-identical to the uninterrupted run: the state holds everything the
next update reads. Programs are cached per (config, searched names and kinds, number of choices, population,
ready_every, quantile, mesh): new keys and new ranges or choices reuse them.

Randomness. Member i trains with the key ``jax.random.split(key, P)[i]`` (the key a lone `make_train` run takes).
Initial hyperparameters come from ``streams.stream(key, PBT)`` (ranges: log-uniform when low > 0, else uniform;
choices: uniform), generation g's exploit/explore from ``streams.stream(key, PBT, g)``; the training streams are those
of `make_train`. The same key gives the same bits.

Devices. The members are split over a one-axis mesh (default: every device when P divides by their number, else the
largest count that divides P). Training needs no cross-device traffic; the generation step's copy is a gather of the
chosen parents' states across devices, which XLA inserts.

Replay. ``make_train(config)(key, schedule=schedule)`` trains one run with a member's hyperparameter schedule
(segment s uses ``schedule[name][s]``; `PBTResult.schedule` gives both). It is exact for a member that never copied
weights (e.g. a population of 1, or a top member), up to the float rounding of vmap vs a lone run (as `sweep`'s cells
vs `make_train`: episode statistics equal, losses within ~1e-4). For a member that copied weights, its history is
several members' histories spliced together; one run cannot reproduce it, and the replay then only replays the
hyperparameter schedule from the member's own start.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from purejaxppo.core import streams
from purejaxppo.compiler import jit
from purejaxppo.config import HYPERPARAMETERS, STATIC_FIELDS, PPOConfig, with_hyperparameters
from purejaxppo.scale.sweeps import check_is_mesh, gather_to_host
from purejaxppo.envs.pools import check_host_pool_placement
from purejaxppo.training.train import RunState, TrainOutput, init, make_setup, make_train, restart_envs, update

EXPLORE_FACTORS = (0.8, 1.2)
MEMBER_AXIS = "member"


class PopulationState(struct.PyTreeNode):
    """Everything a PBT run carries from one update to the next (P members, S segments, G = S - 1 generations).

    members: the members' `RunState`, leaves ``[P, ...]``.
    genes: per searched hyperparameter, ``[P]``: the value (a range) or the index into the choices (a choice list).
    score_sum, score_count: ``[P]`` float32 / int32: the sum and the number of the finite per-update episode returns
      of the current segment (its recent return is their ratio).
    update: ``[]`` int32, updates done.
    parent, score: ``[G, P]`` the lineage so far: after generation g member i copied ``parent[g, i]`` (-1: kept its
      own weights, or not reached yet) and was ranked by ``score[g, i]`` (NaN: not reached yet).
    values: per searched hyperparameter, ``[S, P]`` float32: the values each segment trained with (NaN: not reached).
    key: the run's base key (the PBT stream's).
    """

    members: RunState
    genes: tuple
    score_sum: jax.Array
    score_count: jax.Array
    update: jax.Array
    parent: jax.Array
    score: jax.Array
    values: tuple
    key: jax.Array


class Space(NamedTuple):
    """The searched hyperparameters: ranges (low, high) and choice lists, in the given order."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]  # "range" or "choice"
    bounds: tuple[tuple[float, ...], ...]  # (low, high) or the choices

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The bounds as the float32 arrays the program takes (a traced argument: new values never recompile)."""
        return tuple(np.asarray(b, np.float32) for b in self.bounds)

    def shape(self) -> tuple:
        """What the compiled program depends on: names, kinds and the number of choices."""
        return self.names, self.kinds, tuple(len(b) for b in self.bounds)

    def as_dict(self) -> dict[str, Any]:
        """``{name: (low, high) or [choices]}``, the form `pbt` takes."""
        return {n: (tuple(b) if k == "range" else list(b)) for n, k, b in zip(self.names, self.kinds, self.bounds)}

    def to_json(self) -> dict[str, Any]:
        """``{name: {"range": [low, high]} or {"choice": [...]}}`` (JSON has no tuples to tell the two apart)."""
        return {n: {k: list(b)} for n, k, b in zip(self.names, self.kinds, self.bounds)}

    @staticmethod
    def from_json(obj: Mapping[str, Any]) -> Space:
        """The inverse of `to_json`."""
        kinds = tuple(next(iter(v)) for v in obj.values())
        return Space(tuple(obj), kinds, tuple(tuple(float(x) for x in v[k]) for v, k in zip(obj.values(), kinds)))


class PBTResult(NamedTuple):
    """The outcome of `pbt`, as host NumPy arrays.

    state: the final `RunState` of every member, leaves ``[P, ...]``.
    metrics: name -> ``[P, num_updates]`` (names as in `metrics.METRIC_NAMES`).
    lineage: ``{"parent": [G, P] int32, "hyperparameters": {name: [G + 1, P]}, "score": [G, P]}``: after generation
      g, member i copied member ``parent[g, i]`` (-1: it kept its own weights); segment s trained with
      ``hyperparameters[name][s, i]``; ``score[g, i]`` is the recent return the ranking of generation g used.
    keys: ``[P]`` the members' training keys (``jax.random.split(key, P)``).
    config, ready_every: as given.
    hyperparameters: the searched space as given to `pbt` (``{name: (low, high) or [choices]}``).
    """

    state: Any
    metrics: dict[str, np.ndarray]
    lineage: dict[str, Any]
    keys: Any
    config: PPOConfig
    ready_every: int
    hyperparameters: dict[str, Any] | None = None

    def schedule(self, member: int) -> tuple[jax.Array, dict[str, np.ndarray]]:
        """``(key, {name: [S] values})`` of one member: the arguments of ``make_train(config)(key, schedule=...)``."""
        values = {name: v[:, member] for name, v in self.lineage["hyperparameters"].items()}
        return self.keys[member], values

    def best(self, metric: str = "episode_return", last: int = 10) -> int:
        """The member with the best mean of its finite `metric` values over its last `last` updates."""
        return int(np.argmax(recent_scores(self.metrics[metric], last)))


def recent_scores(values: np.ndarray, last: int) -> np.ndarray:
    """``[P, U] -> [P]``: each member's mean of its finite values over the last `last` updates (-inf: none finite)."""
    window = np.asarray(values, np.float64)[:, -last:]
    finite = np.isfinite(window)
    mean = np.where(finite, window, 0).sum(-1) / np.maximum(finite.sum(-1), 1)
    return np.where(finite.any(-1), mean, -np.inf)


def check_space(config: PPOConfig, hyperparameters: Mapping[str, Any]) -> Space:
    if not isinstance(hyperparameters, Mapping) or not hyperparameters:
        raise ValueError("hyperparameters must be a non-empty dict {name: (low, high) or [choices]}")
    names, kinds, bounds = [], [], []
    for name, spec in hyperparameters.items():
        if name in STATIC_FIELDS or name not in HYPERPARAMETERS:
            raise ValueError(f"cannot search {name!r} with pbt: searchable float hyperparameters are "
                             f"{list(HYPERPARAMETERS)}")
        if not (isinstance(spec, tuple) and len(spec) == 2 or isinstance(spec, list) and spec):
            raise ValueError(f"pbt hyperparameters[{name!r}] must be a (low, high) tuple or a non-empty list of "
                             f"choices, got {spec!r}")
        for v in spec:
            config.replace(**{name: v})  # the same ValueError a user building this config would get ("a", True)
        values = tuple(float(v) for v in spec)
        if isinstance(spec, tuple) and not values[0] < values[1]:
            raise ValueError(f"pbt range for {name} must have low < high, got {spec!r}")
        kind = "range" if isinstance(spec, tuple) else "choice"
        names.append(name)
        kinds.append(kind)
        bounds.append(values)
    return Space(tuple(names), tuple(kinds), tuple(bounds))


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

# ------------------------------------------------------------------------------------------------------ the program
TRACES = {"count": 0}  # how many times a pbt program was traced (tests: no recompile across generations / calls)


class Program(NamedTuple):
    """The compiled pieces of one PBT setup (see `program`).

    init(key, bounds) -> PopulationState: the initial population, split over the mesh.
    advance(state, bounds, n) -> (state, metrics {name: [capacity, P]}): n <= capacity updates (n traced); rows past
      n are zeros.
    capacity: the most updates one `advance` call runs.
    mesh: the devices the members are split over.
    shardings: the `PopulationState`'s placement (members split over the mesh, the rest replicated): put a restored
      state there with ``jax.device_put(state, shardings)``.
    restart(state) -> PopulationState: the members' environments restarted (`train.restart_envs`), for a run resumed
      on a host pool.
    env: the members' environment (a host pool's failures are reported through it: `pools.host_errors`).
    """

    init: Any
    advance: Any
    capacity: int
    mesh: Mesh
    shardings: Any
    restart: Any
    env: Any


def default_mesh(population: int) -> Mesh:
    """A one-axis mesh over every device when `population` divides by their number, else over the largest number
    of them that divides it (all of them in one process's order)."""
    devices = jax.devices()
    return Mesh(np.array(devices[:math.gcd(population, len(devices))]), (MEMBER_AXIS,))


@functools.lru_cache(maxsize=8)
def program(config: PPOConfig, space_shape: tuple, population: int, ready_every: int, quantile: float,
            mesh: Mesh, capacity: int) -> Program:
    """The cached `Program` for one PBT setup; `space_shape` is `Space.shape` (bounds are arguments)."""
    names, kinds, _ = space_shape
    setup = make_setup(config)
    check_host_pool_placement(setup.env, "pbt", devices=mesh.size)
    num_updates = config.num_updates
    segments = num_updates // ready_every
    axes = P(mesh.axis_names)
    per_member = NamedSharding(mesh, axes)
    replicated = NamedSharding(mesh, P())

    def hp(values):
        return with_hyperparameters(config, dict(zip(names, values)))

    def train_one_update(members, values):  # shard_map: each device its own members, no collectives
        local = jax.vmap(lambda state, v: update(setup, state, hp(v)))
        return jax.shard_map(local, mesh=mesh, in_specs=(axes, axes), out_specs=axes, check_vma=False)(members, values)

    def init_fn(key, bounds):
        return _initial_state(setup, names, kinds, population, segments, key, bounds)

    def generation(state, bounds):
        g = state.update // ready_every - 1
        count = state.score_count
        scores = jnp.where(count > 0, state.score_sum / jnp.maximum(count, 1), jnp.nan)
        parent, genes = exploit_explore(kinds, list(state.genes), scores, streams.stream(state.key, streams.PBT, g),
                                        bounds, quantile)
        return state.replace(members=_copy_from(state.members, parent), genes=tuple(genes),
                             score_sum=jnp.zeros_like(state.score_sum), score_count=jnp.zeros_like(count),
                             parent=state.parent.at[g].set(parent), score=state.score.at[g].set(scores))

    def step(state, bounds):
        values = _values(kinds, state.genes, bounds)
        members, metrics = train_one_update(state.members, tuple(values))
        ret = metrics["episode_return"]
        finite = jnp.isfinite(ret)
        segment = state.update // ready_every
        state = state.replace(
            members=members, update=state.update + 1,
            score_sum=state.score_sum + jnp.where(finite, ret, 0.0), score_count=state.score_count + finite,
            values=tuple(h.at[segment].set(v.astype(jnp.float32)) for h, v in zip(state.values, values)))
        ready = (state.update % ready_every == 0) & (state.update < num_updates)
        return jax.lax.cond(ready, generation, lambda s, _: s, state, bounds), metrics

    def advance_fn(state, bounds, n):
        TRACES["count"] += 1
        shapes = jax.eval_shape(step, state, bounds)[1]
        rows = {k: jnp.zeros((capacity, *s.shape), s.dtype) for k, s in shapes.items()}

        def body(i, carry):
            state, rows = carry
            state, metrics = step(state, bounds)
            return state, {k: rows[k].at[i].set(metrics[k]) for k in rows}

        return jax.lax.fori_loop(0, jnp.minimum(n, capacity), body, (state, rows))

    abstract = jax.eval_shape(init_fn, jax.random.key(0), _zero_bounds(space_shape))
    shardings = jax.tree.map(lambda _: replicated, abstract).replace(
        members=jax.tree.map(lambda _: per_member, abstract.members))
    init_jit = jit(init_fn, in_shardings=(replicated, replicated), out_shardings=shardings)
    advance_jit = jit(advance_fn, in_shardings=(shardings, replicated, replicated),
                      out_shardings=(shardings, NamedSharding(mesh, P(None, mesh.axis_names))), donate_argnums=0)
    restart_jit = jax.jit(lambda state: state.replace(members=jax.vmap(lambda m: restart_envs(setup, m, config))(
        state.members)), in_shardings=(shardings,), out_shardings=shardings)
    return Program(init_jit, advance_jit, capacity, mesh, shardings, restart_jit, setup.env)


def _zero_bounds(space_shape: tuple) -> tuple[jax.Array, ...]:
    return tuple(jnp.zeros((n,), jnp.float32) for n in space_shape[2])


def _initial_state(setup, names, kinds, population: int, segments: int, key, bounds) -> PopulationState:
    """Generation 0: P members from ``split(key, P)``, their genes drawn from the PBT stream."""
    keys = jax.random.split(key, population)
    genes = _sample_initial(kinds, streams.stream(key, streams.PBT), population, bounds)
    values = _values(kinds, genes, bounds)
    members = jax.vmap(lambda k, v: init(setup, k, with_hyperparameters(setup.config, dict(zip(names, v)))))(
        keys, tuple(values))
    generations = max(segments - 1, 0)
    return PopulationState(
        members=members, genes=tuple(genes), score_sum=jnp.zeros((population,), jnp.float32),
        score_count=jnp.zeros((population,), jnp.int32), update=jnp.zeros((), jnp.int32),
        parent=jnp.full((generations, population), -1, jnp.int32),
        score=jnp.full((generations, population), jnp.nan, jnp.float32),
        values=tuple(jnp.full((segments, population), jnp.nan, jnp.float32) for _ in names), key=key)


def abstract_population(config: PPOConfig, space_shape: tuple, population: int, ready_every: int) -> PopulationState:
    """Shapes and dtypes of a `PopulationState` (traced only): what a checkpoint of a PBT run restores into."""
    names, kinds, _ = space_shape
    setup = make_setup(config)
    fn = functools.partial(_initial_state, setup, names, kinds, population, config.num_updates // ready_every)
    return jax.eval_shape(fn, jax.random.key(0), _zero_bounds(space_shape))


# ------------------------------------------------------------------------------------------------------- the API
def check_pbt(config: PPOConfig, population: int, hyperparameters: Mapping[str, Any], ready_every: int,
              quantile: float) -> Space:
    """Validate `pbt`'s arguments (ValueError naming the argument and what is allowed); return the searched space."""
    if not isinstance(config, PPOConfig):
        raise TypeError(f"pbt needs a PPOConfig, got {type(config).__name__}")
    if not isinstance(population, int) or isinstance(population, bool) or population < 1:
        raise ValueError(f"population must be an integer >= 1, got {population!r}")
    if not isinstance(ready_every, int) or isinstance(ready_every, bool) or ready_every < 1:
        raise ValueError(f"ready_every must be a positive integer, got {ready_every!r}")
    if config.num_updates % ready_every:
        raise ValueError(f"config.num_updates ({config.num_updates}) must be a positive multiple of ready_every "
                         f"({ready_every})")
    if not isinstance(quantile, (int, float)) or not 0 < quantile <= 0.5:
        raise ValueError(f"quantile must be in (0, 0.5], got {quantile!r}")
    return check_space(config, hyperparameters)


def check_mesh(mesh: Mesh, population: int) -> None:
    check_is_mesh(mesh)
    if population % mesh.size:
        raise ValueError(f"population ({population}) must be a multiple of the mesh's {mesh.size} devices (each "
                         f"device trains population / devices members); leave mesh out to use as many as divide it")


def pbt(
    config: PPOConfig,
    population: int,
    hyperparameters: Mapping[str, tuple[float, float] | Sequence[float]],
    ready_every: int,
    key: jax.Array | None = None,
    *,
    quantile: float = 0.25,
    mesh: Mesh | None = None,
) -> PBTResult:
    """Population-based training of `population` members of `config` in one compiled program (see the module doc).

    Args:
      config: the base `PPOConfig` (its static fields are shared; its other float leaves are every member's).
      population: the number of members P (a population of 1 never exploits: plain training with a schedule).
      hyperparameters: ``{name: (low, high)}`` (a tuple: a range) or ``{name: [choices]}`` (a list), float
        hyperparameters only (`config.HYPERPARAMETERS`).
      ready_every: updates per segment; ``config.num_updates`` must be a multiple of it.
      key: the base key (default ``jax.random.key(0)``).
      quantile: the fraction of the population that is replaced each generation (and that it copies from).
      mesh: the devices to split the members over (P must divide by its size); default `default_mesh`.

    Returns:
      A `PBTResult`.
    """
    space = check_pbt(config, population, hyperparameters, ready_every, quantile)
    mesh = default_mesh(population) if mesh is None else mesh
    check_mesh(mesh, population)
    key = jax.random.key(0) if key is None else key
    streams.check_key(key, "pbt's key", hint="")
    prog = program(config, space.shape(), population, ready_every, float(quantile), mesh, config.num_updates)
    key, bounds, n = replicated((key, space.arrays(), np.int32(config.num_updates)), mesh)
    state, rows = prog.advance(prog.init(key, bounds), bounds, n)
    state, rows = to_host(state, rows)
    metrics = {name: np.swapaxes(m, 0, 1) for name, m in rows.items()}  # [U, P] -> [P, U]
    return PBTResult(state.members, metrics, lineage(state, space.names), jax.random.split(key, population), config,
                     ready_every, space.as_dict())


def replicated(tree: Any, mesh: Mesh) -> Any:
    """Host values (keys, bounds, counts) as arrays replicated on every device of `mesh`, of every process: what the
    programs take (across hosts, a process-local array is not a valid input)."""
    sharding = NamedSharding(mesh, P())

    def put(x):
        if streams.is_key(x):
            return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)


def to_host(state: PopulationState, rows: Any = None) -> tuple[PopulationState, Any]:
    """Host NumPy copies (on every process) of a population state, typed keys kept, and of any metrics rows."""
    impl = jax.random.key_impl(state.key)
    raw = state.replace(key=jax.random.key_data(state.key),
                        members=state.members.replace(key=jax.random.key_data(state.members.key)))
    raw, rows = gather_to_host((raw, rows))
    wrap = functools.partial(jax.random.wrap_key_data, impl=impl)
    return raw.replace(key=wrap(raw.key), members=raw.members.replace(key=wrap(raw.members.key))), rows


def lineage(state: PopulationState, names: Sequence[str]) -> dict[str, Any]:
    """The lineage so far as host arrays: ``{"parent": [G, P], "score": [G, P], "hyperparameters": {name: [S, P]}}``
    (generations and segments not reached yet: -1 and NaN)."""
    return {"parent": np.asarray(state.parent), "score": np.asarray(state.score),
            "hyperparameters": {n: np.asarray(v) for n, v in zip(names, state.values)}}


def replay(config: PPOConfig, key: jax.Array, schedule: Mapping[str, Sequence[float]]) -> TrainOutput:
    """``make_train(config)(key, schedule=schedule)`` after checking the schedule's values as `pbt` checks its choices:
    one run whose segment s trains with ``schedule[name][s]`` (see the module doc for when it reproduces a member)."""
    columns = {name: np.asarray(v, np.float32) for name, v in schedule.items()}
    check_space(config, {name: [float(x) for x in np.ravel(v)] for name, v in columns.items()})
    return make_train(config)(key, schedule=columns)
