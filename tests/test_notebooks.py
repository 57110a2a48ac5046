"""The notebooks in notebooks/ run top to bottom (tiny budgets: PUREJAXPPO_SMOKE=1) and the committed copies hold the
outputs of a full run.

Each notebook is executed with nbclient on the "python3" kernel (ipykernel, this interpreter); a cell that raises
fails the test with the cell's traceback. The three together take about a minute on a 2-core CPU.
"""

import os
import re
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
    assert "<" not in install and "github.com" not in install  # no placeholder URL


def run_install_cell(name: str, cwd: Path, monkeypatch) -> list[str]:
    """Run notebook `name`'s install cell in `cwd` as if purejaxppo were not importable; returns what it would pass
    to `%pip install` (the magic is replaced by a recorder)."""
    install = code_cells(read(name))[0].source
    code, magics = re.subn(r'%pip install -q "?\{source\}"?', "_pip(source)", install)
    assert magics == 1, install
    installed = []
    monkeypatch.chdir(cwd)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "purejaxppo" else True)
    exec(code, {"_pip": installed.append})  # noqa: S102 - our own notebook
    return installed


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_install_cell_installs_from_a_checkout_not_from_pypi(name, monkeypatch, tmp_path):
    """purejaxppo is not on any package index: the install cell takes the checkout the notebook sits in (or the one
    PUREJAXPPO_SOURCE names), and says what to do when it finds none, instead of `pip install purejaxppo`."""
    monkeypatch.delenv("PUREJAXPPO_SOURCE", raising=False)
    [source] = run_install_cell(name, NOTEBOOK_DIR, monkeypatch)
    assert (Path(source).resolve() / "purejaxppo" / "__init__.py").is_file() and (
        Path(source).resolve() == NOTEBOOK_DIR.parent)
    monkeypatch.setenv("PUREJAXPPO_SOURCE", str(NOTEBOOK_DIR.parent))
    assert run_install_cell(name, tmp_path, monkeypatch) == [str(NOTEBOOK_DIR.parent)]
    monkeypatch.delenv("PUREJAXPPO_SOURCE")
    with pytest.raises(RuntimeError, match=r"not on PyPI: set PUREJAXPPO_SOURCE to a checkout"):
        run_install_cell(name, tmp_path, monkeypatch)  # no checkout here or above


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
    # importing envpool (an earlier test file on this worker) sets MPLBACKEND=Agg in this process; the kernel would
    # inherit it and plt.show() would draw nothing: let ipykernel choose its inline backend, as in a fresh session
    monkeypatch.delenv("MPLBACKEND", raising=False)
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
