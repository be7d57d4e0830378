"""The notebooks run top to bottom against local stand-ins, and their committed copies
carry outputs (a reader sees them without running anything)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbclient
import nbformat
import pytest
from nbformat import NotebookNode


def _read(path: Path) -> NotebookNode:
    node: NotebookNode = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    return node


NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_the_three_notebooks_are_there() -> None:
    assert [p.name for p in ALL] == [
        "01-injection-blocking.ipynb",
        "02-guard-rails.ipynb",
        "03-tamper-evidence.ipynb",
    ]


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_committed_notebooks_keep_their_outputs(path: Path) -> None:
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert code and all(c.execution_count is not None for c in code), "run scripts/notebooks"
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "a figure is expected"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_notebook_executes_without_error(path: Path, tmp_path: Path) -> None:
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    nb = _read(copy)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    client = nbclient.NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        # the notebooks' own directory: notebook 1 imports the tests' stand-ins from the
        # repository root above it
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError naming the cell on any error
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    nbformat.write(nb, copy)  # type: ignore[no-untyped-call]
