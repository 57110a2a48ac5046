"""Host-side logic of the benchmark scripts (the measurements themselves run in benchmarks/, not in tests)."""

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)


def _load(name):
    path = Path(__file__).parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scaling = _load("scaling")


@pytest.mark.parametrize("capacity", [1, 7, 2047, 2048, 2049, 5000, 100_000, 123_456])
def test_find_max_seeds_brackets_the_capacity(capacity):
    largest, failing, tried = scaling.find_max_seeds(lambda n: n <= capacity, start=2048)
    assert largest <= capacity < failing  # the answer fits and the reported failure really fails
    assert failing - largest <= max(1, 0.05 * largest)
    assert all(ok == (n <= capacity) for n, ok in tried)
    assert len(tried) == len(set(n for n, _ in tried)) <= 30  # no count is run twice


def test_find_max_seeds_stops_at_the_limit():
    largest, failing, tried = scaling.find_max_seeds(lambda n: True, start=3, limit=100)
    assert (largest, failing) == (96, None)
    assert [n for n, _ in tried] == [3, 6, 12, 24, 48, 96]


def test_out_of_memory_is_told_apart_from_other_failures(monkeypatch):
    class Done:
        def __init__(self, stderr):
            self.returncode, self.stdout, self.stderr = 1, "", stderr

    monkeypatch.setattr(scaling.subprocess, "run", lambda *a, **k: Done("jaxlib...XlaRuntimeError: RESOURCE_EXHAUSTED: "
                                                                        "Out of memory while trying to allocate"))
    with pytest.raises(scaling.OutOfMemory):
        scaling.run_worker({"num_seeds": 8}, 1, "gpu", 10)
    monkeypatch.setattr(scaling.subprocess, "run", lambda *a, **k: Done("ValueError: something else"))
    with pytest.raises(RuntimeError) as err:
        scaling.run_worker({"num_seeds": 8}, 1, "gpu", 10)
    assert not isinstance(err.value, scaling.OutOfMemory)
