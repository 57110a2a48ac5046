"""The notebooks in notebooks/ run top to bottom (tiny budgets: PUREJAXPPO_SMOKE=1) and the committed copies hold the
outputs of a full run.

Each notebook is executed with nbclient on the "python3" kernel (ipykernel, this interpreter); a cell that raises
fails the test with the cell's traceback. The three together take about a minute on a 2-core CPU.
"""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = ("quickstart", "sweeps", "custom_env")


def read(name: str):
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


def code_cells(book) -> list:
    return [c for c in book.cells if c.cell_type == "code"]


def images(book) -> int:
    """How many PNG outputs the notebook's code cells hold."""
    return sum("image/png" in out.get("data", {}) for c in code_cells(book) for out in c.get("outputs", []))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_has_smoke_parameters_and_guarded_install(name):
    book = read(name)
    tagged = [c for c in code_cells(book) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "one cell tagged 'parameters' holds the budgets"
    assert 'os.environ.get("PUREJAXPPO_SMOKE") == "1"' in tagged[0].source
    install = code_cells(book)[0].source
    assert "%pip install" in install and 'find_spec("purejaxppo") is None' in install
    # by name, with the fallback (a wheel or a checkout) written out; no placeholder URL
    assert 'os.environ.get("PUREJAXPPO_SOURCE", "purejaxppo")' in install and "%pip install -q {source}" in install
    assert "<" not in install and "github.com" not in install


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_keeps_full_run_outputs(name):
    """The committed notebook was executed in order, without errors, at full budget, and keeps its plots."""
    book = read(name)
    cells = code_cells(book)
    counts = [c.get("execution_count") for c in cells]
    assert counts == list(range(1, len(cells) + 1)), f"not executed top to bottom: {counts}"
    assert not any(out.get("output_type") == "error" for c in cells for out in c.get("outputs", []))
    assert images(book) >= 1
    tagged = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
    printed = "".join(out.get("text", "") for out in tagged.get("outputs", []))
    assert "budgets: full" in printed, f"outputs must come from a full (non-smoke) run, got {printed!r}"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", NOTEBOOKS)
@pytest.mark.slow
def test_notebook_runs_top_to_bottom(name, monkeypatch, tmp_path):
    monkeypatch.setenv("PUREJAXPPO_SMOKE", "1")  # inherited by the kernel
    monkeypatch.setenv("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", "cpu"))
    book = read(name)
    for cell in code_cells(book):
        cell.outputs, cell.execution_count = [], None
    client = nbclient.NotebookClient(
        book, kernel_name="python3", timeout=240, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError (with the traceback) if any cell fails
    cells = code_cells(book)
    assert all(c.execution_count is not None for c in cells)
    assert images(book) >= 1, "the notebook drew no plot"
