"""benchmarks/gpu.py, the prepared GPU benchmark, runs its whole plan on the CPU (--dry-run) and writes what a GPU
session is asked for: the merged side-by-side report, its markdown and the scaling report."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PUREJAXRL = ROOT.parent / "shared" / "peers" / "purejaxrl"  # the snapshot beside the checkout (shared/peers/README)
PLANNED = [("CartPole-v1", 1), ("Breakout-MinAtar", 2)]  # the dry run's: make_train, and sweep (as 64/2048 seeds)
ABSOLUTE = re.compile(r"""(^|["'`(\s])(/(home|root|tmp|work|Users|mnt|opt|var|srv|data)/|~/)""")

# 11 fresh Python processes (2 peers.py cases of 3 workers, scaling's probe and 2 points, the preflight), each an
# import of JAX and an XLA compile: about a minute on a 2-core CPU, so a multi-process ("slow") test.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """The dry run's output folder and its console output."""
    if not (PUREJAXRL / "purejaxrl" / "ppo.py").is_file():
        pytest.skip(f"no PureJaxRL snapshot at {PUREJAXRL} (shared/peers/purejaxrl beside the checkout)")
    out = tmp_path_factory.mktemp("gpu-dry")
    proc = subprocess.run([sys.executable, "benchmarks/gpu.py", "--purejaxrl-dir", str(PUREJAXRL), "--out", str(out),
                           "--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_dry_run_writes_every_planned_case(dry_run):
    out, _ = dry_run
    report = json.loads(next(out.glob("peers-*.json")).read_text())
    assert report["device"].startswith("cpu")
    assert [(c["env"], c["seeds"]) for c in report["cases"]] == PLANNED
    for case in report["cases"]:
        assert case["seeds"] >= 1 and case["summary"]["median_ratio"] > 0
        assert len(case["pairs"]) == 1 and case["steps_per_seed"] == case["total_timesteps"]  # 2 whole updates
        assert case["command"].startswith("python benchmarks/peers.py ")
    run = report["run"]
    assert run["dry_run"] and run["budget_s"] == 520
    assert [s["status"] for s in run["steps"]] == ["ok"] * 3  # two cases, then scaling
    assert run["steps"][-1]["command"].startswith("python benchmarks/scaling.py --seeds 1,2 --devices none")
    assert [s["step"] for s in run["skipped"]] == ["max-seeds"]  # accelerators only


def test_dry_run_writes_markdown_and_scaling_without_absolute_paths(dry_run):
    out, stdout = dry_run
    markdown = next(out.glob("peers-*.md")).read_text()
    assert "## How this run was made" in markdown and "Breakout-MinAtar, 2 seeds" in markdown
    scaling = json.loads(next(out.glob("scaling-*.json")).read_text())
    assert [r["num_seeds"] for r in scaling["by_seeds"]] == [1, 2]
    assert next(out.glob("scaling-*.png")).stat().st_size > 0
    for path in [*out.glob("*.json"), *out.glob("*.md")]:
        text = path.read_text()
        assert str(out) not in text and not ABSOLUTE.search(text), f"an absolute path in {path.name}"
    assert "skipped: ['max-seeds']" in stdout
