"""`pbt`: lineage layout, exploit copies exactly, explore stays in range, ranking by the recent return, determinism,
one trace for the whole run, and `replay` of a member's schedule."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import purejaxppo
from purejaxppo import PPOConfig, make_train
from purejaxppo.core import streams
from purejaxppo.scale.population import TRACES, PBTResult, exploit_explore, pbt, replay
from purejaxppo.training.train import init, make_setup

# 12 updates, 3 segments of 4 (2 generations)
CONFIG = PPOConfig(num_envs=4, num_steps=16, total_timesteps=768, update_epochs=2, num_minibatches=2)
R, P = 4, 4
SPACE = {"learning_rate": (1e-4, 1e-2), "entropy_coeff": [0.0, 0.01, 0.05]}
FLOAT_METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "explained_variance", "grad_norm")


@pytest.fixture(scope="module")
def result() -> PBTResult:
    return pbt(CONFIG, population=P, hyperparameters=SPACE, ready_every=R, key=jax.random.key(0))


def test_lineage_and_metric_shapes(result):
    assert result.metrics["episode_return"].shape == (P, 12)
    assert result.lineage["parent"].shape == (2, P)
    assert result.lineage["score"].shape == (2, P)
    assert {k: v.shape for k, v in result.lineage["hyperparameters"].items()} == {n: (3, P) for n in SPACE}
    assert result.state.params is not None and jax.tree.leaves(result.state.params)[0].shape[0] == P
    # the learning rate each segment reports is the member's base lr, annealed over the whole run
    lr = result.lineage["hyperparameters"]["learning_rate"]
    for s in range(3):
        u = np.arange(s * R, (s + 1) * R)
        np.testing.assert_allclose(result.metrics["learning_rate"][:, s * R:(s + 1) * R],
                                   lr[s][:, None] * (1 - u / 12), rtol=1e-6)


def test_ranking_uses_the_recent_return(result):
    ret = result.metrics["episode_return"]
    for g in range(2):
        window = ret[:, g * R:(g + 1) * R]
        expected = np.array([np.nanmean(w) if np.isfinite(w).any() else np.nan for w in window])
        np.testing.assert_allclose(result.lineage["score"][g], expected, rtol=1e-5)
        score = np.where(np.isnan(expected), -np.inf, expected)
        parent = result.lineage["parent"][g]
        copied = np.flatnonzero(parent >= 0)
        assert list(copied) == [int(np.argsort(score, kind="stable")[0])]  # the bottom quarter: one member
        assert parent[copied[0]] == int(np.argsort(score, kind="stable")[-1])  # copies the top one


def test_explore_stays_in_range_and_perturbs_the_parents_values(result):
    lr = result.lineage["hyperparameters"]["learning_rate"]
    ent = result.lineage["hyperparameters"]["entropy_coeff"]
    assert np.all((lr >= np.float32(1e-4)) & (lr <= np.float32(1e-2)))
    choices = np.float32(SPACE["entropy_coeff"])
    assert np.isin(ent, choices).all()
    for g in range(2):
        for i, p in enumerate(result.lineage["parent"][g]):
            if p < 0:
                assert lr[g + 1, i] == lr[g, i] and ent[g + 1, i] == ent[g, i]
                continue
            moved = np.clip(lr[g, p] * np.float32([0.8, 1.2]), np.float32(1e-4), np.float32(1e-2))
            assert np.isclose(lr[g + 1, i], moved, rtol=1e-6).any()
            j = int(np.flatnonzero(choices == ent[g, p])[0])
            assert ent[g + 1, i] in choices[[max(j - 1, 0), min(j + 1, len(choices) - 1)]]


def test_exploit_copies_the_parents_weights_exactly():
    # a learning rate of 1e-30 leaves every weight matrix unchanged (x + 1e-30 == x in float32), so a member's final
    # kernels are those its ancestor line started from: follow the lineage back and compare bit for bit
    key = jax.random.key(3)
    res = pbt(CONFIG, population=P, hyperparameters={"learning_rate": [1e-30], "entropy_coeff": (0.0, 0.1)},
              ready_every=R, key=key)
    parents = res.lineage["parent"]
    assert (parents >= 0).sum() == 2
    owner = np.arange(P)
    for g in range(2):
        owner = np.where(parents[g] >= 0, owner[np.maximum(parents[g], 0)], owner)
    setup = make_setup(CONFIG)
    start = [init(setup, k, CONFIG).params for k in jax.random.split(key, P)]
    kernels = lambda tree: {jax.tree_util.keystr(p): np.asarray(x) for p, x in  # noqa: E731
                            jax.tree_util.tree_leaves_with_path(tree) if "kernel" in jax.tree_util.keystr(p)}
    assert kernels(start[0])
    for i in range(P):
        final = kernels(jax.tree.map(lambda x: x[i], res.state.params))
        for name, value in kernels(start[owner[i]]).items():
            np.testing.assert_array_equal(final[name], value, err_msg=f"member {i} {name}")
    assert owner.tolist() != list(range(P))
    for i in np.flatnonzero(owner != np.arange(P)):  # and differ from their own start
        final = kernels(jax.tree.map(lambda x: x[i], res.state.params))
        assert any(not np.array_equal(final[name], value) for name, value in kernels(start[i]).items())


def test_generation_step_matches_the_recorded_lineage(result):
    """The exploit/explore decision recomputed outside the program, from the recorded scores and the PBT stream."""
    choices = np.float32(SPACE["entropy_coeff"])
    lr = result.lineage["hyperparameters"]["learning_rate"]
    ent = result.lineage["hyperparameters"]["entropy_coeff"]
    bounds = (np.float32([1e-4, 1e-2]), choices)
    for g in range(2):
        genes = [lr[g], np.searchsorted(choices, ent[g])]
        parent, new = exploit_explore(("range", "choice"), genes, result.lineage["score"][g],
                                      streams.stream(jax.random.key(0), streams.PBT, g), bounds, 0.25)
        np.testing.assert_array_equal(parent, result.lineage["parent"][g])
        np.testing.assert_array_equal(new[0], lr[g + 1])
        np.testing.assert_array_equal(choices[np.asarray(new[1])], ent[g + 1])


def test_same_key_same_bits_and_no_retrace(result):
    traces = TRACES["count"]
    again = purejaxppo.pbt(CONFIG, population=P, hyperparameters=SPACE, ready_every=R, key=jax.random.key(0))
    for a, b in zip(jax.tree.leaves((result.metrics, result.lineage)), jax.tree.leaves((again.metrics, again.lineage))):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(result.state.params), jax.tree.leaves(again.state.params)):
        np.testing.assert_array_equal(a, b)
    # another key and other bounds (same kinds and sizes): the same compiled program, no new trace
    other = pbt(CONFIG, population=P, hyperparameters={"learning_rate": (1e-3, 3e-3), "entropy_coeff": [0.0, 0.1, 0.2]},
                ready_every=R, key=jax.random.key(1))
    assert TRACES["count"] == traces
    assert not np.array_equal(other.lineage["hyperparameters"]["learning_rate"],
                              result.lineage["hyperparameters"]["learning_rate"])
    assert np.all((other.lineage["hyperparameters"]["learning_rate"] >= np.float32(1e-3))
                  & (other.lineage["hyperparameters"]["learning_rate"] <= np.float32(3e-3)))


def _assert_replays(metrics: dict, lone) -> None:
    for name, value in lone.metrics.items():
        expected = np.asarray(value)
        if name in FLOAT_METRICS:
            np.testing.assert_allclose(metrics[name], expected, rtol=1e-4, atol=1e-5, err_msg=name)
        else:
            np.testing.assert_array_equal(metrics[name], expected, err_msg=name)


def test_replay_of_a_population_of_one():
    res = pbt(CONFIG, population=1, hyperparameters=SPACE, ready_every=R, key=jax.random.key(2))
    assert (res.lineage["parent"] == -1).all()
    lone = replay(CONFIG, *res.schedule(0))
    _assert_replays({k: v[0] for k, v in res.metrics.items()}, lone)


def test_replay_of_a_member_never_exploited(result):
    never = np.flatnonzero((result.lineage["parent"] < 0).all(0))
    assert never.size
    i = int(never[0])
    lone = replay(CONFIG, *result.schedule(i))
    _assert_replays({k: v[i] for k, v in result.metrics.items()}, lone)


def test_errors():
    with pytest.raises(ValueError, match="static field|searchable"):
        pbt(CONFIG, P, {"num_envs": [2, 4]}, R)
    with pytest.raises(ValueError, match="multiple of ready_every"):
        pbt(CONFIG, P, SPACE, 5)
    with pytest.raises(ValueError, match="low < high"):
        pbt(CONFIG, P, {"learning_rate": (1e-3, 1e-4)}, R)
    for spec, message in [((1e-4, "a"), "must be a number, got 'a'"), ((None, 1e-3), "must be a number, got None"),
                          ([True], "must be a number, got True"),
                          ((1e-3, 10**400), r"must be in \(0, inf\), got an integer of 401 digits")]:
        with pytest.raises(ValueError, match=f"PPOConfig.learning_rate {message}"):
            pbt(CONFIG, P, {"learning_rate": spec}, R)
    with pytest.raises(ValueError, match=r"pbt's key must be one jax.random.key\(seed\).*shape \(\) and dtype int"):
        pbt(CONFIG, P, SPACE, R, key=0)
    with pytest.raises(TypeError, match="mesh must be a jax.sharding.Mesh"):
        pbt(CONFIG, P, SPACE, R, mesh="cpu")


def test_make_train_takes_a_schedule():
    key = jax.random.key(5)
    plain = make_train(CONFIG)(key)
    constant = make_train(CONFIG)(key, schedule={"learning_rate": np.full(3, CONFIG.learning_rate, np.float32)})
    _assert_replays(jax.device_get(constant.metrics), plain)  # a constant schedule is the plain run
    with pytest.raises(ValueError, match="not float hyperparameters"):
        make_train(CONFIG)(key, schedule={"num_envs": np.ones(3, np.float32)})
    with pytest.raises(ValueError, match="not a multiple of the schedule's 5 segments"):
        make_train(CONFIG)(key, schedule={"learning_rate": np.full(5, 1e-3, np.float32)})
    with pytest.raises(ValueError, match="schedule must map hyperparameter names to 1-d arrays, got list"):
        make_train(CONFIG)(key, schedule=[1e-3] * 3)
    # a list of numbers is read as the array it spells (traced only: the program is the one above)
    listed = jax.eval_shape(make_train(CONFIG), key, None, {"learning_rate": [CONFIG.learning_rate] * 3})
    assert listed.metrics["policy_loss"].shape == (CONFIG.num_updates,)


def test_lineage_plot_marks_every_copy_and_draws_a_run_in_progress(result):
    from purejaxppo.runs.plotting import draw_lineage

    final = np.nanmean(result.metrics["episode_return"][:, -4:], axis=1)
    fig = draw_lineage(result.lineage, final, R)
    copies = int((result.lineage["parent"] >= 0).sum())
    for ax in fig.axes[1:]:
        assert sum(len(line.get_xdata()) for line in ax.lines if line.get_marker() == "o") == copies
    assert [ax.get_title().split(" ")[0] for ax in fig.axes[1:]] == list(SPACE)
    partial = {"parent": np.array([result.lineage["parent"][0], [-1] * P]),  # generation 2 not reached
               "hyperparameters": {n: np.vstack([v[:2], np.full((1, P), np.nan)])
                                   for n, v in result.lineage["hyperparameters"].items()}}
    fig = draw_lineage(partial, np.full(P, np.nan), R)
    assert fig.axes[0].get_title() == "final return per member (no episode finished)"
