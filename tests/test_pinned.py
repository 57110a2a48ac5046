"""Behaviour pinned across refactors: final parameters and metrics of fixed runs, digested with SHA-256.

tests/data/pinned_runs.json is written by `tests/pinned_runs.py`. It was first recorded with the code at feee724; the
one-pipeline refactor (issue 11) kept every digest to the bit. The speed work (issue 12) changed the bits on purpose:
Adam and the global-norm clip run over one flat parameter buffer (one norm reduction instead of a sum of per-layer
ones) and the batch is valued in blocks of steps. Its returns were shown unchanged within noise on 8 seeds
(benchmarks/results/speed-levers-cpu-2core.md), and the digests were recorded again. On the platform they were
recorded on every digest must match to the bit; on any other platform XLA may round differently, so the first
update's loss terms are compared with a tolerance instead (that check runs everywhere). The platform is a fingerprint
(`pinned_runs.platform_fingerprint`: jax, jaxlib, backend, XLA_FLAGS, and the processor's vendor, family, model,
stepping and instruction sets), since one "model name" such as "AMD EPYC" covers processor families that round
differently.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from pinned_runs import RECORD, cpu_fingerprint, fingerprint_differences, platform_fingerprint, run_cases

RECORDED = json.loads(RECORD.read_text())
CASES = sorted(RECORDED["cases"])


@pytest.fixture(scope="module")
def current():
    return run_cases()


@pytest.mark.timeout(400)
@pytest.mark.parametrize("case", CASES)
def test_pinned_run(current, case):
    expected, got = RECORDED["cases"][case], current[case]
    for name, value in expected["first_update"].items():
        np.testing.assert_allclose(got["first_update"][name], value, rtol=1e-4, atol=1e-6, err_msg=f"{case}: {name}")
    differences = fingerprint_differences(RECORDED["platform"], platform_fingerprint())
    if differences:
        pytest.skip(f"bits are pinned on another platform (this one differs in {', '.join(differences)}); "
                    "the tolerance check passed")
    assert got["params"] == expected["params"], f"{case}: final parameters changed"
    assert got["metrics"] == expected["metrics"], f"{case}: metrics changed"


# Two processors that both call themselves "AMD EPYC" (the first lines of /proc/cpuinfo, trimmed): Zen 4 and Zen 5.
EPYC_ZEN4 = """processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 17
model name	: AMD EPYC
stepping	: 1
flags		: fpu sse4_1 sse4_2 avx f16c avx2 fma avx512f avx512bw avx512_bf16

processor	: 1
vendor_id	: AuthenticAMD
cpu family	: 25
"""
EPYC_ZEN5 = EPYC_ZEN4.replace("cpu family\t: 25\nmodel\t\t: 17", "cpu family\t: 26\nmodel\t\t: 2")


def test_fingerprint_tells_processor_families_apart():
    zen4, zen5 = cpu_fingerprint(EPYC_ZEN4), cpu_fingerprint(EPYC_ZEN5)
    assert zen4["model_name"] == zen5["model_name"] == "AMD EPYC"
    assert (zen4["family"], zen4["model"], zen4["stepping"]) == ("25", "17", "1")
    assert zen4["isa"] == ["avx", "avx2", "avx512_bf16", "avx512bw", "avx512f", "f16c", "fma", "sse4_1", "sse4_2"]
    assert fingerprint_differences({"cpu": zen4}, {"cpu": zen5}) == ["cpu.family", "cpu.model"]
    fewer = dict(zen4, isa=[f for f in zen4["isa"] if not f.startswith("avx512")])
    assert fingerprint_differences({"cpu": zen4, "jax": "0.9.2"}, {"cpu": fewer, "jax": "0.9.2"}) == ["cpu.isa"]


def test_fingerprint_includes_xla_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=AVX2")
    capped = platform_fingerprint()
    monkeypatch.delenv("XLA_FLAGS")
    assert fingerprint_differences(platform_fingerprint(), capped) == ["xla_flags"]
