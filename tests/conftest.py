"""Session-wide test settings.

Every test (and every subprocess it starts, which inherits the environment) keeps the dataset
cache in the session's temporary directory instead of ``~/.cache/jaxzoo``: a test run must not
write into the user's home, read a stale cache left there, or depend on what an earlier run
put there. Under pytest-xdist each worker has its own base temporary directory, so workers do
not share (or race on) a cache; MNIST-1D is generated once per worker. The path is the one
``tests/train/test_datasets_embedded.py`` uses, so that module reuses the same cache.
"""

import os

import pytest


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
