"""Executes every Colab notebook (colab/*.ipynb) top to bottom in smoke mode.

Each notebook asserts the facts it shows (the worked example's numbers, ours == optax, ...), so
running it is the test: any exception, failed assert or cell timeout fails here with the cell's
traceback. Smoke mode (JAXZOO_SMOKE=1) keeps the same cells with smaller sizes. The kernel runs
in colab/ (as in Jupyter opened there) with the repository root on PYTHONPATH, so a fresh clone
works with or without ``pip install -e``. Also checks that notebooks are committed without
outputs and match their sources in colab/src (colab/_build.py).

With ``--emulate-precision=bf16|tf32`` the kernels run emulated too: conftest.py exports the
mode and puts tests/emulation (its sitecustomize.py) first on PYTHONPATH, which the kernels
inherit; the setup cell prints the precision, and the test checks it names the emulation.
"""

from __future__ import annotations

import importlib.util
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import precision_emulation as emu  # tests/emulation, put on sys.path by conftest.py
import pytest

# compares with independent references: .ci/run also runs this module under --emulate-precision
pytestmark = pytest.mark.reference

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
COLAB = ROOT / "colab"
NOTEBOOKS = sorted(COLAB.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT_S = 300  # per cell; a smoke run of a whole notebook takes well under a minute


def _load(name):
    spec = importlib.util.spec_from_file_location(f"colab_{name}", COLAB / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 5, [p.name for p in NOTEBOOKS]
    sources = sorted(p.stem for p in (COLAB / "src").glob("[0-9][0-9]_*.py"))
    assert sources == [p.stem for p in NOTEBOOKS]


def test_committed_without_outputs():
    strip_outputs = _load("strip_outputs")
    dirty = {p.name: strip_outputs.problems(nbformat.read(p, as_version=4)) for p in NOTEBOOKS}
    assert not any(dirty.values()), {k: v for k, v in dirty.items() if v}
    # the checker sees outputs when there are some
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", text="hi\n")]
    code.execution_count = 3
    assert len(strip_outputs.problems(nb)) == 2
    assert strip_outputs.problems(strip_outputs.strip(nb)) == []


def test_notebooks_match_sources():
    build = _load("_build")
    for path in NOTEBOOKS:
        expected = build.render(build.build(COLAB / "src" / f"{path.stem}.py"))
        assert path.read_text(encoding="utf-8") == expected, (
            f"{path.name} differs from colab/src/{path.stem}.py: run python colab/_build.py")


def test_every_notebook_starts_with_the_shared_cells():
    build = _load("_build")
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        assert code[:2] == [build.SETUP_CELL, build.SMOKE_CELL], path.name


def _execute(path):
    """Runs one notebook in a fresh python3 kernel; returns (notebook, seconds)."""
    import nbclient

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
        resources={"metadata": {"path": str(COLAB)}})
    start = time.perf_counter()
    client.execute()
    return nb, time.perf_counter() - start


def _smoke_env(mp):
    """The kernels inherit this process's environment: smoke sizes, no display, this
    checkout first on the path."""
    mp.setenv("JAXZOO_SMOKE", "1")
    mp.setenv("MPLBACKEND", "Agg")
    mp.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))


def _execute_smoke(path):
    """``_execute`` in smoke mode; the exception raised instead of a result, if any."""
    try:
        with pytest.MonkeyPatch.context() as mp:
            _smoke_env(mp)
            return _execute(path)
    except Exception as err:  # reported by that notebook's test
        return err


class _OnDemand(dict):
    """Runs a notebook when its test first asks for it (under pytest-xdist)."""

    def __missing__(self, path):
        self[path] = _execute_smoke(path)
        return self[path]


@pytest.fixture(scope="module")
def smoke_runs(request):
    """Executes each selected notebook once; returns {path: (notebook, seconds) or the
    exception raised}.

    Under pytest-xdist every worker collects every test but runs only those the scheduler
    hands it, so a notebook runs when its own test asks for it, on that worker: the workers
    run notebooks side by side, and none runs twice. In a single process the selected
    notebooks run up front, JAXZOO_NOTEBOOK_WORKERS at a time (default 2: XLA compilation,
    most of a smoke run, is single-threaded, so two kernels use both CI cores).
    """
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return _OnDemand()
    workers = int(os.environ.get("JAXZOO_NOTEBOOK_WORKERS", "2"))
    # only the notebooks whose tests were selected (pytest -k 02_backprop runs one)
    selected = [item.callspec.params["path"] for item in request.session.items
                if item.originalname == "test_notebook_runs_in_smoke_mode"]
    with pytest.MonkeyPatch.context() as mp:
        _smoke_env(mp)
        with ThreadPoolExecutor(max(1, workers)) as pool:
            futures = {path: pool.submit(_execute, path) for path in selected}
            results = {}
            for path, future in futures.items():
                try:
                    results[path] = future.result()
                except Exception as err:  # reported by that notebook's test
                    results[path] = err
    return results


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_mode(path, smoke_runs):
    result = smoke_runs[path]
    if isinstance(result, BaseException):
        raise result
    nb, seconds = result
    print(f"{path.name}: {seconds:.1f} s in smoke mode")
    setup_out = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "backend" in setup_out, setup_out
    # the precision of float32 products it ran at; under --emulate-precision the kernel
    # emulated it too (sitecustomize in tests/emulation, on the kernel's PYTHONPATH)
    assert "float32 matmul precision: " in setup_out, setup_out
    if emu.mode() is not None:
        assert emu.describe() in setup_out, setup_out
    # the notebook imported this checkout's packages, not another installed copy
    assert f"jaxzoo from {ROOT}" in setup_out, setup_out


def test_every_notebook_is_listed_with_a_colab_badge():
    readme = (COLAB / "README.md").read_text(encoding="utf-8")
    build = _load("_build")
    for path in NOTEBOOKS:
        assert f"]({path.name})" in readme, f"{path.name} missing from colab/README.md"
        assert build.BADGE_URL.format(name=path.stem) in readme, path.name
