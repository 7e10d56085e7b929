"""Session-wide test settings.

Every test (and every subprocess it starts, which inherits the environment) keeps the dataset
cache in the session's temporary directory instead of ``~/.cache/jaxzoo``: a test run must not
write into the user's home, read a stale cache left there, or depend on what an earlier run
put there. Under pytest-xdist each worker has its own base temporary directory, so workers do
not share (or race on) a cache; MNIST-1D is generated once per worker. The path is the one
``tests/train/test_datasets_embedded.py`` uses, so that module reuses the same cache.

``--emulate-precision=bf16|tf32`` (or ``JAXZOO_EMULATE_PRECISION``) makes XLA's CPU products
behave like a TPU's or a GPU's default float32 precision (``tests/emulation/``); the option is
exported to the environment, with ``tests/emulation`` first on PYTHONPATH, so that
subprocesses and notebook kernels run emulated too. ``-m reference`` selects the tests that
compare with an independent reference (what CI runs under each emulation).
"""

import os
import sys
from pathlib import Path

import pytest

EMULATION_DIR = str(Path(__file__).resolve().parent / "emulation")


def pytest_addoption(parser):
    parser.addoption(
        "--emulate-precision", choices=("bf16", "tf32", "none"), default=None,
        help="emulate an accelerator's default float32 matmul/conv precision on CPU: bf16 "
             "(TPU: one bfloat16 pass) or tf32 (GPU: TF32 inputs for products of >= 1024 "
             "outputs); default: $JAXZOO_EMULATE_PRECISION, else none")


def pytest_configure(config):
    if EMULATION_DIR not in sys.path:
        sys.path.insert(0, EMULATION_DIR)
    import precision_emulation as emu

    option = config.getoption("--emulate-precision")
    if option is not None:
        os.environ[emu.ENV] = option
    mode = emu.mode_from_env()
    if mode is None:
        return
    # children: the variable says which mode, sitecustomize.py in EMULATION_DIR installs it
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [EMULATION_DIR] + [p for p in paths if p != EMULATION_DIR])
    emu.install_from_env()


def pytest_report_header(config):
    import precision_emulation as emu

    return f"float32 products: {emu.describe()}"


@pytest.fixture(autouse=True)
def _highest_precision_when_marked(request):
    """``@pytest.mark.highest``: the test runs with float32 products on every backend (a GPU's
    default is TF32, a TPU's one bfloat16 pass), so it compares the math, not the hardware's
    rounding, and keeps float32 tolerances. It covers the test body and its function-scoped
    fixtures, not module- or session-scoped ones (they are set up before it)."""
    if request.node.get_closest_marker("highest") is None:
        yield
        return
    import jax

    with jax.default_matmul_precision("highest"):
        yield


@pytest.fixture(autouse=True, scope="session")
def _dataset_cache_in_tmp(tmp_path_factory):
    path = str(tmp_path_factory.getbasetemp() / "jaxzoo_cache")
    old = os.environ.get("JAXZOO_DATA")
    os.environ["JAXZOO_DATA"] = path
    yield path
    if old is None:
        os.environ.pop("JAXZOO_DATA", None)
    else:
        os.environ["JAXZOO_DATA"] = old
